"""Validated API input → per-patient readings and their grids.

Also the checks that need a patient's whole series (duplicate instants, channel
coverage) and the NEWS2 of its latest values.
"""

from __future__ import annotations

import hashlib
import hmac
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from vitalsentry.config import DataConfig, WindowConfig
from vitalsentry.data.grid import SeriesGrid, grid_series
from vitalsentry.data.prepared import cut_windows, grid_policy
from vitalsentry.data.schema import CHANNELS
from vitalsentry.data.timefeatures import epoch_seconds
from vitalsentry.evaluation.baselines import NEWS2_INPUTS
from vitalsentry.risk.alarms import AlarmState
from vitalsentry.risk.news2 import news2_summaries
from vitalsentry.scoring import Cut
from vitalsentry.serve.schemas import SEXES, News2, ScoreRequest

Loc = tuple[str | int, ...]

_READING_FIELDS = operator.attrgetter("timestamp", *CHANNELS)
"""A reading's timestamp and channel values, in :data:`CHANNELS` order."""


class RequestError(Exception):
    """A request that is well-formed JSON but cannot be scored (answered with 422).

    Parameters
    ----------
    loc : tuple of str or int
        Where in the body, e.g. ``("readings", 12, "timestamp")``; empty for the body.
    message : str
        The reason, in plain words.
    """

    def __init__(self, loc: Loc, message: str) -> None:
        self.loc = loc
        self.message = message
        super().__init__(f"{format_loc(loc)}: {message}" if loc else message)


def clip(text: str, limit: int = 40) -> str:
    """Return ``text`` cut to ``limit`` characters (an ellipsis marks a cut): bounded echo."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def format_loc(loc: Loc) -> str:
    """Write a location as a path: ``("readings", 12, "heart_rate")`` → ``readings[12].heart_rate``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def patient_tag(patient_id: str, key: bytes) -> str:
    """Return what logs say instead of a patient id: 12 hex digits of its HMAC-SHA256.

    Keyed with a server secret (``VITALSENTRY_PSEUDONYM_KEY``), so a tag cannot be
    reversed by hashing candidate ids without the key.
    """
    return hmac.new(key, patient_id.encode(), hashlib.sha256).hexdigest()[:12]


@dataclass(frozen=True, eq=False)
class PatientReadings:
    """One patient's readings, checked for duplicate instants.

    Attributes
    ----------
    patient_id : str
        Identifier (never logged; see :func:`patient_tag`).
    times : pandas.DatetimeIndex
        (n,) UTC instants, unique, in request order.
    values : dict of str to numpy.ndarray
        Channel → (n,) float64, NaN where not measured; only channels measured at least once.
    on_oxygen, consciousness_alert : bool
        NEWS2 context.
    loc : tuple of str or int
        Where the patient sits in the request (prefix of error locations).
    entries : numpy.ndarray, optional
        (n,) FHIR entry index of each instant; None: instants are ``readings[k]``.
    static : dict of str to float
        Static context given (``age``, ``sex`` 0 female / 1 male, ``bmi``) for the fusion head.
    alarm : AlarmState, optional
        The patient's alarm state before these readings, when the caller gave it.
    """

    patient_id: str
    times: pd.DatetimeIndex
    values: dict[str, np.ndarray]
    on_oxygen: bool = False
    consciousness_alert: bool = True
    loc: Loc = ()
    entries: np.ndarray | None = None
    static: dict[str, float] = field(default_factory=dict)
    alarm: AlarmState | None = None

    def __len__(self) -> int:
        return len(self.times)

    def where(self, k: int) -> Loc:
        """Location in the request of the timestamp of instant ``k``."""
        if self.entries is None:
            return (*self.loc, "readings", k, "timestamp")
        return ("entry", int(self.entries[k]), "resource", "effectiveDateTime")


def unique_times(times: pd.DatetimeIndex, where: Loc) -> pd.DatetimeIndex:
    """Return ``times`` (as ns UTC) after refusing an instant given twice.

    Raises
    ------
    RequestError
        Naming the second reading at an instant and the first one.
    """
    times = times.as_unit("ns")
    dup = times.duplicated()
    if dup.any():
        second = int(np.flatnonzero(dup)[0])
        first = int(np.flatnonzero(times == times[second])[0])
        raise RequestError(
            (*where, second, "timestamp"),
            f"duplicate timestamp {times[second].isoformat()} (also readings[{first}])",
        )
    return times


def from_request(request: ScoreRequest, loc: Loc = ()) -> PatientReadings:
    """Turn a validated score request into :class:`PatientReadings`.

    Raises
    ------
    RequestError
        Two readings at the same instant.
    """
    stamps, *columns = zip(*map(_READING_FIELDS, request.readings), strict=True)
    times = unique_times(pd.DatetimeIndex(stamps), (*loc, "readings"))
    values = {  # a column without None converts without numpy's slow None → NaN path
        name: np.array(column, dtype=np.float64)
        for name, column in zip(CHANNELS, columns, strict=True)
        if column.count(None) < len(column)
    }
    context = {
        "age": request.age,
        "sex": None if request.sex is None else SEXES[request.sex],
        "bmi": request.bmi,
    }
    given = request.alarm_state
    return PatientReadings(
        request.patient_id,
        times,
        values,
        request.on_oxygen,
        request.consciousness_alert,
        loc,
        static={k: float(v) for k, v in context.items() if v is not None},
        alarm=None if given is None else AlarmState(given.on, given.quiet, tuple(given.recent)),
    )


