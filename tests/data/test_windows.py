from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vitalsentry.data.grid import grid_frame
from vitalsentry.data.windows import (
    count_windows,
    sliding_windows,
    valid_windows,
    window_labels,
    window_starts,
)
from vitalsentry.errors import DataError, VitalSentryError

sizes = st.integers(0, 60)
lengths = st.integers(1, 20)
strides = st.integers(1, 12)


@settings(max_examples=50, deadline=None)
@given(n_steps=sizes, length=lengths, stride=strides, channels=st.integers(1, 3))
def test_count_matches_sliding_windows(
    n_steps: int, length: int, stride: int, channels: int
) -> None:
    x = np.arange(channels * n_steps, dtype=np.float64).reshape(channels, n_steps)
    w = sliding_windows(x, length, stride)
    n = count_windows(n_steps, length, stride)
    assert n == (0 if n_steps < length else (n_steps - length) // stride + 1)
    assert w.shape == (n, channels, length)
    starts = window_starts(n_steps, length, stride)
    assert starts.dtype == np.int64 and len(starts) == n
    for k, s in enumerate(starts):
        np.testing.assert_array_equal(w[k], x[:, s : s + length])


def test_sliding_windows_is_a_view() -> None:
    x = np.random.default_rng(0).normal(size=(4, 1000))
    w = sliding_windows(x, 256, 128)
    assert w.shape == (6, 4, 256)
    assert np.shares_memory(w, x)
    assert not w.flags.writeable
    x[2, 130] = 42.0
    assert w[1, 2, 2] == 42.0


def test_sliding_windows_shorter_than_one_window() -> None:
    w = sliding_windows(np.zeros((2, 5), dtype=np.float32), 8, 4)
    assert w.shape == (0, 2, 8) and w.dtype == np.float32


def test_bad_window_parameters() -> None:
    with pytest.raises(VitalSentryError, match="≥ 1"):
        count_windows(10, 0, 1)
    with pytest.raises(VitalSentryError, match="≥ 1"):
        window_starts(10, 4, 0)
    with pytest.raises(VitalSentryError, match="≥ 0"):
        count_windows(-1, 4, 2)
    with pytest.raises(DataError, match="channels, steps"):
        sliding_windows(np.zeros(10), 4, 2)
    with pytest.raises(DataError, match="mask"):
        valid_windows(np.ones(10, dtype=bool), 4, 2)
    with pytest.raises(DataError, match="labels"):
        window_labels(np.zeros((1, 10), dtype=np.int8), 4, 2, "last")


def test_valid_windows_example() -> None:
    mask = np.ones((2, 10), dtype=bool)
    mask[1, 5] = False
    # windows of 4 with stride 2 start at 0, 2, 4, 6; those covering step 5 are invalid.
    np.testing.assert_array_equal(valid_windows(mask, 4, 2), [True, False, False, True])


@settings(max_examples=50, deadline=None)
@given(
    mask=st.lists(st.lists(st.booleans(), min_size=30, max_size=30), min_size=1, max_size=3),
    length=lengths,
    stride=strides,
)
def test_valid_windows_match_brute_force(mask: list[list[bool]], length: int, stride: int) -> None:
    m = np.array(mask)
    expected = [bool(w.all()) for w in sliding_windows(m, length, stride)]
    np.testing.assert_array_equal(valid_windows(m, length, stride), np.array(expected, dtype=bool))


LABELS = np.array([-1, -1, 0, 1, -1, 0, 0, 1, 1, -1, -1, -1], dtype=np.int8)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        # windows of 4, stride 4: [-1 -1 0 1], [-1 0 0 1], [1 -1 -1 -1]
        ("last", [1, 1, -1]),
        ("any", [1, 1, 1]),
        ("majority", [0, 0, 1]),
    ],
)
def test_window_label_modes(mode: str, expected: list[int]) -> None:
    out = window_labels(LABELS, 4, 4, mode)
    assert out.dtype == np.int8
    np.testing.assert_array_equal(out, expected)


def test_window_label_modes_unknown_and_normal() -> None:
    labels = np.array([-1, -1, -1, 0, 0, 0], dtype=np.int8)
    for mode in ("any", "majority"):
        np.testing.assert_array_equal(window_labels(labels, 3, 3, mode), [-1, 0])
    # majority needs strictly more than half of the known steps
    np.testing.assert_array_equal(
        window_labels(np.array([0, 1, 1, 0, 1, 1], dtype=np.int8), 2, 2, "majority"), [0, 0, 1]
    )


def test_unknown_label_mode() -> None:
    with pytest.raises(VitalSentryError, match="unknown label mode 'mean'"):
        window_labels(LABELS, 4, 4, "mean")


@settings(max_examples=50, deadline=None)
@given(
    labels=st.lists(st.sampled_from([-1, 0, 1]), min_size=0, max_size=40),
    length=lengths,
    stride=strides,
)
def test_window_labels_match_brute_force(labels: list[int], length: int, stride: int) -> None:
    lab = np.array(labels, dtype=np.int8)
    windows = sliding_windows(lab[None, :], length, stride)[:, 0]
    for mode in ("last", "any", "majority"):
        expected = []
        for w in windows:
            known = w[w >= 0]
            if mode == "last":
                expected.append(w[-1])
            elif known.size == 0:
                expected.append(-1)
            elif mode == "any":
                expected.append(int((known == 1).any()))
            else:
                expected.append(int((known == 1).sum() > known.size / 2))
        np.testing.assert_array_equal(window_labels(lab, length, stride, mode), expected)


@settings(max_examples=50, deadline=None)
@given(
    lengths_s=st.lists(st.integers(1, 40), min_size=2, max_size=5),
    length=st.integers(1, 12),
    stride=st.integers(1, 8),
)
def test_windows_never_mix_patients(lengths_s: list[int], length: int, stride: int) -> None:
    # Patient i's heart rate is the constant 40 + 10 i; rows of all patients are interleaved.
    frames = [
        pd.DataFrame(
            {
                "patient_id": f"p{i}",
                "timestamp": pd.to_datetime(1_700_000_000 + np.arange(n), unit="s", utc=True),
                "heart_rate": 40.0 + 10 * i,
            }
        )
        for i, n in enumerate(lengths_s)
    ]
    interleaved = pd.concat(frames).sort_values("timestamp", kind="stable")
    grids = grid_frame(interleaved, ["heart_rate"], step_s=1.0, max_gap_s=5.0)
    assert [g.key for g in grids] == [f"p{i}" for i in range(len(lengths_s))]
    total = 0
    for g in grids:
        w = sliding_windows(g.values, length, stride)
        total += len(w)
        own = 40.0 + 10 * int(g.key[1:])
        assert (w == own).all()
    assert total == sum(count_windows(n, length, stride) for n in lengths_s)
