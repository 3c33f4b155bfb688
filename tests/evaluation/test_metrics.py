import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from vitalsentry.errors import DataError, VitalSentryError
from vitalsentry.evaluation.metrics import (
    DEFINITIONS,
    NotComputableError,
    bootstrap_ci,
    bootstrap_interval,
    classification_metrics,
    detection_metrics,
    embedding_metrics,
    embedding_variance,
    metric_definitions,
    pr_auc,
    ranking_metrics,
    roc_auc,
    separation_ratio,
    threshold_for_fpr,
    threshold_metric,
)


@pytest.fixture
def scored():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(300, int), np.ones(100, int)]
    s = rng.normal(size=400) + 1.5 * y
    return y, s


# ---------------------------------------------------------------- tier 1


def test_separation_ratio_matches_definition():
    normal = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]] * 2)  # centroid 0, dist 1
    abnormal = np.array([[3.0, 0.0], [0.0, -3.0]])  # dist 3
    assert separation_ratio(normal, abnormal) == pytest.approx(3.0)


def test_separation_ratio_not_computable_cases():
    rng = np.random.default_rng(1)
    with pytest.raises(NotComputableError, match="too few windows"):
        separation_ratio(rng.normal(size=(5, 3)), rng.normal(size=(3, 3)))
    with pytest.raises(NotComputableError, match="abnormal windows: 1 < 2"):
        separation_ratio(rng.normal(size=(20, 3)), rng.normal(size=(1, 3)))
    with pytest.raises(NotComputableError, match="zero spread"):
        separation_ratio(np.ones((12, 3)), rng.normal(size=(4, 3)))
    with pytest.raises(DataError, match="width"):
        separation_ratio(rng.normal(size=(20, 3)), rng.normal(size=(4, 2)))


def test_embedding_variance_is_mean_per_dimension_variance():
    rng = np.random.default_rng(2)
    emb = rng.normal(size=(50, 4)) * np.array([1.0, 2.0, 0.5, 0.0])
    assert embedding_variance(emb) == pytest.approx(np.var(emb, axis=0).mean())
    with pytest.raises(NotComputableError):
        embedding_variance(emb[:9])
    with pytest.raises(DataError, match="NaN"):
        embedding_variance(np.full((12, 2), np.nan))


def test_embedding_metrics_reports_reasons_instead_of_raising():
    normal = np.random.default_rng(3).normal(size=(30, 4))
    out = embedding_metrics(normal, np.empty((0, 4)))
    assert out["separation_ratio"] is None
    assert "single class" in out["reasons"]["separation_ratio"]
    assert out["embedding_variance"] == pytest.approx(embedding_variance(normal))
    assert "embedding_variance" not in out["reasons"]


# ---------------------------------------------------------------- tier 2 / 3


def test_detection_metrics_on_a_hand_computed_example():
    y = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.55, 0.8, 0.9, 0.2])
    out = detection_metrics(y, s, threshold=0.5)
    # predicted abnormal: 0.6, 0.7 (FP), 0.55, 0.8, 0.9 (TP); 0.2 abnormal is FN
    assert out["accuracy"] == pytest.approx(7 / 10)
    assert out["precision"] == pytest.approx(3 / 5)
    assert out["recall"] == pytest.approx(3 / 4)
    assert out["fpr"] == pytest.approx(2 / 6)
    assert out["roc_auc"] == pytest.approx(roc_auc_score(y, s))
    assert out["pr_auc"] == pytest.approx(average_precision_score(y, s))
    assert out["reasons"] == {}


def test_threshold_is_strict():
    y = np.r_[np.zeros(5, int), np.ones(5, int)]
    s = np.r_[np.zeros(5), np.ones(5)]
    assert detection_metrics(y, s, threshold=1.0)["recall"] == 0.0
    assert detection_metrics(y, s, threshold=0.999)["recall"] == 1.0


