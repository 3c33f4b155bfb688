import json

import numpy as np
import pytest

from vitalsentry.errors import BundleError, DataError, VitalSentryError
from vitalsentry.risk.calibrate import (
    RiskCalibration,
    channel_contributions,
    fit_calibration,
    mc_summary,
    top_channel,
)


@pytest.fixture(scope="module")
def scores() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {
        "normal": rng.normal(0.45, 0.03, 500),
        "abnormal": rng.normal(0.65, 0.05, 100),
        "val_normal": rng.normal(0.45, 0.03, 1000),
        "val_abnormal": rng.normal(0.65, 0.05, 200),
    }


@pytest.fixture(scope="module")
def calibration(scores) -> RiskCalibration:
    return fit_calibration(
        scores["normal"],
        scores["abnormal"],
        val_normal_scores=scores["val_normal"],
        val_abnormal_scores=scores["val_abnormal"],
    )


def test_bounds_come_from_both_classes(calibration, scores):
    assert calibration.low == pytest.approx(np.median(scores["normal"]))
    assert calibration.high == pytest.approx(np.percentile(scores["abnormal"], 95))
    assert calibration.upper_bound_source == "abnormal"


def test_risk_is_a_clipped_monotone_map(calibration):
    grid = np.linspace(0.0, 1.0, 201)
    risk = calibration.risk(grid)
    assert risk.shape == grid.shape
    assert (np.diff(risk) >= 0).all()
    assert risk[0] == 0.0
    assert risk[-1] == 1.0
    mid = (calibration.low + calibration.high) / 2
    assert calibration.risk(mid) == pytest.approx(0.5)
    assert calibration.risk(np.zeros((2, 3))).shape == (2, 3)


def test_high_threshold_meets_the_target_false_positive_rate_on_validation(calibration, scores):
    val = scores["val_normal"]
    assert calibration.val_fpr == np.mean(val > calibration.threshold_high)
    assert 0.025 <= calibration.val_fpr <= 0.03
    assert calibration.threshold_medium <= calibration.threshold_high
    assert np.mean(val > calibration.threshold_medium) == pytest.approx(0.09, abs=0.005)
    assert calibration.val_recall == np.mean(scores["val_abnormal"] > calibration.threshold_high)
    assert calibration.val_recall > 0.9


@pytest.mark.parametrize("n_val", [5, 10, 33, 101])
@pytest.mark.parametrize("target", [0.01, 0.03, 0.2])
def test_false_positive_rate_never_exceeds_the_target(n_val, target):
    val = np.random.default_rng(n_val).normal(size=n_val)
    cal = fit_calibration(np.arange(10.0), val_normal_scores=val, target_fpr=target)
    assert np.mean(val > cal.threshold_high) <= target
    assert cal.val_fpr <= target
    assert np.mean(val > cal.threshold_medium) <= 3 * target


def test_thresholds_are_stored_in_score_and_risk_units(calibration):
    assert calibration.risk_high == pytest.approx(
        float(calibration.risk(calibration.threshold_high))
    )
    assert calibration.risk_medium == pytest.approx(
        float(calibration.risk(calibration.threshold_medium))
    )


def test_levels(calibration):
    th_m, th_h = calibration.threshold_medium, calibration.threshold_high
    levels = calibration.level(np.array([th_m - 0.01, th_m, (th_m + th_h) / 2, th_h, th_h + 0.01]))
    assert levels.tolist() == ["low", "low", "medium", "medium", "high"]


def test_normal_only_fallback_for_the_upper_bound():
    normal = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    val = np.linspace(0, 6, 50)
    cal = fit_calibration(normal, None, val_normal_scores=val)
    assert cal.upper_bound_source == "normal"
    assert cal.low == 3.0
    assert cal.high == 5.0 + 2.0  # max + interquartile range
    assert cal.val_recall is None
    # abnormal scores that do not exceed the normal median fall back too
    inverted = fit_calibration(normal, np.array([0.5, 1.0, 2.0]), val_normal_scores=val)
    assert inverted.upper_bound_source == "normal"
    assert inverted.high == 7.0


