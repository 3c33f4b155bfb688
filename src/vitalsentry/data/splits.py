"""Patient-level splits: no patient's windows ever reach two splits.

The assignment depends only on the set of patient ids, the fractions, the seed and the
strata: ids are de-duplicated and sorted before a seeded permutation, and split sizes come
from largest-remainder apportionment, so the same inputs give the same split in any order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from vitalsentry.errors import DataError, VitalSentryError

SPLIT_NAMES: dict[int, str] = {0: "train", 1: "val", 2: "test"}
"""Split code → name."""

_SPLIT_CODES: dict[int, tuple[int, ...]] = {2: (0, 2), 3: (0, 1, 2)}
"""Number of fractions → split codes they fill, in order."""


def _check_fractions(fractions: Sequence[float]) -> NDArray[np.float64]:
    """Return the fractions as an array; raise :class:`VitalSentryError` if unusable."""
    f = np.asarray(fractions, dtype=np.float64)
    if f.ndim != 1 or f.size not in _SPLIT_CODES:
        raise VitalSentryError(
            f"split: two (train, test) or three (train, val, test) fractions, got {list(f)}"
        )
    if not (np.isfinite(f).all() and (f > 0).all()):
        raise VitalSentryError(f"split: fractions must be finite and > 0, got {list(f)}")
    if abs(f.sum() - 1.0) > 1e-6:
        raise VitalSentryError(f"split: fractions must sum to 1, got {f.sum():g}")
    return f


def _largest_remainder(n: int, fractions: NDArray[np.float64]) -> NDArray[np.int64]:
    """Apportion ``n`` items to splits by largest remainder; ties go to the earlier split."""
    quota = n * fractions
    counts = np.floor(quota).astype(np.int64)
    order = np.argsort(-(quota - counts), kind="stable")
    counts[order[: n - int(counts.sum())]] += 1
    return counts


def _fill_empty_splits(counts: NDArray[np.int64]) -> None:
    """Give every split at least one patient, in place, when there are enough patients.

    Parameters
    ----------
    counts : numpy.ndarray, shape (S, K), int64
        Patients per stratum (row) and split (column). While a split is empty and there
        are at least ``K`` patients, one patient moves into it from the largest split,
        taken from the stratum that has most patients there.

    """
    totals = counts.sum(axis=0)
    if totals.sum() < totals.size:
        return
    while (totals == 0).any():
        empty = int(np.argmin(totals))
        donor = int(np.argmax(totals))
        stratum = int(np.argmax(counts[:, donor]))
        counts[stratum, donor] -= 1
        counts[stratum, empty] += 1
        totals = counts.sum(axis=0)


def split_patients(
    patient_ids: Sequence[str],
    fractions: Sequence[float],
    seed: int,
    strata: Mapping[str, int] | None = None,
) -> dict[str, int]:
    """Assign each patient to one split, deterministically.

    Parameters
    ----------
    patient_ids : sequence of str
        Patient ids; order and duplicates do not matter.
    fractions : sequence of float
        ``(train, val, test)`` or ``(train, test)``, each > 0, summing to 1.
    seed : int
        Seed of the :func:`numpy.random.default_rng` permutation.
    strata : mapping of str to int, optional
        Stratum of each patient (e.g. its majority label). Each stratum is split on its
        own, so every split gets patients of every stratum where its size allows.

    Returns
    -------
    dict of str to int
        Patient id → split code (0 train, 1 val, 2 test; see :data:`SPLIT_NAMES`). With
        two fractions the codes are 0 and 2. When there are at least as many patients as
        splits, every split gets at least one.

    Raises
    ------
    DataError
        Fewer patients than splits, or a patient without a stratum.
    VitalSentryError
        Unusable fractions.

    """
    f = _check_fractions(fractions)
    codes = np.asarray(_SPLIT_CODES[f.size])
    ids = sorted(set(patient_ids))
    if len(ids) < f.size:
        names = ", ".join(SPLIT_NAMES[int(c)] for c in codes)
        raise DataError(
            f"{len(ids)} patient(s) cannot fill {f.size} patient-level splits ({names}); "
            f"at least {f.size} patients are needed"
        )
    if strata is None:
        groups = [ids]
    else:
        missing = [p for p in ids if p not in strata]
        if missing:
            raise DataError(f"no stratum for patient '{missing[0]}' ({len(missing)} without one)")
        groups = [[p for p in ids if strata[p] == s] for s in sorted({strata[p] for p in ids})]
    counts = np.stack([_largest_remainder(len(g), f) for g in groups])
    for row in counts:
        _fill_empty_splits(row[None, :])
    _fill_empty_splits(counts)
    rng = np.random.default_rng(seed)
    out: dict[str, int] = {}
    for group, row in zip(groups, counts, strict=True):
        shuffled = [group[i] for i in rng.permutation(len(group))]
        out.update(zip(shuffled, np.repeat(codes, row).tolist(), strict=True))
    return out


def split_by_time(
    key: NDArray[np.str_],
    start_s: NDArray[np.float64],
    end_s: NDArray[np.float64],
    fractions: Sequence[float],
    gap_s: float,
) -> NDArray[np.int8]:
    """Assign windows to contiguous time blocks of their own series (``--split-by time``).

    Each key's span (its first window's start to its last window's end) is cut in time
    order into blocks sized by ``fractions`` (train first, test last); consecutive blocks
    are ``gap_s`` apart. A window belongs to the block that holds it whole; windows that
    reach into a gap get -1 (dropped), so no window straddles two splits.

    Parameters
    ----------
    key : numpy.ndarray, shape (N,)
        Patient (or stream) of each window.
    start_s, end_s : numpy.ndarray, shape (N,)
        Times of each window's first and last step.
    fractions : sequence of float
        ``(train, val, test)`` or ``(train, test)``, each > 0, summing to 1.
    gap_s : float
        Time between consecutive blocks (≥ 0), e.g. one window's length.

    Returns
    -------
    numpy.ndarray, shape (N,), int8
        Split code of each window (0 train, 1 val, 2 test; see :data:`SPLIT_NAMES`) or -1.

    Raises
    ------
    VitalSentryError
        Unusable fractions or a negative gap.
    """
    f = _check_fractions(fractions)
    if not gap_s >= 0:
        raise VitalSentryError(f"split: the gap between time blocks must be ≥ 0, got {gap_s}")
    codes = np.asarray(_SPLIT_CODES[f.size], dtype=np.int8)
    out = np.full(key.size, -1, dtype=np.int8)
    edges = np.concatenate([[0.0], np.cumsum(f)])
    for name in np.unique(key):
        mine = key == name
        first, last = float(start_s[mine].min()), float(end_s[mine].max())
        usable = last - first - gap_s * (f.size - 1)
        for k, code in enumerate(codes):
            lo = first + edges[k] * usable + k * gap_s
            hi = first + edges[k + 1] * usable + k * gap_s
            inside = mine & (start_s >= lo) & (end_s <= hi + 1e-6)
            out[inside] = code
    return out
