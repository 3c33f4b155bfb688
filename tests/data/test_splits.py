from __future__ import annotations

import itertools
import random
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vitalsentry.data.splits import SPLIT_NAMES, split_by_time, split_patients
from vitalsentry.errors import DataError, VitalSentryError

THREE = (0.7, 0.15, 0.15)
TWO = (0.7, 0.3)

ids_strategy = st.lists(st.text(min_size=1, max_size=6), min_size=3, max_size=60, unique=True)


@settings(max_examples=50, deadline=None)
@given(
    ids=ids_strategy,
    fractions=st.sampled_from([THREE, TWO, (0.5, 0.25, 0.25), (0.9, 0.1)]),
    seed=st.integers(0, 2**32 - 1),
    shuffle_seed=st.integers(0, 1000),
)
def test_disjoint_covering_deterministic_order_independent(
    ids: list[str], fractions: tuple[float, ...], seed: int, shuffle_seed: int
) -> None:
    split = split_patients(ids, fractions, seed)
    assert set(split) == set(ids)  # covering; a dict maps each patient to exactly one split
    codes = {0, 1, 2} if len(fractions) == 3 else {0, 2}
    assert set(split.values()) == codes  # every split non-empty
    assert split_patients(ids, fractions, seed) == split
    shuffled = ids + ids[: len(ids) // 2]
    random.Random(shuffle_seed).shuffle(shuffled)
    assert split_patients(shuffled, fractions, seed) == split


@settings(max_examples=50, deadline=None)
@given(
    ids=ids_strategy,
    seed=st.integers(0, 1000),
    labels=st.lists(st.integers(0, 1), min_size=60, max_size=60),
)
def test_stratified_is_disjoint_covering_and_stratified(
    ids: list[str], seed: int, labels: list[int]
) -> None:
    strata = dict(zip(ids, labels, strict=False))
    split = split_patients(ids, THREE, seed, strata=strata)
    assert set(split) == set(ids)
    assert set(split.values()) == {0, 1, 2}
    for label in (0, 1):
        members = [p for p in ids if strata[p] == label]
        if len(members) >= 3:  # enough patients of this class for every split
            assert {split[p] for p in members} == {0, 1, 2}
    assert split_patients(list(reversed(ids)), THREE, seed, strata=strata) == split


def test_largest_remainder_sizes() -> None:
    ids = [f"p{i:02d}" for i in range(20)]
    assert Counter(split_patients(ids, THREE, 0).values()) == {0: 14, 1: 3, 2: 3}
    # 10 patients: quotas 7, 1.5, 1.5 → the tie goes to the earlier split (val).
    assert Counter(split_patients(ids[:10], THREE, 0).values()) == {0: 7, 1: 2, 2: 1}
    assert Counter(split_patients(ids[:10], TWO, 0).values()) == {0: 7, 2: 3}


def test_minimum_patients_fill_every_split() -> None:
    assert sorted(split_patients(["a", "b", "c"], THREE, 1).values()) == [0, 1, 2]
    assert sorted(split_patients(["a", "b"], TWO, 1).values()) == [0, 2]


def test_too_few_patients() -> None:
    with pytest.raises(DataError, match=r"2 patient\(s\) cannot fill 3 .*train, val, test"):
        split_patients(["a", "b", "a"], THREE, 0)
    with pytest.raises(DataError, match="1 patient"):
        split_patients(["a"], TWO, 0)


def test_seed_changes_the_assignment() -> None:
    ids = [f"p{i}" for i in range(50)]
    assert split_patients(ids, THREE, 0) != split_patients(ids, THREE, 1)


def test_small_minority_class_reaches_every_split() -> None:
    ids = [f"p{i:02d}" for i in range(20)]
    strata = {p: int(i < 4) for i, p in enumerate(ids)}
    split = split_patients(ids, THREE, 3, strata=strata)
    # Each stratum is apportioned on its own: 16 → 11.2, 2.4, 2.4 and 4 → 2.8, 0.6, 0.6
    # (largest remainder, then one patient moved so that every split has one).
    assert Counter(split[p] for p in ids if strata[p] == 0) == {0: 11, 1: 3, 2: 2}
    assert Counter(split[p] for p in ids if strata[p] == 1) == {0: 2, 1: 1, 2: 1}


def test_strata_too_small_for_every_split_still_fill_all_splits() -> None:
    strata = {"a": 0, "b": 0, "c": 1, "d": 1}
    split = split_patients(list(strata), THREE, 0, strata=strata)
    assert set(split.values()) == {0, 1, 2}


def test_missing_stratum() -> None:
    with pytest.raises(DataError, match="no stratum for patient 'c'"):
        split_patients(["a", "b", "c"], THREE, 0, strata={"a": 0, "b": 1})


@pytest.mark.parametrize(
    "fractions", [(1.0,), (0.5, 0.5, 0.0), (0.6, 0.6), (0.5, 0.2, 0.2, 0.1), (float("nan"), 0.5)]
)
def test_bad_fractions(fractions: tuple[float, ...]) -> None:
    with pytest.raises(VitalSentryError, match="split"):
        split_patients(["a", "b", "c", "d"], fractions, 0)


def test_split_names() -> None:
    assert SPLIT_NAMES == {0: "train", 1: "val", 2: "test"}


@settings(max_examples=50, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 400), min_size=1, max_size=3),
    length=st.integers(1, 40),
    stride=st.integers(1, 40),
    fractions=st.sampled_from([THREE, TWO, (0.5, 0.25, 0.25)]),
)
def test_time_blocks_are_ordered_disjoint_and_a_window_apart(
    lengths: list[int], length: int, stride: int, fractions: tuple[float, ...]
) -> None:
    key = np.concatenate([np.full(n, f"k{i}") for i, n in enumerate(lengths)])
    start = np.concatenate([np.arange(n) * float(stride) for n in lengths])
    end = start + length - 1
    codes = split_by_time(key, start, end, fractions, gap_s=float(length))
    assert set(np.unique(codes)) <= {-1, 0, 1, 2} - ({1} if len(fractions) == 2 else set())
    for name in np.unique(key):
        mine = key == name
        used = [c for c in (0, 1, 2) if (codes[mine] == c).any()]
        for a, b in itertools.pairwise(used):  # later split starts a window after
            assert start[mine & (codes == b)].min() >= end[mine & (codes == a)].max() + length
    long_enough = [n for n in lengths if (n - 1) * stride + length >= 40 * length]
    if long_enough:  # a long series fills every split
        big = key == f"k{lengths.index(long_enough[0])}"
        assert set(np.unique(codes[big])) >= ({0, 1, 2} if len(fractions) == 3 else {0, 2})


def test_time_blocks_refuse_a_negative_gap() -> None:
    one = np.array(["a"])
    with pytest.raises(VitalSentryError, match="gap"):
        split_by_time(one, np.zeros(1), np.ones(1), TWO, gap_s=-1.0)