def test_dict_round_trip_through_json(calibration):
    restored = RiskCalibration.from_dict(json.loads(json.dumps(calibration.to_dict())))
    assert restored == calibration
    no_recall = fit_calibration(np.arange(10.0), val_normal_scores=np.arange(20.0))
    assert RiskCalibration.from_dict(json.loads(json.dumps(no_recall.to_dict()))) == no_recall


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"extra": 1}, "unknown keys"),
        ({"low": None}, "not a finite number: low"),
        ({"high": "1.0"}, "not a finite number: high"),
        ({"val_fpr": float("nan")}, "not a finite number: val_fpr"),
        ({"low": 2.0, "high": 1.0}, "low bound"),
        ({"threshold_medium": 10.0}, "medium threshold"),
        ({"upper_bound_source": "magic"}, "upper_bound_source"),
    ],
)
def test_from_dict_rejects_tampered_data(calibration, change, match):
    data = {**calibration.to_dict(), **change}
    with pytest.raises(BundleError, match=match):
        RiskCalibration.from_dict(data)


def test_from_dict_rejects_missing_keys(calibration):
    data = calibration.to_dict()
    del data["threshold_high"]
    with pytest.raises(BundleError, match=r"missing keys.*threshold_high"):
        RiskCalibration.from_dict(data)


@pytest.mark.parametrize(
    ("kwargs", "column"),
    [
        ({"normal_scores": []}, "normal_scores"),
        ({"normal_scores": [0.1, np.nan]}, "normal_scores"),
        ({"val_normal_scores": []}, "val_normal_scores"),
        ({"val_normal_scores": [[0.1, 0.2]]}, "val_normal_scores"),
        ({"abnormal_scores": [np.inf]}, "abnormal_scores"),
        ({"val_abnormal_scores": []}, "val_abnormal_scores"),
        ({"normal_scores": [0.3, 0.3, 0.3]}, "normal_scores"),  # constant, no abnormal
    ],
)
def test_bad_scores_raise_data_error(kwargs, column):
    args = {"normal_scores": [0.1, 0.2, 0.3], "val_normal_scores": [0.1, 0.2], **kwargs}
    with pytest.raises(DataError) as info:
        fit_calibration(**args)
    assert info.value.column == column


def test_bad_target_fpr_and_nan_scores_at_use(calibration):
    with pytest.raises(VitalSentryError, match="target_fpr"):
        fit_calibration([0.1, 0.2], val_normal_scores=[0.1], target_fpr=0.0)
    with pytest.raises(DataError):
        calibration.risk([0.1, np.nan])
    with pytest.raises(DataError):
        calibration.level([np.inf])
    assert calibration.risk([]).shape == (0,)


def test_channel_contributions_and_top_channel():
    names = ["heart_rate", "spo2", "hour_sin"]
    errors = np.array([[1.0, 3.0, 0.0], [0.0, 0.0, 0.0], [2.0, 2.0, 1.0]])
    shares = channel_contributions(errors, names)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    np.testing.assert_allclose(shares[0], [0.25, 0.75, 0.0])
    np.testing.assert_allclose(shares[1], [1 / 3] * 3)
    assert top_channel(shares, names) == ["spo2", "heart_rate", "heart_rate"]  # ties: first


@pytest.mark.parametrize(
    ("errors", "match"),
    [
        (np.ones(3), "shape"),
        (np.ones((2, 2)), "2 channels but 3"),
        (np.array([[1.0, -1.0, 0.0]]), "negative"),
        (np.array([[1.0, np.nan, 0.0]]), "NaN"),
    ],
)
def test_channel_contributions_reject_bad_input(errors, match):
    with pytest.raises(DataError, match=match):
        channel_contributions(errors, ["a", "b", "c"])


def test_mc_summary():
    samples = np.array([[1.0, 0.0], [3.0, 0.0], [2.0, 0.0]])
    mean, std = mc_summary(samples)
    np.testing.assert_allclose(mean, [2.0, 0.0])
    np.testing.assert_allclose(std, [np.sqrt(2 / 3), 0.0])
    with pytest.raises(DataError, match="at least 2"):
        mc_summary(np.ones((1, 4)))
    with pytest.raises(DataError, match="n_passes"):
        mc_summary(np.ones(4))


def _cohort(rng: np.random.Generator, patients: int, windows: int) -> tuple[np.ndarray, np.ndarray]:
    """Normal scores of patients who differ in their own level (the realistic case)."""
    offsets = rng.normal(0.0, 0.5, patients)
    scores = (offsets[:, None] + rng.normal(0.0, 1.0, (patients, windows))).ravel()
    return scores, np.repeat(np.arange(patients), windows)


