import numpy as np
import pytest

from vitalsentry.evaluation.sepsis.bootstrap import PatientBootstrap
from vitalsentry.evaluation.sepsis.scoring import (
    Patients,
    alarms_per_day,
    bagged_threshold,
    evaluate_scores,
    lead_times,
    paired_auc_difference,
    paired_utility_difference,
)


def _two_patients() -> Patients:
    # p0 septic: first label at hour 4 → onset hour 10 (20 h stay); p1 never septic (28 h)
    patient = np.r_[np.zeros(20, int), np.ones(28, int)]
    label = np.r_[np.zeros(4, np.int8), np.ones(16, np.int8), np.zeros(28, np.int8)]
    return Patients.of(patient, label)


def test_lead_time_counts_the_first_alarm_up_to_three_hours_after_onset():
    p = _two_patients()
    alarm = np.zeros(48, bool)
    alarm[[3, 7, 30]] = True  # p0 alarms 7 h and 3 h before onset; p1 a false alarm
    leads, septic = lead_times(p, alarm)
    assert septic == 1 and leads.tolist() == [7.0]
    late = np.zeros(48, bool)
    late[14] = True  # 4 h after onset: too late to count
    assert lead_times(p, late)[0].size == 0


def test_alarms_per_patient_day_counts_new_alarms():
    p = _two_patients()
    alarm = np.zeros(48, bool)
    alarm[[3, 4, 5, 19, 20, 30]] = True  # runs: 3–5, 19 (end of p0), 20 (start of p1), 30
    assert alarms_per_day(p, alarm) == pytest.approx(4 / (48 / 24))


def test_evaluate_scores_reports_every_metric():
    p = _two_patients()
    scores = np.r_[np.linspace(0, 1, 20), np.full(28, 0.1)]
    boot = PatientBootstrap.draw(p.patient, 20, 0)
    out = evaluate_scores(scores, p, 0.5, probability=True, boot=boot)
    assert out["roc_auc"] > 0.5 and out["detected"] == "1/1"
    assert out["utility"] == pytest.approx(p.utility.normalised(scores >= 0.5))
    assert out["brier"] == pytest.approx(np.mean((scores - p.label) ** 2))
    never = evaluate_scores(scores, p, float("inf"), probability=False, boot=boot)
    assert never["threshold"] is None and never["utility"] == 0.0 and never["brier"] is None


def test_paired_difference_of_a_method_with_itself_is_zero():
    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.2).astype(np.int8)
    s = y + rng.normal(size=400)
    patient = np.repeat(np.arange(40), 10)
    boot = PatientBootstrap.draw(patient, 30, 0)
    same = paired_auc_difference(y, s, s, boot)
    assert same["difference"] == 0.0 and same["ci"] == [0.0, 0.0]
    better = paired_auc_difference(y, s, rng.normal(size=400), boot)
    assert better["ci"][0] > 0


def test_paired_utility_difference_of_the_ideal_alarms_over_none_is_one_in_every_resample():
    p, scores = _cohort(40, 0)
    boot = PatientBootstrap.draw(p.patient, 30, 0)
    ideal = np.isfinite(p.relative) & (p.relative >= -12) & (p.relative <= 3)
    never = np.zeros(ideal.size, bool)
    best = paired_utility_difference(p, ideal, never, boot)
    assert best["difference"] == pytest.approx(1.0)
    assert best["ci"] == pytest.approx([1.0, 1.0])
    alarm = scores >= 0.5
    same = paired_utility_difference(p, alarm, alarm, boot)
    assert same["difference"] == 0.0 and same["ci"] == [0.0, 0.0]
    worse = paired_utility_difference(p, alarm, ideal, boot)
    assert worse["difference"] == pytest.approx(p.utility.normalised(alarm) - 1.0)
    assert worse["ci"][1] < 0


def _cohort(n_patients: int, seed: int) -> tuple[Patients, np.ndarray]:
    """Patients of 30 h, a third septic (labels from hour 12), and a noisy score."""
    rng = np.random.default_rng(seed)
    patient = np.repeat(np.arange(n_patients), 30)
    hour = np.tile(np.arange(30), n_patients)
    label = ((patient % 3 == 0) & (hour >= 12)).astype(np.int8)
    scores = np.round(label * (hour - 6).clip(0) / 10 + rng.normal(0, 0.6, patient.size), 2)
    return Patients.of(patient, label), scores


def test_bagged_threshold_of_unchanged_resamples_is_the_argmax():
    p, scores = _cohort(40, 0)
    same = PatientBootstrap(PatientBootstrap.draw(p.patient, 1, 0).codes, np.ones((5, 40)))
    assert bagged_threshold(scores, p, same) == pytest.approx(p.utility.best_threshold(scores))


def test_bagged_threshold_is_the_median_of_resample_argmaxes():
    p, scores = _cohort(60, 1)
    boot = PatientBootstrap.draw(p.patient, 15, 0)
    picks = []
    for w in boot.counts:  # each resample materialised: its rows repeated w times
        rows = np.concatenate(
            [np.flatnonzero(boot.codes == i) for i in np.repeat(np.arange(60), w.astype(int))]
        )
        again = Patients.of(np.repeat(np.arange(rows.size // 30), 30), p.label[rows])
        picks.append(again.utility.best_threshold(scores[rows])[0])
    threshold, utility = bagged_threshold(scores, p, boot)
    assert threshold == pytest.approx(float(np.median(picks)))
    assert utility == pytest.approx(p.utility.normalised(scores >= threshold))


def test_bagged_threshold_never_alarms_when_nothing_beats_inaction():
    p, _ = _cohort(30, 2)
    useless = np.where(p.patient % 3 == 0, np.nan, 1.0)  # alarms only non-septic patients
    boot = PatientBootstrap.draw(p.patient, 10, 0)
    assert bagged_threshold(useless, p, boot) == (float("inf"), 0.0)
