"""Gap policy per channel: interpolate up to a limit, then carry forward, then missing.

Vital signs are measured at very different rates at the bedside. A monitor streams heart
rate, SpO2, respiratory rate and EtCO2 every second; a non-invasive blood-pressure cuff
cycles every 15-60 minutes; temperature is a spot check every few hours. One gap limit
for all of them either bridges minutes-long monitor drop-outs or leaves blood pressure
missing between two cuff readings. Each channel therefore has its own two limits:

- ``interpolate_s``: a gap between two readings up to this long is bridged by linear
  interpolation;
- ``carry_s``: after a reading that is not followed within ``interpolate_s`` (a longer gap,
  or the last reading), its value is carried forward for this long, then the channel is
  missing.

A default interpolation limit is never shorter than two grid steps, so one missed sample
is always bridged (hourly data with a missing hour stays usable with the defaults).

Labs (hours to days apart) are context columns of the readers, not gridded channels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from vitalsentry.errors import VitalSentryError


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


def duration_s(text: str, what: str) -> float:
    """Parse a duration: seconds (``"300"``) or with a unit (``"30min"``, ``"2h"``, ``"90s"``).

    Raises
    ------
    VitalSentryError
        Not a duration, or negative; the message names ``what``.
    """
    try:
        seconds = float(text)
    except ValueError:
        try:
            seconds = pd.Timedelta(text.strip()).total_seconds()
        except ValueError:
            raise VitalSentryError(
                f"{what}: {text!r} is not a duration (e.g. 300, 90s, 30min, 2h)"
            ) from None
    if not seconds >= 0:
        raise VitalSentryError(f"{what}: a duration must be ≥ 0, got {text!r}")
    return seconds


def parse_gap_options(
    options: Sequence[str], channels: Sequence[str]
) -> dict[str, tuple[float, float | None]]:
    """Parse ``--gap CHANNEL=INTERPOLATE[:CARRY]`` options (``all=`` for every channel).

    Parameters
    ----------
    options : sequence of str
        Option values, e.g. ``["systolic_bp=2h:1h", "temperature=8h"]``.
    channels : sequence of str
        The channels being prepared.

    Returns
    -------
    dict of str to (float, float or None)
        Channel → (interpolate_s, carry_s or None to keep its default); later options win.

    Raises
    ------
    VitalSentryError
        A malformed option or a channel not among ``channels``.
    """
    out: dict[str, tuple[float, float | None]] = {}
    for option in options:
        name, sep, value = option.partition("=")
        name = name.strip()
        if not sep or not value:
            raise VitalSentryError(f"--gap: expected CHANNEL=INTERPOLATE[:CARRY], got {option!r}")
        if name != "all" and name not in channels:
            raise VitalSentryError(
                f"--gap: {name!r} is not a prepared channel ({', '.join(channels)}, or all)"
            )
        interp, _, carry = value.partition(":")
        limits = (
            duration_s(interp, f"--gap {name}"),
            duration_s(carry, f"--gap {name}") if carry else None,
        )
        for channel in channels if name == "all" else (name,):
            out[channel] = limits
    return out


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


def describe_limits(
    channels: Sequence[str], interpolate_s: Sequence[float], carry_s: Sequence[float]
) -> str:
    """Say the gap policy in words, one clause per channel.

    E.g. ``"heart_rate: gaps ≤ 300 s interpolated; systolic_bp: gaps ≤ 5400 s
    interpolated, then carried 3600 s"``.
    """
    return "; ".join(
        f"{c}: gaps ≤ {i:g} s interpolated" + (f", then carried {k:g} s" if k else "")
        for c, i, k in zip(channels, interpolate_s, carry_s, strict=True)
    )
