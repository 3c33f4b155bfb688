"""Simulator: per-patient vital-sign series with labelled events.

This is the project's embedded default data (DESIGN.md §5). Everything is drawn from
``numpy.random.Generator`` objects derived from one seed, so the same seed gives identical
frames and a different seed gives different ones. The two Kaggle schemas are simulated by
:mod:`vitalsentry.data.simulate_kaggle`; :mod:`vitalsentry.data.writers` writes the frames.

Cohort (:func:`simulate_cohort`)
--------------------------------
Each patient has a record of ``hours`` hours on a 1-second grid, starting at
``start`` plus a random whole number of minutes below ``start_spread_h`` hours (patients are
admitted at different times of day, so the hour-of-day features cover the whole day).
Time of day is the UTC hour of the timestamp, the hour the pipeline encodes.

Normal physiology, every patient:

- baselines drawn per patient: HR 60–90 /min, SpO2 96–99 %, RR 12–18 /min, temperature
  36.4–37.0 °C, SBP 105–135 mm[Hg] (higher with age), DBP 65–85 mm[Hg] (at least 30 below SBP,
  and DBP stays at least 10 below SBP at every instant);
  static context age 20–90 years, sex 0/1, BMI ~ N(26.5, 4.5) clipped to 16–45;
- circadian rhythm: ``-cos(2π(hour - 4 - φ)/24)`` with a per-patient phase φ of ±1 h, lowest
  about 04:00 and highest about 16:00, amplitudes HR 3–7 /min, RR 0.5–1.2 /min, temperature
  0.2–0.4 °C, SBP 4–8, DBP 2–5 mm[Hg];
- slow drift: AR(1) processes with time constants of 30–60 min (HR: sd 5 /min, plus a 2-min
  component of sd 2 /min), so the series are smooth like real monitor output (lag-1
  autocorrelation of HR about 0.99, above 0.9 even with artefacts);
- beat-to-beat variability (AR(1), time constant 3 s, sd 1 /min) and sensor noise on every
  channel; values are rounded like monitor exports (HR and temperature to 0.1, the others to
  integers) and clipped to physiological limits inside :data:`vitalsentry.data.schema.CHANNELS`.

Sampling: HR every ``hr_every_s`` s, SpO2 every ``spo2_every_s`` s, RR every ``rr_every_s`` s,
temperature every ``temp_every_s`` s, blood pressure every ``bp_every_s`` s, counted from the
start of the record. A row exists at every instant where at least one channel is measured;
channels not measured at that instant are NaN.

Nuisances (never deterioration, label 0; placed at least 2 min away from labelled events):

- activity bursts (about ``activity_per_h`` per hour, mostly in daytime): HR +15–35 /min,
  RR +3–8 /min, SBP +5–15, DBP +2–6 mm[Hg], SpO2 unchanged; rise 30–90 s, plateau 2–12 min,
  fall 1–3 min;
- HR motion artefacts (about ``hr_artefacts_per_h`` per hour): 2–4 s where HR reads 20–45 /min
  too high or too low;
- SpO2 motion artefacts (about ``spo2_artefacts_per_h`` per hour): 1–3 consecutive SpO2
  samples reading 5–15 % too low, HR unchanged;
- dropouts (about ``dropouts_per_h`` per hour): 1–8 min with no rows at all (sensor off).

Labelled events (``event_fraction`` of the patients, chosen at random, have at least one):
each event follows a trapezoid profile ``p`` (linear rise, plateau, linear fall, ``p`` from 0
to 1) that scales its effect; ``label`` is 1 where ``p >= 1/3`` (for the drift, from the point
where the change exceeds a third of its full size until it falls below a third again; for
abrupt events, from onset to end), and the events table gives that span as
``onset <= timestamp < end``. Events of one patient do not overlap (at least 5 min apart),
cover 10–25 % (``event_time_share``) of the record, at most ``max_events`` of them, and at
most one sepsis-like drift per patient. For records too short to hold any event within that
share, one short event at its minimal duration is placed.

- ``sepsis_drift``: rise over 1–3 h, plateau 10–40 min, recovery (treatment) over 30–60 min;
  at full size HR +25–45 /min, RR +6–12 /min, temperature +1.2–2.2 °C, SpO2 −3–6 %,
  SBP −10–25 and DBP −5–12 mm[Hg].
- ``hypoxaemia``: SpO2 moves to a level of 82–88 % over 2–5 min, stays 10–30 min, recovers
  over 2–5 min; HR +10–20 /min, RR +4–8 /min.
- ``tachyarrhythmia``: HR jumps within 3–10 s to a level of 130–170 /min with irregular
  beat-to-beat variability (sd 6–12 /min each second), lasts 10–40 min, ends within 5–30 s;
  SpO2 −0–2 %, SBP −5–15, DBP −3–8 mm[Hg].
- ``bradyarrhythmia``: HR drops within 5–20 s to a level of 35–48 /min (sd 0.5–2 /min),
  lasts 10–40 min, ends within 5–30 s; SBP −5–15, DBP −3–8 mm[Hg].
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.signal import lfilter

from vitalsentry.data.schema import (
    CHANNELS,
    LABEL_COLUMN,
    PATIENT_COLUMN,
    STATIC_FIELDS,
    TIMESTAMP_COLUMN,
)
from vitalsentry.errors import DataError

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

LABEL_THRESHOLD: Final = 1.0 / 3.0
"""An event is labelled where its profile reaches this share of its full size."""

EVENT_TYPES: Final = ("sepsis_drift", "hypoxaemia", "tachyarrhythmia", "bradyarrhythmia")
"""Labelled event types, as written in the events table."""

EVENT_COLUMNS: Final = (PATIENT_COLUMN, "event_type", "onset", "end", "description")
"""Columns of the events table."""

_LIMITS: Final[dict[str, tuple[float, float]]] = {
    "heart_rate": (25.0, 230.0),
    "spo2": (50.0, 100.0),
    "respiratory_rate": (4.0, 60.0),
    "temperature": (33.0, 42.5),
    "systolic_bp": (60.0, 220.0),
    "diastolic_bp": (30.0, 130.0),
}
"""Simulated channels and their clipping limits, each inside the channel's plausible range
(MAP and EtCO2 are not simulated)."""

SIMULATED_CHANNELS: Final[tuple[str, ...]] = tuple(_LIMITS)
"""Canonical channels the simulator writes, in canonical order (not MAP or EtCO2)."""

_DECIMALS: Final[dict[str, int]] = {
    "heart_rate": 1,
    "spo2": 0,
    "respiratory_rate": 0,
    "temperature": 1,
    "systolic_bp": 0,
    "diastolic_bp": 0,
}
"""Decimals kept per channel, like a monitor export."""

_EVENT_GAP_S: Final = 300
_NUISANCE_EVENT_GAP_S: Final = 120
_NUISANCE_GAP_S: Final = 30
_PLACEMENT_TRIES: Final = 30


_PERIOD_FIELDS: Final = ("hr_every_s", "spo2_every_s", "rr_every_s", "temp_every_s", "bp_every_s")
_RATE_FIELDS: Final = (
    "start_spread_h",
    "activity_per_h",
    "hr_artefacts_per_h",
    "spo2_artefacts_per_h",
    "dropouts_per_h",
)
"""Settings of :class:`SimulationConfig` that must be non-negative."""
_SCALE_FIELDS: Final = ("noise_scale", "patient_spread", "event_scale", "event_duration_scale")
"""Settings of :class:`SimulationConfig` that must be positive."""


@dataclasses.dataclass(frozen=True)
class SimulationConfig:
    """Settings of :func:`simulate_cohort` (the module docstring defines the physiology).

    Attributes
    ----------
    patients : int
        Number of patients (ids ``P0001``…).
    hours : float
        Length of each patient's record.
    seed : int
        Seed of every random draw.
    event_fraction : float
        Share of patients with at least one labelled event (rounded to whole patients).
    hr_every_s, spo2_every_s, rr_every_s, temp_every_s, bp_every_s : int
        Sampling period of each channel in seconds (BP sets both systolic and diastolic).
    start : str
        ISO-8601 time of the earliest possible record start (UTC when no zone is given).
    start_spread_h : float
        Record starts are spread uniformly (whole minutes) over this many hours after
        ``start``; 0 starts every record at ``start``.
    event_time_share : tuple of float
        Range of the share of an event patient's record covered by labelled events.
    max_events : int
        Most labelled events per patient.
    activity_per_h, hr_artefacts_per_h, spo2_artefacts_per_h, dropouts_per_h : float
        Mean number of each nuisance per hour of record.
    noise_scale : float
        Multiplies the standard deviation of the sensor noise of every channel.
    patient_spread : float
        Multiplies each patient's baseline distance from the middle of its range
        (between-patient spread; values are still clipped to physiological limits).
    event_scale : float
        Multiplies event sizes: shifts, and the distance of event levels from a typical
        normal level (SpO2 97 %, HR 75 /min).
    event_duration_scale : float
        Multiplies the rise, plateau and fall of every labelled event.
    event_types : tuple of str
        Labelled event types that may occur (e.g. only the slow ``sepsis_drift``, or only
        the sudden ones).

    """

    patients: int = 40
    hours: float = 12.0
    seed: int = 0
    event_fraction: float = 0.5
    hr_every_s: int = 1
    spo2_every_s: int = 60
    rr_every_s: int = 60
    temp_every_s: int = 300
    bp_every_s: int = 1800
    start: str = "2024-01-01T00:00:00Z"
    start_spread_h: float = 24.0
    event_time_share: tuple[float, float] = (0.10, 0.25)
    max_events: int = 4
    activity_per_h: float = 0.6
    hr_artefacts_per_h: float = 1.0
    spo2_artefacts_per_h: float = 0.5
    dropouts_per_h: float = 0.5
    noise_scale: float = 1.0
    patient_spread: float = 1.0
    event_scale: float = 1.0
    event_duration_scale: float = 1.0
    event_types: tuple[str, ...] = EVENT_TYPES

    def __post_init__(self) -> None:
        """Reject settings the simulator cannot honour (the first broken rule raises)."""
        self._check_record()
        self._check_periods()
        self._check_event_counts()
        self._check_non_negative(_RATE_FIELDS)
        self._check_positive(_SCALE_FIELDS)
        if not self.event_types or set(self.event_types) - set(EVENT_TYPES):
            raise DataError(
                f"must be a non-empty subset of {', '.join(EVENT_TYPES)}, got {self.event_types}",
                column="event_types",
            )
        _parse_start(self.start)

    def _check_record(self) -> None:
        """Require patients, a positive length, and a share of event patients in 0–1."""
        if self.patients < 1:
            raise DataError(f"must be at least 1, got {self.patients}", column="patients")
        if not (math.isfinite(self.hours) and self.hours > 0):
            raise DataError(f"must be a positive number of hours, got {self.hours}", column="hours")
        if not 0.0 <= self.event_fraction <= 1.0:
            raise DataError(f"must lie in 0–1, got {self.event_fraction}", column="event_fraction")
        if self.event_fraction > 0 and self.hours < 0.5:
            raise DataError(
                f"labelled events need records of at least 0.5 h, got {self.hours}", column="hours"
            )

    def _check_periods(self) -> None:
        """Require every sampling period to be a whole number of seconds >= 1."""
        for name in _PERIOD_FIELDS:
            period = getattr(self, name)
            if isinstance(period, bool) or not isinstance(period, int) or period < 1:
                raise DataError(
                    f"must be a whole number of seconds >= 1, got {period!r}", column=name
                )

    def _check_event_counts(self) -> None:
        """Require a share range of labelled time inside (0, 1) and at least one event."""
        low, high = self.event_time_share
        if not 0.0 < low <= high < 1.0:
            raise DataError(
                f"must satisfy 0 < low <= high < 1, got {self.event_time_share}",
                column="event_time_share",
            )
        if self.max_events < 1:
            raise DataError(f"must be at least 1, got {self.max_events}", column="max_events")

    def _check_non_negative(self, names: tuple[str, ...]) -> None:
        """Require each named field to be a finite number >= 0."""
        for name in names:
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise DataError(f"must be a non-negative number, got {value}", column=name)

    def _check_positive(self, names: tuple[str, ...]) -> None:
        """Require each named field to be a finite number > 0."""
        for name in names:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise DataError(f"must be a positive number, got {value}", column=name)

    @property
    def periods(self) -> dict[str, int]:
        """Sampling period in seconds of every canonical channel."""
        return {
            "heart_rate": self.hr_every_s,
            "spo2": self.spo2_every_s,
            "respiratory_rate": self.rr_every_s,
            "temperature": self.temp_every_s,
            "systolic_bp": self.bp_every_s,
            "diastolic_bp": self.bp_every_s,
        }

    @property
    def seconds(self) -> int:
        """Length of each record in whole seconds (at least 1)."""
        return max(1, round(self.hours * 3600))

    @property
    def start_timestamp(self) -> pd.Timestamp:
        """``start`` parsed as a UTC timestamp."""
        return _parse_start(self.start)


def _parse_start(text: str) -> pd.Timestamp:
    """Parse an ISO-8601 time as UTC (naive times are taken as UTC)."""
    try:
        stamp = pd.Timestamp(text)
    except ValueError as exc:
        raise DataError(f"not an ISO-8601 time: {text!r}", column="start") from exc
    if pd.isna(stamp):
        raise DataError(f"not an ISO-8601 time: {text!r}", column="start")
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


@dataclasses.dataclass(frozen=True)
class _Episode:
    """One event or nuisance of a patient's record, in seconds from the record start.

    The profile ``p`` rises linearly over ``rise`` samples, stays at 1 for ``hold``
    samples and falls over ``fall`` samples; the episode covers ``[start, stop)``.

    Attributes
    ----------
    kind : str
        Event type (:data:`EVENT_TYPES`) or nuisance (``activity``, ``hr_artefact``,
        ``spo2_artefact``, ``dropout``).
    start, rise, hold, fall : int
        Onset and phase lengths in seconds.
    shift : dict of str to float
        Change added to a channel at full size (``p * shift``).
    level : dict of str to float
        Level a channel is blended towards (``(1 - p) * x + p * (level + noise)``).
    jitter : float
        Standard deviation of the per-second noise around ``level``.
    labelled : bool
        Whether the episode is a labelled deterioration event.

    """

    kind: str
    start: int
    rise: int
    hold: int
    fall: int
    shift: dict[str, float] = dataclasses.field(default_factory=dict)
    level: dict[str, float] = dataclasses.field(default_factory=dict)
    jitter: float = 0.0
    labelled: bool = False

    @property
    def stop(self) -> int:
        """End of the episode (exclusive), in seconds from the record start."""
        return self.start + self.rise + self.hold + self.fall

    def profile(self) -> FloatArray:
        """Return the trapezoid profile over ``[start, stop)``, shape (stop - start,)."""
        k = np.arange(self.stop - self.start, dtype=np.float64)
        up = (k + 1.0) / (self.rise + 1)
        down = (self.stop - self.start - k) / (self.fall + 1)
        return np.minimum(1.0, np.minimum(up, down))

    def describe(self) -> str:
        """Return a one-line description of the episode's size and timing."""
        minutes = (self.stop - self.start) / 60.0
        parts = [
            f"{CHANNELS[name].label} to {value:.0f} {CHANNELS[name].unit}"
            for name, value in self.level.items()
        ]
        parts += [
            f"{CHANNELS[name].label} {value:+.1f} {CHANNELS[name].unit}"
            for name, value in self.shift.items()
        ]
        return f"{self.kind}: {', '.join(parts)} (rise {self.rise} s, {minutes:.0f} min in all)"