def test_guarded_threshold_keeps_new_patients_within_the_target_more_often():
    rng = np.random.default_rng(0)
    fpr: dict[float, list[float]] = {0.0: [], 0.9: []}
    for _ in range(40):
        val, groups = _cohort(rng, 5, 60)
        test, _ = _cohort(rng, 5, 60)
        for confidence, rates in fpr.items():
            cal = fit_calibration(
                np.arange(10.0),
                val_normal_scores=val,
                val_normal_groups=groups,
                fpr_confidence=confidence,
            )
            rates.append(float(np.mean(test > cal.threshold_high)))
    plain, guarded = (np.array(fpr[c]) for c in (0.0, 0.9))
    assert np.mean(plain > 0.03) > 0.3  # the plain quantile misses about half the time
    assert np.mean(guarded > 0.03) < np.mean(plain > 0.03) - 0.1
    assert np.mean(guarded) < 0.025 < np.mean(plain)


def test_guarded_threshold_is_never_below_the_plain_one_and_is_seeded(scores):
    val = scores["val_normal"]
    groups = np.arange(val.size) % 7
    plain = fit_calibration(scores["normal"], val_normal_scores=val)
    kwargs = {"val_normal_scores": val, "val_normal_groups": groups, "fpr_confidence": 0.9}
    guarded = fit_calibration(scores["normal"], **kwargs)
    assert guarded.threshold_high >= plain.threshold_high
    assert guarded.threshold_high == fit_calibration(scores["normal"], **kwargs).threshold_high
    assert guarded.val_fpr <= plain.val_fpr
    one_patient = fit_calibration(
        scores["normal"], **(kwargs | {"val_normal_groups": np.zeros(val.size)})
    )
    assert one_patient.threshold_high == plain.threshold_high


def test_guarded_threshold_rejects_bad_settings(scores):
    val = scores["val_normal"]
    with pytest.raises(VitalSentryError, match="fpr_confidence"):
        fit_calibration(scores["normal"], val_normal_scores=val, fpr_confidence=1.0)
    with pytest.raises(VitalSentryError, match="val_normal_groups"):
        fit_calibration(
            scores["normal"],
            val_normal_scores=val,
            val_normal_groups=np.zeros(3),
            fpr_confidence=0.9,
        )


def test_fold_fpr_counts_folds_above_the_target() -> None:
    from vitalsentry.risk.calibrate import fold_fpr

    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(10), 200)
    scores = rng.normal(size=groups.size)
    scores[groups == 3] += 3.0  # one patient unlike the others
    report = fold_fpr(scores, groups % 5, groups, target_fpr=0.03, fpr_confidence=0.0, extra=None)
    assert report["folds"] == 5 == len(report["fpr"])
    worst = int(np.argmax(report["fpr"]))
    assert worst == 3 and report["fpr"][worst] > 0.3
    assert report["exceeded"] >= 1
    assert report["share_within_target"] == 1 - report["exceeded"] / 5


def test_per_patient_bound_keeps_most_patients_within_the_target() -> None:
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(20), 100)
    scores = rng.normal(size=groups.size) + rng.normal(scale=1.0, size=20)[groups]
    common = {
        "val_normal_scores": scores,
        "val_normal_groups": groups,
        "target_fpr": 0.03,
        "fpr_confidence": 0.9,
    }
    pooled = fit_calibration(scores, **common)
    guarded = fit_calibration(scores, per_patient=True, **common)
    assert guarded.threshold_high >= pooled.threshold_high
    per_patient_fpr = [np.mean(scores[groups == g] > guarded.threshold_high) for g in range(20)]
    assert np.mean(np.asarray(per_patient_fpr) <= 0.03) >= 0.9


def _new_cohort_fpr(threshold: float, rng: np.random.Generator, spread: float, m: int) -> float:
    """Exact FPR of a fresh cohort of m patients (offsets ~ N(0, spread²), noise N(0, 1))."""
    from scipy.stats import norm

    offsets = rng.normal(0.0, spread, m)
    return float(norm.sf(threshold - offsets).mean())


