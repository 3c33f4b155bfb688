"""Per-patient streams: append readings, score each newly complete window, advance the alarm.

The windows of a stream are exactly those of :meth:`VitalRiskPipeline.score_frame` on the
patient's whole series (``vitalsentry score``): the grid starts at the patient's first
reading (``origin``, any channel) and window ``k`` covers ``origin + k·stride·step`` to
``+ (length - 1)·step``. Window ``k`` is *decided* once every model channel has a
reading at or after its end: later readings can no longer change its values, except a
reading inside it or between its end and a channel's next reading, which is refused
(:class:`StreamConflictError`). Decided windows are cut from slices of the stored
readings with the functions ``score_frame`` grids and cuts with (:func:`score_slices`),
and scored by ``score_windows``, so streaming and offline scoring share one window-cutting
and scoring path. A slice holds at most ``chunk_windows`` windows, from a whole number of
strides before the first of them (a channel's gap-policy reach plus the earlier windows the
``baseline_shift`` view compares with) to a reach after the last. Decided windows that a
channel's gap masks from their first step are skipped without being gridded, so readings
decades apart cost a few queries, not a grid of the decades. The alarm policy of the
bundle (:class:`~vitalsentry.risk.alarms.AlarmState`) then steps once per scored window
in time order, as :func:`~vitalsentry.risk.alarms.apply_alarm_policy` does offline.

Appends are idempotent on ``(patient, channel, timestamp)``: the same value again is
counted as a duplicate and ignored, a different one is a conflict. Readings may arrive
in any order as long as they do not reopen a decided window.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, TypeVar

import numpy as np
import pandas as pd

from vitalsentry.data.grid import SeriesGrid, grid_series
from vitalsentry.data.prepared import cut_windows, grid_policy
from vitalsentry.data.timefeatures import nanos_to_seconds
from vitalsentry.errors import DataError, VitalSentryError
from vitalsentry.monitor.batching import GroupCommit, Join
from vitalsentry.monitor.db import DatabaseUnavailableError
from vitalsentry.monitor.store import (
    US,
    MonitorStore,
    PatientSummary,
    PatientTransaction,
    WindowScore,
    WriteTransaction,
    patient_summary,
)
from vitalsentry.pipeline import VitalRiskPipeline, WindowScores
from vitalsentry.risk.alarms import AlarmState
from vitalsentry.risk.news2 import News2Summary, news2_summaries

T = TypeVar("T")
ModelRunner = Callable[[Callable[[VitalRiskPipeline], T]], T]
"""Runs a function of the pipeline where the model may run (e.g. the service's model thread)."""

NEWS2_CHANNELS: Final = ("respiratory_rate", "spo2", "systolic_bp", "heart_rate", "temperature")


Loc = tuple[str | int, ...]
"""Where a value sits in a request, e.g. ``("readings", 3, "heart_rate")``."""


class StreamError(VitalSentryError):
    """A reading the stream cannot take.

    Parameters
    ----------
    loc : tuple of str or int
        The reading's location in the request.
    reason : str
        Why, in plain words.
    """

    def __init__(self, loc: Loc, reason: str) -> None:
        self.loc = loc
        self.reason = reason
        super().__init__(f"{'.'.join(map(str, loc))}: {reason}")


class StreamConflictError(StreamError):
    """The reading contradicts the stored stream (answered with 409)."""


class StreamInputError(StreamError):
    """The reading is unusable on its own: too far in the future, or repeated (422)."""


@dataclass(frozen=True)
class Measurement:
    """One value to append: ``channel`` at ``t_us`` (µs since the epoch).

    ``loc`` and ``time_loc`` locate the value and its time in the request (for errors).
    """

    channel: str
    t_us: int
    value: float
    loc: Loc
    time_loc: Loc


@dataclass(frozen=True)
class AppendResult:
    """What an append did and the patient's state after it.

    Attributes
    ----------
    patient : PatientSummary
        Latest score, active alarm episode, newest reading.
    accepted, duplicates : int
        New readings stored; readings already stored with the same value.
    scored : tuple of WindowScore
        Windows this append completed, in time order.
    """

    patient: PatientSummary
    accepted: int
    duplicates: int
    scored: tuple[WindowScore, ...]


@dataclass(frozen=True)
class StreamConfig:
    """Stream settings.

    Attributes
    ----------
    max_future_s : float
        Readings later than the server's clock plus this are refused.
    mc_passes : int
        Monte Carlo dropout passes per scored window (0 = no risk band).
    chunk_windows : int
        Most windows one slice holds (bounds the grid of one slice).
    """

    max_future_s: float = 300.0
    mc_passes: int = 0
    chunk_windows: int = 256


@dataclass(frozen=True)
class _Request:
    """One append: a patient's new readings and NEWS2 context."""

    patient_id: str
    readings: list[Measurement]
    context: Mapping[str, bool]


@dataclass(frozen=True)
class StreamSlice:
    """A patient's stored readings from window ``first_k``, and the windows to score in them.

    Attributes
    ----------
    first_k : int
        Stream window at the slice's first time (the grid of the slice starts there).
    skip, count : int
        Score the slice's windows ``skip`` to ``count - 1`` (counted from ``first_k``).
    own_k : int
        First window the slice decides; earlier ones it scores only for the views.
    t_us : numpy.ndarray
        (n,) µs times, sorted, unique.
    values : numpy.ndarray
        (n, C) values of the model's channels, NaN where not read.
    origin_us : int
        The patient's first reading (``stay`` time features count from it, as offline).
    """

    first_k: int
    skip: int
    count: int
    own_k: int
    t_us: np.ndarray
    values: np.ndarray
    origin_us: int


@dataclass(frozen=True)
class ScoredWindow:
    """Stream window ``k`` and its row ``index`` in the scores of a pipeline call."""

    k: int
    start_s: float
    end_s: float
    scores: WindowScores
    index: int


@dataclass(frozen=True)
class _Opened:
    """An append inside its batch's transaction: readings stored, windows not yet scored."""

    tx: PatientTransaction
    accepted: int
    duplicates: int
    last_k: int
    todo: list[StreamSlice]


def _direct(fn: Callable[[VitalRiskPipeline], T], pipeline: VitalRiskPipeline) -> T:
    return fn(pipeline)


class StreamMonitor:
    """Append readings to patients' streams and score them (see the module docstring).

    Concurrent appends of different patients run in batches
    (:class:`~vitalsentry.monitor.batching.GroupCommit`): one database transaction and
    one pipeline call for all the windows they complete. Each append still succeeds or
    fails alone (a refused one writes nothing); its answer comes once its batch is committed.

    Parameters
    ----------
    store : MonitorStore
        The database.
    pipeline : VitalRiskPipeline
        The served bundle (channels, grid, window, alarm policy, scoring).
    config : StreamConfig
        Limits and MC passes.
    run_model : callable, optional
        ``run_model(fn)`` returns ``fn(pipeline)`` computed where the model may run;
        default: in the calling thread.
    """

    def __init__(
        self,
        store: MonitorStore,
        pipeline: VitalRiskPipeline,
        config: StreamConfig = StreamConfig(),
        run_model: ModelRunner[list[list[ScoredWindow]]] | None = None,
    ) -> None:
        self.store = store
        self.pipeline = pipeline
        self.config = config
        self.run_model = run_model or (lambda fn: _direct(fn, pipeline))
        data, window = pipeline.data_config, pipeline.window_config
        self.step_us = round(data.step_s * US)
        self.stride_us = window.stride * self.step_us
        self.span_us = (window.length - 1) * self.step_us
        limits = np.maximum(np.maximum(data.gap_interpolate_s, data.gap_carry_s), data.step_s)
        self.reach_us = {  # a reading farther than this from a grid step does not change it
            c: round(limit * US) + self.step_us
            for c, limit in zip(data.channels, limits, strict=True)
        }
        lookback = 0 if pipeline.views is None else pipeline.views.settings.lookback
        self.lookback_us = lookback * window.length * self.step_us  # the baseline view's reach
        self.back_strides = math.ceil(
            (max(self.reach_us.values()) + self.lookback_us) / self.stride_us
        )
        self._batches = GroupCommit(
            self._append_batch,
            key=lambda request: request.patient_id,
            shared_errors=(DatabaseUnavailableError,),
        )

    def append(
        self,
        patient_id: str,
        readings: Sequence[Measurement],
        context: Mapping[str, bool] | None = None,
    ) -> AppendResult:
        """Store readings, score the windows they complete and advance the alarm; one commit.

        Parameters
        ----------
        patient_id : str
            Patient.
        readings : sequence of Measurement
            Values (plausible ranges already checked).
        context : mapping, optional
            NEWS2 context that changed: ``on_oxygen``, ``consciousness_alert``.

        Raises
        ------
        StreamConflictError
            A reading differs from the stored one at its key, or would reopen a decided window.
        StreamInputError
            A reading lies too far in the future, or the request repeats a key differently.
        DatabaseUnavailableError
            The database cannot be reached.
        """
        fresh = self._check_request(readings)
        return self._batches.submit(_Request(patient_id, fresh, dict(context or {})))

    def _append_batch(
        self, batch: list[_Request], join: Join[_Request]
    ) -> list[AppendResult | StreamError]:
        """Append a batch (one request per patient): one transaction, one pipeline call.

        Patients are locked in sorted order (no deadlock between workers' batches): until
        the windows are scored, requests queued meanwhile join the batch when their
        patient sorts after every patient it has locked (any patient on a database
        without row locks, whose writer holds the whole database).
        """
        order, part = list(batch), batch
        opened: dict[str, _Opened | StreamError] = {}
        with self.store.transaction() as transaction:
            while part:
                for request in sorted(part, key=lambda r: r.patient_id):
                    opened[request.patient_id] = self._open(transaction, request)
                part = join(
                    functools.partial(_sorts_after, max(opened)) if self.store.row_locks else _any
                )
                order += part
            ready = {p: o for p, o in opened.items() if isinstance(o, _Opened)}
            owner = [p for p, o in ready.items() for _ in o.todo]
            slices = [s for o in ready.values() for s in o.todo]
            passes = self.config.mc_passes
            found = (
                self.run_model(lambda pipe: score_slices(pipe, slices, passes)) if slices else []
            )
            windows: dict[str, list[list[ScoredWindow]]] = {}
            for p, scored in zip(owner, found, strict=True):
                windows.setdefault(p, []).append(scored)
            records = self._records(ready, windows)
            return [
                self._finish(opened[r.patient_id], records.get(r.patient_id, [])) for r in order
            ]

    def _records(
        self, ready: dict[str, _Opened], windows: dict[str, list[list[ScoredWindow]]]
    ) -> dict[str, list[tuple[ScoredWindow, News2Summary | None]]]:
        """Per patient, the windows its append records, in order, each with its NEWS2.

        NEWS2 of the whole batch's windows is one vectorised pass.
        """
        owned = [(p, w) for p, o in ready.items() for w in self._owned(o, windows.get(p, []))]
        news2 = self._news2([(ready[p], w) for p, w in owned])
        records: dict[str, list[tuple[ScoredWindow, News2Summary | None]]] = {}
        for (p, w), summary in zip(owned, news2, strict=True):
            records.setdefault(p, []).append((w, summary))
        return records

    def _open(self, transaction: WriteTransaction, request: _Request) -> _Opened | StreamError:
        """Store a request's new readings and find the windows they decide (or refuse it)."""
        tx = transaction.patient(request.patient_id)
        try:  # refusals come before any write (a new patient has nothing to conflict with)
            new, duplicates = self._classify(tx, request.readings)
        except StreamError as exc:
            transaction.discard(tx)
            return exc
        tx.insert([(m.channel, m.t_us, m.value) for m in new])
        self._note(tx, new, request.context)
        last_k = self._decided(tx) if new else -1
        return _Opened(tx, len(new), duplicates, last_k, self._slices(tx, last_k))

    @staticmethod
    def _owned(opened: _Opened, windows: list[list[ScoredWindow]]) -> list[ScoredWindow]:
        """Return the scored windows (per slice) an append records: those it decides, in order."""
        return [
            w
            for piece, found in zip(opened.todo, windows, strict=True)
            for w in found
            if piece.own_k <= w.k <= min(piece.first_k + piece.count - 1, opened.last_k)
        ]

    @staticmethod
    def _news2(owned: list[tuple[_Opened, ScoredWindow]]) -> list[News2Summary | None]:
        """Return NEWS2 at the end of each window to record, in one pass.

        Each from its patient's latest values of the five parameters at the window's end.
        """
        return news2_summaries(
            [o.tx.values_at(NEWS2_CHANNELS, round(w.end_s * US)) for o, w in owned],
            on_oxygen=[o.tx.state.on_oxygen for o, _ in owned],
            consciousness_alert=[o.tx.state.consciousness_alert for o, _ in owned],
        )

    def _finish(
        self,
        opened: _Opened | StreamError,
        windows: list[tuple[ScoredWindow, News2Summary | None]],
    ) -> AppendResult | StreamError:
        """Record an append's windows (each with its NEWS2) and return its answer."""
        if isinstance(opened, StreamError):
            return opened
        scored = self._advance(opened, windows)
        summary = patient_summary(opened.tx, scored[-1] if scored else None)
        return AppendResult(summary, opened.accepted, opened.duplicates, tuple(scored))

    def _check_request(self, readings: Sequence[Measurement]) -> list[Measurement]:
        """Refuse readings from the future and keys repeated with another value."""
        limit = (time.time() + self.config.max_future_s) * US
        first: dict[tuple[str, int], Measurement] = {}
        for m in readings:
            if m.t_us > limit:
                raise StreamInputError(
                    m.time_loc,
                    f"{_iso(m.t_us)} is more than {self.config.max_future_s:g} s in the future",
                )
            seen = first.setdefault((m.channel, m.t_us), m)
            if seen is not m and seen.value != m.value:
                raise StreamInputError(m.loc, f"a second, different value at {_iso(m.t_us)}")
        return list(first.values())

    def _classify(
        self, tx: PatientTransaction, readings: list[Measurement]
    ) -> tuple[list[Measurement], int]:
        """Split readings into new ones and duplicates; refuse conflicts."""
        state, channels = tx.state, self.pipeline.channels
        # only a reading no later than its channel's newest may be stored already
        maybe = [m.t_us for m in readings if m.t_us <= state.latest.get(m.channel, [-1])[0]]
        stored = tx.stored(min(maybe), max(maybe)) if maybe else {}
        new = []
        for m in readings:
            old = stored.get((m.channel, m.t_us))
            if old is not None:
                if old != m.value:
                    raise StreamConflictError(
                        m.loc, f"{m.value:g} differs from the stored {old:g} at {_iso(m.t_us)}"
                    )
                continue
            if state.next_window and state.origin_us is not None:
                sealed = state.sealed.get(m.channel) if m.channel in channels else None
                if m.t_us < state.origin_us or (sealed is not None and m.t_us <= sealed):
                    raise StreamConflictError(
                        m.loc,
                        f"a new reading at {_iso(m.t_us)} would reopen a window already scored "
                        f"(decided up to {_iso(sealed or state.origin_us)})",
                    )
            new.append(m)
        return new, len(readings) - len(new)

    def _note(
        self, tx: PatientTransaction, new: list[Measurement], context: Mapping[str, bool]
    ) -> None:
        """Update the newest reading per channel, the NEWS2 context and the grid origin."""
        state = tx.state
        latest = dict(state.latest)
        for m in new:
            if m.channel not in latest or latest[m.channel][0] < m.t_us:
                latest[m.channel] = [m.t_us, m.value]
        state.latest = latest
        if "on_oxygen" in context:
            state.on_oxygen = context["on_oxygen"]
        if "consciousness_alert" in context:
            state.consciousness_alert = context["consciousness_alert"]
        if new:
            newest = max(m.t_us for m in new)
            state.last_reading_us = max(state.last_reading_us or newest, newest)
            if not state.next_window:
                state.origin_us = tx.first_time()

    def _decided(self, tx: PatientTransaction) -> int:
        """Return the last window that is now decided, or -1 when no new one is."""
        state, channels = tx.state, self.pipeline.channels
        last = {c: int(state.latest[c][0]) for c in channels if c in state.latest}
        if state.origin_us is None or len(last) < len(channels):
            return -1
        ready_us = min(last.values())
        last_k = int((ready_us - state.origin_us - self.span_us) // self.stride_us)
        return last_k if last_k >= state.next_window else -1

    def _advance(
        self, opened: _Opened, windows: list[tuple[ScoredWindow, News2Summary | None]]
    ) -> list[WindowScore]:
        """Record an append's windows (up to ``last_k``) in time order, step the alarm, seal.

        Each channel is sealed up to its first reading at or after the end of window
        ``last_k`` (read from the last slice when it reaches that far, else queried).
        """
        tx, last_k, pieces = opened.tx, opened.last_k, opened.todo
        state = tx.state
        if last_k < state.next_window:
            return []
        assert state.origin_us is not None
        scored = [self._record(tx, w, news2) for w, news2 in windows]
        end_us = state.origin_us + last_k * self.stride_us + self.span_us
        sealed: dict[str, int | None] = dict.fromkeys(self.pipeline.channels)
        if pieces:
            later = pieces[-1].t_us >= end_us
            for j, c in enumerate(self.pipeline.channels):
                found_at = pieces[-1].t_us[later & ~np.isnan(pieces[-1].values[:, j])]
                sealed[c] = int(found_at.min()) if found_at.size else None
        missing = [c for c, t in sealed.items() if t is None]
        if missing:  # beyond the last slice (or no slice: every window was masked)
            sealed.update(tx.times_near(missing, end_us, before=False))
        state.sealed = {c: end_us if t is None else t for c, t in sealed.items()}
        state.next_window = last_k + 1
        return scored

    def _slices(self, tx: PatientTransaction, last_k: int) -> list[StreamSlice]:
        """Return the slices of the decided windows from ``next_window`` to ``last_k``.

        Masked stretches are skipped; a slice holds at most ``chunk_windows`` windows.
        """
        out: list[StreamSlice] = []
        if last_k < 0:
            return out
        k = tx.state.next_window
        while (k := self._skip_masked(tx, k, last_k)) <= last_k:
            stop = min(last_k, k + self.config.chunk_windows - 1)
            out.append(self._slice(tx, k, stop))
            k = stop + 1
        return out

    def _skip_masked(self, tx: PatientTransaction, k: int, last_k: int) -> int:
        """Return the first decided window from ``k`` on that a channel's gap does not mask.

        A window whose first step lies more than a channel's reach after the channel's
        latest reading is masked, and so is every later one starting before that
        channel's next reading: they are skipped. While the windows left fit in one
        slice (``chunk_windows``), ``k`` is returned as it is (their grid is small).
        """
        assert tx.state.origin_us is not None
        origin, channels = tx.state.origin_us, self.pipeline.channels
        while last_k - k >= self.config.chunk_windows:
            start = origin + k * self.stride_us
            stale = [
                c
                for c, t in tx.times_near(channels, start, before=True).items()
                if t is None or start - t > self.reach_us[c]
            ]
            if not stale:
                return k
            # decided windows end before every channel's newest reading: each has a next one
            resume = max(t or start for t in tx.times_near(stale, start, before=False).values())
            k = max(k + 1, -(-(resume - self.step_us - origin) // self.stride_us))
        return k

    def _slice(self, tx: PatientTransaction, first_k: int, last_k: int) -> StreamSlice:
        """Return the stored readings windows ``first_k`` to ``last_k`` depend on.

        The slice scores windows ``first_k`` to ``last_k`` and, when the bundle has views,
        the earlier ones the baseline view of a window compares it with (those starting at
        most ``lookback`` window lengths before it, in the same call). Only the readings
        that decide their steps are read, at most ``back_strides`` strides before window
        ``first_k`` and a reach after window ``last_k``; the slice's grid starts at the
        first window start at or before them and reaches the end of window ``last_k``.
        """
        assert tx.state.origin_us is not None
        origin, stride = tx.state.origin_us, self.stride_us
        score_k = max(0, first_k - self.lookback_us // stride)
        lo_us = origin + max(0, first_k - self.back_strides) * stride
        end_us = origin + last_k * stride + self.span_us
        hi_us = end_us + max(self.reach_us.values())
        decide = (origin + score_k * stride, end_us)
        t_us, values = tx.series(lo_us, hi_us, self.pipeline.channels, decide)
        grid_k = min(score_k, (int(t_us[0]) - origin) // stride) if t_us.size else score_k
        t_us, values = _bounded(t_us, values, origin + grid_k * stride, end_us)
        skip = score_k - grid_k
        return StreamSlice(grid_k, skip, last_k - grid_k + 1, first_k, t_us, values, origin)

    def _record(
        self, tx: PatientTransaction, window: ScoredWindow, news2: News2Summary | None
    ) -> WindowScore:
        """Store one scored window with its NEWS2, step the alarm and point the state at it."""
        state, channels, scores, i = tx.state, self.pipeline.channels, window.scores, window.index
        before = AlarmState(
            state.alarm_on, state.alarm_quiet, tuple(c == "1" for c in state.alarm_recent)
        )
        after = before.step(scores.level[i] == "high", self.pipeline.alarm_policy)
        contributions = {c: float(scores.contributions[i, j]) for j, c in enumerate(channels)}
        score = WindowScore(
            start_s=window.start_s,
            end_s=window.end_s,
            risk=float(scores.risk[i]),
            level=str(scores.level[i]),
            anomaly_score=float(scores.anomaly_score[i]),
            top_vital=max(contributions, key=contributions.__getitem__),
            contributions=contributions,
            news2=None if news2 is None else news2.score,
            news2_level=None if news2 is None else news2.level,
            risk_mean=None if scores.risk_mean is None else float(scores.risk_mean[i]),
            risk_std=None if scores.risk_std is None else float(scores.risk_std[i]),
            alarm_on=after.on,
            model_version=self.pipeline.model_version,
        )
        state.score_id = tx.add_score(score)
        self._alarm(tx, before.on, after, score)
        return score

    @staticmethod
    def _alarm(tx: PatientTransaction, was_on: bool, after: AlarmState, score: WindowScore) -> None:
        """Open, extend or clear the alarm episode as the policy says."""
        state, episode = tx.state, tx.episode
        if after.on and not was_on:
            state.alarm_id = tx.open_alarm(score.end_s, score.risk).id
        elif was_on and episode is not None and episode.id == state.alarm_id:
            if after.on:
                tx.change_alarm(last_on_s=score.end_s, peak_risk=max(episode.peak_risk, score.risk))
            else:
                tx.change_alarm(cleared_s=score.end_s)
                state.alarm_id = None
        state.alarm_on, state.alarm_quiet = after.on, after.quiet
        state.alarm_recent = "".join("1" if r else "0" for r in after.recent)


def _sorts_after(patient_id: str, request: _Request) -> bool:
    return request.patient_id > patient_id


def _any(request: _Request) -> bool:
    return True


def score_slices(
    pipe: VitalRiskPipeline, slices: Sequence[StreamSlice], mc_passes: int
) -> list[list[ScoredWindow]]:
    """Score the windows each slice asks for, in one pipeline call.

    Each slice is gridded and cut as :meth:`VitalRiskPipeline.score_frame` grids and cuts
    a readings frame (:func:`~vitalsentry.data.grid.grid_series`, :func:`cut_windows`);
    every slice is its own key, so the baseline view compares windows of one patient
    only. With MC dropout each slice is scored alone (its dropout masks do not depend on
    other patients).

    Returns
    -------
    list of lists of ScoredWindow
        Per slice, its scored windows in time order (none where gaps leave no window).
    """
    if mc_passes and len(slices) > 1:
        return [found for one in slices for found in score_slices(pipe, [one], mc_passes)]
    data, window = pipe.data_config, pipe.window_config
    grids = [g for i, s in enumerate(slices) if (g := _grid(s, str(i), pipe)) is not None]
    out: list[list[ScoredWindow]] = [[] for _ in slices]
    if not grids:
        return out
    starts = {grid.key: grid.start_s for grid in grids}
    cut = cut_windows(grids, data, window)
    owner = cut.patient.astype(int)
    first = np.array([starts[key] for key in cut.patient])
    index = np.rint((cut.start_s - first) / (window.stride * data.step_s)).astype(int)
    keep = np.array(
        [slices[o].skip <= i < slices[o].count for o, i in zip(owner, index, strict=True)],
        dtype=bool,
    )
    if not keep.any():
        return out
    start_s = cut.start_s[keep]
    scores = pipe.score_windows(
        cut.windows[keep], mc_passes=mc_passes, where=(cut.patient[keep], start_s)
    )
    span_s = (window.length - 1) * data.step_s
    begin = _ns_seconds(start_s)
    end = _ns_seconds(start_s + span_s)
    for row, (o, i) in enumerate(zip(owner[keep], index[keep], strict=True)):
        out[o].append(ScoredWindow(slices[o].first_k + i, begin[row], end[row], scores, row))
    return out


def _bounded(
    t_us: np.ndarray, values: np.ndarray, lo_us: int, hi_us: int
) -> tuple[np.ndarray, np.ndarray]:
    """Add all-missing rows at ``lo_us`` and ``hi_us``: a grid of them starts at ``lo_us``.

    Returns the times (sorted, unique) and the values, one row per time (the grid reaches
    ``hi_us`` or the last reading, whichever is later).
    """
    times, row_of = np.unique(np.concatenate([t_us, [lo_us, hi_us]]), return_inverse=True)
    out = np.full((len(times), values.shape[1]), np.nan)
    out[row_of[:-2]] = values
    return times, out


def _grid(piece: StreamSlice, key: str, pipe: VitalRiskPipeline) -> SeriesGrid | None:
    """Grid a slice as ``score_frame`` grids a frame's patient (None: nothing to grid).

    The grid's origin is the patient's first reading, not the slice's first one, so
    ``stay`` time features count from the same instant as offline.
    """
    try:
        grid = grid_series(
            nanos_to_seconds(piece.t_us * 1000),  # epoch_seconds of the readings' timestamps
            piece.values.T,
            None,
            step_s=pipe.data_config.step_s,
            key=key,
            **grid_policy(pipe.data_config),
        )
    except DataError:
        return None
    origin_s = float(nanos_to_seconds(np.array([piece.origin_us * 1000]))[0])
    return dataclasses.replace(grid, origin_s=origin_s)


def _ns_seconds(epoch_s: np.ndarray) -> list[float]:
    """Epoch seconds as ``score_frame``'s timestamps give them (rounded to the nanosecond).

    The nanoseconds of ``pandas.to_datetime(epoch_s, unit="s")``, computed as pandas
    computes them (whole seconds and the fraction rounded to 9 digits, each truncated
    towards zero) without building timestamps (a tenth of the time).
    """
    whole = epoch_s.astype(np.int64)
    fraction = np.round(epoch_s - whole, 9)
    ns = whole * 1_000_000_000 + (fraction * 1e9).astype(np.int64)
    return (ns.astype(np.float64) / 1e9).tolist()  # type: ignore[no-any-return]


def _iso(t_us: int) -> str:
    return pd.Timestamp(t_us, unit="us", tz="UTC").isoformat()
