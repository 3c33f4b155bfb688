"""Simulator: per-patient vital-sign series with labelled events, and the two Kaggle schemas.

This is the project's embedded default data (DESIGN.md §5). Everything is drawn from
``numpy.random.Generator`` objects derived from one seed, so the same seed gives identical
frames and a different seed gives different ones.

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

Kaggle schemas
--------------
:func:`simulate_vitals2024` and :func:`simulate_iot` return tables with exactly the columns of
the Human Vital Signs 2024 file and of the Healthcare IoT file, with the distributions measured
in ``datasets/README.md`` (rules documented on each function).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Final, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.signal import lfilter

from vitalsentry.data.schema import (
    CHANNELS,
    IOT_COLUMNS,
    LABEL_COLUMN,
    PATIENT_COLUMN,
    STATIC_FIELDS,
    TIMESTAMP_COLUMN,
    VITALS2024_COLUMNS,
)
from vitalsentry.errors import DataError
from vitalsentry.io import atomic_path

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
TableFormat = Literal["csv", "parquet"]

_SUFFIX_FORMATS: Final[dict[str, TableFormat]] = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}

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

    def __post_init__(self) -> None:
        """Reject settings the simulator cannot honour."""
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
        for name in ("hr_every_s", "spo2_every_s", "rr_every_s", "temp_every_s", "bp_every_s"):
            period = getattr(self, name)
            if isinstance(period, bool) or not isinstance(period, int) or period < 1:
                raise DataError(
                    f"must be a whole number of seconds >= 1, got {period!r}", column=name
                )
        low, high = self.event_time_share
        if not 0.0 < low <= high < 1.0:
            raise DataError(
                f"must satisfy 0 < low <= high < 1, got {self.event_time_share}",
                column="event_time_share",
            )
        if self.max_events < 1:
            raise DataError(f"must be at least 1, got {self.max_events}", column="max_events")
        rates = {
            "start_spread_h": self.start_spread_h,
            "activity_per_h": self.activity_per_h,
            "hr_artefacts_per_h": self.hr_artefacts_per_h,
            "spo2_artefacts_per_h": self.spo2_artefacts_per_h,
            "dropouts_per_h": self.dropouts_per_h,
        }
        for name, value in rates.items():
            if not (math.isfinite(value) and value >= 0):
                raise DataError(f"must be a non-negative number, got {value}", column=name)
        _parse_start(self.start)

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
    spread_min = int(config.start_spread_h * 60)
    first = config.start_timestamp + pd.Timedelta(
        minutes=int(rng.integers(0, spread_min)) if spread_min > 0 else 0
    )
    midnight = first.normalize()
    hour = ((first - midnight).total_seconds() + np.arange(n, dtype=np.float64)) / 3600.0 % 24.0
    circadian = -np.cos(2.0 * np.pi * (hour - 4.0 - rng.uniform(-1.0, 1.0)) / 24.0)

    static = _draw_static(rng)
    series = _normal_series(rng, circadian, static["age"])
    events = _plan_events(rng, n, config) if with_events else []
    nuisances = _plan_nuisances(rng, n, events, circadian, config)

    label = np.zeros(n, dtype=np.int8)
    dropped = np.zeros(n, dtype=bool)
    for episode in (*events, *nuisances):
        _apply(series, episode, rng)
        if episode.labelled:
            label[episode.start : episode.stop] = episode.profile() >= LABEL_THRESHOLD
        if episode.kind == "dropout":
            dropped[episode.start : episode.stop] = True

    series["diastolic_bp"] = np.minimum(series["diastolic_bp"], series["systolic_bp"] - 10.0)
    periods = config.periods
    t = np.arange(n, dtype=np.int64)
    measured = {name: t % period == 0 for name, period in periods.items()}
    keep = np.logical_or.reduce(list(measured.values())) & ~dropped
    values: dict[str, FloatArray] = {}
    for name in SIMULATED_CHANNELS:
        low, high = _LIMITS[name]
        clean = np.round(np.clip(series[name], low, high), _DECIMALS[name])
        values[name] = np.where(measured[name], clean, np.nan)[keep]
    return _PatientRecord(
        patient_id=patient_id,
        first=first,
        seconds=t[keep],
        values=values,
        label=label[keep],
        static=static,
        events=tuple(events),
        nuisances=tuple(nuisances),
    )


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


def _normal_series(
    rng: np.random.Generator, circadian: FloatArray, age: float
) -> dict[str, FloatArray]:
    """Return the undisturbed 1 Hz series of every channel, each shape (n,).

    ``circadian`` (shape (n,), −1 at night to +1 in the afternoon) scales each channel's
    daily rhythm; the baselines, drifts and noise levels are those of the module docstring.
    """
    n = circadian.shape[0]
    sbp_base = 105.0 + 30.0 * (0.6 * (age - 20.0) / 70.0 + 0.4 * rng.random())
    dbp_base = min(rng.uniform(65.0, 85.0), sbp_base - 30.0)
    hr = (
        rng.uniform(60.0, 90.0)
        + rng.uniform(3.0, 7.0) * circadian
        + _ar1(rng, n, 1800.0, 5.0)
        + _ar1(rng, n, 120.0, 2.0)
        + _ar1(rng, n, 3.0, 1.0)
        + rng.normal(0.0, 0.3, n)
    )
    spo2 = rng.uniform(96.0, 99.0) + _ar1(rng, n, 1800.0, 0.6) + rng.normal(0.0, 0.4, n)
    rr = (
        rng.uniform(12.0, 18.0)
        + rng.uniform(0.5, 1.2) * circadian
        + _ar1(rng, n, 1800.0, 1.0)
        + rng.normal(0.0, 0.6, n)
    )
    temperature = (
        rng.uniform(36.4, 37.0)
        + rng.uniform(0.2, 0.4) * circadian
        + _ar1(rng, n, 3600.0, 0.08)
        + rng.normal(0.0, 0.05, n)
    )
    sbp = (
        sbp_base
        + rng.uniform(4.0, 8.0) * circadian
        + _ar1(rng, n, 1800.0, 4.0)
        + rng.normal(0.0, 3.0, n)
    )
    dbp = (
        dbp_base
        + rng.uniform(2.0, 5.0) * circadian
        + _ar1(rng, n, 1800.0, 2.5)
        + rng.normal(0.0, 2.0, n)
    )
    return {
        "heart_rate": hr,
        "spo2": spo2,
        "respiratory_rate": rr,
        "temperature": temperature,
        "systolic_bp": sbp,
        "diastolic_bp": dbp,
    }


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


def _plan_events(rng: np.random.Generator, n: int, config: SimulationConfig) -> list[_Episode]:
    """Choose, size and place the labelled events of one record of ``n`` seconds."""
    remaining = rng.uniform(*config.event_time_share) * n
    drawn: list[tuple[_EventKind, tuple[int, int, int]]] = []
    zero = np.zeros(3)
    while len(drawn) < config.max_events:
        used = {kind.name for kind, _ in drawn}
        feasible = [
            k
            for k in _EVENT_KINDS
            if k.labelled_s(zero, 0.0) <= remaining and not (k.once and k.name in used)
        ]
        if not feasible and drawn:
            break
        short_record = not feasible
        if short_record:
            feasible = [k for k in _EVENT_KINDS if not k.once]
        kind = feasible[int(rng.integers(len(feasible)))]
        u = rng.random(3)
        low, full = kind.labelled_s(u, 0.0), kind.labelled_s(u, 1.0)
        scale = 0.0 if short_record else min(1.0, (remaining - low) / max(full - low, 1e-9))
        durations = kind.durations(u, scale)
        drawn.append((kind, durations))
        remaining -= kind.labelled_s(u, scale)
    while drawn and sum(sum(d) for _, d in drawn) + (len(drawn) + 1) * _EVENT_GAP_S > n:
        drawn.pop()
    order = rng.permutation(len(drawn))
    free = n - sum(sum(d) for _, d in drawn) - (len(drawn) + 1) * _EVENT_GAP_S
    gaps = _EVENT_GAP_S + free * rng.dirichlet(np.ones(len(drawn) + 1))
    events: list[_Episode] = []
    position = 0.0
    for slot, index in enumerate(order):
        kind, (rise, hold, fall) = drawn[int(index)]
        position += gaps[slot]
        shift, level, jitter = _event_effects(kind.name, rng)
        start = int(position)
        events.append(_Episode(kind.name, start, rise, hold, fall, shift, level, jitter, True))
        position = start + rise + hold + fall
    return events


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


def table_format(out: str | Path) -> TableFormat:
    """Return the table format named by a path's suffix.

    Parameters
    ----------
    out : str or pathlib.Path
        Output path ending in ``.csv``, ``.parquet`` or ``.pq`` (any case).

    Returns
    -------
    {"csv", "parquet"}
        The format.

    Raises
    ------
    DataError
        For any other suffix.

    """
    suffix = Path(out).suffix.lower()
    if suffix not in _SUFFIX_FORMATS:
        raise DataError(
            f"unsupported output format {suffix or '(no suffix)'!r}: use .csv, .parquet or .pq",
            file=str(out),
        )
    return _SUFFIX_FORMATS[suffix]


def _write(frame: pd.DataFrame, path: Path, fmt: TableFormat) -> None:
    """Write a frame without its index to ``path`` in ``fmt``."""
    if fmt == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)


def write_table(frame: pd.DataFrame, out: str | Path) -> Path:
    """Write a frame atomically as CSV or Parquet, keeping its column names.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table, written without its index.
    out : str or pathlib.Path
        Destination; the suffix picks the format (``.csv``, ``.parquet``, ``.pq``).

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    DataError
        Unsupported suffix (nothing is written).

    """
    path = Path(out)
    fmt = table_format(path)
    with atomic_path(path) as tmp:
        _write(frame, tmp, fmt)
    return path


def _iso_utc(values: pd.Series) -> NDArray[np.str_]:
    """Format UTC timestamps as ISO-8601 text ending in ``Z``, shape (N,).

    Whole seconds are written without a fraction; otherwise the finest needed unit is used.
    """
    naive = values.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    ns = naive.astype(np.int64)
    unit: Literal["s", "ms", "us", "ns"] = "s"
    units: tuple[tuple[Literal["ms", "us", "ns"], int], ...] = (
        ("ms", 1_000_000),
        ("us", 1_000),
        ("ns", 1),
    )
    for candidate, size in units:
        if np.any(ns % (size * 1000) != 0):
            unit = candidate
    return np.asarray(np.datetime_as_string(naive, unit=unit, timezone="UTC"))


def events_path(out: str | Path) -> Path:
    """Return the events file that goes beside a readings file: ``<stem>.events.csv``."""
    path = Path(out)
    return path.with_name(f"{path.stem}.events.csv")


def write_cohort(
    readings: pd.DataFrame, events: pd.DataFrame, out: str | Path
) -> tuple[Path, Path]:
    """Write a simulated cohort: readings to ``out``, events to ``<stem>.events.csv`` beside it.

    Both files are written to temporary files first and renamed into place only when both
    are complete. Timestamps in CSV are ISO-8601 UTC (``2024-01-01T00:00:00Z``); channels
    not measured at an instant are empty cells.

    Parameters
    ----------
    readings : pandas.DataFrame
        Readings frame from :func:`simulate_cohort`, shape (R, 12).
    events : pandas.DataFrame
        Events table from :func:`simulate_cohort`.
    out : str or pathlib.Path
        Readings destination: ``.csv``, ``.parquet`` or ``.pq``.

    Returns
    -------
    tuple of pathlib.Path
        Paths of the readings file and of the events file.

    Raises
    ------
    DataError
        Unsupported suffix (nothing is written).

    """
    readings_out = Path(out)
    events_out = events_path(readings_out)
    fmt = table_format(readings_out)
    if fmt == "csv":
        readings = readings.assign(**{TIMESTAMP_COLUMN: _iso_utc(readings[TIMESTAMP_COLUMN])})
    events = events.assign(onset=_iso_utc(events["onset"]), end=_iso_utc(events["end"]))
    with atomic_path(readings_out) as readings_tmp, atomic_path(events_out) as events_tmp:
        _write(readings, readings_tmp, fmt)
        _write(events, events_tmp, "csv")
    return readings_out, events_out


def _check_rows(rows: int) -> int:
    """Return ``rows`` if it is a positive integer, else raise :class:`DataError`."""
    if isinstance(rows, bool) or not isinstance(rows, int | np.integer) or rows < 1:
        raise DataError(f"must be a positive integer, got {rows!r}", column="rows")
    return int(rows)


def _round_significant(values: FloatArray, digits: int = 10) -> FloatArray:
    """Round positive values to ``digits`` significant digits, shape kept."""
    scale = 10.0 ** (digits - 1 - np.floor(np.log10(values)))
    return np.asarray(np.round(values * scale) / scale, dtype=np.float64)


def _datetime_text(values: NDArray[np.datetime64]) -> NDArray[np.str_]:
    """Format naive datetimes as ``YYYY-MM-DD HH:MM:SS``, shape kept."""
    text = np.datetime_as_string(values.astype("datetime64[s]"), unit="s")
    return np.asarray(np.char.replace(text, "T", " "))


_VITALS2024_FIRST: Final = np.datetime64("2024-07-19T21:53:46", "s")


def simulate_vitals2024(rows: int, seed: int = 0) -> pd.DataFrame:
    """Simulate a table in the exact schema of the Human Vital Signs 2024 file.

    Reproduces the measured file (``datasets/README.md``): one row per patient, Patient ID
    1..rows, Timestamp from 2024-07-19 21:53:46 decreasing by 60 s per row, independent
    uniform columns (HR 60–99, RR 12–19, SBP 110–139, DBP 70–89 and age 18–89 integers;
    temperature 36.0–37.5, SpO2 95–100, weight 50–100 kg, height 1.50–2.00 m, Derived_HRV
    0.05–0.15), Gender Male/Female, pulse pressure = SBP − DBP, BMI = weight / height²,
    MAP = DBP + PP / 3, floats rounded to 10 significant digits like the file, and the
    file's label rule: ``High Risk`` iff HR > 90 or BMI > 30 or BMI < 18.5 (about 52.6 %).

    Parameters
    ----------
    rows : int
        Number of rows (e.g. 200,020 like the full file).
    seed : int
        Seed of the draws.

    Returns
    -------
    pandas.DataFrame
        Shape (rows, 17), columns :data:`VITALS2024_COLUMNS`, dtypes as ``pandas.read_csv``
        gives for the real file (int64, float64, str).

    """
    n = _check_rows(rows)
    rng = np.random.default_rng(seed)
    heart_rate = rng.integers(60, 100, n)
    respiratory_rate = rng.integers(12, 20, n)
    temperature = _round_significant(rng.uniform(36.0, 37.5, n))
    spo2 = _round_significant(rng.uniform(95.0, 100.0, n))
    systolic = rng.integers(110, 140, n)
    diastolic = rng.integers(70, 90, n)
    age = rng.integers(18, 90, n)
    gender = np.where(rng.random(n) < 0.5, "Male", "Female")
    weight = _round_significant(rng.uniform(50.0, 100.0, n))
    height = _round_significant(rng.uniform(1.5, 2.0, n))
    hrv = _round_significant(rng.uniform(0.05, 0.15, n))
    pulse_pressure = systolic - diastolic
    bmi = _round_significant(weight / height**2)
    mean_arterial = _round_significant(diastolic + pulse_pressure / 3.0)
    high = (heart_rate > 90) | (bmi > 30.0) | (bmi < 18.5)
    timestamps = _VITALS2024_FIRST - np.arange(n, dtype=np.int64) * np.timedelta64(60, "s")
    values = (
        np.arange(1, n + 1, dtype=np.int64),
        heart_rate,
        respiratory_rate,
        _datetime_text(timestamps),
        temperature,
        spo2,
        systolic,
        diastolic,
        age,
        gender,
        weight,
        height,
        hrv,
        pulse_pressure,
        bmi,
        mean_arterial,
        np.where(high, "High Risk", "Low Risk"),
    )
    return pd.DataFrame(dict(zip(VITALS2024_COLUMNS, values, strict=True)))


IOT_SENSOR_TYPES: Final = ("Temperature", "Blood Pressure", "Heart Rate", "Battery")
_IOT_FIRST: Final = np.datetime64("2024-01-01T00:00:00", "s")
_IOT_HOURS: Final = 200
_IOT_BP_PAIRS: Final = ((120, 80), (130, 80), (130, 85), (90, 60), (140, 90), (150, 95))
_IOT_BP_WEIGHTS: Final = (0.30, 0.20, 0.15, 0.10, 0.15, 0.10)
IOT_LABEL_NOISE: Final = 0.05
"""Share of IoT rows whose label is flipped after the rule."""


def simulate_iot(rows: int, seed: int = 0) -> pd.DataFrame:
    """Simulate a table in the exact schema of the Healthcare IoT file.

    Ranges and formats follow ``datasets/README.md`` and ``iot_schema_sample.csv``:
    Patient_ID uniform 1189–9958 (drawn with replacement, so mostly one row per patient at
    the file's 202 rows), Timestamp a random hour from 2024-01-01 00:00 to 2024-01-09 07:00
    (rows in random order, ``YYYY-MM-DD HH:MM:SS``), Sensor_ID 1–4 and Sensor_Type drawn
    independently, temperature 36.5–37.5 °C with one decimal, blood pressure as the cuff-style
    pairs of the sample (120/80, 130/80, 130/85, 90/60, 150/95, plus 140/90), HR 60–99,
    Device_Battery_Level 80–99, Battery_Level 80–100, Target_Blood_Pressure in
    {120, 130, 140, 150}, Target_Heart_Rate in {70, 80, 90}.

    The real file's label rule is unknown. This simulator uses: ``Unhealthy`` iff
    HR > Target_Heart_Rate + 10 or SBP > Target_Blood_Pressure + 10, then flips
    :data:`IOT_LABEL_NOISE` (5 %) of the labels at random; about 68 % of rows are
    ``Healthy``, close to the imbalance the seed's class weights 0.6 / 1.4 suggest.

    Parameters
    ----------
    rows : int
        Number of rows (202 in the real file).
    seed : int
        Seed of the draws.

    Returns
    -------
    pandas.DataFrame
        Shape (rows, 13), columns :data:`IOT_COLUMNS`; integers int64, temperature float64,
        text columns str.

    """
    n = _check_rows(rows)
    rng = np.random.default_rng(seed)
    hours = rng.integers(0, _IOT_HOURS, n)
    pairs = np.array(_IOT_BP_PAIRS, dtype=np.int64)[
        rng.choice(len(_IOT_BP_PAIRS), size=n, p=_IOT_BP_WEIGHTS)
    ]
    systolic, diastolic = pairs[:, 0], pairs[:, 1]
    heart_rate = rng.integers(60, 100, n)
    target_bp = rng.choice(np.array([120, 130, 140, 150], dtype=np.int64), size=n)
    target_hr = rng.choice(np.array([70, 80, 90], dtype=np.int64), size=n)
    unhealthy = (heart_rate > target_hr + 10) | (systolic > target_bp + 10)
    unhealthy ^= rng.random(n) < IOT_LABEL_NOISE
    values = (
        rng.integers(1189, 9959, n),
        _datetime_text(_IOT_FIRST + hours * np.timedelta64(3600, "s")),
        rng.integers(1, 5, n),
        np.array(IOT_SENSOR_TYPES)[rng.integers(0, len(IOT_SENSOR_TYPES), n)],
        np.round(rng.uniform(36.5, 37.5, n), 1),
        systolic,
        diastolic,
        heart_rate,
        rng.integers(80, 100, n),
        target_bp,
        target_hr,
        np.where(unhealthy, "Unhealthy", "Healthy"),
        rng.integers(80, 101, n),
    )
    return pd.DataFrame(dict(zip(IOT_COLUMNS, values, strict=True)))


__all__ = [
    "EVENT_COLUMNS",
    "EVENT_TYPES",
    "IOT_COLUMNS",
    "IOT_LABEL_NOISE",
    "IOT_SENSOR_TYPES",
    "LABEL_THRESHOLD",
    "VITALS2024_COLUMNS",
    "SimulationConfig",
    "events_path",
    "simulate_cohort",
    "simulate_iot",
    "simulate_vitals2024",
    "table_format",
    "write_cohort",
    "write_table",
]
