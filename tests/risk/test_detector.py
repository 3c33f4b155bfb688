import numpy as np
import pytest
import skops.io as sio
from sklearn.ensemble import IsolationForest

from vitalsentry.errors import BundleError, DataError, TrainingError
from vitalsentry.risk.detector import (
    AUTO_THRESHOLD,
    TRUSTED_TYPES,
    EmbeddingIsolationForest,
    load_detector,
    save_detector,
)


class Intruder:
    """A type no allow-list knows."""

    def __init__(self) -> None:
        self.payload = 1


@pytest.fixture(scope="module")
def train() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(200, 6))


def _fit(train, abnormal_fraction=None, **params):
    params = {"n_estimators": 30, **params}
    return EmbeddingIsolationForest(**params).fit(train, abnormal_fraction=abnormal_fraction)


def test_matches_sklearn_isolation_forest_with_the_sign_flipped(train):
    ours = _fit(train, abnormal_fraction=0.1)
    ref = IsolationForest(n_estimators=30, contamination=0.1, random_state=0).fit(train)
    np.testing.assert_allclose(ours.score_samples(train), -ref.score_samples(train))
    np.testing.assert_allclose(ours.decision_function(train), -ref.decision_function(train))
    np.testing.assert_array_equal(ours.predict(train), (ref.predict(train) == -1).astype(int))
    assert ours.threshold_ == pytest.approx(-ref.offset_)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"abnormal_fraction": 0.1}, 0.1),
        ({"abnormal_fraction": 0.8}, 0.5),
        ({"abnormal_fraction": 0.0}, "auto"),
        ({}, "auto"),
        ({"contamination": 0.2}, 0.2),
        ({"contamination": "auto"}, "auto"),
    ],
)
def test_contamination_from_the_class_distribution(train, kwargs, expected):
    detector = _fit(train, **kwargs)
    assert detector.contamination_ == expected
    if expected == "auto":
        assert detector.threshold_ == AUTO_THRESHOLD
    else:
        assert detector.predict(train).mean() == pytest.approx(expected, abs=0.01)
    assert detector.contamination == kwargs.get("contamination")  # unchanged hyperparameter


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_estimators": 0},
        {"n_estimators": 2.5},
        {"contamination": 0.7},
        {"contamination": 0.0},
        {"contamination": "many"},
        {"max_samples": 0},
        {"max_samples": 1.5},
        {"random_state": "seed"},
        {"n_jobs": 1.5},
        {"abnormal_fraction": 1.5},
        {"abnormal_fraction": float("nan")},
        {"contamination": 0.1, "abnormal_fraction": 0.1},
    ],
)
def test_invalid_settings_raise_training_error_in_fit(train, kwargs):
    with pytest.raises(TrainingError):
        _fit(train, **kwargs)


def test_max_samples_none_means_auto(train):
    a = _fit(train, max_samples=None)
    b = _fit(train, max_samples="auto")
    np.testing.assert_array_equal(a.score_samples(train), b.score_samples(train))


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (np.zeros(6), "2-D"),
        (np.zeros((0, 6)), "empty"),
        (np.zeros((1, 6)), "at least 2"),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), "NaN"),
        (np.array([[1.0, np.inf], [0.0, 1.0]]), "infinite"),
        (np.array([["a", "b"], ["c", "d"]]), "not numeric"),
    ],
)
def test_bad_training_embeddings_raise_data_error(x, match):
    with pytest.raises(DataError, match=match) as info:
        EmbeddingIsolationForest(n_estimators=5).fit(x)
    assert info.value.column == "X"


def test_bad_scoring_embeddings_raise_data_error(train):
    detector = _fit(train)
    with pytest.raises(DataError, match="expected 6 features"):
        detector.score_samples(np.zeros((3, 5)))
    bad = np.zeros((3, 6))
    bad[2, 1] = np.nan
    with pytest.raises(DataError) as info:
        detector.predict(bad)
    assert info.value.row == 3


def test_saved_file_holds_only_allow_listed_types(train, tmp_path):
    path = tmp_path / "d.skops"
    save_detector(_fit(train), path)
    assert set(sio.get_untrusted_types(file=path)) <= TRUSTED_TYPES
    assert [p.name for p in tmp_path.iterdir()] == ["d.skops"]  # no temporary left behind


def test_load_refuses_types_outside_the_allow_list(train, tmp_path):
    detector = _fit(train)
    detector.extra_ = Intruder()
    path = tmp_path / "evil.skops"
    sio.dump(detector, path)
    with pytest.raises(BundleError, match=r"untrusted.*Intruder"):
        load_detector(path)


def test_load_refuses_other_estimators(train, tmp_path):
    path = tmp_path / "plain.skops"
    sio.dump(IsolationForest(n_estimators=5, random_state=0).fit(train), path)
    with pytest.raises(BundleError, match="expected an EmbeddingIsolationForest"):
        load_detector(path)


def test_load_refuses_missing_and_corrupt_files(tmp_path):
    with pytest.raises(BundleError, match="not found"):
        load_detector(tmp_path / "absent.skops")
    corrupt = tmp_path / "corrupt.skops"
    corrupt.write_bytes(b"not a zip archive")
    with pytest.raises(BundleError, match="not a readable skops file"):
        load_detector(corrupt)


def test_unfitted_detector_cannot_be_saved(tmp_path):
    with pytest.raises(BundleError, match="unfitted"):
        save_detector(EmbeddingIsolationForest(), tmp_path / "d.skops")
    assert not list(tmp_path.iterdir())


def test_predict_labels_are_one_for_anomalous(train):
    detector = _fit(train, abnormal_fraction=0.05)
    far = np.full((2, 6), 6.0)
    assert detector.predict(far).tolist() == [1, 1]
    assert detector.fit_predict(train, abnormal_fraction=0.05).sum() == pytest.approx(10, abs=1)


def test_vectorised_scores_equal_scikit_learn() -> None:
    rng = np.random.default_rng(5)
    det = EmbeddingIsolationForest(n_estimators=60, random_state=1).fit(rng.normal(size=(700, 6)))
    x = np.vstack([rng.normal(size=(3000, 6)), rng.normal(3, 1, size=(10, 6))])  # > one chunk
    np.testing.assert_array_equal(det.score_samples(x), -det.model_.score_samples(x))
