from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vitalsentry.data.timefeatures import (
    day_of_week_features,
    epoch_seconds,
    grid_time_features,
    hour_features,
    time_features,
    time_features_for_timestamps,
)
from vitalsentry.errors import DataError

HOUR = 3600.0
DAY = 86_400.0

# 1900 .. 2100, in seconds since the epoch.
epochs = st.floats(min_value=-2.2e9, max_value=4.1e9, allow_nan=False, allow_infinity=False)


def test_hour_features_known_hours() -> None:
    t = np.array([0.0, 6 * HOUR, 12 * HOUR, 18 * HOUR, 1.5 * HOUR, DAY + 6 * HOUR])
    sin, cos = hour_features(t)
    np.testing.assert_allclose(sin, [0, 1, 0, -1, np.sin(np.pi / 8), 1], atol=1e-6)
    np.testing.assert_allclose(cos, [1, 0, -1, 0, np.cos(np.pi / 8), 0], atol=1e-6)


def test_hour_features_shape_and_dtype() -> None:
    out = hour_features(np.arange(5, dtype=np.float64) * 1000)
    assert out.shape == (2, 5)
    assert out.dtype == np.float32


def test_midnight_neighbours_are_close() -> None:
    before, after = hour_features(np.array([DAY - 60.0, DAY + 60.0])).T
    assert np.linalg.norm(before - after) < 0.01


def test_day_of_week_epoch_is_thursday() -> None:
    # 1970-01-01 Thursday (3), 1970-01-05 Monday (0), 1969-12-31 Wednesday (2).
    t = np.array([0.0, 4 * DAY + 5 * HOUR, -1.0])
    days = np.array([3, 0, 2])
    sin, cos = day_of_week_features(t)
    np.testing.assert_allclose(sin, np.sin(2 * np.pi * days / 7), atol=1e-6)
    np.testing.assert_allclose(cos, np.cos(2 * np.pi * days / 7), atol=1e-6)


@settings(max_examples=50, deadline=None)
@given(st.lists(epochs, min_size=1, max_size=20))
def test_features_match_pandas_calendar(times: list[float]) -> None:
    t = np.array(times)
    stamps = pd.DatetimeIndex(
        pd.to_datetime(np.round(t * 1e6).astype(np.int64), unit="us", utc=True)
    )
    hours = stamps.hour + stamps.minute / 60 + (stamps.second + stamps.microsecond / 1e6) / 3600
    angle = 2 * np.pi * np.asarray(hours) / 24
    out = time_features(t, day_of_week=True)
    # Compare on the unit circle so 23:59:59.9999 vs 00:00 is not a false mismatch.
    np.testing.assert_allclose(out[0], np.sin(angle), atol=1e-4)
    np.testing.assert_allclose(out[1], np.cos(angle), atol=1e-4)
    day_angle = 2 * np.pi * np.asarray(stamps.day_of_week) / 7
    since_midnight = np.mod(t, DAY)
    # Away from midnight, where the test's rounding to microseconds could flip the day.
    exact_day = np.minimum(since_midnight, DAY - since_midnight) > 1e-3
    np.testing.assert_allclose(out[2][exact_day], np.sin(day_angle)[exact_day], atol=1e-6)
    np.testing.assert_allclose(out[3][exact_day], np.cos(day_angle)[exact_day], atol=1e-6)


@settings(max_examples=50, deadline=None)
@given(st.lists(epochs, min_size=1, max_size=50))
def test_sin_cos_on_unit_circle(times: list[float]) -> None:
    out = time_features(np.array(times), day_of_week=True).astype(np.float64)
    np.testing.assert_allclose(out[0] ** 2 + out[1] ** 2, 1.0, atol=1e-6)
    np.testing.assert_allclose(out[2] ** 2 + out[3] ** 2, 1.0, atol=1e-6)


def test_time_features_stacks_hour_then_day() -> None:
    t = np.linspace(0, 10 * DAY, 7)
    two = time_features(t)
    four = time_features(t, day_of_week=True)
    assert two.shape == (2, 7) and four.shape == (4, 7)
    np.testing.assert_array_equal(four[:2], hour_features(t))
    np.testing.assert_array_equal(four[2:], day_of_week_features(t))
    np.testing.assert_array_equal(two, four[:2])


def test_non_finite_times_rejected() -> None:
    with pytest.raises(DataError, match="finite"):
        hour_features(np.array([0.0, np.nan]))
    with pytest.raises(DataError, match="finite"):
        day_of_week_features(np.array([np.inf]))


def test_timestamps_series_index_and_scalar_agree() -> None:
    idx = pd.date_range("2024-03-04 22:00", periods=5, freq="37min", tz="UTC")
    expected = time_features(epoch_seconds(idx), day_of_week=True)
    from_index = time_features_for_timestamps(idx, day_of_week=True)
    from_series = time_features_for_timestamps(pd.Series(idx), day_of_week=True)
    np.testing.assert_array_equal(from_index, expected)
    np.testing.assert_array_equal(from_series, expected)
    one = time_features_for_timestamps(idx[3], day_of_week=True)
    assert one.shape == (4,)
    np.testing.assert_array_equal(one, expected[:, 3])


def test_epoch_seconds_values() -> None:
    idx = pd.DatetimeIndex(["1970-01-01 00:00:01.5", "2024-01-01"], tz="UTC")
    np.testing.assert_array_equal(epoch_seconds(idx), [1.5, 1_704_067_200.0])
    assert epoch_seconds(pd.Timestamp("1970-01-02", tz="UTC")).shape == ()


def test_naive_is_utc_and_other_zones_are_converted() -> None:
    naive = pd.Series(pd.to_datetime(["2024-06-01 00:30", "2024-06-01 13:00"]))
    utc = naive.dt.tz_localize("UTC")
    paris = utc.dt.tz_convert("Europe/Paris")  # same instants, local hour 2 h later
    a = time_features_for_timestamps(naive)
    np.testing.assert_array_equal(a, time_features_for_timestamps(utc))
    np.testing.assert_array_equal(a, time_features_for_timestamps(paris))
    np.testing.assert_allclose(a[:, 0], [np.sin(np.pi / 24), np.cos(np.pi / 24)], atol=1e-6)


def test_unit_of_storage_does_not_matter() -> None:
    idx = pd.date_range("2024-01-01", periods=3, freq="h", tz="UTC")
    np.testing.assert_array_equal(epoch_seconds(idx.as_unit("s")), epoch_seconds(idx.as_unit("ns")))


def test_bad_timestamps_rejected() -> None:
    with pytest.raises(DataError, match="expected datetimes"):
        time_features_for_timestamps(pd.Series([1.0, 2.0]))
    with pytest.raises(DataError, match="NaT"):
        time_features_for_timestamps(pd.DatetimeIndex(["2024-01-01", None], tz="UTC"))


@settings(max_examples=50, deadline=None)
@given(
    start=st.floats(min_value=0, max_value=4.1e9, allow_nan=False),
    step=st.sampled_from([0.5, 1.0, 7.0, 60.0, 3600.0]),
    n_steps=st.integers(min_value=1, max_value=400_000),
    day_of_week=st.booleans(),
)
def test_grid_time_features_match_direct(
    start: float, step: float, n_steps: int, day_of_week: bool
) -> None:
    grid = grid_time_features(start, step, n_steps, day_of_week=day_of_week)
    direct = time_features(start + np.arange(n_steps) * step, day_of_week=day_of_week)
    assert grid.shape == direct.shape
    assert grid.dtype == np.float32
    np.testing.assert_allclose(grid, direct, atol=1e-5)
