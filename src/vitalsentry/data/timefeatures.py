"""Cyclical time features: sin/cos of the hour of day (and optionally the day of week).

All times are seconds since the Unix epoch in UTC. The hour pair is computed on a 0–24
scale from the fractional hour, so 23:59 and 00:01 are close; the day-of-week pair uses the
integer weekday with Monday = 0 (1970-01-01 was a Thursday, weekday 3).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from vitalsentry.errors import DataError

SECONDS_PER_DAY = 86_400.0
"""Seconds in a (UTC, leap-second-free) day."""

_EPOCH_WEEKDAY = 3
"""Weekday of 1970-01-01 (Thursday) with Monday = 0."""


def _as_epoch_array(epoch_s: ArrayLike) -> NDArray[np.float64]:
    """Return ``epoch_s`` as a float64 array, refusing non-finite times."""
    t = np.asarray(epoch_s, dtype=np.float64)
    if not np.isfinite(t).all():
        raise DataError("timestamps must be finite seconds since the Unix epoch")
    return t


def _sin_cos(angle: NDArray[np.float64]) -> NDArray[np.float32]:
    """Stack ``sin`` and ``cos`` of ``angle`` on a new first axis, as float32."""
    return np.stack([np.sin(angle), np.cos(angle)]).astype(np.float32)


def hour_features(epoch_s: ArrayLike) -> NDArray[np.float32]:
    """Encode the fractional UTC hour of day as a sin/cos pair.

    Parameters
    ----------
    epoch_s : array_like, shape (T,)
        Seconds since the Unix epoch (UTC). A scalar gives one pair.

    Returns
    -------
    numpy.ndarray, shape (2, T), float32
        ``[sin(2π h / 24), cos(2π h / 24)]`` with ``h = (epoch_s mod 86400) / 3600``.

    Raises
    ------
    DataError
        A time is NaN or infinite.

    """
    t = _as_epoch_array(epoch_s)
    return _sin_cos(2.0 * np.pi * np.mod(t, SECONDS_PER_DAY) / SECONDS_PER_DAY)


def day_of_week_features(epoch_s: ArrayLike) -> NDArray[np.float32]:
    """Encode the integer UTC day of week (Monday = 0) as a sin/cos pair.

    Parameters
    ----------
    epoch_s : array_like, shape (T,)
        Seconds since the Unix epoch (UTC). A scalar gives one pair.

    Returns
    -------
    numpy.ndarray, shape (2, T), float32
        ``[sin(2π d / 7), cos(2π d / 7)]`` with ``d`` the weekday, 0 (Monday) to 6.

    Raises
    ------
    DataError
        A time is NaN or infinite.

    """
    t = _as_epoch_array(epoch_s)
    day = np.mod(np.floor(t / SECONDS_PER_DAY) + _EPOCH_WEEKDAY, 7.0)
    return _sin_cos(2.0 * np.pi * day / 7.0)


def time_features(epoch_s: ArrayLike, *, day_of_week: bool = False) -> NDArray[np.float32]:
    """Stack the hour pair and, optionally, the day-of-week pair.

    Parameters
    ----------
    epoch_s : array_like, shape (T,)
        Seconds since the Unix epoch (UTC). A scalar gives one feature vector.
    day_of_week : bool, default False
        Append ``dow_sin, dow_cos`` after ``hour_sin, hour_cos``.

    Returns
    -------
    numpy.ndarray, shape (K, T), float32
        ``K = 2`` (hour) or ``K = 4`` (hour then day of week), in the order of
        :data:`vitalsentry.data.schema.TIME_FEATURES`.

    """
    parts = [hour_features(epoch_s)]
    if day_of_week:
        parts.append(day_of_week_features(epoch_s))
    return np.concatenate(parts, axis=0)


def grid_time_features(
    start_s: float, step_s: float, n_steps: int, *, day_of_week: bool = False
) -> NDArray[np.float32]:
    """Time features of the regular grid ``start_s + k * step_s``, ``k < n_steps``.

    The features repeat every day (every week with ``day_of_week``). When that period is a
    whole number of steps, one period is computed and repeated, which is exact up to the
    float64 rounding of the grid times and several times faster on long grids; otherwise
    every step is computed.

    Parameters
    ----------
    start_s : float
        First grid time, seconds since the Unix epoch (UTC).
    step_s : float
        Grid step in seconds (> 0).
    n_steps : int
        Number of grid steps ``T``.
    day_of_week : bool, default False
        Append the day-of-week pair.

    Returns
    -------
    numpy.ndarray, shape (K, T), float32
        As :func:`time_features` of the grid times (possibly a view of a larger array).

    """
    period = (7.0 if day_of_week else 1.0) * SECONDS_PER_DAY / step_s
    n = int(period) if period.is_integer() and period < n_steps else n_steps
    table = time_features(
        start_s + np.arange(n, dtype=np.float64) * step_s, day_of_week=day_of_week
    )
    if n == n_steps:
        return table
    repeats = -(-n_steps // n)
    out = np.empty((table.shape[0], repeats, n), np.float32)
    out[:] = table[:, None, :]
    return out.reshape(table.shape[0], repeats * n)[:, :n_steps]


def epoch_seconds(ts: pd.Series | pd.DatetimeIndex | pd.Timestamp) -> NDArray[np.float64]:
    """Convert timestamps to float seconds since the Unix epoch (UTC).

    Parameters
    ----------
    ts : pandas.Series, pandas.DatetimeIndex or pandas.Timestamp
        Datetimes, tz-aware (converted to UTC) or naive (taken as UTC).

    Returns
    -------
    numpy.ndarray, shape (T,) or () for a scalar, float64
        Seconds since 1970-01-01T00:00:00Z (nanosecond precision before rounding to float).

    Raises
    ------
    DataError
        The values are not datetimes, or one is missing (NaT).

    """
    if isinstance(ts, pd.Timestamp):
        return epoch_seconds(pd.DatetimeIndex([ts])).reshape(())
    if not isinstance(ts, pd.DatetimeIndex):
        if not isinstance(ts, pd.Series) or not pd.api.types.is_datetime64_any_dtype(ts.dtype):
            raise DataError(f"expected datetimes, got {getattr(ts, 'dtype', type(ts).__name__)}")
        ts = pd.DatetimeIndex(ts)
    if ts.hasnans:
        raise DataError("missing timestamp (NaT)")
    utc = ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")
    return nanos_to_seconds(utc.as_unit("ns").asi8)


def nanos_to_seconds(nanos: NDArray[np.int64]) -> NDArray[np.float64]:
    """Convert integer nanoseconds since the Unix epoch to float seconds, as :func:`epoch_seconds`."""
    return np.asarray(nanos // 1_000_000_000, dtype=np.float64) + (nanos % 1_000_000_000) * 1e-9


def time_features_for_timestamps(
    ts: pd.Series | pd.DatetimeIndex | pd.Timestamp, *, day_of_week: bool = False
) -> NDArray[np.float32]:
    """Time features of pandas timestamps (per timestep, or one vector per timestamp).

    Parameters
    ----------
    ts : pandas.Series, pandas.DatetimeIndex or pandas.Timestamp
        Datetimes, tz-aware (converted to UTC) or naive (taken as UTC).
    day_of_week : bool, default False
        Append the day-of-week pair.

    Returns
    -------
    numpy.ndarray, float32
        Shape (K, T) for a series or index of T timestamps, (K,) for one
        :class:`pandas.Timestamp` (per-window encoding); ``K`` is 2 or 4.

    """
    return time_features(epoch_seconds(ts), day_of_week=day_of_week)


def stay_features(epoch_s: ArrayLike, origin_s: float) -> NDArray[np.float32]:
    """Encode time since the series' first reading: ``log1p`` of hours, shape (1, T).

    Parameters
    ----------
    epoch_s : array_like, shape (T,)
        Times in seconds (any origin: no wall clock is needed).
    origin_s : float
        Time of the series' first reading (the stay's start, in the same units).

    Returns
    -------
    numpy.ndarray, shape (1, T), float32
        ``log1p(max(epoch_s - origin_s, 0) / 3600)``: 0 at the start, about 3.2 after a
        day, 5.8 after two weeks (bounded enough to pass unscaled).
    """
    hours = np.maximum(_as_epoch_array(epoch_s) - origin_s, 0.0) / 3600.0
    return np.log1p(hours)[None, :].astype(np.float32)


def series_time_features(
    mode: str, epoch_s: ArrayLike, origin_s: float, *, day_of_week: bool = False
) -> NDArray[np.float32]:
    """Time features of one series by mode: ``clock``, ``stay`` or ``none``.

    Parameters
    ----------
    mode : str
        ``clock`` (:func:`time_features`), ``stay`` (:func:`stay_features`) or ``none``.
    epoch_s : array_like, shape (T,)
        Times in seconds since the Unix epoch (UTC).
    origin_s : float
        Time of the series' first reading (``stay`` only).
    day_of_week : bool, default False
        ``clock`` only: append the day-of-week pair.

    Returns
    -------
    numpy.ndarray, shape (K, T), float32
        ``K`` = 2 or 4 (clock), 1 (stay) or 0 (none).
    """
    if mode == "clock":
        return time_features(epoch_s, day_of_week=day_of_week)
    if mode == "stay":
        return stay_features(epoch_s, origin_s)
    if mode == "none":
        return np.empty((0, np.size(epoch_s)), np.float32)
    raise DataError(f"unknown time features {mode!r} (clock, stay or none)")
