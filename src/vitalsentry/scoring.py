"""The one scoring path: readings → windows → scores, fused risk and alarm state.

Every caller — ``vitalsentry score``, the archive, the HTTP service (single, batch and
FHIR, through the model thread's request combiner), monitoring and the evaluation —
scores through :func:`score_readings`. Callers differ only in where their readings come
from (a :class:`WindowSource`): a readings frame (:class:`FrameSource`), a request's
patients (``serve/inputs.RequestSource``) or a prepared split (the evaluation). Every
source cuts its windows with :func:`vitalsentry.data.prepared.cut_windows`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Protocol

import numpy as np
import pandas as pd

from vitalsentry.config import DataConfig, WindowConfig
from vitalsentry.data.gaps import describe_limits
from vitalsentry.data.prepared import WindowSet, latest_reader, stream_feeds, window_frame
from vitalsentry.data.readings import Readings
from vitalsentry.data.schema import LABEL_COLUMN, PATIENT_COLUMN
from vitalsentry.errors import DataError
from vitalsentry.risk.alarms import AlarmPolicy, AlarmState

if TYPE_CHECKING:
    from vitalsentry.pipeline import VitalRiskPipeline, WindowScores

STREAM_KEY: Final = "stream"
"""Key of the one feed of a readings frame scored in stream mode."""


NO_RESPIRATORY_WINDOW: Final = "no complete window of the fusion head's channels at this window"


class NoWindowError(DataError):
    """The readings hold no complete window of the bundle's channels."""


def no_window_message(pipe: VitalRiskPipeline) -> str:
    """Say what a complete window needs (channels, span, gap policy)."""
    data = pipe.data_config
    span = pipe.window_config.length * data.step_s
    return (
        f"no complete window: the model needs {span:g} s of {', '.join(pipe.channels)} "
        f"without gaps beyond the gap policy "
        f"({describe_limits(pipe.channels, data.gap_interpolate_s, data.gap_carry_s)})"
    )


@dataclass(frozen=True)
class Cut:
    """Windows cut for one data config, and whose static context each one carries.

    Attributes
    ----------
    windows : WindowSet
        The windows (key, start, labels).
    context : numpy.ndarray
        (N,) key of each window's static context (in stream mode: the patient of the
        latest reading; otherwise the window's own key).
    """

    windows: WindowSet
    context: np.ndarray

    def __len__(self) -> int:
        return int(self.windows.labels.size)


class WindowSource(Protocol):
    """Readings that can be cut into the windows of any data config (cardio or respiratory).

    Attributes
    ----------
    static : pandas.DataFrame
        Static context (age, sex, BMI) indexed by the key in :attr:`Cut.context`.
    """

    @property
    def static(self) -> pd.DataFrame:
        """Static context indexed by context key (empty: unknown)."""

    def missing(self, channels: Sequence[str]) -> list[str]:
        """Channels of ``channels`` the readings never measure."""

    def cut(self, data: DataConfig, window: WindowConfig, *, latest_only: bool) -> Cut:
        """Grid the readings with ``data`` and cut their complete windows."""


@dataclass(frozen=True)
class FrameSource:
    """A readings frame, per patient or (stream mode) as one feed in time order.

    Attributes
    ----------
    frame : pandas.DataFrame
        Readings frame sorted by patient then time.
    stream : bool
        Stream mode: the whole frame is one feed (DESIGN.md §4).
    static : pandas.DataFrame
        Per-patient static context indexed by patient id (empty: unknown).
    """

    frame: pd.DataFrame
    stream: bool = False
    static: pd.DataFrame = field(default_factory=pd.DataFrame)

    def missing(self, channels: Sequence[str]) -> list[str]:
        """Channels of ``channels`` that are not columns of the frame."""
        return [c for c in channels if c not in self.frame.columns]

    def cut(self, data: DataConfig, window: WindowConfig, *, latest_only: bool) -> Cut:
        """Windows of the frame (see :func:`~vitalsentry.data.prepared.window_frame`)."""
        frame, max_gap = self.frame, None
        if self.stream:
            feed_of = dict.fromkeys(frame[PATIENT_COLUMN].unique(), STREAM_KEY)
            frame, max_gap = stream_feeds(frame, feed_of, data.channels, data.step_s)
        cut, _ = window_frame(frame, data, window, max_gap_s=max_gap, latest_only=latest_only)
        context = (
            latest_reader(frame, cut.patient, cut.start_s, window, data)
            if self.stream
            else cut.patient
        )
        return Cut(cut, context)