@dataclasses.dataclass(frozen=True)
class _EventKind:
    """Duration ranges (seconds) of one labelled event type."""

    name: str
    rise: tuple[float, float]
    hold: tuple[float, float]
    fall: tuple[float, float]
    once: bool = False

    def durations(self, u: FloatArray, scale: float) -> tuple[int, int, int]:
        """Return (rise, hold, fall) at ``lo + scale * u * (hi - lo)``; ``u`` shape (3,)."""
        ranges = (self.rise, self.hold, self.fall)
        rise, hold, fall = (
            round(lo + scale * float(ui) * (hi - lo))
            for (lo, hi), ui in zip(ranges, u, strict=True)
        )
        return rise, hold, fall

    def labelled_s(self, u: FloatArray, scale: float) -> float:
        """Approximate labelled time (``p >= 1/3``) of the durations at ``scale``."""
        rise, hold, fall = self.durations(u, scale)
        return hold + (1.0 - LABEL_THRESHOLD) * (rise + fall)


_EVENT_KINDS: Final = (
    _EventKind("sepsis_drift", (3600, 10800), (600, 2400), (1800, 3600), once=True),
    _EventKind("hypoxaemia", (120, 300), (600, 1800), (120, 300)),
    _EventKind("tachyarrhythmia", (3, 10), (600, 2400), (5, 30)),
    _EventKind("bradyarrhythmia", (5, 20), (600, 2400), (5, 30)),
)