@dataclass(frozen=True, eq=False)
class RequestSource:
    """Patients of one or more requests as a window source (:mod:`vitalsentry.scoring`).

    Attributes
    ----------
    patients : sequence of PatientReadings
        The patients, each known by its position's key in :attr:`keys`.
    keys : sequence of str
        Distinct key of each patient (the windows' ``patient``).
    """

    patients: Sequence[PatientReadings]
    keys: Sequence[str]

    @property
    def static(self) -> pd.DataFrame:
        """Static context given per key (NaN where not given)."""
        return pd.DataFrame([p.static for p in self.patients], index=pd.Index(self.keys))

    @property
    def history(self) -> dict[str, AlarmState] | None:
        """Alarm state given per key; None when no patient gave one."""
        given = {k: p.alarm for k, p in zip(self.keys, self.patients, strict=True) if p.alarm}
        return given or None

    def missing(self, channels: Sequence[str]) -> list[str]:
        """Channels of ``channels`` no patient measures."""
        return [c for c in channels if not any(c in p.values for p in self.patients)]

    def cut(self, data: DataConfig, window: WindowConfig, *, latest_only: bool) -> Cut:
        """Grid every patient with ``data`` (:func:`patient_grid`) and cut its windows."""
        grids = [
            patient_grid(patient, data.channels, key, data=data)
            for patient, key in zip(self.patients, self.keys, strict=True)
        ]
        cut = cut_windows(grids, data, window, latest_only=latest_only)
        return Cut(cut, cut.patient)


def patient_grid(
    patient: PatientReadings, channels: Sequence[str], key: str, *, data: DataConfig
) -> SeriesGrid:
    """Grid one patient's readings of ``channels`` in time order (as :func:`grid_frame` would).

    Parameters
    ----------
    patient : PatientReadings
        Validated readings (any order; unique instants).
    channels : sequence of str
        Channels of the grid's rows; one the patient lacks is all NaN (masked).
    key : str
        Name of the grid (the windows' ``patient``).
    data : DataConfig
        Grid step and gap policy (the bundle's).

    Returns
    -------
    SeriesGrid
        The grid, without labels.
    """
    order = np.argsort(patient.times.asi8, kind="stable")
    missing = np.full(len(patient), np.nan)
    values = np.stack([patient.values.get(name, missing)[order] for name in channels])
    return grid_series(
        epoch_seconds(patient.times)[order],
        values,
        None,
        step_s=data.step_s,
        key=key,
        **grid_policy(data),
    )


def span_limit(data: DataConfig, length: int, max_span_windows: int) -> tuple[float, str]:
    """Return the longest accepted span of one request's readings and how it is stated.

    Parameters
    ----------
    data : DataConfig
        The bundle's data config (its step).
    length : int
        Window length in steps.
    max_span_windows : int
        The span in windows (``VITALSENTRY_MAX_SPAN_WINDOWS``).
    """
    window_s = max((length - 1) * data.step_s, data.step_s)
    return max_span_windows * window_s, f"{max_span_windows} windows of {window_s:g} s"


def refuse_span(span_s: float, earliest: Loc, max_span_s: float, limit: str) -> None:
    """Refuse readings spread over more than ``max_span_s`` seconds (before any grid is built).

    Parameters
    ----------
    span_s : float
        Seconds from the earliest to the latest reading.
    earliest : Loc
        Where the earliest reading is.
    max_span_s, limit : float, str
        The limit and how it is stated (see :func:`span_limit`).

    Raises
    ------
    RequestError
        Naming the earliest reading and the limit.
    """
    if span_s > max_span_s:
        raise RequestError(
            earliest,
            f"{span_s:.0f} s before the latest reading; readings may span at most "
            f"{max_span_s:g} s ({limit})",
        )


def check_span(patient: PatientReadings, max_span_s: float, limit: str) -> None:
    """Refuse a patient's readings spread over more than ``max_span_s`` (:func:`refuse_span`)."""
    stamps = patient.times.asi8
    first, last = int(np.argmin(stamps)), int(np.argmax(stamps))
    refuse_span((stamps[last] - stamps[first]) / 1e9, patient.where(first), max_span_s, limit)


def coverage_problem(
    patient: PatientReadings, channels: Sequence[str], needed_s: float, length: int, step_s: float
) -> str | None:
    """Say which required channel is missing or too short for one window, if any.

    A window of ``length`` steps needs each channel observed over at least
    ``needed_s = (length - 1) × step_s`` seconds. Gaps and overlap are left to the
    pipeline, which reports them itself.

    Returns
    -------
    str or None
        The reason, or None when every channel spans enough time.
    """
    what = (
        f"the model needs {needed_s:g} s ({length} steps of {step_s:g} s) of {', '.join(channels)}"
    )
    for name in channels:
        column = patient.values.get(name)
        if column is None:
            return f"no {name} reading; {what}"
        seen = patient.times.asi8[~np.isnan(column)]
        span = (seen.max() - seen.min()) / 1e9
        if span < needed_s:
            return f"{name} readings cover {span:g} s; {what}"
    return None


def news2_of(patient: PatientReadings) -> News2 | None:
    """NEWS2 from the latest value of each of its five measured parameters.

    Returns
    -------
    News2 or None
        None unless respiratory rate, SpO2, systolic BP, heart rate and temperature
        each have a value.
    """
    latest: dict[str, float | None] = {}
    for name in NEWS2_INPUTS:
        column = patient.values.get(name)
        if column is None:
            return None
        seen = np.flatnonzero(~np.isnan(column))
        latest[name] = float(column[seen[np.argmax(patient.times.asi8[seen])]])
    (summary,) = news2_summaries(
        [latest],
        on_oxygen=[patient.on_oxygen],
        consciousness_alert=[patient.consciousness_alert],
    )
    if summary is None:
        return None
    return News2(
        score=summary.score,
        level=summary.level,  # type: ignore[arg-type]
        components=summary.components,
    )
