"""Causal hourly inputs: every patient-hour sees only its own stay up to that hour.

All functions work on a whole cohort at once (rows grouped by patient, in time order),
with array operations only: no Python loop over rows or patients.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from vitalsentry.errors import DataError

FloatArray = NDArray[np.float32]
IntArray = NDArray[np.intp]

ROLL_STATS: tuple[str, ...] = ("mean", "min", "max", "std")
"""Rolling statistics of each vital over the last hours (observed values only)."""


@dataclass(frozen=True)
class Cohort:
    """Hourly rows of ICU stays, grouped by patient and in time order.

    Attributes
    ----------
    patient : ndarray of str, shape (n,)
        Patient of each row; each patient's rows are contiguous.
    vitals : ndarray of float32, shape (n, V)
        Vital channels (NaN = not measured that hour).
    vital_names : tuple of str
        Names of the ``V`` vitals.
    context : ndarray of float32, shape (n, K)
        Labs, demographics and stay time (NaN = not measured).
    context_names : tuple of str
        Names of the ``K`` context columns.
    label : ndarray of int8, shape (n,)
        ``SepsisLabel``.
    """

    patient: NDArray[np.str_]
    vitals: FloatArray
    vital_names: tuple[str, ...]
    context: FloatArray
    context_names: tuple[str, ...]
    label: NDArray[np.int8]

    def __post_init__(self) -> None:
        n = self.patient.shape[0]
        if n == 0:
            raise DataError("no patient-hours")
        if self.vitals.shape != (n, len(self.vital_names)):
            raise DataError(f"vitals: expected shape ({n}, {len(self.vital_names)})")
        if self.context.shape != (n, len(self.context_names)):
            raise DataError(f"context: expected shape ({n}, {len(self.context_names)})")
        if self.label.shape != (n,):
            raise DataError(f"label: expected shape ({n},)")

    def __len__(self) -> int:
        return int(self.patient.shape[0])

    @property
    def starts(self) -> IntArray:
        """(n,) index of the first row of each row's stay."""
        change = np.r_[True, self.patient[1:] != self.patient[:-1]]
        return np.maximum.accumulate(np.where(change, np.arange(len(self)), 0)).astype(np.intp)

    @property
    def hour(self) -> IntArray:
        """(n,) hours since the stay's first row (0-based)."""
        return np.arange(len(self), dtype=np.intp) - self.starts

    def part(self, lo: int, hi: int) -> Cohort:
        """Return rows ``lo:hi`` (views, no copy); whole stays when cut between stays."""
        return Cohort(
            self.patient[lo:hi],
            self.vitals[lo:hi],
            self.vital_names,
            self.context[lo:hi],
            self.context_names,
            self.label[lo:hi],
        )

    def select_patients(self, keep: NDArray[np.bool_]) -> Cohort:
        """Return the rows where the per-row mask ``keep`` holds (whole patients)."""
        return Cohort(
            self.patient[keep],
            self.vitals[keep],
            self.vital_names,
            self.context[keep],
            self.context_names,
            self.label[keep],
        )


def last_observed(values: FloatArray, starts: IntArray) -> IntArray:
    """Row of the latest observed value of each column up to each row, within the stay.

    Parameters
    ----------
    values : ndarray, shape (n, C)
        NaN = not observed.
    starts : ndarray of intp, shape (n,)
        First row of each row's stay.

    Returns
    -------
    ndarray of intp, shape (n, C)
        Row index, or -1 when nothing was observed yet in the stay.
    """
    rows = np.arange(values.shape[0], dtype=np.intp)[:, None]
    idx = np.maximum.accumulate(np.where(np.isnan(values), -1, rows), axis=0)
    return np.where(idx >= starts[:, None], idx, -1)


def forward_fill(values: FloatArray, starts: IntArray) -> tuple[FloatArray, FloatArray]:
    """Carry each column's last observation forward within the stay.

    Returns
    -------
    (filled, hours_since) : tuple of ndarray of float32, shape (n, C)
        Filled values (NaN before the first observation) and hours since the last
        observation (NaN before the first).
    """
    idx = last_observed(values, starts)
    seen = idx >= 0
    rows = np.arange(values.shape[0])[:, None]
    filled = np.where(seen, np.take_along_axis(values, np.maximum(idx, 0), axis=0), np.nan)
    since = np.where(seen, rows - idx, np.nan)
    return filled.astype(np.float32), since.astype(np.float32)


def lagged_index(
    rows: IntArray, starts: IntArray, length: int
) -> tuple[IntArray, NDArray[np.bool_]]:
    """Rows of the ``length`` hours ending at each of ``rows``, oldest first.

    Returns
    -------
    (index, inside) : ndarray of intp and bool, shape (m, length)
        Row numbers (clipped to the stay's first row) and whether each lies in the stay
        (False = left padding before admission).
    """
    index = rows[:, None] - (length - 1) + np.arange(length, dtype=np.intp)[None, :]
    inside = index >= starts[rows][:, None]
    return np.where(inside, index, starts[rows][:, None]), inside


