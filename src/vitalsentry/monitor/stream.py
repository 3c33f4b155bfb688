"""Per-patient streams: append readings, score each newly complete window, advance the alarm.

The windows of a stream are exactly those of :meth:`VitalRiskPipeline.score_frame` on the
patient's whole series (``vitalsentry score``): the grid starts at the patient's first
reading (``origin``, any channel) and window ``k`` covers ``origin + k·stride·step`` to
``+ (length - 1)·step``. Window ``k`` is *decided* once every model channel has a
reading at or after its end: later readings can no longer change its values, except a
reading inside it or between its end and a channel's next reading, which is refused
(:class:`StreamConflictError`). Decided windows are cut and scored by ``score_frame``
itself, so streaming and offline scoring share one window-cutting and scoring path, on
slices of the stored readings: at most ``chunk_windows`` windows each, from a whole
number of strides before the first of them (a channel's gap-policy reach plus the
earlier windows the ``baseline_shift`` view compares with) to a reach after the last.
Decided windows that a channel's gap masks from their first step are skipped without
being gridded, so readings decades apart cost a few queries, not a grid of the decades.
The alarm policy of the bundle (:class:`~vitalsentry.risk.alarms.AlarmState`) then steps
once per scored window in time order, as
:func:`~vitalsentry.risk.alarms.apply_alarm_policy` does offline.

Appends are idempotent on ``(patient, channel, timestamp)``: the same value again is
counted as a duplicate and ignored, a different one is a conflict. Readings may arrive
in any order as long as they do not reopen a decided window.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import numpy as np
import pandas as pd

from vitalsentry.errors import DataError, VitalSentryError
from vitalsentry.monitor.store import (
    US,
    MonitorStore,
    PatientSummary,
    PatientTransaction,
    WindowScore,
    patient_summary,
)
from vitalsentry.pipeline import VitalRiskPipeline
from vitalsentry.risk.alarms import AlarmState
from vitalsentry.risk.news2 import news2_summary

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
        Most windows one ``score_frame`` call cuts (bounds the grid of one slice).
    """

    max_future_s: float = 300.0
    mc_passes: int = 0
    chunk_windows: int = 256


def _direct(fn: Callable[[VitalRiskPipeline], T], pipeline: VitalRiskPipeline) -> T:
    return fn(pipeline)


