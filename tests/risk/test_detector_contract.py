"""Contract every detector in the project satisfies (PyOD / scikit-learn style).

Add a detector by appending a :class:`DetectorCase` to ``DETECTORS``.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score
from sklearn.utils import estimator_checks

from vitalsentry.evaluation.baselines import make_raw_iforest
from vitalsentry.persist import load_skops, save_skops
from vitalsentry.risk.detector import EmbeddingIsolationForest, load_detector, save_detector
from vitalsentry.risk.views import TRUSTED_TYPES, KNNDistance, RobustZScore


@dataclass(frozen=True)
class DetectorCase:
    """An unfitted-detector factory and how that detector is persisted."""

    name: str
    make: Callable[[int], Any]  # random_state -> unfitted detector
    save: Callable[[Any, Path], None]
    load: Callable[[Path], Any]
    seeded: bool = True  # whether random_state changes the scores


DETECTORS: list[DetectorCase] = [
    DetectorCase(
        "embedding_iforest",
        lambda seed: EmbeddingIsolationForest(n_estimators=50, random_state=seed),
        save_detector,
        load_detector,
    ),
    DetectorCase(
        "raw_feature_iforest",
        lambda seed: make_raw_iforest(seed, n_estimators=50),
        save_detector,
        load_detector,
    ),
    DetectorCase(
        "knn_distance",
        lambda seed: KNNDistance(n_neighbors=3, max_samples=100, random_state=seed),
        save_skops,
        lambda path: load_skops(path, TRUSTED_TYPES, KNNDistance),
    ),
    DetectorCase(
        "robust_z_max",
        lambda seed: RobustZScore(),
        save_skops,
        lambda path: load_skops(path, TRUSTED_TYPES, RobustZScore),
        seeded=False,
    ),
    DetectorCase(
        "robust_z_mean_one_sided",
        lambda seed: RobustZScore(aggregate="mean", two_sided=False),
        save_skops,
        lambda path: load_skops(path, TRUSTED_TYPES, RobustZScore),
        seeded=False,
    ),
]

# scikit-learn's own estimator checks that the project's contract keeps (the others
# assume ValueError for bad input and -1/+1 labels, which the project replaces by
# DataError and 1 = anomalous).
SKLEARN_CHECKS = [
    "check_no_attributes_set_in_init",
    "check_parameters_default_constructible",
    "check_get_params_invariance",
    "check_estimators_overwrite_params",
    "check_dont_overwrite_parameters",
    "check_estimator_cloneable",
    "check_fit_check_is_fitted",
    "check_estimators_fit_returns_self",
    "check_estimators_unfitted",
    "check_fit_idempotent",
    "check_methods_subset_invariance",
    "check_methods_sample_order_invariance",
    "check_n_features_in",
    "check_mixin_order",
]

METHODS = ("score_samples", "decision_function", "predict")

cases = pytest.mark.parametrize("case", DETECTORS, ids=[c.name for c in DETECTORS])


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(42)
    train = rng.normal(size=(300, 8))
    normal = rng.normal(size=(200, 8))
    anomalies = rng.normal(size=(50, 8)) + 4.0
    test = np.vstack([normal, anomalies])
    labels = np.r_[np.zeros(len(normal)), np.ones(len(anomalies))]
    return {"train": train, "test": test, "labels": labels}


@cases
@pytest.mark.parametrize("check", SKLEARN_CHECKS)
def test_sklearn_estimator_checks(case, check):
    getattr(estimator_checks, check)(case.name, case.make(0))


@cases
def test_hyperparameters_stored_unchanged(case):
    detector = case.make(7)
    params = detector.get_params()
    for name, value in params.items():
        assert getattr(detector, name) is value
    rebuilt = type(detector)(**params)
    assert rebuilt.get_params() == params


@cases
def test_fitted_attributes_end_with_underscore_and_appear_only_in_fit(case, data):
    detector = case.make(0)
    assert not [k for k in vars(detector) if k.endswith("_")]
    params = set(detector.get_params())
    detector.fit(data["train"])
    learned = set(vars(detector)) - params
    assert learned
    assert all(k.endswith("_") and not k.startswith("_") for k in learned), learned


@cases
@pytest.mark.parametrize("method", METHODS)
def test_not_fitted_error_before_fit(case, data, method):
    with pytest.raises(NotFittedError):
        getattr(case.make(0), method)(data["test"])


@cases
def test_output_shapes_and_label_convention(case, data):
    detector = case.make(0).fit(data["train"])
    n = len(data["test"])
    scores = detector.score_samples(data["test"])
    decision = detector.decision_function(data["test"])
    labels = detector.predict(data["test"])
    assert scores.shape == decision.shape == labels.shape == (n,)
    assert set(np.unique(labels)) <= {0, 1}
    # positive decision = anomalous = label 1; decision is the score shifted by a constant
    np.testing.assert_array_equal(labels, (decision > 0).astype(int))
    np.testing.assert_allclose(scores - decision, (scores - decision)[0])


@cases
def test_higher_score_means_more_anomalous(case, data):
    detector = case.make(0).fit(data["train"])
    auc = roc_auc_score(data["labels"], detector.score_samples(data["test"]))
    assert auc >= 0.9


@cases
def test_identical_scores_after_save_and_load(case, data, tmp_path):
    detector = case.make(0).fit(data["train"])
    path = tmp_path / "detector.skops"
    case.save(detector, path)
    restored = case.load(path)
    assert type(restored) is type(detector)
    assert restored.get_params() == detector.get_params()
    for method in METHODS:
        np.testing.assert_array_equal(
            getattr(restored, method)(data["test"]), getattr(detector, method)(data["test"])
        )


@cases
def test_deterministic_under_random_state(case, data):
    first = case.make(0).fit(data["train"]).score_samples(data["test"])
    again = case.make(0).fit(data["train"]).score_samples(data["test"])
    other = case.make(1).fit(data["train"]).score_samples(data["test"])
    np.testing.assert_array_equal(first, again)
    assert np.array_equal(first, other) is not case.seeded


@cases
def test_clone_gives_an_unfitted_copy_with_the_same_hyperparameters(case, data):
    detector = case.make(3).fit(data["train"])
    copy = clone(detector)
    assert copy.get_params() == detector.get_params()
    assert not [k for k in vars(copy) if k.endswith("_")]
    copy.fit(data["train"])
    np.testing.assert_array_equal(
        copy.score_samples(data["test"]), detector.score_samples(data["test"])
    )
