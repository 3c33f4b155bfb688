"""Hourly sepsis baselines: NEWS2, qSOFA without mentation, SIRS, gradient boosting.

The clinical scores use each vital's last value in the stay (forward-filled, never
from a later hour); a vital outside its plausible range counts as not measured.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from sklearn.ensemble import HistGradientBoostingClassifier

from vitalsentry.data.schema import CHANNELS
from vitalsentry.evaluation.sepsis.features import Cohort, forward_fill
from vitalsentry.risk.news2 import news2_score

FloatArray = NDArray[np.float64]
Columns = Sequence[NDArray[np.float32]]
"""Feature column blocks of the same rows, side by side (the whole table is never built)."""

GBM_TRUSTED_TYPES: Final[frozenset[str]] = frozenset(
    {
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn._loss.loss.HalfBinomialLoss",
        "sklearn._loss.link.LogitLink",
        "sklearn._loss.link.Interval",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    }
)
"""Types a saved gradient-boosting model may contain (checked before loading)."""


@dataclass(frozen=True)
class GbmConfig:
    """Hyperparameters of every gradient-boosting model of the benchmark.

    Attributes
    ----------
    max_iter, learning_rate, max_leaf_nodes, min_samples_leaf, l2_regularization
        Passed to :class:`~sklearn.ensemble.HistGradientBoostingClassifier`.
    n_iter_no_change : int
        Early stopping: boosting stops once the log-loss on validation patients has not
        improved for this many iterations (0: always ``max_iter``; without validation rows
        too).
    seed : int
        Its ``random_state``.
    """

    max_iter: int = 500
    learning_rate: float = 0.05
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 100
    l2_regularization: float = 1.0
    n_iter_no_change: int = 20
    seed: int = 0

    def make(self, *, early_stopping: bool = False) -> HistGradientBoostingClassifier:
        """Return an unfitted classifier with these settings (stopping early if asked)."""
        return HistGradientBoostingClassifier(
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization,
            early_stopping=early_stopping and self.n_iter_no_change > 0,
            n_iter_no_change=max(self.n_iter_no_change, 1),
            random_state=self.seed,
        )


def _last_vitals(cohort: Cohort) -> dict[str, FloatArray]:
    """Forward-filled canonical vitals by name, implausible values set missing."""
    values = cohort.vitals.astype(np.float64)
    for j, name in enumerate(cohort.vital_names):
        spec = CHANNELS.get(name)
        if spec is not None:
            bad = (values[:, j] < spec.low) | (values[:, j] > spec.high)
            values[bad, j] = np.nan
    filled, _ = forward_fill(values.astype(np.float32), cohort.starts)
    out = {name: filled[:, j].astype(np.float64) for j, name in enumerate(cohort.vital_names)}
    nan = np.full(len(cohort), np.nan)
    return {name: out.get(name, nan) for name in (*CHANNELS, *out)}


def _last_context(cohort: Cohort, name: str) -> FloatArray:
    """Forward-filled context column ``name`` (case-insensitive), all NaN when absent."""
    lower = [c.lower() for c in cohort.context_names]
    if name.lower() not in lower:
        return np.full(len(cohort), np.nan)
    j = lower.index(name.lower())
    filled, _ = forward_fill(cohort.context[:, j : j + 1], cohort.starts)
    return filled[:, 0].astype(np.float64)


def clinical_scores(cohort: Cohort) -> dict[str, FloatArray]:
    """NEWS2, qSOFA and SIRS at every patient-hour from the data up to that hour.

    Notes
    -----
    **NEWS2**: partial aggregate of the measured parameters present (room air and alert
    assumed: the data records neither), NaN until one is measured. **qSOFA** without
    mentation: respiratory rate ≥ 22/min (1) + systolic BP ≤ 100 mmHg (1), 0–2.
    **SIRS**: temperature > 38 or < 36 °C, heart rate > 90/min, respiratory rate > 20/min
    or PaCO2 < 32 mmHg, white cells > 12 or < 4 ×10⁹/L; 0–4. Unmeasured criteria count 0.

    Returns
    -------
    dict of str to ndarray of float64, shape (n,)
        ``news2``, ``qsofa``, ``sirs``.
    """
    v = _last_vitals(cohort)
    rr, sbp, hr, temp = (
        v["respiratory_rate"],
        v["systolic_bp"],
        v["heart_rate"],
        v["temperature"],
    )
    news2 = news2_score(rr, v["spo2"], sbp, hr, temp, allow_partial=True)
    with np.errstate(invalid="ignore"):
        qsofa = (rr >= 22).astype(float) + (sbp <= 100)
        wbc, paco2 = _last_context(cohort, "WBC"), _last_context(cohort, "PaCO2")
        sirs = (
            ((temp > 38) | (temp < 36)).astype(float)
            + (hr > 90)
            + ((rr > 20) | (paco2 < 32))
            + ((wbc > 12) | (wbc < 4))
        )
    return {"news2": news2, "qsofa": qsofa, "sirs": sirs}


def _take(blocks: Columns, rows: NDArray[np.intp], dtype: type[np.floating[Any]]) -> FloatArray:
    """Rows ``rows`` of the column blocks side by side, as one ``dtype`` table."""
    out = np.empty((rows.size, sum(b.shape[1] for b in blocks)), dtype)
    lo = 0
    for b in blocks:
        out[:, lo : lo + b.shape[1]] = b[rows]
        lo += b.shape[1]
    return out


def fit_gbm(
    blocks: Columns,
    y: NDArray[np.int8],
    rows: NDArray[np.bool_],
    config: GbmConfig,
    val: NDArray[np.bool_] | None = None,
    weights: NDArray[np.float64] | None = None,
) -> HistGradientBoostingClassifier:
    """Fit a gradient-boosting classifier on the training patient-hours ``rows``.

    The features are the column ``blocks`` side by side; only the training rows are
    copied, once, as float64 (the type the classifier works in, so it makes no second
    copy). A column never measured in training is set to 0 there (it cannot be binned; a
    constant column is never split on, so it is ignored at prediction too). With
    validation rows ``val`` (other patients) and ``config.n_iter_no_change`` > 0, boosting
    stops early on their log-loss. ``weights`` (n,), if given, weigh every row in the fit
    and in that log-loss.
    """
    train = _take(blocks, np.flatnonzero(rows), np.float64)
    never = np.isnan(train).all(axis=0)
    train[:, never] = 0.0
    w = None if weights is None else weights[rows]
    if val is None or config.n_iter_no_change == 0:
        return config.make().fit(train, y[rows], sample_weight=w)
    held = _take(blocks, np.flatnonzero(val), np.float64)
    held[:, never] = 0.0
    return config.make(early_stopping=True).fit(
        train,
        y[rows],
        sample_weight=w,
        X_val=held,
        y_val=y[val],
        sample_weight_val=None if weights is None else weights[val],
    )


PREDICT_CHUNK = 1024
"""Rows per prediction call: each tree then walks rows that sit in the CPU cache (about
twice as fast as one call on a large table, same values)."""


def gbm_proba(
    model: HistGradientBoostingClassifier,
    blocks: Columns,
    rows: NDArray[np.bool_] | None = None,
) -> FloatArray:
    """(n,) probability of the positive class at ``rows`` (default all), NaN elsewhere."""
    n = blocks[0].shape[0]
    at = np.arange(n) if rows is None else np.flatnonzero(rows)
    proba = np.full(n, np.nan)
    for lo in range(0, at.size, PREDICT_CHUNK):
        part = at[lo : lo + PREDICT_CHUNK]
        proba[part] = model.predict_proba(_take(blocks, part, np.float32))[:, 1]
    return proba


BASELINE_LABELS: Final[Mapping[str, str]] = {
    "news2": "NEWS2 (vitals present)",
    "qsofa": "qSOFA (no mentation)",
    "sirs": "SIRS",
    "gbm_vitals": "gradient boosting, vitals",
    "gbm_all": "gradient boosting, all columns",
}
"""Display names of the baselines."""
