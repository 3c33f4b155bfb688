import numpy as np
import pytest

from vitalsentry.evaluation.sepsis.bootstrap import PatientBootstrap
from vitalsentry.evaluation.sepsis.scoring import (
    Patients,
    alarms_per_day,
    evaluate_scores,
    lead_times,
    paired_auc_difference,
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