def test_single_class_gives_none_with_reasons_never_zero():
    y = np.zeros(30, int)
    s = np.linspace(0, 1, 30)
    out = detection_metrics(y, s, threshold=0.5)
    for key in ("precision", "recall", "roc_auc", "pr_auc"):
        assert out[key] is None
        assert "single class" in out["reasons"][key]
    assert out["fpr"] == pytest.approx(15 / 30)  # k / 29 > 0.5 for k = 15 .. 29
    assert out["accuracy"] == pytest.approx(15 / 30)


def test_too_few_windows_makes_everything_none():
    out = detection_metrics([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8], threshold=0.5)
    assert all(out[k] is None for k in ("accuracy", "precision", "recall", "fpr", "roc_auc"))
    assert out["reasons"]["accuracy"] == "too few windows: 4 < 10"


def test_precision_without_positive_predictions_is_none(scored):
    y, s = scored
    out = detection_metrics(y, s, threshold=s.max())
    assert out["precision"] is None
    assert "no window is predicted abnormal" in out["reasons"]["precision"]
    assert out["recall"] == 0.0


def test_nan_scores_are_not_computable_and_inf_is_refused(scored):
    y, s = scored
    s = s.copy()
    s[3] = np.nan
    out = ranking_metrics(y, s)
    assert out["roc_auc"] is None and "no score for 1 of 400" in out["reasons"]["roc_auc"]
    s[3] = np.inf
    with pytest.raises(DataError, match="infinite"):
        ranking_metrics(y, s)


def test_bad_labels_and_shapes_raise_data_error(scored):
    y, s = scored
    with pytest.raises(DataError, match="0 or 1"):
        detection_metrics(np.r_[y[:-1], 2], s, 0.0)
    with pytest.raises(DataError, match="shape"):
        detection_metrics(y, s[:-1], 0.0)


def test_classification_metrics(scored):
    y, s = scored
    proba = 1 / (1 + np.exp(-s))
    out = classification_metrics(y, proba)
    pred = proba > 0.5
    tp = np.sum(pred & (y == 1))
    f1 = 2 * tp / (2 * tp + np.sum(pred & (y == 0)) + np.sum(~pred & (y == 1)))
    assert out["f1"] == pytest.approx(f1)
    assert out["accuracy"] == pytest.approx(np.mean(pred == y))
    assert out["roc_auc"] == pytest.approx(roc_auc_score(y, proba))
    single = classification_metrics(np.ones(20, int), np.full(20, 0.9))
    assert single["f1"] is None and single["roc_auc"] is None
    assert single["accuracy"] == 1.0
    assert set(single["reasons"]) == {"f1", "roc_auc"}


def test_fast_roc_auc_equals_sklearn_with_ties():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 500)
    s = np.round(rng.normal(size=500) + y, 1)  # many ties
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert pr_auc(y, s) == pytest.approx(average_precision_score(y, s))


def test_threshold_metric_rejects_unknown_names():
    with pytest.raises(VitalSentryError, match="unknown metric"):
        threshold_metric("specificity", 0.5)


# ---------------------------------------------------------------- threshold


@pytest.mark.parametrize("target", [0.0, 0.03, 0.1, 0.5])
def test_threshold_for_fpr_meets_the_target(target):
    normal = np.random.default_rng(6).normal(size=1000)
    thr = threshold_for_fpr(normal, target)
    assert np.mean(normal > thr) <= target
    # the lowest such threshold: the next lower normal score would exceed the target
    lower = np.sort(normal)[np.sort(normal) < thr]
    if lower.size:
        assert np.mean(normal > lower[-1]) > target


def test_threshold_for_fpr_exact_counts_and_errors():
    normal = np.arange(100.0)
    assert threshold_for_fpr(normal, 0.03) == 96.0  # 97, 98, 99 above: 3%
    assert threshold_for_fpr(normal, 0.0) == 99.0
    with pytest.raises(DataError):
        threshold_for_fpr(normal, 1.0)
    with pytest.raises(DataError):
        threshold_for_fpr([], 0.1)