@dataclasses.dataclass(frozen=True)
class _PatientRecord:
    """One simulated patient (internal; :func:`simulate_cohort` turns it into rows).

    Attributes
    ----------
    patient_id : str
        Patient id.
    first : pandas.Timestamp
        Time of second 0 of the record (UTC).
    seconds : numpy.ndarray
        Seconds from ``first`` of the rows, shape (R,).
    values : dict of str to numpy.ndarray
        Channel values at the rows, NaN when not measured, each shape (R,).
    label : numpy.ndarray
        int8 label at the rows, shape (R,).
    static : dict of str to float
        Age, sex and BMI.
    events, nuisances : tuple of _Episode
        Labelled events and nuisances of the record.

    """

    patient_id: str
    first: pd.Timestamp
    seconds: IntArray
    values: dict[str, FloatArray]
    label: NDArray[np.int8]
    static: dict[str, float]
    events: tuple[_Episode, ...]
    nuisances: tuple[_Episode, ...]


def simulate_cohort(config: SimulationConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulate a cohort of per-patient multi-rate vital-sign series.

    Parameters
    ----------
    config : SimulationConfig
        Cohort size, record length, seed, sampling periods and nuisance rates.

    Returns
    -------
    readings : pandas.DataFrame
        Shape (R, 12): ``patient_id`` (str), ``timestamp`` (datetime64[ns, UTC]), the six
        canonical channels (float64, NaN when not measured), ``label`` (int8), ``age``
        (int16), ``sex`` (int8, 0 female 1 male), ``bmi`` (float64); sorted by patient, time.
    events : pandas.DataFrame
        One row per labelled event: ``patient_id``, ``event_type``, ``onset``, ``end``
        (UTC; label is 1 exactly where ``onset <= timestamp < end``), ``description``.

    """
    children = np.random.SeedSequence(config.seed).spawn(config.patients + 1)
    cohort_rng = np.random.default_rng(children[0])
    n_event = round(config.event_fraction * config.patients)
    with_events = np.zeros(config.patients, dtype=bool)
    with_events[cohort_rng.permutation(config.patients)[:n_event]] = True
    width = max(4, len(str(config.patients)))
    records = [
        _simulate_patient(
            config,
            f"P{i + 1:0{width}d}",
            np.random.default_rng(children[i + 1]),
            bool(with_events[i]),
        )
        for i in range(config.patients)
    ]
    return _readings_frame(records), _events_frame(records)


def _simulate_patient(
    config: SimulationConfig, patient_id: str, rng: np.random.Generator, with_events: bool
) -> _PatientRecord:
    """Simulate one patient's record (see the module docstring)."""
    n = config.seconds
    first = _first_timestamp(config, rng)
    circadian = _circadian(first, n, rng)
    static = _draw_static(rng)
    series = _normal_series(rng, circadian, static["age"], config)
    events = _plan_events(rng, n, config) if with_events else []
    nuisances = _plan_nuisances(rng, n, events, circadian, config)
    label, dropped = _apply_episodes(series, (*events, *nuisances), rng)
    keep, values = _monitor_readings(series, dropped, config)
    return _PatientRecord(
        patient_id=patient_id,
        first=first,
        seconds=np.arange(n, dtype=np.int64)[keep],
        values=values,
        label=label[keep],
        static=static,
        events=tuple(events),
        nuisances=tuple(nuisances),
    )


def _first_timestamp(config: SimulationConfig, rng: np.random.Generator) -> pd.Timestamp:
    """Draw the record's start: ``start`` plus whole minutes below ``start_spread_h`` hours."""
    spread_min = int(config.start_spread_h * 60)
    return config.start_timestamp + pd.Timedelta(
        minutes=int(rng.integers(0, spread_min)) if spread_min > 0 else 0
    )


def _circadian(first: pd.Timestamp, n: int, rng: np.random.Generator) -> FloatArray:
    """Return the daily rhythm (−1 about 04:00 to +1 about 16:00), shape (n,), phase ±1 h."""
    midnight = first.normalize()
    hour = ((first - midnight).total_seconds() + np.arange(n, dtype=np.float64)) / 3600.0 % 24.0
    return np.asarray(
        -np.cos(2.0 * np.pi * (hour - 4.0 - rng.uniform(-1.0, 1.0)) / 24.0), dtype=np.float64
    )


def _apply_episodes(
    series: dict[str, FloatArray], episodes: Sequence[_Episode], rng: np.random.Generator
) -> tuple[NDArray[np.int8], NDArray[np.bool_]]:
    """Apply events and nuisances in place; return the label and the dropped seconds."""
    n = series["heart_rate"].shape[0]
    label = np.zeros(n, dtype=np.int8)
    dropped = np.zeros(n, dtype=bool)
    for episode in episodes:
        _apply(series, episode, rng)
        if episode.labelled:
            label[episode.start : episode.stop] = episode.profile() >= LABEL_THRESHOLD
        if episode.kind == "dropout":
            dropped[episode.start : episode.stop] = True
    return label, dropped


def _monitor_readings(
    series: dict[str, FloatArray], dropped: NDArray[np.bool_], config: SimulationConfig
) -> tuple[NDArray[np.bool_], dict[str, FloatArray]]:
    """Sample, clip and round the series like a monitor export.

    Returns the seconds kept (some channel measured, sensor on), shape (n,), and each
    channel's values at those seconds (NaN where that channel is not measured).
    """
    series["diastolic_bp"] = np.minimum(series["diastolic_bp"], series["systolic_bp"] - 10.0)
    t = np.arange(dropped.shape[0], dtype=np.int64)
    measured = {name: t % period == 0 for name, period in config.periods.items()}
    keep = np.logical_or.reduce(list(measured.values())) & ~dropped
    values: dict[str, FloatArray] = {}
    for name in SIMULATED_CHANNELS:
        low, high = _LIMITS[name]
        clean = np.round(np.clip(series[name], low, high), _DECIMALS[name])
        values[name] = np.where(measured[name], clean, np.nan)[keep]
    return keep, values


def _draw_static(rng: np.random.Generator) -> dict[str, float]:
    """Draw age (years), sex (0/1) and BMI (kg/m², 0.1 precision) of one patient."""
    age = float(rng.integers(20, 91))
    sex = float(rng.integers(0, 2))
    bmi = round(float(np.clip(rng.normal(26.5, 4.5), 16.0, 45.0)), 1)
    return {"age": age, "sex": sex, "bmi": bmi}


def _ar1(rng: np.random.Generator, n: int, tau_s: float, sd: float) -> FloatArray:
    """Return a stationary AR(1) series, shape (n,), with time constant ``tau_s`` seconds."""
    phi = math.exp(-1.0 / tau_s)
    noise = rng.standard_normal(n)
    start = np.array([phi * sd * rng.standard_normal()])
    out, _ = lfilter([sd * math.sqrt(1.0 - phi * phi)], [1.0, -phi], noise, zi=start)
    return np.asarray(out, dtype=np.float64)


def _spread(value: float, low: float, high: float, spread: float) -> float:
    """Move a baseline ``value`` drawn in [low, high] away from the middle by ``spread``."""
    if spread == 1.0:
        return value
    middle = 0.5 * (low + high)
    return middle + spread * (value - middle)


@dataclasses.dataclass(frozen=True)
class _Physiology:
    """Normal physiology of one channel (see the module docstring).

    ``baseline`` is the range of the per-patient baseline (blood pressure's is drawn with
    age, see :func:`_normal_series`), ``circadian`` the range of the daily rhythm's
    amplitude (None: no rhythm), ``drifts`` the (time constant s, sd) of each AR(1) drift,
    ``noise`` the sensor noise's sd before ``noise_scale``.
    """

    baseline: tuple[float, float]
    circadian: tuple[float, float] | None
    drifts: tuple[tuple[float, float], ...]
    noise: float


_PHYSIOLOGY: Final[dict[str, _Physiology]] = {
    "heart_rate": _Physiology(
        (60.0, 90.0), (3.0, 7.0), ((1800.0, 5.0), (120.0, 2.0), (3.0, 1.0)), 0.3
    ),
    "spo2": _Physiology((96.0, 99.0), None, ((1800.0, 0.6),), 0.4),
    "respiratory_rate": _Physiology((12.0, 18.0), (0.5, 1.2), ((1800.0, 1.0),), 0.6),
    "temperature": _Physiology((36.4, 37.0), (0.2, 0.4), ((3600.0, 0.08),), 0.05),
    "systolic_bp": _Physiology((105.0, 135.0), (4.0, 8.0), ((1800.0, 4.0),), 3.0),
    "diastolic_bp": _Physiology((65.0, 85.0), (2.0, 5.0), ((1800.0, 2.5),), 2.0),
}
"""Normal physiology of each simulated channel, in the order its draws are made."""


def _normal_series(
    rng: np.random.Generator, circadian: FloatArray, age: float, config: SimulationConfig
) -> dict[str, FloatArray]:
    """Return the undisturbed 1 Hz series of every channel, each shape (n,).

    ``circadian`` (shape (n,), −1 at night to +1 in the afternoon) scales each channel's
    daily rhythm; the baselines, drifts and noise levels are those of the module docstring
    (:data:`_PHYSIOLOGY`), scaled by ``config.patient_spread`` and ``config.noise_scale``.
    Blood pressure baselines are drawn first: SBP rises with age, DBP stays 30 below it.
    """
    spread = config.patient_spread
    sbp_low, sbp_high = _PHYSIOLOGY["systolic_bp"].baseline
    sbp_drawn = sbp_low + (sbp_high - sbp_low) * (0.6 * (age - 20.0) / 70.0 + 0.4 * rng.random())
    sbp_base = _spread(sbp_drawn, sbp_low, sbp_high, spread)
    dbp_base = min(_draw_baseline(rng, _PHYSIOLOGY["diastolic_bp"], spread), sbp_base - 30.0)
    bases = {"systolic_bp": sbp_base, "diastolic_bp": dbp_base}
    return {
        name: _channel_series(rng, circadian, bases.get(name), physiology, config)
        for name, physiology in _PHYSIOLOGY.items()
    }


def _draw_baseline(rng: np.random.Generator, physiology: _Physiology, spread: float) -> float:
    """Draw a baseline uniformly in its range, moved from the middle by ``spread``."""
    low, high = physiology.baseline
    return _spread(rng.uniform(low, high), low, high, spread)


def _channel_series(
    rng: np.random.Generator,
    circadian: FloatArray,
    base: float | None,
    physiology: _Physiology,
    config: SimulationConfig,
) -> FloatArray:
    """Return one channel's undisturbed series: baseline, rhythm, drifts, then noise."""
    n = circadian.shape[0]
    values: FloatArray | float = (
        _draw_baseline(rng, physiology, config.patient_spread) if base is None else base
    )
    if physiology.circadian is not None:
        values = values + rng.uniform(*physiology.circadian) * circadian
    for tau_s, sd in physiology.drifts:
        values = values + _ar1(rng, n, tau_s, sd)
    return np.asarray(values + rng.normal(0.0, physiology.noise * config.noise_scale, n))


def _event_effects(
    kind: str, rng: np.random.Generator
) -> tuple[dict[str, float], dict[str, float], float]:
    """Draw (shift, level, jitter) of one labelled event type (module docstring)."""
    u = rng.uniform
    if kind == "sepsis_drift":
        shift = {
            "heart_rate": u(25, 45),
            "respiratory_rate": u(6, 12),
            "temperature": u(1.2, 2.2),
            "spo2": -u(3, 6),
            "systolic_bp": -u(10, 25),
            "diastolic_bp": -u(5, 12),
        }
        return shift, {}, 0.0
    if kind == "hypoxaemia":
        return (
            {"heart_rate": u(10, 20), "respiratory_rate": u(4, 8)},
            {"spo2": u(82, 88)},
            0.4,
        )
    pressure = {"systolic_bp": -u(5, 15), "diastolic_bp": -u(3, 8)}
    if kind == "tachyarrhythmia":
        return {**pressure, "spo2": -u(0, 2)}, {"heart_rate": u(130, 170)}, u(6, 12)
    return pressure, {"heart_rate": u(35, 48)}, u(0.5, 2.0)


_Sized = tuple[_EventKind, tuple[int, int, int]]
"""An event kind with its (rise, hold, fall) in seconds, not yet placed."""


def _plan_events(rng: np.random.Generator, n: int, config: SimulationConfig) -> list[_Episode]:
    """Choose, size and place the labelled events of one record of ``n`` seconds."""
    drawn = _fit_in_record(_draw_events(rng, n, config), n)
    return _place_events(rng, n, drawn, config)


def _draw_events(rng: np.random.Generator, n: int, config: SimulationConfig) -> list[_Sized]:
    """Draw kinds and durations until the labelled share of ``n`` seconds is used up.

    A record too short for any event within that share gets one at its minimal duration.
    """
    remaining = rng.uniform(*config.event_time_share) * n
    drawn: list[_Sized] = []
    zero = np.zeros(3)
    kinds = [k for k in _EVENT_KINDS if k.name in config.event_types]
    while len(drawn) < config.max_events:
        used = {kind.name for kind, _ in drawn}
        feasible = [
            k
            for k in kinds
            if k.labelled_s(zero, 0.0) <= remaining and not (k.once and k.name in used)
        ]
        if not feasible and (drawn or all(k.once for k in kinds)):
            break
        short_record = not feasible
        if short_record:
            feasible = [k for k in kinds if not k.once]
        kind = feasible[int(rng.integers(len(feasible)))]
        u = rng.random(3)
        low, full = kind.labelled_s(u, 0.0), kind.labelled_s(u, 1.0)
        scale = 0.0 if short_record else min(1.0, (remaining - low) / max(full - low, 1e-9))
        durations = kind.durations(u, scale)
        if config.event_duration_scale != 1.0:
            durations = _scaled_durations(durations, config.event_duration_scale)
        drawn.append((kind, durations))
        remaining -= kind.labelled_s(u, scale)
    return drawn


def _free_seconds(drawn: Sequence[_Sized], n: int) -> int:
    """Seconds of ``n`` left once the events and the gaps around each are counted."""
    return n - sum(sum(d) for _, d in drawn) - (len(drawn) + 1) * _EVENT_GAP_S


def _fit_in_record(drawn: list[_Sized], n: int) -> list[_Sized]:
    """Drop the last drawn events until the rest, with their gaps, fit in ``n`` seconds."""
    while drawn and _free_seconds(drawn, n) < 0:
        drawn.pop()
    return drawn


def _place_events(
    rng: np.random.Generator, n: int, drawn: Sequence[_Sized], config: SimulationConfig
) -> list[_Episode]:
    """Place the events in random order with random gaps and draw their effects."""
    order = rng.permutation(len(drawn))
    gaps = _EVENT_GAP_S + _free_seconds(drawn, n) * rng.dirichlet(np.ones(len(drawn) + 1))
    events: list[_Episode] = []
    position = 0.0
    for slot, index in enumerate(order):
        kind, (rise, hold, fall) = drawn[int(index)]
        position += gaps[slot]
        shift, level, jitter = _event_effects(kind.name, rng)
        if config.event_scale != 1.0:
            shift, level = _scaled_effects(shift, level, config.event_scale)
        start = int(position)
        events.append(_Episode(kind.name, start, rise, hold, fall, shift, level, jitter, True))
        position = start + rise + hold + fall
    return events


_TYPICAL_LEVEL: Final[dict[str, float]] = {"spo2": 97.0, "heart_rate": 75.0}
"""Normal level from which an event level's distance is scaled by ``event_scale``."""


def _scaled_durations(durations: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    """Return (rise, hold, fall) multiplied by ``factor`` (at least 1 s each)."""
    rise, hold, fall = (max(1, round(d * factor)) for d in durations)
    return rise, hold, fall


def _scaled_effects(
    shift: dict[str, float], level: dict[str, float], factor: float
) -> tuple[dict[str, float], dict[str, float]]:
    """Return an event's shifts and levels with their size multiplied by ``factor``."""
    return (
        {name: value * factor for name, value in shift.items()},
        {
            name: _TYPICAL_LEVEL[name] + factor * (value - _TYPICAL_LEVEL[name])
            for name, value in level.items()
        },
    )


def inject_event(
    series: dict[str, FloatArray],
    kind: str,
    start: int,
    rng: np.random.Generator,
    *,
    scale: float = 1.0,
    duration_scale: float = 1.0,
) -> NDArray[np.bool_]:
    """Add one labelled event of ``kind`` to 1 Hz series, in place (single-series tests).

    Durations and effects are drawn as in :func:`simulate_cohort` (module docstring), sizes
    multiplied by ``scale`` and durations by ``duration_scale`` (as ``event_scale`` and
    ``event_duration_scale`` do); channels missing from ``series`` are left out.

    Parameters
    ----------
    series : dict of str to ndarray of shape (n,)
        Channel values per second (changed in place).
    kind : str
        One of :data:`EVENT_TYPES`.
    start : int
        Onset, seconds from the start of the series.
    rng : numpy.random.Generator
        Source of the durations and effects.
    scale : float, default 1.0
        Size multiplier.
    duration_scale : float, default 1.0
        Duration multiplier.

    Returns
    -------
    ndarray of bool, shape (n,)
        Where the event is labelled (profile ≥ 1/3).

    Raises
    ------
    DataError
        Unknown ``kind``, or the event does not fit between ``start`` and the end.
    """
    found = [k for k in _EVENT_KINDS if k.name == kind]
    if not found:
        raise DataError(f"unknown event type {kind!r}", column="kind")
    n = len(next(iter(series.values())))
    rise, hold, fall = _scaled_durations(found[0].durations(rng.random(3), 1.0), duration_scale)
    shift, level, jitter = _event_effects(kind, rng)
    if scale != 1.0:
        shift, level = _scaled_effects(shift, level, scale)
    episode = _Episode(kind, start, rise, hold, fall, shift, level, jitter, True)
    if start < 0 or episode.stop > n:
        raise DataError(f"the event needs seconds {start}–{episode.stop} of {n}", column="start")
    present = {name: values for name, values in series.items()}
    episode = dataclasses.replace(
        episode,
        shift={k: v for k, v in shift.items() if k in present},
        level={k: v for k, v in level.items() if k in present},
    )
    _apply(present, episode, rng)
    label = np.zeros(n, dtype=bool)
    label[episode.start : episode.stop] = episode.profile() >= LABEL_THRESHOLD
    return label


def _draw_nuisance(kind: str, rng: np.random.Generator, spo2_every_s: int) -> _Episode:
    """Draw the size of one nuisance (start 0; placed by :func:`_plan_nuisances`)."""
    if kind == "activity":
        shift = {
            "heart_rate": rng.uniform(15, 35),
            "respiratory_rate": rng.uniform(3, 8),
            "systolic_bp": rng.uniform(5, 15),
            "diastolic_bp": rng.uniform(2, 6),
        }
        rise, hold, fall = (
            int(rng.integers(30, 91)),
            int(rng.integers(120, 721)),
            int(rng.integers(60, 181)),
        )
        return _Episode(kind, 0, rise, hold, fall, shift)
    if kind == "hr_artefact":
        size = rng.uniform(20, 45) * rng.choice([-1.0, 1.0])
        return _Episode(kind, 0, 0, int(rng.integers(2, 5)), 0, {"heart_rate": float(size)})
    if kind == "spo2_artefact":
        samples = int(rng.integers(1, 4))
        hold = (samples - 1) * spo2_every_s + 1
        return _Episode(kind, 0, 0, hold, 0, {"spo2": -rng.uniform(5, 15)})
    return _Episode(kind, 0, 0, int(rng.integers(60, 481)), 0)


def _plan_nuisances(
    rng: np.random.Generator,
    n: int,
    events: Sequence[_Episode],
    circadian: FloatArray,
    config: SimulationConfig,
) -> list[_Episode]:
    """Place activity bursts, artefacts and dropouts away from events and from each other.

    Activity bursts are accepted with a probability that follows ``circadian`` (shape (n,)),
    so they happen mostly in daytime. A nuisance that finds no free place is skipped.
    """
    busy = np.zeros(n, dtype=bool)
    for event in events:
        busy[max(0, event.start - _NUISANCE_EVENT_GAP_S) : event.stop + _NUISANCE_EVENT_GAP_S] = (
            True
        )
    rates = {
        "activity": config.activity_per_h,
        "dropout": config.dropouts_per_h,
        "hr_artefact": config.hr_artefacts_per_h,
        "spo2_artefact": config.spo2_artefacts_per_h,
    }
    drawn = [
        _draw_nuisance(kind, rng, config.spo2_every_s)
        for kind, rate in rates.items()
        for _ in range(int(rng.poisson(rate * n / 3600.0)))
    ]
    placed: list[_Episode] = []
    for index in rng.permutation(len(drawn)):
        episode = drawn[int(index)]
        step = config.spo2_every_s if episode.kind == "spo2_artefact" else 1
        slots = (n - episode.stop) // step + 1
        for _try in range(_PLACEMENT_TRIES if slots > 0 else 0):
            start = int(rng.integers(slots)) * step
            lo, hi = max(0, start - _NUISANCE_GAP_S), start + episode.stop + _NUISANCE_GAP_S
            if busy[lo:hi].any():
                continue
            daytime = 0.1 + 0.45 * (1.0 + circadian[start])
            if episode.kind == "activity" and rng.random() > daytime:
                continue
            busy[lo:hi] = True
            placed.append(dataclasses.replace(episode, start=start))
            break
    return sorted(placed, key=lambda e: e.start)


def _apply(series: dict[str, FloatArray], episode: _Episode, rng: np.random.Generator) -> None:
    """Apply an episode's shifts and level blends to the 1 Hz series in place."""
    span = slice(episode.start, episode.stop)
    p = episode.profile()
    for name, shift in episode.shift.items():
        series[name][span] += p * shift
    for name, level in episode.level.items():
        target = level + episode.jitter * rng.standard_normal(p.shape[0])
        series[name][span] = (1.0 - p) * series[name][span] + p * target


def _readings_frame(records: Sequence[_PatientRecord]) -> pd.DataFrame:
    """Concatenate patient records into the readings frame (see :func:`simulate_cohort`)."""
    counts = [r.seconds.shape[0] for r in records]
    ids = np.array([r.patient_id for r in records], dtype=object)
    ns = np.concatenate([r.first.value + r.seconds * np.int64(1_000_000_000) for r in records])
    columns: dict[str, object] = {
        PATIENT_COLUMN: np.repeat(ids, counts),
        TIMESTAMP_COLUMN: pd.DatetimeIndex(ns.view("datetime64[ns]")).tz_localize("UTC"),
    }
    for name in SIMULATED_CHANNELS:
        columns[name] = np.concatenate([r.values[name] for r in records])
    columns[LABEL_COLUMN] = np.concatenate([r.label for r in records]).astype(np.int8)
    static_types = {"age": np.int16, "sex": np.int8, "bmi": np.float64}
    for name in STATIC_FIELDS:
        per_patient = np.array([r.static[name] for r in records])
        columns[name] = np.repeat(per_patient, counts).astype(static_types[name])
    return pd.DataFrame(columns)


def _events_frame(records: Sequence[_PatientRecord]) -> pd.DataFrame:
    """Return the events table of the records (see :func:`simulate_cohort`)."""
    rows: list[dict[str, object]] = []
    for record in records:
        for event in record.events:
            labelled = np.flatnonzero(event.profile() >= LABEL_THRESHOLD)
            rows.append(
                {
                    PATIENT_COLUMN: record.patient_id,
                    "event_type": event.kind,
                    "onset": record.first + pd.Timedelta(seconds=event.start + int(labelled[0])),
                    "end": record.first + pd.Timedelta(seconds=event.start + int(labelled[-1]) + 1),
                    "description": event.describe(),
                }
            )
    frame = pd.DataFrame(rows, columns=list(EVENT_COLUMNS))
    for column in ("onset", "end"):
        frame[column] = pd.to_datetime(frame[column], utc=True).astype("datetime64[ns, UTC]")
    return frame


__all__ = [
    "EVENT_COLUMNS",
    "EVENT_TYPES",
    "LABEL_THRESHOLD",
    "SimulationConfig",
    "simulate_cohort",
]