@dataclass(frozen=True)
class ScoreTable:
    """Scored windows of one :func:`score_readings` call.

    Attributes
    ----------
    cut : Cut
        The windows scored (key, start, labels, static-context key).
    end_s : numpy.ndarray
        (N,) epoch seconds of each window's last step.
    scores : WindowScores
        Risk, level, anomaly score, contributions, views, optional uncertainty.
    fused_risk : numpy.ndarray or None
        (N,) probability of the bundle's fusion head (NaN where no respiratory window
        starts with the cardio one); None when it could not be computed at all.
    fused_note : str or None
        Why ``fused_risk`` is absent or partial; None when every window has one.
    alarm : tuple of AlarmState or None
        Each window's alarm state after it, when the caller gave the alarm history.
    """

    cut: Cut
    end_s: np.ndarray
    scores: WindowScores
    fused_risk: np.ndarray | None = None
    fused_note: str | None = None
    alarm: tuple[AlarmState, ...] | None = None

    def __len__(self) -> int:
        return len(self.cut)

    @property
    def patient(self) -> np.ndarray:
        """(N,) key of each window."""
        return self.cut.windows.patient

    @property
    def start_s(self) -> np.ndarray:
        """(N,) epoch seconds of each window's first step."""
        return self.cut.windows.start_s

    def fused_at(self, i: int) -> tuple[float | None, str | None]:
        """Window ``i``'s fused risk, or None and why."""
        if self.fused_risk is None:
            return None, self.fused_note
        value = float(self.fused_risk[i])
        if np.isnan(value):
            return None, NO_RESPIRATORY_WINDOW
        return value, None

    def frame(self, channels: Sequence[str], *, labels: bool = False) -> pd.DataFrame:
        """Return the table as a frame (``vitalsentry score``'s output).

        Returns
        -------
        pandas.DataFrame
            ``patient_id, window_start, window_end, risk, level, anomaly_score``, one
            ``contribution_<channel>`` per vital channel, one ``view_<name>`` per view,
            ``risk_mean``/``risk_std`` with MC dropout, ``fused_risk`` when computed,
            ``alarm_on`` with an alarm history, and ``label`` when asked for.
        """
        scores = self.scores
        out = pd.DataFrame(
            {
                PATIENT_COLUMN: self.patient,
                "window_start": pd.to_datetime(self.start_s, unit="s", utc=True),
                "window_end": pd.to_datetime(self.end_s, unit="s", utc=True),
                "risk": scores.risk,
                "level": scores.level,
                "anomaly_score": scores.anomaly_score,
            }
        )
        for i, name in enumerate(channels):
            out[f"contribution_{name}"] = scores.contributions[:, i]
        for view, values in scores.views.items():
            out[f"view_{view}"] = values
        if scores.risk_std is not None:
            out["risk_mean"], out["risk_std"] = scores.risk_mean, scores.risk_std
        if self.fused_risk is not None:
            out["fused_risk"] = self.fused_risk
        if self.alarm is not None:
            out["alarm_on"] = [state.on for state in self.alarm]
        if labels:
            out["label"] = self.cut.windows.labels
        return out


