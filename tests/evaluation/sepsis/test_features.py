import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from vitalsentry.evaluation.sepsis.features import (
    Cohort,
    causal_windows,
    forward_fill,
    rolling_stats,
    stay_features,
    tabular_features,
)


def _cohort(sizes, seed, missing=0.5):
    rng = np.random.default_rng(seed)
    n = sum(sizes)
    patient = np.repeat([f"p{i}" for i in range(len(sizes))], sizes)
    vitals = rng.normal(80, 10, size=(n, 2)).astype(np.float32)
    vitals[rng.random((n, 2)) < missing] = np.nan
    context = rng.normal(size=(n, 1)).astype(np.float32)
    context[rng.random((n, 1)) < 0.8] = np.nan
    return Cohort(patient, vitals, ("hr", "rr"), context, ("lab",), np.zeros(n, np.int8))


stays = st.lists(st.integers(1, 15), min_size=1, max_size=6)


@settings(max_examples=40, deadline=None)
@given(stays, st.integers(0, 1000))
def test_forward_fill_and_rolling_match_pandas_per_patient(sizes, seed):
    c = _cohort(sizes, seed)
    frame = pd.DataFrame(c.vitals, columns=list(c.vital_names)).assign(p=c.patient)
    filled, since = forward_fill(c.vitals, c.starts)
    want = frame.groupby("p", sort=False)[["hr", "rr"]].ffill().to_numpy()
    np.testing.assert_allclose(filled, want)
    assert np.all(np.isnan(since) == np.isnan(want))
    roll = rolling_stats(c.vitals, c.starts, 3)
    grouped = frame.groupby("p", sort=False)["hr"].rolling(3, min_periods=1)
    np.testing.assert_allclose(roll[:, 0], grouped.mean().to_numpy(), rtol=1e-5)
    np.testing.assert_allclose(roll[:, 2], grouped.max().to_numpy(), rtol=1e-5)
    std = frame.groupby("p", sort=False)["hr"].rolling(3, min_periods=2).std(ddof=0)
    np.testing.assert_allclose(roll[:, 3], std.to_numpy(), rtol=1e-4, atol=1e-4)


@settings(max_examples=30, deadline=None)
@given(stays, st.integers(0, 1000), st.integers(1, 8))
def test_windows_are_causal_and_left_padded(sizes, seed, length):
    c = _cohort(sizes, seed)
    filled = np.nan_to_num(forward_fill(c.vitals, c.starts)[0], nan=0.0)
    observed = ~np.isnan(c.vitals)
    rows = np.arange(len(c), dtype=np.intp)
    windows = causal_windows(filled, observed, c.starts, rows, length)
    assert windows.shape == (len(c), 4, length)
    hour = c.hour
    # hours before admission are masked; the last step is the row itself
    pad = np.arange(length)[None, :] < (length - 1 - hour)[:, None]
    assert np.all(windows[:, 2:][np.broadcast_to(pad[:, None, :], windows[:, 2:].shape)] == 0)
    np.testing.assert_array_equal(windows[:, :2, -1], filled)
    # changing anything after a row leaves that row's window unchanged
    cut = len(c) // 2
    later = filled.copy()
    later[cut + 1 :] += 100.0
    again = causal_windows(later, observed, c.starts, rows, length)
    np.testing.assert_array_equal(again[: cut + 1], windows[: cut + 1])


def test_tabular_features_names_and_context_switch():
    c = _cohort([5, 7], 0)
    x, names = tabular_features(c, roll_hours=6)
    assert x.shape == (12, len(names))
    assert "hr_max6h" in names and "lab_hours_since" in names and names[-1] == "stay_hour"
    v, vnames = tabular_features(c, with_context=False)
    assert not any(n.startswith("lab") for n in vnames) and v.shape[1] == len(vnames)
    np.testing.assert_array_equal(x[:, -1], [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 5, 6])


def test_stay_features_counts_and_trend():
    c = _cohort([4, 3], 1, missing=0.0)
    ctx = np.array([[1], [np.nan], [2], [np.nan], [np.nan], [5], [6]], np.float32)
    c = Cohort(c.patient, c.vitals, c.vital_names, ctx, ("lab",), c.label)
    x, names = stay_features(c, trend_hours=24)
    assert x.shape == (7, len(names)) and names[-1] == "lab_count"
    np.testing.assert_array_equal(x[:, -1], [1, 1, 2, 2, 0, 1, 2])
    hr = c.vitals[:, 0]
    np.testing.assert_allclose(x[3, names.index("hr_trend24h")], hr[3] - hr[:4].mean(), rtol=1e-5)
    _, vnames = stay_features(c, with_context=False)
    assert "lab_count" not in vnames
