"""Series grid: readings resampled to a fixed step, channel by channel, with a validity mask.

Each channel is linearly interpolated over its own observations only, so multi-rate exports
(heart rate each second, SpO2 each minute, blood pressure each half hour) keep every
channel at its own rate until the grid. Gaps longer than the channel's ``max_gap_s`` are
not interpolated: the reading before them is carried forward for ``carry_s``, then the
grid points are NaN and masked out (the gap policy of
:mod:`vitalsentry.data.gaps`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from vitalsentry.data.schema import LABEL_COLUMN, TIMESTAMP_COLUMN
from vitalsentry.data.timefeatures import epoch_seconds
from vitalsentry.errors import DataError

TIME_TOLERANCE_S = 1e-6
"""Grid points this close (seconds) to a reading count as lying on it.

Absorbs float rounding of ``start_s + k * step_s`` at epoch magnitudes (about 2e-7 s).
"""


@dataclass(frozen=True, eq=False)
class SeriesGrid:
    """One patient's (or stream's) readings on a fixed time grid.

    Attributes
    ----------
    key : str
        Patient id or stream name.
    start_s : float
        Time of the first grid step, seconds since the Unix epoch (UTC).
    step_s : float
        Grid step in seconds.
    values : numpy.ndarray, shape (C, T), float64
        Channel values, NaN where masked.
    mask : numpy.ndarray, shape (C, T), bool
        True where the value was observed, interpolated across a gap ≤ ``max_gap_s`` or
        carried forward ≤ ``carry_s``.
    labels : numpy.ndarray, shape (T,), int8
        Label of the latest labelled reading at or before each step; -1 = unknown.
    age_s : numpy.ndarray, shape (C, T), float64, or None
        Seconds since each channel's latest reading at or before each step (inf before
        its first); None unless asked for.
    origin_s : float or None
        Time of the series' first reading when the grid is a later part of the series
        (``stay`` time features count from it); None: ``start_s``.

    """

    key: str
    start_s: float
    step_s: float
    values: NDArray[np.float64]
    mask: NDArray[np.bool_]
    labels: NDArray[np.int8]
    age_s: NDArray[np.float64] | None = None
    origin_s: float | None = None

    def __post_init__(self) -> None:
        n = self.values.shape[-1]
        if (
            self.values.ndim != 2
            or self.mask.shape != self.values.shape
            or self.labels.shape != (n,)
        ):
            raise DataError(
                f"{self.key}: inconsistent grid shapes values {self.values.shape}, "
                f"mask {self.mask.shape}, labels {self.labels.shape}"
            )

    @property
    def n_steps(self) -> int:
        """Number of grid steps ``T``."""
        return int(self.values.shape[1])

    @property
    def first_s(self) -> float:
        """Time of the series' first reading (``origin_s``, else ``start_s``)."""
        return self.start_s if self.origin_s is None else self.origin_s

    @property
    def epoch_s(self) -> NDArray[np.float64]:
        """Times of the grid steps, shape (T,), seconds since the Unix epoch."""
        return self.start_s + np.arange(self.n_steps, dtype=np.float64) * self.step_s


def _per_channel(
    limit: float | Sequence[float], n: int, name: str, key: str
) -> NDArray[np.float64]:
    """Return a scalar or per-channel gap limit as a (C,) array (finite, ≥ 0, else raise)."""
    given = np.asarray(limit, dtype=np.float64)
    if given.shape not in ((), (n,)) or not (np.isfinite(given).all() and (given >= 0).all()):
        raise DataError(
            f"{key}: {name} must be finite numbers ≥ 0, one or one per channel ({n}), got {limit}"
        )
    return np.broadcast_to(given, (n,))


