import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from vitalsentry.errors import DataError
from vitalsentry.evaluation.baselines import (
    gbm_scores,
    make_raw_iforest,
    news2_at_windows,
    news2_unavailable_inputs,
    raw_iforest_scores,
    window_summary_features,
)
from vitalsentry.evaluation.metrics import NotComputableError
from vitalsentry.risk.news2 import news2_score

SHIFT = np.array([3.0, 0, 0, -3.0, 0])
NAMES = ("heart_rate", "spo2", "hour_sin", "hour_cos", "dow_sin", "dow_cos")


def _windows(n: int = 3, length: int = 8) -> np.ndarray:
    t = np.arange(length, dtype=float)
    w = np.zeros((n, len(NAMES), length))
    for i in range(n):
        w[i, 0] = 60.0 + 2.0 * i * t  # HR ramp, slope 2i per step
        w[i, 1] = 97.0 - (t % 2)  # SpO2 alternating 97 / 96
        w[i, 2] = 0.5
        w[i, 3] = -0.25 * i
        w[i, 4:] = 9.0  # day of week: must be ignored
    return w


def test_summary_features_values_and_names():
    feats, names = window_summary_features(_windows(), NAMES)
    stats = ("mean", "std", "min", "max", "last", "slope")
    assert names == [f"heart_rate_{s}" for s in stats] + [f"spo2_{s}" for s in stats] + [
        "hour_sin_mean",
        "hour_cos_mean",
    ]
    assert feats.shape == (3, 14)
    row = dict(zip(names, feats[2], strict=True))
    assert row["heart_rate_slope"] == pytest.approx(4.0)
    assert row["heart_rate_last"] == pytest.approx(60.0 + 4.0 * 7)
    assert row["heart_rate_mean"] == pytest.approx(60.0 + 4.0 * 3.5)
    assert row["spo2_slope"] == pytest.approx(-1 / 21)  # least squares of 97,96,97,96,...
    assert row["spo2_std"] == pytest.approx(0.5)
    assert (row["spo2_min"], row["spo2_max"]) == (96.0, 97.0)
    assert row["hour_cos_mean"] == pytest.approx(-0.5)
    assert 9.0 not in feats
    as_float32, _ = window_summary_features(_windows().astype(np.float32), NAMES)
    np.testing.assert_allclose(as_float32, feats, rtol=1e-6, atol=1e-9)


def test_summary_features_reject_bad_input():
    w = _windows()
    with pytest.raises(DataError, match="not numeric"):
        window_summary_features(w.astype(str), NAMES)
    with pytest.raises(DataError, match="feature names"):
        window_summary_features(w, NAMES[:-1])
    w[1, 0, 3] = np.nan
    with pytest.raises(DataError, match="row 2"):
        window_summary_features(w, NAMES)


@pytest.fixture(scope="module")
def tabular():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(300, 5))
    normal = rng.normal(size=(100, 5))
    abnormal = rng.normal(size=(40, 5)) + SHIFT
    return train, np.vstack([normal, abnormal]), np.r_[np.zeros(100), np.ones(40)]


def test_raw_iforest_scores_higher_for_anomalies(tabular):
    train, test, y = tabular
    scores = raw_iforest_scores(train, test, seed=0)
    assert scores.shape == (140,)
    assert roc_auc_score(y, scores) > 0.9
    np.testing.assert_array_equal(scores, raw_iforest_scores(train, test, seed=0))
    assert make_raw_iforest(3).get_params()["random_state"] == 3


def test_gbm_scores_learn_labels_and_ignore_unknown(tabular):
    train, test, y = tabular
    rng = np.random.default_rng(1)
    x_train = np.vstack([train[:100], rng.normal(size=(100, 5)) + SHIFT])
    labels = np.r_[np.zeros(100, int), np.ones(100, int)]
    labels[:10] = -1
    proba = gbm_scores(x_train, labels, test, seed=0)
    assert proba.shape == (140,) and ((proba >= 0) & (proba <= 1)).all()
    assert roc_auc_score(y, proba) > 0.95


def test_gbm_single_class_is_not_computable(tabular):
    train, test, _ = tabular
    labels = np.zeros(len(train), int)
    labels[:5] = -1
    with pytest.raises(NotComputableError, match="0 abnormal"):
        gbm_scores(train, labels, test, seed=0)
    with pytest.raises(DataError):
        gbm_scores(train, np.full(len(train), 3), test, seed=0)


T0 = pd.Timestamp("2024-01-01 00:00:00", tz="UTC")


def _frame() -> pd.DataFrame:
    rows = [
        # patient, seconds, HR, SpO2, RR, temp, SBP
        ("a", 0, 80, 97, 16, 37.0, np.nan),
        ("a", 30, 140, np.nan, np.nan, np.nan, 120),
        ("a", 60, np.nan, 90, np.nan, np.nan, np.nan),
        ("b", 0, 60, 99, 16, 37.0, 120),
    ]
    frame = pd.DataFrame(
        rows,
        columns=[
            "patient_id",
            "s",
            "heart_rate",
            "spo2",
            "respiratory_rate",
            "temperature",
            "systolic_bp",
        ],
    )
    frame["timestamp"] = T0 + pd.to_timedelta(frame.pop("s"), unit="s")
    frame["diastolic_bp"] = np.nan
    return frame


def test_news2_uses_latest_reading_per_channel_at_or_before_window_end():
    t0 = T0.timestamp()
    got = news2_at_windows(
        _frame(),
        np.array(["a", "b", "a", "a", "b"]),
        np.array([t0 + 60, t0 - 1, t0, t0 + 30, t0 + 3600]),
    )
    expected = [
        float(news2_score(16, 90, 120, 140, 37.0)),  # HR and SBP carried forward from 30 s
        np.nan,  # before b's first reading
        np.nan,  # a's SBP not measured yet
        float(news2_score(16, 97, 120, 140, 37.0)),  # exactly at the reading time
        0.0,
    ]
    np.testing.assert_array_equal(got, expected)
    assert expected[0] == 6.0


def test_news2_missing_channel_gives_nan_and_is_listed():
    frame = _frame().drop(columns="respiratory_rate")
    got = news2_at_windows(frame, ["b"], [T0.timestamp() + 10])
    assert np.isnan(got).all()
    assert news2_unavailable_inputs(frame) == ("respiratory_rate",)
    assert news2_unavailable_inputs(_frame()) == ()


def test_news2_works_with_stream_names_and_microsecond_timestamps():
    frame = _frame()
    frame["patient_id"] = "stream-test"
    frame["timestamp"] = frame["timestamp"].astype("datetime64[us, UTC]")
    got = news2_at_windows(frame, ["stream-test"], [T0.timestamp() + 59.9999999])
    # the 1-ms tolerance absorbs float rounding of the window end
    assert got[0] == float(news2_score(16, 90, 120, 140, 37.0))


def test_news2_bad_input():
    with pytest.raises(DataError, match="timestamp"):
        news2_at_windows(_frame().drop(columns="timestamp"), ["a"], [0.0])
    with pytest.raises(DataError, match="same length"):
        news2_at_windows(_frame(), ["a", "b"], [0.0])
    with pytest.raises(DataError, match="window end"):
        news2_at_windows(_frame(), ["a"], [np.nan])
