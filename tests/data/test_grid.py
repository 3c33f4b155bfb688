from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vitalsentry.data.grid import SeriesGrid, grid_frame, grid_series
from vitalsentry.errors import DataError

T0 = 1_700_000_000.0  # a realistic epoch (2023-11-14)


def _frame(rows: dict[str, Any], start: float = T0) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame["timestamp"] = pd.to_datetime(start + frame.pop("t").astype(float), unit="s", utc=True)
    return frame


@settings(max_examples=50, deadline=None)
@given(
    slope=st.floats(-50, 50),
    intercept=st.floats(-1000, 1000),
    gaps=st.lists(st.floats(0.01, 30), min_size=1, max_size=40),
    step=st.floats(0.05, 20),
    offset=st.sampled_from([0.0, 12.5, -3600.0]),
)
def test_interpolation_exact_on_linear_data(
    slope: float, intercept: float, gaps: list[float], step: float, offset: float
) -> None:
    t = offset + np.concatenate([[0.0], np.cumsum(gaps)])
    v = intercept + slope * (t - offset)
    g = grid_series(t, v[None, :], None, step_s=step, max_gap_s=1e9, key="lin")
    assert g.start_s == t[0]
    assert g.epoch_s[-1] <= t[-1] + 1e-6 < g.epoch_s[-1] + step
    assert g.mask.all()
    expected = intercept + slope * (g.epoch_s - offset)
    np.testing.assert_allclose(g.values[0], expected, rtol=1e-9, atol=1e-7)


def test_exact_at_epoch_magnitude() -> None:
    t = T0 + np.array([0.0, 3.0, 4.0, 10.0, 17.0])
    v = 60.0 + 2.0 * (t - T0)
    g = grid_series(t, v[None, :], None, step_s=1.0, max_gap_s=100, key="p")
    np.testing.assert_allclose(g.values[0], 60.0 + 2.0 * np.arange(18), atol=1e-6)
    np.testing.assert_array_equal(g.epoch_s, T0 + np.arange(18))


def test_grid_stops_at_last_reading() -> None:
    g = grid_series(
        np.array([0.0, 10.5]), np.array([[1.0, 2.0]]), None, step_s=2.0, max_gap_s=20, key="p"
    )
    np.testing.assert_array_equal(g.epoch_s, [0, 2, 4, 6, 8, 10])


def test_float_steps_reach_the_last_reading() -> None:
    # 0.1 + 9 * 0.1 rounds to 1.0000000000000002; the last reading must still get its step.
    t = np.array([0.1, 0.5, 1.0])
    g = grid_series(t, np.array([[1.0, 5.0, 10.0]]), None, step_s=0.1, max_gap_s=1.0, key="p")
    assert g.n_steps == 10
    assert g.mask.all()
    assert g.values[0, -1] == pytest.approx(10.0)


def test_mask_beyond_max_gap() -> None:
    t = np.array([0.0, 1.0, 2.0, 10.0, 11.0])
    v = np.array([[0.0, 1.0, 2.0, 10.0, 11.0]])
    g = grid_series(t, v, None, step_s=1.0, max_gap_s=5.0, key="p")
    expected_mask = np.array([True] * 3 + [False] * 7 + [True] * 2)
    np.testing.assert_array_equal(g.mask[0], expected_mask)
    assert np.isnan(g.values[0, ~expected_mask]).all()
    np.testing.assert_array_equal(g.values[0, expected_mask], [0, 1, 2, 10, 11])


def test_gap_equal_to_max_gap_is_bridged() -> None:
    t = np.array([0.0, 5.0])
    g = grid_series(t, np.array([[0.0, 5.0]]), None, step_s=1.0, max_gap_s=5.0, key="p")
    assert g.mask.all()
    np.testing.assert_array_equal(g.values[0], np.arange(6.0))


def test_channel_never_observed_is_all_masked() -> None:
    t = np.arange(5.0)
    v = np.vstack([np.arange(5.0), np.full(5, np.nan)])
    g = grid_series(t, v, None, step_s=1.0, max_gap_s=10.0, key="p")
    assert g.mask[0].all() and not g.mask[1].any()
    assert np.isnan(g.values[1]).all()


def test_multi_rate_channels_in_one_frame() -> None:
    # HR every second for 10 minutes, SpO2 once a minute (at 0, 60, ..., 540 s).
    seconds = np.arange(600)
    hr = 70.0 + 0.01 * seconds
    spo2 = np.where(seconds % 60 == 0, 95.0 + seconds / 120.0, np.nan)
    frame = _frame({"patient_id": "a", "t": seconds, "heart_rate": hr, "spo2": spo2})
    (g,) = grid_frame(frame, ["heart_rate", "spo2"], step_s=1.0, max_gap_s=300.0)
    assert g.key == "a" and g.n_steps == 600
    assert g.mask[0].all()
    np.testing.assert_allclose(g.values[0], hr)
    # SpO2 is interpolated between its own readings only, then stops at the last one.
    np.testing.assert_array_equal(g.mask[1], seconds <= 540)
    np.testing.assert_allclose(g.values[1, :541], 95.0 + seconds[:541] / 120.0)
    # With a max gap below the SpO2 period only its own readings stay valid.
    (tight,) = grid_frame(frame, ["heart_rate", "spo2"], step_s=1.0, max_gap_s=30.0)
    np.testing.assert_array_equal(tight.mask[1], seconds % 60 == 0)
    assert tight.mask[0].all()