def _check_inputs(
    epoch_s: NDArray[np.float64],
    values: NDArray[np.float64],
    labels: NDArray[np.generic] | None,
    step_s: float,
    key: str,
) -> None:
    """Raise :class:`DataError` (naming ``key``) for malformed :func:`grid_series` inputs."""
    if not (np.isfinite(step_s) and step_s > 0):
        raise DataError(f"{key}: step_s must be a finite number > 0, got {step_s}")
    if epoch_s.ndim != 1 or epoch_s.size == 0:
        raise DataError(
            f"{key}: reading times must be a non-empty 1-D array, got shape {epoch_s.shape}"
        )
    if not np.isfinite(epoch_s).all():
        raise DataError(f"{key}: reading times must be finite")
    steps = np.diff(epoch_s)
    if (steps <= 0).any():
        i = int(np.flatnonzero(steps <= 0)[0]) + 1
        raise DataError(
            f"{key}: reading times must be strictly increasing "
            f"(reading {i + 1} at {epoch_s[i]:.6f} s follows {epoch_s[i - 1]:.6f} s)"
        )
    if values.ndim != 2 or values.shape[1] != epoch_s.size:
        raise DataError(
            f"{key}: values must have shape (channels, {epoch_s.size}), got {values.shape}"
        )
    if np.isinf(values).any():
        raise DataError(f"{key}: values must be finite or NaN (missing), found an infinite value")
    if labels is not None:
        if labels.shape != epoch_s.shape:
            raise DataError(f"{key}: labels must have shape ({epoch_s.size},), got {labels.shape}")
        if not ((labels == -1) | (labels == 0) | (labels == 1)).all():
            raise DataError(f"{key}: labels must be 0, 1 or -1 (unknown)")


def _first_step(
    t: NDArray[np.float64], start_s: float, step_s: float, n_steps: int, *, strictly_after: bool
) -> NDArray[np.int64]:
    """Index of the first grid step at (or strictly after) each time, clipped to [0, T].

    Steps within :data:`TIME_TOLERANCE_S` of a time count as lying on it; ``t`` may hold
    ±inf (giving 0 or ``n_steps``).
    """
    u = (t - start_s) / step_s
    eps = TIME_TOLERANCE_S / step_s
    k = np.floor(u + eps) + 1 if strictly_after else np.ceil(u - eps)
    return np.asarray(np.clip(k, 0, n_steps), dtype=np.int64)


