"""Patient bootstrap of hourly ROC-AUC and PR-AUC, all resamples at once.

A resample of whole patients is a vector of how many times each patient is drawn; each
metric is then a weighted sum over the tied-score groups of the original rows, so no
resample is materialised and the scores are sorted once per method. The draws are those
of :func:`vitalsentry.evaluation.metrics.bootstrap_ci` with ``groups`` (same seed, same
patients drawn), and the intervals equal its own to float rounding.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from vitalsentry.evaluation import metrics

FloatArray = NDArray[np.float64]

CHUNK_CELLS = 4_000_000
"""Resample × score-group cells held at once (bounds memory to a few tens of MB)."""


@dataclass(frozen=True)
class PatientBootstrap:
    """Seeded resamples of whole patients, as draw counts per patient.

    Attributes
    ----------
    codes : ndarray of intp, shape (n,)
        Patient of each row, as an index into the sorted unique patients.
    counts : ndarray of float64, shape (n_boot, P)
        Times each patient is drawn in each resample.
    """

    codes: NDArray[np.intp]
    counts: FloatArray

    @classmethod
    def draw(cls, patient: NDArray[Any], n_boot: int, seed: int) -> PatientBootstrap:
        """Draw ``n_boot`` resamples of the patients of rows ``patient`` (seeded)."""
        _, codes = np.unique(patient, return_inverse=True)
        n_patients = int(codes.max()) + 1 if codes.size else 0
        if n_patients < metrics.MIN_GROUPS:
            raise metrics.NotComputableError(
                f"cluster bootstrap needs at least {metrics.MIN_GROUPS} groups (patients), "
                f"got {n_patients}"
            )
        rng = np.random.default_rng(seed)
        counts = np.stack(
            [
                np.bincount(rng.integers(0, n_patients, size=n_patients), minlength=n_patients)
                for _ in range(n_boot)
            ]
        ).astype(np.float64)
        return cls(codes.astype(np.intp), counts)

    @property
    def n_boot(self) -> int:
        """Number of resamples."""
        return int(self.counts.shape[0])

    def _chunks(
        self, y: NDArray[np.int8], scores: FloatArray
    ) -> Iterator[tuple[FloatArray, FloatArray]]:
        """Positive and negative weights per (resample, ascending score group), in chunks."""
        _, group = np.unique(scores, return_inverse=True)
        n_groups = int(group.max()) + 1
        shape = (self.counts.shape[1], n_groups)

        def by_group(rows: NDArray[np.bool_]) -> sparse.csr_matrix:
            ones = np.ones(int(rows.sum()))
            return sparse.csr_matrix((ones, (self.codes[rows], group[rows])), shape=shape)

        pos, neg = by_group(y == 1), by_group(y == 0)
        step = max(1, CHUNK_CELLS // n_groups)
        for lo in range(0, self.n_boot, step):
            w = self.counts[lo : lo + step]
            yield np.asarray((pos.T @ w.T).T), np.asarray((neg.T @ w.T).T)

    def _valid(self, p: FloatArray, n: FloatArray) -> NDArray[np.bool_]:
        """Resamples on which a ranking metric is computable (as :func:`metrics.roc_auc`)."""
        w1, w0 = p.sum(axis=1), n.sum(axis=1)
        valid: NDArray[np.bool_] = (
            (w1 + w0 >= metrics.MIN_WINDOWS)
            & (w1 >= metrics.MIN_PER_CLASS)
            & (w0 >= metrics.MIN_PER_CLASS)
        )
        return valid

    def roc_auc(self, y: NDArray[np.int8], scores: FloatArray) -> FloatArray:
        """(n_boot,) ROC-AUC of each resample (ties count one half); NaN where not computable."""
        out = []
        for p, n in self._chunks(y, scores):
            below = np.cumsum(n, axis=1) - 0.5 * n
            with np.errstate(invalid="ignore", divide="ignore"):
                auc = (p * below).sum(axis=1) / (p.sum(axis=1) * n.sum(axis=1))
            out.append(np.where(self._valid(p, n), auc, np.nan))
        return np.concatenate(out)

    def pr_auc(self, y: NDArray[np.int8], scores: FloatArray) -> FloatArray:
        """(n_boot,) average precision of each resample (as scikit-learn's); NaN where not computable."""
        out = []
        for p, n in self._chunks(y, scores):
            tp = np.cumsum(p[:, ::-1], axis=1)[:, ::-1]  # positives scoring ≥ each group
            fp = np.cumsum(n[:, ::-1], axis=1)[:, ::-1]
            with np.errstate(invalid="ignore", divide="ignore"):
                precision = np.where(p > 0, tp / (tp + fp), 0.0)
                ap = (p * precision).sum(axis=1) / p.sum(axis=1)
            out.append(np.where(self._valid(p, n), ap, np.nan))
        return np.concatenate(out)

    def interval(self, values: FloatArray, alpha: float = 0.05) -> tuple[float, float] | None:
        """Percentile interval of per-resample ``values`` (None if over half are NaN)."""
        kept = values[np.isfinite(values)]
        if kept.size < metrics.MIN_VALID_RESAMPLES * self.n_boot:
            return None
        low, high = np.quantile(kept, [alpha / 2.0, 1.0 - alpha / 2.0])
        return float(low), float(high)