# ---------------------------------------------------------------- bootstrap


def test_bootstrap_ci_contains_the_estimate_and_is_deterministic(scored):
    y, s = scored
    ci = bootstrap_ci(roc_auc, y, s, n_boot=200, seed=1)
    assert ci is not None
    assert ci[0] < roc_auc(y, s) < ci[1]
    assert ci == bootstrap_ci("roc_auc", y, s, n_boot=200, seed=1)
    assert ci != bootstrap_ci(roc_auc, y, s, n_boot=200, seed=2)


def test_cluster_bootstrap_is_wider_for_correlated_windows():
    # 20 patients whose windows share a patient effect: windows are not independent
    rng = np.random.default_rng(7)
    patients = np.repeat(np.arange(20), 30)
    y = (patients % 2).astype(int)
    s = rng.normal(size=20)[patients] + 0.1 * rng.normal(size=600) + 0.8 * y
    iid = bootstrap_ci(roc_auc, y, s, n_boot=200)
    clustered = bootstrap_ci(roc_auc, y, s, groups=patients, n_boot=200)
    assert iid is not None and clustered is not None
    assert clustered[1] - clustered[0] > 2 * (iid[1] - iid[0])


def test_cluster_bootstrap_resamples_whole_patients():
    patients = np.repeat(np.array(["a", "b", "c", "d"]), [3, 5, 2, 10])
    y = np.zeros(20, int)
    seen = []

    def size_only(y_b, s_b):
        seen.append(len(y_b))
        return float(len(y_b))

    bootstrap_interval(size_only, y, np.zeros(20), groups=patients, n_boot=50)
    sizes = {3, 5, 2, 10}
    sums = {a + b + c + d for a in sizes for b in sizes for c in sizes for d in sizes}
    assert set(seen[1:]) <= sums and len(set(seen)) > 3


def test_bootstrap_not_computable_cases():
    y = np.r_[np.zeros(30, int), np.ones(30, int)]
    s = np.arange(60.0)
    with pytest.raises(NotComputableError, match="at least 2 groups"):
        bootstrap_interval(roc_auc, y, s, groups=np.full(60, "stream-test"))
    assert bootstrap_ci(roc_auc, y, s, groups=np.full(60, "stream-test")) is None
    assert bootstrap_ci(roc_auc, np.zeros(60, int), s) is None
    # two patients, one per class: nearly every resample holds a single class
    with pytest.raises(NotComputableError, match="resamples"):
        bootstrap_interval(roc_auc, y, s, groups=y, n_boot=100)
    always_none = bootstrap_ci(lambda y_b, s_b: None, y, s, n_boot=10)
    assert always_none is None


def test_bootstrap_with_threshold_metric_skips_degenerate_resamples():
    rng = np.random.default_rng(8)
    y = np.r_[np.zeros(40, int), np.ones(3, int)]
    s = rng.normal(size=43) + 2 * y
    ci = bootstrap_ci(threshold_metric("recall", 1.0), y, s, n_boot=200)
    assert ci is not None and 0.0 <= ci[0] <= ci[1] <= 1.0


def test_patient_bootstrap_of_20k_windows_brackets_the_estimate():
    rng = np.random.default_rng(9)
    n = 20_000
    patients = rng.integers(0, 200, n)
    y = (rng.random(n) < 0.3).astype(int)
    s = rng.normal(size=n) + y
    ci = bootstrap_ci(roc_auc, y, s, groups=patients, n_boot=500)
    assert ci is not None
    assert ci[0] < roc_auc(y, s) < ci[1]


# ---------------------------------------------------------------- definitions


def test_definitions_are_quoted_from_docstrings():
    defs = metric_definitions()
    assert "centroid" in defs["separation_ratio"]
    assert "FP / (FP + TN)" in defs["detection_metrics"]
    assert "cluster bootstrap" in defs["bootstrap_ci"]
    assert all(text and ":func:" not in text for text in defs.values())
    assert dict(DEFINITIONS) == defs