def _grid_channel(
    obs_t: NDArray[np.float64],
    obs_v: NDArray[np.float64],
    grid_t: NDArray[np.float64],
    step_s: float,
    limits: tuple[float, float],
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Put one channel on the grid by its gap policy and say which grid points are valid.

    Parameters
    ----------
    obs_t, obs_v : numpy.ndarray, shape (m,)
        Times (strictly increasing) and values of the channel's observations, m ≥ 1.
    grid_t : numpy.ndarray, shape (T,)
        Grid times ``grid_t[0] + k * step_s``.
    step_s : float
        Grid step.
    limits : (float, float)
        ``max_gap_s``, the longest gap between two observations that is interpolated, and
        ``carry_s``, how long the observation before a longer gap (or the last one) is
        carried forward.

    Returns
    -------
    values : numpy.ndarray, shape (T,), float64
        Interpolated or carried values, NaN where invalid.
    valid : numpy.ndarray, shape (T,), bool
        False before the first observation and where neither interpolation nor carrying
        forward reaches (all within :data:`TIME_TOLERANCE_S`).

    """
    max_gap_s, carry_s = limits
    n = grid_t.size
    start_s = float(grid_t[0])
    long_gap = np.flatnonzero(np.diff(obs_t) > max_gap_s)
    # Invalid intervals: (-inf, first), every long gap, (last, +inf); marked with a
    # difference array so the cost is O(T + gaps) whatever the number of gaps.
    left = np.concatenate([[-np.inf], obs_t[long_gap], obs_t[-1:]])
    right = np.concatenate([obs_t[:1], obs_t[long_gap + 1], [np.inf]])
    lo = _first_step(left, start_s, step_s, n, strictly_after=True)
    hi = np.maximum(_first_step(right, start_s, step_s, n, strictly_after=False), lo)
    delta = np.bincount(lo, minlength=n + 1) - np.bincount(hi, minlength=n + 1)
    valid = np.cumsum(delta[:n]) == 0
    out = np.interp(grid_t, obs_t, obs_v)
    if carry_s > 0:
        gap = np.flatnonzero(~valid)
        latest, age = _latest(obs_t, grid_t[gap])
        carried = age <= carry_s + TIME_TOLERANCE_S
        out[gap[carried]] = obs_v[latest[carried]]
        valid[gap[carried]] = True
    out[~valid] = np.nan
    return out, valid


def _latest(
    obs_t: NDArray[np.float64], t: NDArray[np.float64]
) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """Index of the latest observation at or before each time, and its age (inf: none yet)."""
    latest = np.searchsorted(obs_t, t + TIME_TOLERANCE_S, side="right") - 1
    age = np.where(latest >= 0, t - obs_t[np.maximum(latest, 0)], np.inf)
    return latest, age


def _forward_fill_labels(
    epoch_s: NDArray[np.float64],
    labels: NDArray[np.int8] | None,
    start_s: float,
    step_s: float,
    n_steps: int,
) -> NDArray[np.int8]:
    """Give each grid step the label of the latest labelled reading at or before it."""
    out = np.full(n_steps, -1, dtype=np.int8)
    if labels is None:
        return out
    known = labels >= 0
    known_t, known_v = epoch_s[known], labels[known]
    if known_v.size == 0:
        return out
    change = np.concatenate([[True], known_v[1:] != known_v[:-1]])
    begin = _first_step(known_t[change], start_s, step_s, n_steps, strictly_after=False)
    out[begin[0] :] = np.repeat(known_v[change], np.diff(np.append(begin, n_steps)))
    return out


def grid_series(
    epoch_s: ArrayLike,
    values: ArrayLike,
    labels: ArrayLike | None,
    *,
    step_s: float,
    max_gap_s: float | Sequence[float],
    key: str,
    carry_s: float | Sequence[float] = 0.0,
    with_age: bool = False,
) -> SeriesGrid:
    """Resample one series of multi-channel readings onto a fixed grid.

    Parameters
    ----------
    epoch_s : array_like, shape (n,)
        Reading times, seconds since the Unix epoch, strictly increasing.
    values : array_like, shape (C, n)
        Channel values; NaN = channel not measured at that reading.
    labels : array_like, shape (n,), or None
        Reading labels (0 normal, 1 abnormal, -1 unknown), or None for none.
    step_s : float
        Grid step in seconds (> 0).
    max_gap_s : float or sequence of float
        Longest gap (seconds) between two observations of a channel that is bridged by
        linear interpolation; one for all channels or one per channel.
    key : str
        Patient id or stream name (kept on the grid and named in errors).
    carry_s : float or sequence of float, default 0
        How long (seconds) the observation before a longer gap, or the last one, is
        carried forward (0: not at all). One for all channels or one per channel.
    with_age : bool, default False
        Also return each channel's time since its latest reading (``SeriesGrid.age_s``).

    Returns
    -------
    SeriesGrid
        Grid steps ``epoch_s[0] + k * step_s`` up to the last reading. Each channel is
        interpolated over its own observations with :func:`numpy.interp` across gaps up to
        ``max_gap_s``, carried forward ``carry_s`` past longer gaps and its last
        observation, and NaN with ``mask`` False elsewhere (before its first observation).

    Raises
    ------
    DataError
        Times not strictly increasing or not finite, shapes that disagree, infinite values,
        labels other than -1/0/1, or a non-positive step; the reason names ``key``.

    """
    t = np.asarray(epoch_s, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    lab = None if labels is None else np.asarray(labels)
    _check_inputs(t, v, lab, step_s, key)
    gaps = _per_channel(max_gap_s, v.shape[0], "max_gap_s", key)
    carry = _per_channel(carry_s, v.shape[0], "carry_s", key)
    span = float(t[-1] - t[0])
    n_steps = int(np.floor((span + TIME_TOLERANCE_S) / step_s)) + 1
    grid_t = t[0] + np.arange(n_steps, dtype=np.float64) * step_s
    grid_values = np.full((v.shape[0], n_steps), np.nan)
    mask = np.zeros((v.shape[0], n_steps), dtype=bool)
    age = np.full((v.shape[0], n_steps), np.inf) if with_age else None
    for c in range(v.shape[0]):
        observed = ~np.isnan(v[c])
        if observed.any():
            grid_values[c], mask[c] = _grid_channel(
                t[observed], v[c, observed], grid_t, step_s, (float(gaps[c]), float(carry[c]))
            )
            if age is not None:
                age[c] = _latest(t[observed], grid_t)[1]
    grid_labels = _forward_fill_labels(
        t, None if lab is None else lab.astype(np.int8), float(t[0]), step_s, n_steps
    )
    return SeriesGrid(
        key=key,
        start_s=float(t[0]),
        step_s=float(step_s),
        values=grid_values,
        mask=mask,
        labels=grid_labels,
        age_s=age,
        origin_s=float(t[0]),
    )


def grid_frame(
    frame: pd.DataFrame,
    channels: Sequence[str],
    *,
    step_s: float,
    max_gap_s: float | Sequence[float],
    key_column: str = "patient_id",
    carry_s: float | Sequence[float] = 0.0,
    with_age: bool = False,
) -> list[SeriesGrid]:
    """Grid every key (patient or stream) of a readings frame.

    Parameters
    ----------
    frame : pandas.DataFrame
        Readings frame (``key_column``, ``timestamp`` tz-aware UTC, channel columns,
        optional ``label``), sorted by key then timestamp.
    channels : sequence of str
        Channel columns to grid, in the order of the grid's rows.
    step_s, max_gap_s, carry_s, with_age
        As in :func:`grid_series`.
    key_column : str, default "patient_id"
        Column holding the key.

    Returns
    -------
    list of SeriesGrid
        One grid per key, in sorted key order.

    Raises
    ------
    DataError
        A required column or channel is missing, a key is missing, or a key's readings
        are not strictly increasing in time (see :func:`grid_series`).

    """
    if not channels:
        raise DataError("no channel to grid")
    if frame.empty:
        raise DataError("no readings to grid")
    for col in (key_column, TIMESTAMP_COLUMN, *channels):
        if col not in frame.columns:
            raise DataError("column not in the readings frame", column=col)
    codes, uniques = pd.factorize(frame[key_column], sort=True)
    if (codes < 0).any():
        raise DataError("missing key", column=key_column, row=int(np.flatnonzero(codes < 0)[0]) + 1)
    order = None if (np.diff(codes) >= 0).all() else np.argsort(codes, kind="stable")
    times = epoch_seconds(frame[TIMESTAMP_COLUMN])
    values = frame[list(channels)].to_numpy(dtype=np.float64, na_value=np.nan).T
    labels = None
    if LABEL_COLUMN in frame.columns:
        raw = frame[LABEL_COLUMN].to_numpy(dtype=np.float64, na_value=np.nan)
        labels = np.where(np.isnan(raw), -1, raw)
    if order is not None:
        codes, times, values = codes[order], times[order], values[:, order]
        labels = None if labels is None else labels[order]
    bounds = np.flatnonzero(np.diff(codes)) + 1
    starts = np.concatenate([[0], bounds])
    stops = np.concatenate([bounds, [codes.size]])
    return [
        grid_series(
            times[a:b],
            values[:, a:b],
            None if labels is None else labels[a:b],
            step_s=step_s,
            max_gap_s=max_gap_s,
            key=str(uniques[codes[a]]),
            carry_s=carry_s,
            with_age=with_age,
        )
        for a, b in zip(starts, stops, strict=True)
    ]
