"""Per-patient alarm policy with hysteresis, and its evaluation against labelled events.

Policy (rule): over one patient's windows in time order, an alarm is raised at the
window where at least ``k`` of the last ``n`` windows are "high", stays on while windows
keep coming, and clears at the ``clear_after``-th consecutive non-high window. After a
clear the k-of-n count restarts: windows before the clear do not count again, so an
alarm cannot re-raise on the same evidence.

Evaluation (rules, :func:`evaluate_alarms`): times are window ends in epoch seconds; an
alarm episode runs from its onset window to the last window with the alarm on. An event
``(onset_s, end_s)`` is *detected* when the alarm is on at some window ending within
``[onset_s, end_s + grace_s]``; its delay is the time from the event onset to the onset
of that alarm episode, clipped at 0 when the alarm was already on (an early warning). An
episode on during no event window is a *false alarm*; an episode raised before an event
and still on during it counts as a true, early alarm. Events of patients without windows,
or lying entirely outside the patient's monitored span, cannot be detected; they are
counted apart (``events_skipped``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from vitalsentry.errors import DataError, VitalSentryError

SECONDS_PER_DAY = 86_400.0

BoolArray = NDArray[np.bool_]
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class AlarmPolicy:
    """Raise after ``k`` of ``n`` high windows, clear after ``clear_after`` non-high ones.

    Attributes
    ----------
    k : int, default 3
        High windows needed among the last ``n``; ``1 ≤ k ≤ n``.
    n : int, default 4
        Length of the look-back, in windows.
    clear_after : int, default 4
        Consecutive non-high windows that clear a raised alarm; ≥ 1.

    """

    k: int = 3
    n: int = 4
    clear_after: int = 4

    def __post_init__(self) -> None:
        if not 1 <= self.k <= self.n:
            raise VitalSentryError(f"alarm policy: need 1 ≤ k ≤ n, got k={self.k}, n={self.n}")
        if self.clear_after < 1:
            raise VitalSentryError(f"alarm policy: clear_after must be ≥ 1, got {self.clear_after}")


def _flags(name: str, values: ArrayLike) -> BoolArray:
    """Return a 1-D boolean array, or raise :class:`DataError`."""
    arr = np.asarray(values)
    if arr.ndim != 1 or (arr.dtype != np.bool_ and arr.size > 0):
        raise DataError(f"expected a 1-D boolean array, got {arr.dtype} {arr.shape}", column=name)
    return arr.astype(np.bool_)


@dataclass(frozen=True)
class AlarmState:
    """Where one patient's alarm stands after some windows (the policy's whole memory).

    Attributes
    ----------
    on : bool
        Whether the alarm is raised.
    quiet : int
        Consecutive non-high windows since the alarm was raised (0 while off).
    recent : tuple of bool
        While off: the last (at most ``n``) windows' "high" flags since the last clear.
    """

    on: bool = False
    quiet: int = 0
    recent: tuple[bool, ...] = ()

    def step(self, is_high: bool, policy: AlarmPolicy) -> AlarmState:
        """Return the state after one more window (the rule of the module docstring)."""
        if self.on:
            quiet = 0 if is_high else self.quiet + 1
            return AlarmState() if quiet >= policy.clear_after else AlarmState(True, quiet)
        recent = (*self.recent, is_high)[-policy.n :]
        return AlarmState(True) if sum(recent) >= policy.k else AlarmState(False, 0, recent)


def apply_alarm_policy(high: ArrayLike, policy: AlarmPolicy) -> BoolArray:
    """Alarm state of one patient's windows, in time order.

    Parameters
    ----------
    high : array_like of bool, shape (n_windows,)
        Whether each window is at level "high".
    policy : AlarmPolicy
        The hysteresis rule.

    Returns
    -------
    ndarray of bool, shape (n_windows,)
        True where the alarm is on after that window.

    """
    flags = _flags("high", high)
    state = np.zeros(flags.shape, dtype=np.bool_)
    current = AlarmState()
    for t, is_high in enumerate(flags.tolist()):
        current = current.step(is_high, policy)
        state[t] = current.on
    return state


def alarm_onsets(state: ArrayLike) -> NDArray[np.intp]:
    """Return the indices of the windows where the alarm turns on.

    Parameters
    ----------
    state : array_like of bool, shape (n_windows,)
        Output of :func:`apply_alarm_policy`.

    Returns
    -------
    ndarray of int, shape (n_onsets,)
        Window indices, ascending.

    """
    on = _flags("state", state)
    before = np.concatenate(([False], on[:-1]))
    return np.flatnonzero(on & ~before)


def alarm_episodes(
    window_end_s: ArrayLike, high: ArrayLike, policy: AlarmPolicy
) -> list[tuple[float, float, float | None]]:
    """Alarm episodes of one patient's windows, as the monitoring stream records them.

    Parameters
    ----------
    window_end_s : array_like of float, shape (n_windows,)
        Window ends in time order, epoch seconds.
    high : array_like of bool, shape (n_windows,)
        Whether each window is at level "high".
    policy : AlarmPolicy
        The hysteresis rule.

    Returns
    -------
    list of (float, float, float or None)
        Per episode: end of the window that raised it, end of its last window with the
        alarm on, and end of the window that cleared it (None if still on).
    """
    state = apply_alarm_policy(high, policy)
    ends = np.asarray(window_end_s, dtype=np.float64)
    offs = np.flatnonzero(np.concatenate([state[:-1] & ~state[1:], [False]])) + 1
    out: list[tuple[float, float, float | None]] = []
    for onset in alarm_onsets(state).tolist():
        cleared = offs[offs > onset]
        last = int(cleared[0]) - 1 if cleared.size else len(state) - 1
        out.append(
            (float(ends[onset]), float(ends[last]), float(ends[last + 1]) if cleared.size else None)
        )
    return out


@dataclass(frozen=True)
class AlarmReport:
    """Alarm burden and event detection over a set of patients.

    A metric that cannot be computed is None, with the reason in ``reasons`` (keyed by
    field name); it is never replaced by 0 or NaN.

    Attributes
    ----------
    patients : int
        Patients with at least one window.
    patient_days : float
        Monitored time: per patient, last window end minus first window start, in days.
    alarms : int
        Alarm onsets.
    alarms_per_patient_day : float or None
        ``alarms / patient_days``.
    false_alarms : int
        Alarm episodes on during no event (plus grace).
    events : int
        Events that overlap a monitored span.
    events_skipped : int
        Events of unmonitored patients or outside the monitored span.
    detected_events : int
        Events with the alarm on during ``[onset, end + grace]``.
    event_recall : float or None
        ``detected_events / events``.
    median_delay_s : float or None
        Median delay (seconds) over detected events.
    reasons : dict of str to str
        Why each None field could not be computed.

    """

    patients: int
    patient_days: float
    alarms: int
    alarms_per_patient_day: float | None
    false_alarms: int
    events: int
    events_skipped: int
    detected_events: int
    event_recall: float | None
    median_delay_s: float | None
    reasons: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready builtins."""
        return dataclasses.asdict(self)