def score_readings(
    pipe: VitalRiskPipeline,
    source: WindowSource,
    *,
    latest_only: bool = False,
    mc_passes: int = 0,
    seed: int = 0,
    history: Mapping[str, AlarmState] | None = None,
) -> ScoreTable:
    """Score readings: windows, embeddings, detector, calibration, fused risk, alarm state.

    Parameters
    ----------
    pipe : VitalRiskPipeline
        The loaded bundle.
    source : WindowSource
        The readings.
    latest_only : bool, default False
        Only the latest complete window of each key (live scoring).
    mc_passes : int, default 0
        Monte Carlo dropout passes (0 = off; otherwise ≥ 2).
    seed : int, default 0
        Seed of the dropout masks.
    history : mapping of str to AlarmState, optional
        Alarm state of each key before these windows (a key left out starts quiet); with
        it, the bundle's alarm policy steps once per window in time order.

    Returns
    -------
    ScoreTable
        One row per window, in the source's order.

    Raises
    ------
    NoWindowError
        No window is complete.
    """
    cut = source.cut(pipe.data_config, pipe.window_config, latest_only=latest_only)
    windows = cut.windows
    end_s = windows.start_s + (pipe.window_config.length - 1) * pipe.data_config.step_s
    if len(cut) == 0:
        raise NoWindowError(no_window_message(pipe))
    scores = pipe.score_windows(
        windows.windows, mc_passes=mc_passes, seed=seed, where=(windows.patient, windows.start_s)
    )
    fused, note = _fused(pipe, source, cut, scores.embedding, latest_only)
    alarm = None
    if history is not None:
        alarm = alarm_states(
            windows.patient, end_s, scores.level == "high", history, pipe.alarm_policy
        )
    return ScoreTable(cut, end_s, scores, fused, note, alarm)


def readings_table(
    pipe: VitalRiskPipeline, readings: Readings, *, mc_passes: int = 0
) -> tuple[pd.DataFrame, str | None]:
    """Every window of a readings file scored, as ``vitalsentry score`` and the archive write it.

    Per-patient series also carry each window's alarm state (every patient starts
    quiet); stream-mode files, one feed of many patients, do not.

    Returns
    -------
    (pandas.DataFrame, str or None)
        The table (:meth:`ScoreTable.frame`) and why it lacks a fused risk, if it does.
    """
    table = pipe.score(
        readings.frame,
        stream=readings.stream,
        mc_passes=mc_passes,
        static=readings.static,
        history=None if readings.stream else {},
    )
    labels = LABEL_COLUMN in readings.frame.columns
    return table.frame(pipe.channels, labels=labels), table.fused_note


def _fused(
    pipe: VitalRiskPipeline,
    source: WindowSource,
    cut: Cut,
    embedding: np.ndarray,
    latest_only: bool,
) -> tuple[np.ndarray | None, str | None]:
    """Fused risk of the cardio windows and, when absent or partial, why."""
    head = pipe.fusion
    if head is None:
        return None, "the bundle has no fusion head (`vitalsentry fit-fusion` adds one)"
    lacking = source.missing(head.respiratory_data.channels)
    if lacking:
        return None, f"the readings lack the fusion head's channel(s) {', '.join(lacking)}"
    resp = source.cut(head.respiratory_data, pipe.window_config, latest_only=latest_only)
    fused = head.fused_risk(embedding, cut, resp, source.static)
    return fused, f"some windows: {NO_RESPIRATORY_WINDOW}" if np.isnan(fused).any() else None


class Keyed(Protocol):
    """Windows known by key and start (a :class:`WindowSet` or prepared data)."""

    @property
    def patient(self) -> np.ndarray:
        """(N,) key of each window."""

    @property
    def start_s(self) -> np.ndarray:
        """(N,) epoch seconds of each window's first step."""


def window_pairs(left: Keyed, right: Keyed) -> tuple[np.ndarray, np.ndarray]:
    """Return the indices (i, j) of the windows of ``left`` and ``right`` with the same key and start.

    In ``left``'s order (each window of a set has a distinct key and start).
    """
    a = pd.DataFrame({"p": left.patient, "t": left.start_s, "i": np.arange(left.patient.size)})
    b = pd.DataFrame({"p": right.patient, "t": right.start_s, "j": np.arange(right.patient.size)})
    both = a.merge(b, on=["p", "t"], how="inner")
    return both["i"].to_numpy(), both["j"].to_numpy()


def alarm_states(
    keys: np.ndarray,
    end_s: np.ndarray,
    high: np.ndarray,
    history: Mapping[str, AlarmState],
    policy: AlarmPolicy,
) -> tuple[AlarmState, ...]:
    """Each window's alarm state, stepping every key's state once per window in time order."""
    current = dict(history)
    states: list[AlarmState] = [AlarmState()] * keys.size
    for i in np.lexsort((end_s, keys)).tolist():
        key = str(keys[i])
        states[i] = current[key] = current.get(key, AlarmState()).step(bool(high[i]), policy)
    return tuple(states)
