import json

import numpy as np
import pytest

from vitalsentry.errors import DataError, VitalSentryError
from vitalsentry.risk.alarms import (
    AlarmPolicy,
    alarm_onsets,
    apply_alarm_policy,
    evaluate_alarms,
)


def _b(text: str) -> np.ndarray:
    """'1101' -> boolean array."""
    return np.array([c == "1" for c in text], dtype=bool)


@pytest.mark.parametrize(
    ("policy", "high", "state"),
    [
        # default 3 of 4, clear after 4 non-high windows
        (AlarmPolicy(), "110110000000", "000111110000"),
        (AlarmPolicy(), "101010101010", "000000000000"),
        (AlarmPolicy(), "111011101110", "001111111111"),
        # 2 of 3: the third window completes two of three
        (AlarmPolicy(k=2, n=3, clear_after=1), "101", "001"),
        (AlarmPolicy(k=2, n=3, clear_after=1), "1001", "0000"),
        # after a clear the count restarts: no re-raise on the same evidence
        (AlarmPolicy(k=1, n=4, clear_after=1), "10010", "10010"),
        (AlarmPolicy(k=2, n=4, clear_after=2), "1100110", "0110011"),
        (AlarmPolicy(), "", ""),
    ],
)
def test_policy_on_hand_made_sequences(policy, high, state):
    np.testing.assert_array_equal(apply_alarm_policy(_b(high), policy), _b(state))


def test_onsets():
    assert alarm_onsets(_b("0111001101")).tolist() == [1, 6, 9]
    assert alarm_onsets(_b("1100")).tolist() == [0]
    assert alarm_onsets(_b("")).tolist() == []


@pytest.mark.parametrize("kwargs", [{"k": 0}, {"k": 5, "n": 4}, {"clear_after": 0}])
def test_invalid_policy(kwargs):
    with pytest.raises(VitalSentryError):
        AlarmPolicy(**kwargs)


def test_non_boolean_flags_raise_data_error():
    with pytest.raises(DataError, match="boolean"):
        apply_alarm_policy(np.array([0, 1, 1]), AlarmPolicy())
    with pytest.raises(DataError, match="boolean"):
        alarm_onsets(np.ones((2, 2), dtype=bool))


WINDOW_S = 200.0
ENDS = np.arange(12) * 100.0  # 12 windows per patient, stride 100 s


def _case():
    """Three monitored patients, hand-checked.

    a: alarm on at 300 s (windows 3..7); event (250, 400) detected, delay 50 s;
       event (5000, 6000) outside the monitored span -> skipped.
    b: alarm on at 200 s (windows 2..5); event (500, 900) overlaps the on window at 500 s
       -> detected early, delay 0.
    c: alarm on at 0 s (windows 2..5, raised at window 2: 200 s), no event -> false alarm;
       event (1000, 1050) missed.
    d: events but no windows -> skipped.
    """
    highs = {"a": "110110000000", "b": "111000000000", "c": "111000000000"}
    ids = np.repeat(list(highs), len(ENDS))
    ends = np.tile(ENDS, len(highs))
    high = np.concatenate([_b(h) for h in highs.values()])
    events = {
        "a": [(250.0, 400.0), (5000.0, 6000.0)],
        "b": [(500.0, 900.0)],
        "c": [(1000.0, 1050.0)],
        "d": [(0.0, 10.0), (20.0, 30.0)],
    }
    return ids, ends, high, events


def test_evaluate_alarms_on_a_hand_made_case():
    ids, ends, high, events = _case()
    report = evaluate_alarms(ids, ends, high, events, AlarmPolicy(), window_s=WINDOW_S)
    assert report.patients == 3
    assert report.patient_days == pytest.approx(3 * (1100 + 200) / 86400)
    assert report.alarms == 3
    assert report.alarms_per_patient_day == pytest.approx(3 / report.patient_days)
    assert report.false_alarms == 1
    assert report.events == 3
    assert report.events_skipped == 3
    assert report.detected_events == 2
    assert report.event_recall == pytest.approx(2 / 3)
    assert report.median_delay_s == pytest.approx(25.0)  # median of 50 and 0
    assert report.reasons == {}
    assert json.loads(json.dumps(report.to_dict()))["alarms"] == 3


def test_row_order_does_not_matter():
    ids, ends, high, events = _case()
    order = np.random.default_rng(0).permutation(len(ids))
    shuffled = evaluate_alarms(
        ids[order], ends[order], high[order], events, AlarmPolicy(), window_s=WINDOW_S
    )
    assert shuffled == evaluate_alarms(ids, ends, high, events, AlarmPolicy(), window_s=WINDOW_S)