@dataclass
class _Tally:
    """Counts accumulated over patients."""

    alarms: int = 0
    false_alarms: int = 0
    events: int = 0
    events_skipped: int = 0
    delays: list[float] = dataclasses.field(default_factory=list)


def _check_events(patient: Hashable, intervals: Sequence[tuple[float, float]]) -> FloatArray:
    """Return events as a finite (n_events, 2) array with onset ≤ end."""
    problem = f"patient {patient}: events must be finite (onset_s, end_s) pairs with onset ≤ end"
    try:
        arr = np.asarray(list(intervals), dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(problem, column="event_intervals") from exc
    if arr.size == 0:
        return np.empty((0, 2))
    if (
        arr.ndim != 2
        or arr.shape[1] != 2
        or not np.isfinite(arr).all()
        or (arr[:, 0] > arr[:, 1]).any()
    ):
        raise DataError(problem, column="event_intervals")
    return arr


def _evaluate_patient(
    ends: FloatArray,
    high: BoolArray,
    events: FloatArray,
    policy: AlarmPolicy,
    *,
    window_s: float,
    grace_s: float,
    tally: _Tally,
) -> None:
    """Add one patient's alarms and events (windows sorted by end time) to ``tally``."""
    state = apply_alarm_policy(high, policy)
    onsets = alarm_onsets(state)
    starts = np.zeros(state.shape, dtype=np.bool_)
    starts[onsets] = True
    episode = np.cumsum(starts) - 1  # index of the latest episode, for every window
    true_episodes: set[int] = set()
    for onset_s, end_s in events.tolist():
        if end_s + grace_s < ends[0] - window_s or onset_s > ends[-1]:
            tally.events_skipped += 1
            continue
        tally.events += 1
        during = (ends >= onset_s) & (ends <= end_s + grace_s)
        alarmed = np.flatnonzero(during & state)
        true_episodes.update(episode[alarmed].tolist())
        if alarmed.size:
            raised_s = ends[onsets[episode[alarmed[0]]]]
            tally.delays.append(max(0.0, float(raised_s - onset_s)))
    tally.alarms += len(onsets)
    tally.false_alarms += len(onsets) - len(true_episodes)


def evaluate_alarms(
    patient_ids: ArrayLike,
    window_end_s: ArrayLike,
    high: ArrayLike,
    event_intervals: Mapping[Any, Sequence[tuple[float, float]]],
    policy: AlarmPolicy,
    *,
    window_s: float,
    grace_s: float = 0.0,
) -> AlarmReport:
    """Apply the alarm policy per patient and score it against labelled events.

    Parameters
    ----------
    patient_ids : array_like, shape (n_windows,)
        Patient of each window.
    window_end_s : array_like of float, shape (n_windows,)
        End time of each window, epoch seconds (any order; sorted per patient).
    high : array_like of bool, shape (n_windows,)
        Whether each window is at level "high".
    event_intervals : mapping of patient id to list of (onset_s, end_s)
        Labelled events in epoch seconds; patients without events may be absent.
    policy : AlarmPolicy
        The hysteresis rule.
    window_s : float
        Window duration in seconds (> 0); a window covers ``(end - window_s, end]``.
    grace_s : float, default 0
        Time after an event's end during which an alarm still counts for it (≥ 0).

    Returns
    -------
    AlarmReport
        Counts and rates; rules in the module docstring.

    Raises
    ------
    DataError
        Lengths differ, times are not finite, a patient has two windows ending at the
        same time, ``high`` is not boolean, events are malformed, or ``window_s`` /
        ``grace_s`` are out of range.

    """
    ids = np.asarray(patient_ids)
    ends = np.asarray(window_end_s, dtype=np.float64)
    flags = _flags("high", high)
    if not (ids.ndim == ends.ndim == 1 and len(ids) == len(ends) == len(flags)):
        raise DataError(
            f"patient_ids, window_end_s and high must be 1-D of one length, got "
            f"{ids.shape}, {ends.shape}, {flags.shape}"
        )
    if not np.isfinite(ends).all():
        raise DataError("NaN or infinite window end", column="window_end_s")
    if not (np.isfinite(window_s) and window_s > 0):
        raise DataError(f"must be a positive duration, got {window_s!r}", column="window_s")
    if not (np.isfinite(grace_s) and grace_s >= 0):
        raise DataError(f"must be a duration ≥ 0, got {grace_s!r}", column="grace_s")
    tally = _Tally()
    monitored_s = 0.0
    patients = np.unique(ids).tolist()
    for patient in patients:
        rows = np.flatnonzero(ids == patient)
        order = rows[np.argsort(ends[rows], kind="stable")]
        patient_ends = ends[order]
        if (np.diff(patient_ends) == 0).any():
            raise DataError(f"patient {patient}: two windows end at the same time")
        monitored_s += float(patient_ends[-1] - patient_ends[0] + window_s)
        events = _check_events(patient, event_intervals.get(patient, ()))
        _evaluate_patient(
            patient_ends,
            flags[order],
            events,
            policy,
            window_s=window_s,
            grace_s=grace_s,
            tally=tally,
        )
    monitored = set(patients)
    tally.events_skipped += sum(len(v) for k, v in event_intervals.items() if k not in monitored)
    return _report(len(patients), monitored_s / SECONDS_PER_DAY, tally)


def _report(patients: int, patient_days: float, tally: _Tally) -> AlarmReport:
    """Turn the tally into rates, with a reason for each rate that cannot be computed."""
    reasons: dict[str, str] = {}
    per_day = None
    if patient_days > 0:
        per_day = tally.alarms / patient_days
    else:
        reasons["alarms_per_patient_day"] = "no monitored time (no windows)"
    recall = None
    if tally.events:
        recall = len(tally.delays) / tally.events
    else:
        reasons["event_recall"] = "no events in the monitored time"
    delay = None
    if tally.delays:
        delay = float(np.median(tally.delays))
    else:
        reasons["median_delay_s"] = (
            "no event was detected" if tally.events else "no events in the monitored time"
        )
    return AlarmReport(
        patients=patients,
        patient_days=patient_days,
        alarms=tally.alarms,
        alarms_per_patient_day=per_day,
        false_alarms=tally.false_alarms,
        events=tally.events,
        events_skipped=tally.events_skipped,
        detected_events=len(tally.delays),
        event_recall=recall,
        median_delay_s=delay,
        reasons=reasons,
    )


POLICY_GRID: tuple[AlarmPolicy, ...] = tuple(
    AlarmPolicy(k=k, n=n, clear_after=4)
    for k, n in ((3, 4), (4, 5), (5, 6), (6, 8), (8, 10), (10, 12))
)
"""Candidate policies, from the most sensitive to the most conservative."""


def window_events(
    patient_ids: ArrayLike, window_end_s: ArrayLike, labels: ArrayLike, *, window_s: float
) -> dict[Any, list[tuple[float, float]]]:
    """Events as runs of consecutive abnormal windows per patient, in epoch seconds.

    A run's event spans from the start of its first window to the end of its last.
    """
    patients = np.asarray(patient_ids)
    ends = np.asarray(window_end_s, dtype=np.float64)
    abnormal = np.asarray(labels) == 1
    events: dict[Any, list[tuple[float, float]]] = {}
    for patient in np.unique(patients[abnormal]):
        sel = patients == patient
        order = np.argsort(ends[sel])
        flags, t = abnormal[sel][order], ends[sel][order]
        edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
        starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
        events[patient] = [
            (float(t[a] - window_s), float(t[b])) for a, b in zip(starts, stops, strict=True)
        ]
    return events


def choose_alarm_policy(
    patient_ids: ArrayLike,
    window_end_s: ArrayLike,
    high: ArrayLike,
    labels: ArrayLike,
    *,
    window_s: float,
    max_per_patient_day: float = 1.0,
) -> tuple[AlarmPolicy, AlarmReport]:
    """Return the most sensitive policy of :data:`POLICY_GRID` within a false-alarm budget.

    Meant for validation patients (never the test split): each candidate is applied to
    their windows and the first whose false alarms (alarms outside every labelled event)
    per patient-day stay within ``max_per_patient_day`` is chosen; if none does, the most
    conservative one. True alarms are not limited: a patient with four events a day
    should raise four alarms.

    Returns
    -------
    (AlarmPolicy, AlarmReport)
        The policy and its report on the given windows.
    """
    events = window_events(patient_ids, window_end_s, labels, window_s=window_s)
    report = None
    for policy in POLICY_GRID:
        report = evaluate_alarms(patient_ids, window_end_s, high, events, policy, window_s=window_s)
        if (
            report.patient_days > 0
            and report.false_alarms / report.patient_days <= max_per_patient_day
        ):
            return policy, report
    assert report is not None
    return POLICY_GRID[-1], report