def test_labels_forward_filled_from_labelled_readings() -> None:
    t = np.array([0.0, 2.0, 5.0, 7.0])
    labels = np.array([0, -1, 1, -1], dtype=np.int8)
    g = grid_series(t, np.ones((1, 4)), labels, step_s=1.0, max_gap_s=10, key="p")
    np.testing.assert_array_equal(g.labels, [0, 0, 0, 0, 0, 1, 1, 1])
    assert g.labels.dtype == np.int8


def test_labels_unknown_before_first_label_and_without_labels() -> None:
    t = np.array([0.0, 1.5, 3.0])
    labels = np.array([-1, 1, 0], dtype=np.int8)
    g = grid_series(t, np.ones((1, 3)), labels, step_s=0.5, max_gap_s=10, key="p")
    np.testing.assert_array_equal(g.labels, [-1, -1, -1, 1, 1, 1, 0])
    none = grid_series(t, np.ones((1, 3)), None, step_s=0.5, max_gap_s=10, key="p")
    assert (none.labels == -1).all()


def test_labels_of_readings_between_steps_take_the_latest() -> None:
    # Readings at 0.2 (label 1) and 0.7 (label 0) both fall before step 1.0.
    t = np.array([0.0, 0.2, 0.7, 2.0])
    labels = np.array([0, 1, 0, 1], dtype=np.int8)
    g = grid_series(t, np.ones((1, 4)), labels, step_s=1.0, max_gap_s=10, key="p")
    np.testing.assert_array_equal(g.labels, [0, 0, 1])


@pytest.mark.parametrize("times", [[0.0, 2.0, 1.0], [0.0, 1.0, 1.0]])
def test_times_not_strictly_increasing(times: list[float]) -> None:
    with pytest.raises(DataError, match=r"bed-7.*strictly increasing"):
        grid_series(np.array(times), np.ones((1, 3)), None, step_s=1.0, max_gap_s=5, key="bed-7")


@pytest.mark.parametrize(
    ("values", "labels", "step", "gap", "message"),
    [
        (np.ones((1, 2)), None, 1.0, 5.0, "shape"),
        (np.array([[1.0, np.inf, 2.0]]), None, 1.0, 5.0, "infinite"),
        (np.ones((1, 3)), np.array([0, 2, 1]), 1.0, 5.0, "labels must be"),
        (np.ones((1, 3)), np.array([0, 1]), 1.0, 5.0, "labels must have shape"),
        (np.ones((1, 3)), None, 0.0, 5.0, "step_s"),
        (np.ones((1, 3)), None, 1.0, -1.0, "max_gap_s"),
    ],
)
def test_bad_inputs(
    values: np.ndarray, labels: np.ndarray | None, step: float, gap: float, message: str
) -> None:
    with pytest.raises(DataError, match=f"p9.*{message}"):
        grid_series(np.arange(3.0), values, labels, step_s=step, max_gap_s=gap, key="p9")


def test_empty_and_non_finite_times() -> None:
    with pytest.raises(DataError, match="non-empty"):
        grid_series(np.array([]), np.ones((1, 0)), None, step_s=1, max_gap_s=1, key="p")
    with pytest.raises(DataError, match="finite"):
        grid_series(np.array([0.0, np.nan]), np.ones((1, 2)), None, step_s=1, max_gap_s=1, key="p")


def test_series_grid_rejects_inconsistent_shapes() -> None:
    with pytest.raises(DataError, match="inconsistent"):
        SeriesGrid("k", 0.0, 1.0, np.zeros((2, 3)), np.ones((2, 4), bool), np.zeros(3, np.int8))


def test_grid_frame_groups_in_sorted_key_order() -> None:
    frame = _frame(
        {
            "patient_id": ["b", "b", "a", "a", "a", "b"],
            "t": [0, 2, 0, 1, 2, 4],
            "heart_rate": [80.0, 82.0, 60.0, 61.0, 62.0, 86.0],
            "label": pd.array([1, pd.NA, 0, 0, 1, pd.NA], dtype="Int8"),
        }
    )
    grids = grid_frame(frame, ["heart_rate"], step_s=1.0, max_gap_s=10.0)
    assert [g.key for g in grids] == ["a", "b"]
    a, b = grids
    np.testing.assert_array_equal(a.values[0], [60, 61, 62])
    np.testing.assert_array_equal(a.labels, [0, 0, 1])
    np.testing.assert_array_equal(b.values[0], [80, 81, 82, 84, 86])
    np.testing.assert_array_equal(b.labels, [1, 1, 1, 1, 1])
    assert a.start_s == b.start_s == T0