class StreamMonitor:
    """Append readings to patients' streams and score them (see the module docstring).

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
        run_model: ModelRunner[pd.DataFrame] | None = None,
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
        back_us = max(self.reach_us.values()) + lookback * window.length * self.step_us
        self.back_strides = math.ceil(back_us / self.stride_us)

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
        with self.store.patient_transaction(patient_id) as tx:
            new, duplicates = self._classify(tx, fresh)
            tx.insert([(m.channel, m.t_us, m.value) for m in new])
            self._note(tx, new, context or {})
            scored = self._advance(tx) if new else []
            summary = patient_summary(tx)
        return AppendResult(summary, len(new), duplicates, tuple(scored))

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
        if not readings:
            return [], 0
        stored = tx.stored(min(m.t_us for m in readings), max(m.t_us for m in readings))
        state, channels = tx.state, self.pipeline.channels
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

    def _advance(self, tx: PatientTransaction) -> list[WindowScore]:
        """Score every window that is now decided, in time order, and step the alarm."""
        state, channels = tx.state, self.pipeline.channels
        last = {c: int(state.latest[c][0]) for c in channels if c in state.latest}
        if state.origin_us is None or len(last) < len(channels):
            return []
        ready_us = min(last.values())
        last_k = (ready_us - state.origin_us - self.span_us) // self.stride_us
        scored: list[WindowScore] = []
        k = state.next_window
        while (k := self._skip_masked(tx, k, last_k)) <= last_k:
            stop = min(last_k, k + self.config.chunk_windows - 1)
            table = self._score_slice(tx, k, stop)
            for row in table.to_dict("records"):
                if k <= round((row["start_s"] * US - state.origin_us) / self.stride_us) <= stop:
                    scored.append(self._record(tx, row))
            k = stop + 1
        if last_k >= state.next_window:
            end_us = state.origin_us + last_k * self.stride_us + self.span_us
            state.sealed = {c: t or end_us for c, t in tx.next_times(channels, end_us).items()}
            state.next_window = int(last_k) + 1
        return scored

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
                for c, t in tx.last_times(channels, start).items()
                if t is None or start - t > self.reach_us[c]
            ]
            if not stale:
                return k
            # decided windows end before every channel's newest reading: each has a next one
            resume = max(t or start for t in tx.next_times(stale, start).values())
            k = max(k + 1, -(-(resume - self.step_us - origin) // self.stride_us))
        return k

    def _score_slice(self, tx: PatientTransaction, first_k: int, last_k: int) -> pd.DataFrame:
        """Score the stored readings that windows ``first_k`` to ``last_k`` depend on.

        The slice starts ``back_strides`` strides before window ``first_k`` and ends a
        reach after window ``last_k``; the windows it cuts beyond those are not theirs.
        """
        assert tx.state.origin_us is not None
        origin = tx.state.origin_us
        lo_us = origin + max(0, first_k - self.back_strides) * self.stride_us
        hi_us = origin + last_k * self.stride_us + self.span_us + max(self.reach_us.values())
        frame = tx.frame(lo_us, hi_us, self.pipeline.channels)
        try:
            table = self.run_model(
                lambda pipe: pipe.score_frame(frame, mc_passes=self.config.mc_passes)
            )
        except DataError:  # no complete window in the slice (gaps): nothing to score
            return pd.DataFrame(columns=["start_s"])
        table["start_s"] = table["window_start"].array.as_unit("ns").asi8 / 1e9
        table["end_s"] = table["window_end"].array.as_unit("ns").asi8 / 1e9
        return table

    def _record(self, tx: PatientTransaction, row: Mapping[Hashable, Any]) -> WindowScore:
        """Store one scored window, step the alarm and point the state at it."""
        state, channels = tx.state, self.pipeline.channels
        before = AlarmState(
            state.alarm_on, state.alarm_quiet, tuple(c == "1" for c in state.alarm_recent)
        )
        after = before.step(row["level"] == "high", self.pipeline.alarm_policy)
        contributions = {c: float(row[f"contribution_{c}"]) for c in channels}
        end_us = round(row["end_s"] * US)
        news2 = news2_summary(
            tx.values_at(NEWS2_CHANNELS, end_us),
            on_oxygen=state.on_oxygen,
            consciousness_alert=state.consciousness_alert,
        )
        score = WindowScore(
            start_s=float(row["start_s"]),
            end_s=float(row["end_s"]),
            risk=float(row["risk"]),
            level=str(row["level"]),
            anomaly_score=float(row["anomaly_score"]),
            top_vital=max(contributions, key=contributions.__getitem__),
            contributions=contributions,
            news2=None if news2 is None else news2.score,
            news2_level=None if news2 is None else news2.level,
            risk_mean=_optional(row.get("risk_mean")),
            risk_std=_optional(row.get("risk_std")),
            alarm_on=after.on,
            model_version=self.pipeline.model_version,
        )
        state.score_id = tx.add_score(score).id
        self._alarm(tx, before.on, after, score)
        return score

    @staticmethod
    def _alarm(tx: PatientTransaction, was_on: bool, after: AlarmState, score: WindowScore) -> None:
        """Open, extend or clear the alarm episode as the policy says."""
        state = tx.state
        if after.on and not was_on:
            state.alarm_id = tx.open_alarm(score.end_s, score.risk).id
        elif was_on and state.alarm_id is not None:
            episode = tx.alarm(state.alarm_id)
            if after.on:
                episode.last_on_s = score.end_s
                episode.peak_risk = max(episode.peak_risk, score.risk)
            else:
                episode.cleared_s = score.end_s
                state.alarm_id = None
        state.alarm_on, state.alarm_quiet = after.on, after.quiet
        state.alarm_recent = "".join("1" if r else "0" for r in after.recent)


def _optional(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _iso(t_us: int) -> str:
    return pd.Timestamp(t_us, unit="us", tz="UTC").isoformat()