@pytest.mark.parametrize("spread", [0.3, 1.0])
def test_cohort_threshold_keeps_most_new_cohorts_within_the_target(spread: float) -> None:
    # between-patient spread is known, so each new cohort's FPR is exact: the cohort rule
    # keeps about `confidence` of new cohorts within the target (a little less with 40
    # patients and a wide spread: the bootstrap is optimistic in the tail), the pooled
    # quantile about half of them
    from vitalsentry.risk.calibrate import cohort_threshold

    rng = np.random.default_rng(3)
    within: dict[str, list[bool]] = {"cohort": [], "plain": []}
    for _ in range(30):
        scores, groups = _cohort_with_spread(rng, 40, 50, spread)
        rules = {
            "cohort": cohort_threshold(
                scores, groups, target_fpr=0.03, confidence=0.9, cohort_patients=8, seed=1
            ),
            "plain": float(np.quantile(scores, 0.97, method="higher")),
        }
        for name, threshold in rules.items():
            within[name] += [_new_cohort_fpr(threshold, rng, spread, 8) <= 0.03 for _ in range(20)]
    assert np.mean(within["cohort"]) >= 0.8
    assert np.mean(within["plain"]) <= 0.7
    assert np.mean(within["cohort"]) - np.mean(within["plain"]) >= 0.2


def _cohort_with_spread(
    rng: np.random.Generator, patients: int, windows: int, spread: float
) -> tuple[np.ndarray, np.ndarray]:
    offsets = rng.normal(0.0, spread, patients)
    scores = (offsets[:, None] + rng.normal(0.0, 1.0, (patients, windows))).ravel()
    return scores, np.repeat(np.arange(patients), windows)


def test_cohort_threshold_rises_with_spread_smaller_cohorts_and_scorer_shifts() -> None:
    from vitalsentry.risk.calibrate import cohort_threshold

    rng = np.random.default_rng(4)
    base = rng.normal(size=(60, 40))
    offsets = rng.normal(size=60)
    groups = np.repeat(np.arange(60), 40)

    def rule(spread: float, m: int | None, scorer: np.ndarray | None = None) -> float:
        scores = (spread * offsets[:, None] + base).ravel()
        return cohort_threshold(
            scores, groups, target_fpr=0.03, confidence=0.9, cohort_patients=m, scorer=scorer
        )

    assert rule(0.2, 10) < rule(1.0, 10)
    assert rule(1.0, None) < rule(1.0, 10) < rule(1.0, 2)
    # three scorers, one of them shifted up: drawing within scorers sees the shift
    scorer = np.repeat(np.arange(60) % 3, 40)
    shifted = (0.5 * offsets[:, None] + base).ravel() + (scorer == 0) * 0.8
    pooled = cohort_threshold(shifted, groups, target_fpr=0.03, confidence=0.9, cohort_patients=10)
    by_scorer = cohort_threshold(
        shifted, groups, target_fpr=0.03, confidence=0.9, cohort_patients=10, scorer=scorer
    )
    assert by_scorer > pooled


def test_cohort_threshold_edge_cases() -> None:
    from vitalsentry.risk.calibrate import cohort_threshold

    scores = np.arange(100.0)
    one = cohort_threshold(scores, np.zeros(100), target_fpr=0.03, confidence=0.9)
    assert one == np.quantile(scores, 0.97, method="higher")
    groups = np.arange(100) % 4
    threshold = cohort_threshold(scores, groups, target_fpr=0.03, confidence=0.9, seed=2)
    assert threshold in scores
    assert threshold == cohort_threshold(scores, groups, target_fpr=0.03, confidence=0.9, seed=2)
    with pytest.raises(VitalSentryError, match="cohort_patients"):
        cohort_threshold(scores, groups, target_fpr=0.03, confidence=0.9, cohort_patients=0)
    with pytest.raises(VitalSentryError, match="scorer"):
        cohort_threshold(scores, groups, target_fpr=0.03, confidence=0.9, scorer=np.zeros(3))


def test_fold_fpr_reports_the_cohort_size_it_guards() -> None:
    from vitalsentry.risk.calibrate import fold_fpr, fold_patients

    rng = np.random.default_rng(5)
    groups = np.repeat(np.arange(30), 60)
    scores = rng.normal(size=groups.size) + rng.normal(scale=0.7, size=30)[groups]
    fold = groups % 5
    assert fold_patients(fold, groups) == 6
    report = fold_fpr(scores, fold, groups, target_fpr=0.03, fpr_confidence=0.9)
    assert report["cohort_patients"] == 6
    plain = fold_fpr(scores, fold, groups, target_fpr=0.03, fpr_confidence=0.0)
    assert all(g <= p for g, p in zip(report["fpr"], plain["fpr"], strict=True))
