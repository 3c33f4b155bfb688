"""Sliding windows over a grid: strided views, validity and window labels.

Windows start at ``k * stride`` for ``k = 0 .. N - 1`` with
``N = (T - length) // stride + 1`` (0 when ``T < length``). Windows are views into the
grid (no copy); per-window reductions use cumulative sums, never a loop over windows.
"""

from __future__ import annotations

from typing import get_args

import numpy as np
from numpy.typing import NDArray

from vitalsentry.config import LabelMode
from vitalsentry.errors import DataError, VitalSentryError

LABEL_MODES: tuple[str, ...] = get_args(LabelMode)
"""Accepted ``mode`` values of :func:`window_labels`."""


def count_windows(n_steps: int, length: int, stride: int) -> int:
    """Return the number of whole windows in a series.

    Parameters
    ----------
    n_steps : int
        Series length ``T`` (≥ 0).
    length, stride : int
        Window length and step between window starts (both ≥ 1).

    Returns
    -------
    int
        ``0`` if ``n_steps < length`` else ``(n_steps - length) // stride + 1``.

    Raises
    ------
    VitalSentryError
        ``length`` or ``stride`` below 1, or ``n_steps`` negative.

    """
    if length < 1 or stride < 1:
        raise VitalSentryError(f"window length and stride must be ≥ 1, got {length} and {stride}")
    if n_steps < 0:
        raise VitalSentryError(f"number of steps must be ≥ 0, got {n_steps}")
    return 0 if n_steps < length else (n_steps - length) // stride + 1


def window_starts(n_steps: int, length: int, stride: int) -> NDArray[np.int64]:
    """Return the start index of each window, shape (N,), int64."""
    return np.arange(count_windows(n_steps, length, stride), dtype=np.int64) * stride


def sliding_windows(x: NDArray[np.generic], length: int, stride: int) -> NDArray[np.generic]:
    """Cut a (C, T) series into windows without copying.

    Parameters
    ----------
    x : numpy.ndarray, shape (C, T)
        Series (values, mask or features).
    length, stride : int
        Window length and step between window starts.

    Returns
    -------
    numpy.ndarray, shape (N, C, length)
        Read-only strided view of ``x``; window ``k`` is ``x[:, k*stride : k*stride+length]``.
        An empty (0, C, length) array when ``T < length``.

    Raises
    ------
    DataError
        ``x`` is not 2-D.

    """
    if x.ndim != 2:
        raise DataError(f"expected a (channels, steps) array, got shape {x.shape}")
    n = count_windows(x.shape[1], length, stride)
    if n == 0:
        return np.empty((0, x.shape[0], length), dtype=x.dtype)
    view = np.lib.stride_tricks.sliding_window_view(x, length, axis=1)
    return view[:, : (n - 1) * stride + 1 : stride].transpose(1, 0, 2)


def _window_counts(flags: NDArray[np.bool_], length: int, stride: int) -> NDArray[np.int64]:
    """Return how many steps are True in each window, shape (N,), via a cumulative sum."""
    cumulative = np.concatenate([[0], np.cumsum(flags, dtype=np.int64)])
    starts = window_starts(flags.size, length, stride)
    counts: NDArray[np.int64] = cumulative[starts + length] - cumulative[starts]
    return counts


def valid_windows(mask: NDArray[np.bool_], length: int, stride: int) -> NDArray[np.bool_]:
    """Say which windows are fully valid.

    Parameters
    ----------
    mask : numpy.ndarray, shape (C, T), bool
        Grid validity mask.
    length, stride : int
        Window length and step between window starts.

    Returns
    -------
    numpy.ndarray, shape (N,), bool
        True where every step of every channel in the window is valid.

    Raises
    ------
    DataError
        ``mask`` is not 2-D.

    """
    if mask.ndim != 2:
        raise DataError(f"mask must have shape (channels, steps), got {mask.shape}")
    invalid = np.asarray(~mask.all(axis=0), dtype=bool)
    return np.asarray(_window_counts(invalid, length, stride) == 0, dtype=bool)


def window_labels(
    labels: NDArray[np.integer], length: int, stride: int, mode: str
) -> NDArray[np.int8]:
    """Reduce step labels to one label per window.

    Parameters
    ----------
    labels : numpy.ndarray, shape (T,), int
        Step labels: 0 normal, 1 abnormal, -1 unknown.
    length, stride : int
        Window length and step between window starts.
    mode : {"last", "any", "majority"}
        ``"last"``: label of the window's last step. ``"any"``: 1 if any known step is 1,
        else 0 if any step is known, else -1. ``"majority"``: 1 if more than half of the
        known steps are 1, else 0 if any step is known, else -1.

    Returns
    -------
    numpy.ndarray, shape (N,), int8
        Window labels (-1 = unknown).

    Raises
    ------
    VitalSentryError
        Unknown ``mode``.
    DataError
        ``labels`` is not 1-D.

    """
    if mode not in LABEL_MODES:
        raise VitalSentryError(
            f"unknown label mode '{mode}' (expected one of {', '.join(LABEL_MODES)})"
        )
    if labels.ndim != 1:
        raise DataError(f"labels must have shape (steps,), got {labels.shape}")
    if mode == "last":
        return labels[window_starts(labels.size, length, stride) + length - 1].astype(np.int8)
    ones = _window_counts(labels == 1, length, stride)
    known = _window_counts(labels >= 0, length, stride)
    positive = ones > 0 if mode == "any" else 2 * ones > known
    return np.where(known == 0, -1, positive.astype(np.int8)).astype(np.int8)
