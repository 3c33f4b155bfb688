"""Channel facts every layer reads: the canonical channels and their default gap limits.

The channel table (:data:`CHANNELS`), how each channel is measured at the bedside and the
gap limits that follow from it (the policy itself: :mod:`vitalsentry.data.gaps`), and the
name of the stay time feature. It imports nothing of the project, so the configs
(:mod:`vitalsentry.config`) validate against it without importing ``data/``;
:mod:`vitalsentry.data.schema` and :mod:`vitalsentry.data.gaps` re-export these names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ChannelSpec:
    """Description of one canonical vital-sign channel.

    Attributes
    ----------
    name : str
        Canonical column name.
    unit : str
        UCUM unit of the stored values.
    low, high : float
        Plausible physiological range (inclusive); values outside are rejected.
    loinc : tuple of str
        LOINC codes that map to this channel.
    label : str
        Human-readable name.
    """

    name: str
    unit: str
    low: float
    high: float
    loinc: tuple[str, ...]
    label: str


CHANNELS: dict[str, ChannelSpec] = {
    spec.name: spec
    for spec in (
        ChannelSpec("heart_rate", "/min", 20.0, 300.0, ("8867-4",), "heart rate"),
        ChannelSpec("spo2", "%", 50.0, 100.0, ("2708-6", "59408-5"), "SpO2"),
        ChannelSpec("respiratory_rate", "/min", 2.0, 80.0, ("9279-1",), "respiratory rate"),
        ChannelSpec("temperature", "Cel", 30.0, 45.0, ("8310-5",), "body temperature"),
        ChannelSpec("systolic_bp", "mm[Hg]", 40.0, 300.0, ("8480-6",), "systolic blood pressure"),
        ChannelSpec("diastolic_bp", "mm[Hg]", 20.0, 200.0, ("8462-4",), "diastolic blood pressure"),
        ChannelSpec("map", "mm[Hg]", 20.0, 250.0, ("8478-0",), "mean arterial pressure"),
        ChannelSpec("etco2", "mm[Hg]", 5.0, 100.0, ("19889-5",), "end-tidal CO2"),
    )
}
"""Canonical channels in their canonical order."""


STAY_FEATURE = "stay_log_hours"
"""Time feature of ``time_features="stay"``: ``log1p`` of hours since the series' first reading."""


@dataclass(frozen=True)
class GapLimits:
    """Gap limits of one channel (seconds).

    Attributes
    ----------
    interpolate_s : float
        Longest gap between two readings bridged by linear interpolation.
    carry_s : float
        How long a reading is carried forward past a longer gap or the last reading.
    """

    interpolate_s: float
    carry_s: float


MEASUREMENT: dict[str, str] = {
    "heart_rate": "continuous",
    "spo2": "continuous",
    "respiratory_rate": "continuous",
    "etco2": "continuous",
    "systolic_bp": "cuff",
    "diastolic_bp": "cuff",
    "map": "cuff",
    "temperature": "spot check",
}
"""How each channel is measured at the bedside (channels not listed count as continuous).

``map`` and ``etco2`` are listed for the readers that provide them (PhysioNet 2019)."""

DEFAULT_LIMITS: dict[str, GapLimits] = {
    "continuous": GapLimits(interpolate_s=300.0, carry_s=0.0),
    "cuff": GapLimits(interpolate_s=5400.0, carry_s=3600.0),
    "spot check": GapLimits(interpolate_s=21600.0, carry_s=14400.0),
}
"""Default limits per kind of measurement.

Continuous: a monitor drop-out up to 5 min is interpolated; a longer one means the sensor
is off, and nothing is carried (the seed's behaviour, unchanged).
Cuff (NIBP, cycled every 15-60 min): up to 90 min interpolated, carried for 1 h.
Spot check (temperature every 4-6 h): up to 6 h interpolated, carried for 4 h."""


def default_limits(channel: str, continuous_interpolate_s: float, step_s: float) -> GapLimits:
    """Default gap limits of a channel.

    Parameters
    ----------
    channel : str
        Canonical channel name.
    continuous_interpolate_s : float
        Interpolation limit of continuous channels (``DataConfig.max_gap_s``, ``--max-gap``).
    step_s : float
        Grid step; the interpolation limit is at least two steps.

    Returns
    -------
    GapLimits
        The limits of the channel's kind of measurement.
    """
    kind = MEASUREMENT.get(channel, "continuous")
    limits = DEFAULT_LIMITS[kind]
    interp = continuous_interpolate_s if kind == "continuous" else limits.interpolate_s
    return GapLimits(max(interp, 2.0 * step_s), limits.carry_s)


def resolve_limits(
    channels: Sequence[str],
    overrides: Mapping[str, tuple[float, float | None]],
    continuous_interpolate_s: float,
    step_s: float,
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel (interpolate_s, carry_s) tuples: overrides (as parsed) over the defaults."""
    interp, carry = [], []
    for channel in channels:
        base = default_limits(channel, continuous_interpolate_s, step_s)
        given = overrides.get(channel)
        interp.append(base.interpolate_s if given is None else given[0])
        carry.append(base.carry_s if given is None or given[1] is None else given[1])
    return tuple(interp), tuple(carry)