def rolling_stats(values: FloatArray, starts: IntArray, hours: int) -> FloatArray:
    """Mean, min, max and std of each column's observed values over the last ``hours``.

    Returns
    -------
    ndarray of float32, shape (n, C * 4)
        Column-major blocks: for each input column, its :data:`ROLL_STATS`; NaN when
        nothing was observed in the window (std: fewer than 2 values).
    """
    n, c = values.shape
    index, inside = lagged_index(np.arange(n, dtype=np.intp), starts, hours)
    # hours along axis 0: each reduction is elementwise over rows of length n (vectorised)
    index, inside = np.ascontiguousarray(index.T), np.ascontiguousarray(inside.T)
    out = np.empty((n, c * len(ROLL_STATS)), dtype=np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):  # empty windows give NaN
        for j in range(c):
            lagged = np.where(inside, values[index, j], np.nan)
            seen = ~np.isnan(lagged)
            count = seen.sum(axis=0)
            mean = np.where(seen, lagged, 0.0).sum(axis=0) / count
            var = np.square(np.where(seen, lagged - mean, 0.0)).sum(axis=0) / count
            out[:, 4 * j] = mean
            out[:, 4 * j + 1] = np.fmin.reduce(lagged, axis=0)
            out[:, 4 * j + 2] = np.fmax.reduce(lagged, axis=0)
            out[:, 4 * j + 3] = np.where(count >= 2, np.sqrt(var), np.nan)
    return out


def tabular_features(
    cohort: Cohort, *, roll_hours: int = 6, with_context: bool = True
) -> tuple[FloatArray, tuple[str, ...]]:
    """Per-hour features of the gradient-boosting baselines and the fusion head.

    Vitals: forward-filled value, :func:`rolling_stats` over ``roll_hours``, observed
    this hour (missingness flag) and hours since the last observation. With context: the
    same value, flag and hours-since for each context column, and the hour of the stay.

    Returns
    -------
    (features, names) : ndarray of float32, shape (n, F), and tuple of str
    """
    starts = cohort.starts
    blocks, names = _column_block(cohort.vitals, cohort.vital_names, starts)
    blocks.append(rolling_stats(cohort.vitals, starts, roll_hours))
    names += [f"{v}_{s}{roll_hours}h" for v in cohort.vital_names for s in ROLL_STATS]
    if with_context:
        ctx, ctx_names = _column_block(cohort.context, cohort.context_names, starts)
        blocks += [*ctx, cohort.hour[:, None].astype(np.float32)]
        names += [*ctx_names, "stay_hour"]
    return np.concatenate(blocks, axis=1), tuple(names)


def stay_features(
    cohort: Cohort, *, trend_hours: int = 24, with_context: bool = True
) -> tuple[FloatArray, tuple[str, ...]]:
    """Longer-horizon features of the fusion head (beyond the baselines' inputs).

    Vitals: :func:`rolling_stats` over ``trend_hours`` and the last value minus that
    window's mean (trend). With context: how many times each context column has been
    measured in the stay so far (how closely the patient is being watched).

    Returns
    -------
    (features, names) : ndarray of float32, shape (n, F), and tuple of str
    """
    starts = cohort.starts
    roll = rolling_stats(cohort.vitals, starts, trend_hours)
    filled, _ = forward_fill(cohort.vitals, starts)
    blocks = [roll, filled - roll[:, 0::4]]
    names = [f"{v}_{s}{trend_hours}h" for v in cohort.vital_names for s in ROLL_STATS]
    names += [f"{v}_trend{trend_hours}h" for v in cohort.vital_names]
    if with_context:
        seen = np.cumsum(~np.isnan(cohort.context), axis=0, dtype=np.float32)
        before = np.where(starts[:, None] > 0, seen[np.maximum(starts - 1, 0)], 0.0)
        blocks.append(seen - before)
        names += [f"{c}_count" for c in cohort.context_names]
    return np.concatenate(blocks, axis=1).astype(np.float32), tuple(names)


def _column_block(
    values: FloatArray, names: Sequence[str], starts: IntArray
) -> tuple[list[FloatArray], list[str]]:
    """Return filled values, observed flags and hours since the last observation per column."""
    filled, since = forward_fill(values, starts)
    observed = (~np.isnan(values)).astype(np.float32)
    out = [filled, observed, since]
    labels = [*names, *(f"{c}_observed" for c in names), *(f"{c}_hours_since" for c in names)]
    return out, labels


def causal_windows(
    filled: FloatArray,
    observed: NDArray[np.bool_],
    starts: IntArray,
    rows: IntArray,
    length: int,
) -> FloatArray:
    """Windows of the ``length`` hours ending at each of ``rows`` (data up to that hour).

    Parameters
    ----------
    filled : ndarray of float32, shape (n, V)
        Forward-filled vitals with no NaN left (e.g. filled with training medians).
    observed : ndarray of bool, shape (n, V)
        Whether each vital was measured at that hour.
    starts : ndarray of intp, shape (n,)
        First row of each row's stay.
    rows : ndarray of intp, shape (m,)
        The hours to predict at.
    length : int
        Window length in hours; a shorter history is left-padded.

    Returns
    -------
    ndarray of float32, shape (m, 2V, length)
        Vitals, then their observed masks; padded hours repeat the stay's first hour's
        filled values with mask 0.
    """
    index, inside = lagged_index(rows, starts, length)
    values = filled[index]  # (m, length, V)
    masks = observed[index] & inside[:, :, None]
    return np.concatenate([values, masks.astype(np.float32)], axis=2).transpose(0, 2, 1)