def test_grid_frame_without_label_column() -> None:
    frame = _frame({"patient_id": ["a", "a"], "t": [0, 1], "spo2": [97.0, 98.0]})
    (g,) = grid_frame(frame, ["spo2"], step_s=0.5, max_gap_s=1.0)
    assert (g.labels == -1).all()
    np.testing.assert_allclose(g.values[0], [97.0, 97.5, 98.0])


def test_grid_frame_other_key_column() -> None:
    frame = _frame({"stream": ["s1", "s1", "s2"], "t": [0, 1, 0], "heart_rate": [1.0, 2.0, 3.0]})
    grids = grid_frame(frame, ["heart_rate"], step_s=1.0, max_gap_s=1.0, key_column="stream")
    assert [g.key for g in grids] == ["s1", "s2"]


def test_grid_frame_errors() -> None:
    frame = _frame({"patient_id": ["a", "a"], "t": [0, 1], "heart_rate": [60.0, 61.0]})
    with pytest.raises(DataError, match="spo2") as err:
        grid_frame(frame, ["heart_rate", "spo2"], step_s=1.0, max_gap_s=5.0)
    assert err.value.column == "spo2"
    with pytest.raises(DataError, match="no channel"):
        grid_frame(frame, [], step_s=1.0, max_gap_s=5.0)
    with pytest.raises(DataError, match="no readings"):
        grid_frame(frame.iloc[:0], ["heart_rate"], step_s=1.0, max_gap_s=5.0)
    backwards = _frame({"patient_id": ["a", "a"], "t": [1, 0], "heart_rate": [60.0, 61.0]})
    with pytest.raises(DataError, match="a: reading times must be strictly increasing"):
        grid_frame(backwards, ["heart_rate"], step_s=1.0, max_gap_s=5.0)
    no_key = frame.assign(patient_id=pd.Series([None, "a"], dtype=object))
    with pytest.raises(DataError, match="missing key"):
        grid_frame(no_key, ["heart_rate"], step_s=1.0, max_gap_s=5.0)


@pytest.mark.slow
def test_twelve_million_steps_grid_with_gaps() -> None:  # speed: benchmarks/bench_data.py
    # A day at 1 s from readings every 7 s is 12 M steps over 3 channels with gaps.
    t = T0 + np.arange(0.0, 4.0e6, 7.0)
    rng = np.random.default_rng(0)
    v = rng.normal(80, 5, size=(3, t.size))
    v[1, rng.random(t.size) < 0.2] = np.nan
    labels = (rng.random(t.size) < 0.5).astype(np.int8)
    g = grid_series(t, v, labels, step_s=1 / 3, max_gap_s=20.0, key="big")
    assert g.n_steps > 11_900_000
    assert g.mask[0].all() and not g.mask[1].all()


def test_carry_forward_after_a_long_gap_then_missing() -> None:
    t = T0 + np.array([0.0, 1.0, 100.0, 101.0])
    v = np.array([[1.0, 2.0, 3.0, 4.0], [5.0, np.nan, np.nan, 6.0]])
    g = grid_series(
        t, v, None, step_s=1.0, max_gap_s=(5.0, 200.0), carry_s=(3.0, 0.0), key="p", with_age=True
    )
    hr = g.values[0]
    assert g.mask[0, :5].all() and not g.mask[0, 5:100].any() and g.mask[0, 100:].all()
    np.testing.assert_array_equal(hr[2:5], [2.0, 2.0, 2.0])  # carried, not interpolated
    assert g.mask[1].all()  # one gap of 101 s ≤ 200 s interpolated
    assert g.age_s is not None
    np.testing.assert_array_equal(g.age_s[0, :4], [0.0, 0.0, 1.0, 2.0])
    assert g.age_s[1, 50] == 50.0


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.floats(0.5, 50), min_size=1, max_size=30),
    interp=st.floats(0, 40),
    carry=st.floats(0, 40),
    step=st.sampled_from([0.5, 1.0, 3.0]),
)
def test_gap_policy_laws(gaps: list[float], interp: float, carry: float, step: float) -> None:
    t = T0 + np.concatenate([[0.0], np.cumsum(gaps)])
    v = np.arange(t.size, dtype=np.float64) * 10.0
    g = grid_series(t, v[None], None, step_s=step, max_gap_s=interp, carry_s=carry, key="p")
    plain = grid_series(t, v[None], None, step_s=step, max_gap_s=interp, key="p")
    grid_t = g.epoch_s
    latest = np.searchsorted(t, grid_t + 1e-6, side="right") - 1
    age = grid_t - t[latest]
    nxt = np.minimum(latest + 1, t.size - 1)
    inside_short_gap = (t[nxt] - t[latest] <= interp) | (age <= 1e-6)
    assert (plain.mask <= g.mask).all()  # carrying forward only adds valid steps
    np.testing.assert_array_equal(g.mask[0], inside_short_gap | (age <= carry + 1e-6))
    carried = g.mask[0] & ~plain.mask[0]
    np.testing.assert_array_equal(g.values[0, carried], v[latest[carried]])
    assert (np.isnan(g.values) == ~g.mask).all()
    assert np.nanmin(g.values) >= v.min() and np.nanmax(g.values) <= v.max()
