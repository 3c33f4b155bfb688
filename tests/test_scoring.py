"""The scoring path's pieces that need no model: alarm stepping and window pairing."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from vitalsentry.data.prepared import WindowSet
from vitalsentry.risk.alarms import AlarmPolicy, AlarmState, apply_alarm_policy
from vitalsentry.scoring import alarm_states, window_pairs

POLICY = AlarmPolicy(k=2, n=3, clear_after=2)
flags = st.lists(st.tuples(st.sampled_from("ab"), st.booleans()), min_size=1, max_size=40)


@given(flags)
def test_alarm_states_follow_each_key_in_time_order(rows: list[tuple[str, bool]]) -> None:
    keys = np.array([k for k, _ in rows])
    high = np.array([h for _, h in rows])
    ends = np.random.default_rng(len(rows)).permutation(len(rows)).astype(float)
    states = alarm_states(keys, ends, high, {}, POLICY)
    for key in "ab":
        mine = np.flatnonzero(keys == key)
        order = mine[np.argsort(ends[mine])]
        expected = apply_alarm_policy(high[order], POLICY)
        assert [states[i].on for i in order] == expected.tolist()


@given(flags, st.integers(0, 40))
def test_alarm_states_continue_from_the_history_given(
    rows: list[tuple[str, bool]], cut: int
) -> None:
    keys = np.array([k for k, _ in rows])
    high = np.array([h for _, h in rows])
    ends = np.arange(len(rows), dtype=float)
    whole = alarm_states(keys, ends, high, {}, POLICY)
    cut = min(cut, len(rows))
    history = {str(keys[i]): whole[i] for i in range(cut)}  # each key's latest state
    rest = alarm_states(keys[cut:], ends[cut:], high[cut:], history, POLICY)
    assert rest == whole[cut:]


def test_a_key_without_history_starts_quiet() -> None:
    states = alarm_states(np.array(["a"]), np.zeros(1), np.array([True]), {}, POLICY)
    assert states == (AlarmState(False, 0, (True,)),)


def _windows(keys: list[str], starts: list[float]) -> WindowSet:
    n = len(keys)
    return WindowSet(np.zeros((n, 1, 2)), np.zeros(n, np.int8), np.array(keys), np.array(starts))


def test_window_pairs_match_key_and_start_in_the_left_order() -> None:
    left = _windows(["b", "a", "a", "c"], [0.0, 10.0, 0.0, 5.0])
    right = _windows(["a", "b", "a"], [0.0, 0.0, 20.0])
    i, j = window_pairs(left, right)
    assert i.tolist() == [0, 2] and j.tolist() == [1, 0]
