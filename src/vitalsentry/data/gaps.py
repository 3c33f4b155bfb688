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

Labs (hours to days apart) are context columns of the readers, not gridded channels. The
default limits of each channel (``default_limits``, ``resolve_limits``) live in
:mod:`vitalsentry.channels`, where the configs read them.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from vitalsentry.channels import default_limits as default_limits
from vitalsentry.channels import resolve_limits as resolve_limits
from vitalsentry.errors import VitalSentryError


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