def test_grace_period_counts_a_late_alarm():
    ids = np.array(["p"] * 6)
    ends = np.arange(6) * 100.0
    high = _b("000111")  # alarm raised at 500 s
    events = {"p": [(100.0, 400.0)]}
    strict = evaluate_alarms(ids, ends, high, events, AlarmPolicy(), window_s=100.0)
    assert strict.detected_events == 0
    assert strict.false_alarms == 1
    assert strict.median_delay_s is None
    assert strict.reasons["median_delay_s"] == "no event was detected"
    lenient = evaluate_alarms(ids, ends, high, events, AlarmPolicy(), window_s=100.0, grace_s=100)
    assert lenient.detected_events == 1
    assert lenient.false_alarms == 0
    assert lenient.median_delay_s == 400.0


def test_metrics_that_cannot_be_computed_are_none_with_reasons():
    no_events = evaluate_alarms(
        np.array(["p", "p"]), np.array([0.0, 60.0]), _b("00"), {}, AlarmPolicy(), window_s=60.0
    )
    assert no_events.event_recall is None
    assert no_events.median_delay_s is None
    assert no_events.alarms_per_patient_day == 0.0
    assert set(no_events.reasons) == {"event_recall", "median_delay_s"}
    nothing = evaluate_alarms(
        np.array([], dtype=str),
        np.array([]),
        np.array([], dtype=bool),
        {"p": [(0.0, 1.0)]},
        AlarmPolicy(),
        window_s=60.0,
    )
    assert nothing.patient_days == 0.0
    assert nothing.alarms_per_patient_day is None
    assert nothing.events_skipped == 1
    assert "no monitored time" in nothing.reasons["alarms_per_patient_day"]


@pytest.mark.parametrize(
    ("ends", "high", "events", "kwargs", "match"),
    [
        ([0.0, 100.0], [False], {}, {}, "one length"),
        ([0.0, np.nan], [False, False], {}, {}, "NaN"),
        ([0.0, 0.0], [False, False], {}, {}, "same time"),
        ([0.0, 100.0], [0, 1], {}, {}, "boolean"),
        ([0.0, 100.0], [False, False], {"p": [(5.0, 1.0)]}, {}, "onset ≤ end"),
        ([0.0, 100.0], [False, False], {"p": [(5.0,)]}, {}, "pairs"),
        ([0.0, 100.0], [False, False], {}, {"window_s": 0.0}, "positive"),
        ([0.0, 100.0], [False, False], {}, {"grace_s": -1.0}, "≥ 0"),
    ],
)
def test_bad_inputs_raise_data_error(ends, high, events, kwargs, match):
    args = {"window_s": 100.0, **kwargs}
    ids = np.array(["p"] * len(ends))
    with pytest.raises(DataError, match=match):
        evaluate_alarms(ids, np.array(ends), np.array(high), events, AlarmPolicy(), **args)


def test_window_events_and_policy_choice_within_budget() -> None:
    from vitalsentry.risk.alarms import POLICY_GRID, choose_alarm_policy, window_events

    ends = np.arange(40, dtype=float) * 100.0
    labels = np.zeros(40, int)
    labels[20:28] = 1
    events = window_events(np.zeros(40), ends, labels, window_s=50.0)
    assert events == {0.0: [(1950.0, 2700.0)]}
    high = labels.astype(bool).copy()
    high[[3, 4, 5, 10, 11, 12, 13]] = True  # false-alarm bursts of 3 and 4 windows
    policy, report = choose_alarm_policy(
        np.zeros(40), ends, high, labels, window_s=50.0, max_per_patient_day=10.0
    )
    assert policy == POLICY_GRID[2]  # (5 of 6) is the first that ignores both bursts
    assert report.event_recall == 1.0 and report.false_alarms == 0


def test_alarm_episodes_follow_the_policy() -> None:
    from vitalsentry.risk.alarms import alarm_episodes

    high = [True, True, True, False, False, False, False, True, True, True, True]
    ends = [10.0 * (i + 1) for i in range(len(high))]
    policy = AlarmPolicy(k=3, n=4, clear_after=4)
    assert alarm_episodes(ends, high, policy) == [(30.0, 60.0, 70.0), (100.0, 110.0, None)]
    assert alarm_episodes([], [], policy) == []
