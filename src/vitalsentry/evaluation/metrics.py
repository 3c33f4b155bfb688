"""Evaluation metrics of the seed's three tiers, with honest "not computable" results.

Every metric is defined in the *Notes* section of the function that computes it;
:func:`metric_definitions` returns those sections so that the report quotes the code's own
definitions.

A metric that cannot be computed is never replaced by 0 or NaN. The single-metric
functions (:func:`separation_ratio`, :func:`roc_auc`, the functions returned by
:func:`threshold_metric`, …) raise :class:`NotComputableError`, whose message is the
reason; the dictionary functions (:func:`embedding_metrics`, :func:`detection_metrics`,
:func:`classification_metrics`, :func:`ranking_metrics`) put ``None`` in its place and the
reason under ``"reasons"``.

Conventions: labels are 1 = abnormal, 0 = normal; scores are higher = more abnormal; a
window is predicted abnormal when its score is strictly above the threshold.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from functools import partial
from types import MappingProxyType
from typing import Final, TypedDict, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score

from vitalsentry.errors import DataError, VitalSentryError

FloatArray = NDArray[np.float64]
LabelArray = NDArray[np.int8]
MetricFn = Callable[[LabelArray, FloatArray], float | None]
"""A metric of (labels, scores); raises :class:`NotComputableError` or returns None when
it cannot be computed."""

MIN_WINDOWS: Final = 10
"""Fewest windows any metric is computed on."""

MIN_PER_CLASS: Final = 2
"""Fewest windows of a class that a metric needing that class is computed on."""

MIN_GROUPS: Final = 2
"""Fewest groups (patients) a cluster bootstrap resamples."""

MIN_VALID_RESAMPLES: Final = 0.5
"""Fraction of bootstrap resamples on which the metric must be computable."""

_CLASS_NAMES: Final = {0: "normal", 1: "abnormal"}


class NotComputableError(VitalSentryError):
    """A metric cannot be computed from the data given; the message is the reason."""


class EmbeddingMetrics(TypedDict):
    """Tier-1 metrics; ``None`` where not computable, with the reason in ``reasons``."""

    separation_ratio: float | None
    embedding_variance: float | None
    reasons: dict[str, str]


class DetectionMetrics(TypedDict):
    """Tier-2 metrics; ``None`` where not computable, with the reason in ``reasons``."""

    accuracy: float | None
    precision: float | None
    recall: float | None
    fpr: float | None
    roc_auc: float | None
    pr_auc: float | None
    reasons: dict[str, str]


class ClassificationMetrics(TypedDict):
    """Tier-3 metrics; ``None`` where not computable, with the reason in ``reasons``."""

    accuracy: float | None
    f1: float | None
    roc_auc: float | None
    reasons: dict[str, str]


class RankingMetrics(TypedDict):
    """Threshold-free metrics of a scorer (used for baselines)."""

    roc_auc: float | None
    pr_auc: float | None
    reasons: dict[str, str]


# --------------------------------------------------------------------------- validation


def _labels(y_true: ArrayLike) -> LabelArray:
    """Return 0/1 labels as a 1-D int8 array, or raise :class:`DataError`."""
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise DataError(f"expected a 1-D array of labels, got shape {y.shape}", column="y_true")
    if y.size and not np.isin(y, (0, 1)).all():
        row = int(np.flatnonzero(~np.isin(y, (0, 1)))[0])
        raise DataError(f"labels must be 0 or 1, got {y[row]!r}", column="y_true", row=row + 1)
    return y.astype(np.int8)


def _scores(scores: ArrayLike, n: int, *, column: str = "scores") -> FloatArray:
    """Return scores as a 1-D float64 array of length ``n`` (NaN allowed, inf refused)."""
    try:
        s = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"scores are not numeric ({exc})", column=column) from exc
    if s.shape != (n,):
        raise DataError(f"expected shape ({n},) to match the labels, got {s.shape}", column=column)
    if np.isinf(s).any():
        row = int(np.flatnonzero(np.isinf(s))[0])
        raise DataError("infinite score", column=column, row=row + 1)
    return s


def _embeddings(emb: ArrayLike, column: str) -> FloatArray:
    """Return embeddings as a finite (n, d) float64 array, or raise :class:`DataError`."""
    try:
        e = np.asarray(emb, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"embeddings are not numeric ({exc})", column=column) from exc
    if e.ndim != 2 or e.shape[1] == 0:
        raise DataError(f"expected an (n, d) array with d ≥ 1, got shape {e.shape}", column=column)
    if not np.isfinite(e).all():
        row = int(np.argwhere(~np.isfinite(e))[0, 0])
        raise DataError("NaN or infinite embedding value", column=column, row=row + 1)
    return e


def _require(counts: Mapping[int, int], classes: tuple[int, ...]) -> None:
    """Raise :class:`NotComputableError` unless there are enough windows (and of ``classes``)."""
    total = sum(counts.values())
    if total < MIN_WINDOWS:
        raise NotComputableError(f"too few windows: {total} < {MIN_WINDOWS}")
    for c in classes:
        if counts[c] < MIN_PER_CLASS:
            single = " (a single class is present)" if counts[c] == 0 else ""
            raise NotComputableError(
                f"too few {_CLASS_NAMES[c]} windows: {counts[c]} < {MIN_PER_CLASS}{single}"
            )


def _class_counts(y: LabelArray) -> dict[int, int]:
    ones = int(y.sum())
    return {0: int(y.size) - ones, 1: ones}


def _require_scored(s: FloatArray) -> None:
    missing = int(np.isnan(s).sum())
    if missing:
        raise NotComputableError(
            f"no score for {missing} of {s.size} windows (NaN: its inputs were not measured)"
        )


# ------------------------------------------------------------------------------ tier 1


def separation_ratio(emb_normal: ArrayLike, emb_abnormal: ArrayLike) -> float:
    """Tier-1 separation ratio of normal and abnormal embeddings.

    Parameters
    ----------
    emb_normal : array_like, shape (n, d)
        Embeddings of normal windows.
    emb_abnormal : array_like, shape (m, d)
        Embeddings of abnormal windows.

    Returns
    -------
    float
        The ratio (> 1 means abnormal windows lie farther from the normal centroid).

    Raises
    ------
    NotComputableError
        Fewer than 10 windows in all, fewer than 2 of a class, or zero normal spread.
    DataError
        The arrays are not finite 2-D arrays of the same width.

    Notes
    -----
    **Separation ratio**: with ``c`` the centroid (mean) of the normal embeddings, the
    mean Euclidean distance ``||e - c||`` of the abnormal embeddings divided by the mean
    distance of the normal embeddings themselves. 1 means no separation; the seed's
    target is > 2.

    """
    normal = _embeddings(emb_normal, "emb_normal")
    abnormal = _embeddings(emb_abnormal, "emb_abnormal")
    if normal.shape[1] != abnormal.shape[1]:
        raise DataError(
            f"normal and abnormal embeddings differ in width: {normal.shape[1]} vs "
            f"{abnormal.shape[1]}",
            column="emb_abnormal",
        )
    _require({0: normal.shape[0], 1: abnormal.shape[0]}, (0, 1))
    centroid = normal.mean(axis=0)
    spread = float(np.linalg.norm(normal - centroid, axis=1).mean())
    if spread == 0.0:
        raise NotComputableError("all normal embeddings are identical (zero spread)")
    return float(np.linalg.norm(abnormal - centroid, axis=1).mean()) / spread


def embedding_variance(emb_normal: ArrayLike) -> float:
    """Tier-1 mean per-dimension variance of normal embeddings.

    Parameters
    ----------
    emb_normal : array_like, shape (n, d)
        Embeddings of normal windows.

    Returns
    -------
    float
        Mean over the ``d`` dimensions of the variance across windows.

    Raises
    ------
    NotComputableError
        Fewer than 10 normal windows.
    DataError
        Not a finite 2-D array.

    Notes
    -----
    **Embedding variance**: the variance (population, ``ddof=0``) of each embedding
    dimension over the normal windows, averaged over dimensions. A collapsed encoder
    gives values near 0; the seed's target is > 0.15.

    """
    normal = _embeddings(emb_normal, "emb_normal")
    _require({0: normal.shape[0]}, ())
    return float(normal.var(axis=0).mean())


def _collect(
    fns: Mapping[str, Callable[[], float]],
) -> tuple[dict[str, float | None], dict[str, str]]:
    """Evaluate each metric; ``None`` and the reason for those not computable."""
    values: dict[str, float | None] = {}
    reasons: dict[str, str] = {}
    for name, fn in fns.items():
        try:
            values[name] = float(fn())
        except NotComputableError as exc:
            values[name] = None
            reasons[name] = str(exc)
    return values, reasons


def embedding_metrics(emb_normal: ArrayLike, emb_abnormal: ArrayLike) -> EmbeddingMetrics:
    """Tier-1 metrics (:func:`separation_ratio`, :func:`embedding_variance`) in one dict.

    Parameters
    ----------
    emb_normal : array_like, shape (n, d)
        Embeddings of normal windows.
    emb_abnormal : array_like, shape (m, d)
        Embeddings of abnormal windows.

    Returns
    -------
    EmbeddingMetrics
        ``separation_ratio``, ``embedding_variance`` (``None`` where not computable) and
        ``reasons``.

    """
    values, reasons = _collect(
        {
            "separation_ratio": lambda: separation_ratio(emb_normal, emb_abnormal),
            "embedding_variance": lambda: embedding_variance(emb_normal),
        }
    )
    return cast(EmbeddingMetrics, {**values, "reasons": reasons})


# ---------------------------------------------------------------------- tiers 2 and 3


def _confusion(y: LabelArray, s: FloatArray, threshold: float) -> tuple[int, int, int, int]:
    """(TP, FP, TN, FN) with "abnormal" predicted where ``score > threshold``."""
    pred = s > threshold
    pos = y == 1
    tp = int(np.count_nonzero(pred & pos))
    fp = int(np.count_nonzero(pred & ~pos))
    fn = int(np.count_nonzero(pos)) - tp
    return tp, fp, int(y.size) - tp - fp - fn, fn


def _precision(tp: int, fp: int, tn: int, fn: int) -> float:
    if tp + fp == 0:
        raise NotComputableError("no window is predicted abnormal at this threshold")
    return tp / (tp + fp)


# name -> (classes that must be present, formula on (TP, FP, TN, FN))
_RATES: Final[dict[str, tuple[tuple[int, ...], Callable[[int, int, int, int], float]]]] = {
    "accuracy": ((), lambda tp, fp, tn, fn: (tp + tn) / (tp + fp + tn + fn)),
    "precision": ((0, 1), _precision),
    "recall": ((1,), lambda tp, fp, tn, fn: tp / (tp + fn)),
    "fpr": ((0,), lambda tp, fp, tn, fn: fp / (fp + tn)),
    "f1": ((0, 1), lambda tp, fp, tn, fn: 2 * tp / (2 * tp + fp + fn)),
}


def threshold_metric(name: str, threshold: float) -> Callable[[ArrayLike, ArrayLike], float]:
    """Return one confusion-matrix metric at a fixed threshold, as ``fn(y_true, scores)``.

    Parameters
    ----------
    name : {"accuracy", "precision", "recall", "fpr", "f1"}
        The metric (defined in :func:`detection_metrics` and :func:`classification_metrics`).
    threshold : float
        Windows with ``score > threshold`` are predicted abnormal.

    Returns
    -------
    callable
        ``fn(y_true (n,), scores (n,)) -> float``, raising :class:`NotComputableError`
        when it cannot be computed; suitable for :func:`bootstrap_ci`.

    Raises
    ------
    VitalSentryError
        Unknown ``name``.

    """
    if name not in _RATES:
        raise VitalSentryError(f"unknown metric {name!r}; one of {', '.join(_RATES)}")
    classes, formula = _RATES[name]

    def metric(y_true: ArrayLike, scores: ArrayLike) -> float:
        y = _labels(y_true)
        s = _scores(scores, y.size)
        _require(_class_counts(y), classes)
        _require_scored(s)
        return float(formula(*_confusion(y, s, threshold)))

    metric.__name__ = f"{name}_at_threshold"
    return metric


def roc_auc(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve (Mann–Whitney U; ties count one half).

    Parameters
    ----------
    y_true : array_like of {0, 1}, shape (n,)
        Labels, 1 = abnormal.
    scores : array_like of float, shape (n,)
        Higher = more abnormal.

    Returns
    -------
    float
        ROC-AUC, identical to :func:`sklearn.metrics.roc_auc_score` (and faster, for
        the bootstrap).

    Raises
    ------
    NotComputableError
        Fewer than 10 windows, fewer than 2 of a class, or a NaN score.

    """
    y = _labels(y_true)
    s = _scores(scores, y.size)
    counts = _class_counts(y)
    _require(counts, (0, 1))
    _require_scored(s)
    ranks = rankdata(s)
    n1, n0 = counts[1], counts[0]
    return float((ranks[y == 1].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def pr_auc(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Area under the precision–recall curve as average precision.

    Parameters
    ----------
    y_true : array_like of {0, 1}, shape (n,)
        Labels, 1 = abnormal.
    scores : array_like of float, shape (n,)
        Higher = more abnormal.

    Returns
    -------
    float
        :func:`sklearn.metrics.average_precision_score`.

    Raises
    ------
    NotComputableError
        Fewer than 10 windows, fewer than 2 of a class, or a NaN score.

    """
    y = _labels(y_true)
    s = _scores(scores, y.size)
    _require(_class_counts(y), (0, 1))
    _require_scored(s)
    return float(average_precision_score(y, s))


RANKING_METRICS: Final[dict[str, Callable[[ArrayLike, ArrayLike], float]]] = {
    "roc_auc": roc_auc,
    "pr_auc": pr_auc,
}
"""Threshold-free metrics by name (also accepted by :func:`bootstrap_ci`)."""


def _metric_dict(
    names: tuple[str, ...], y_true: ArrayLike, scores: ArrayLike, threshold: float | None
) -> tuple[dict[str, float | None], dict[str, str]]:
    """Evaluate named metrics (threshold metrics, ``roc_auc``, ``pr_auc``) on one scorer."""
    y = _labels(y_true)
    s = _scores(scores, y.size)
    fns: dict[str, Callable[[], float]] = {}
    for name in names:
        fn = (
            RANKING_METRICS[name]
            if name in RANKING_METRICS
            else threshold_metric(name, cast(float, threshold))
        )
        fns[name] = partial(fn, y, s)
    return _collect(fns)


def detection_metrics(y_true: ArrayLike, scores: ArrayLike, threshold: float) -> DetectionMetrics:
    """Tier-2 metrics of an anomaly detector at a threshold.

    Parameters
    ----------
    y_true : array_like of {0, 1}, shape (n,)
        Labels, 1 = abnormal.
    scores : array_like of float, shape (n,)
        Anomaly scores, higher = more abnormal (NaN = no score; makes every metric
        not computable).
    threshold : float
        Windows with ``score > threshold`` are predicted abnormal.

    Returns
    -------
    DetectionMetrics
        ``accuracy``, ``precision``, ``recall``, ``fpr``, ``roc_auc``, ``pr_auc``
        (``None`` where not computable) and ``reasons`` (metric → why).

    Raises
    ------
    DataError
        Labels not 0/1, shapes that differ, infinite scores.

    Notes
    -----
    With TP, FP, TN, FN counted at ``score > threshold`` (abnormal = positive):

    - **accuracy** = (TP + TN) / n;
    - **precision** = TP / (TP + FP), not computable when nothing is predicted abnormal;
    - **recall** (sensitivity) = TP / (TP + FN);
    - **false-positive rate** = FP / (FP + TN);
    - **ROC-AUC**: probability that a random abnormal window scores above a random
      normal one (ties count one half), threshold-free;
    - **PR-AUC**: average precision, the mean of the precision at each abnormal window's
      rank, weighted by the recall gained, threshold-free (chance level = prevalence).

    A metric is not computable (``None``, never 0 or NaN) on fewer than 10 windows, or
    with fewer than 2 windows of a class it needs: precision, ROC-AUC and PR-AUC need
    both classes, recall the abnormal class, FPR the normal class, accuracy neither.

    """
    values, reasons = _metric_dict(
        ("accuracy", "precision", "recall", "fpr", "roc_auc", "pr_auc"), y_true, scores, threshold
    )
    return cast(DetectionMetrics, {**values, "reasons": reasons})


def classification_metrics(
    y_true: ArrayLike, proba: ArrayLike, threshold: float = 0.5
) -> ClassificationMetrics:
    """Tier-3 metrics of a probabilistic classifier (the fusion model).

    Parameters
    ----------
    y_true : array_like of {0, 1}, shape (n,)
        Labels, 1 = abnormal.
    proba : array_like of float, shape (n,)
        Predicted probability of "abnormal".
    threshold : float, default 0.5
        Windows with ``proba > threshold`` are predicted abnormal.

    Returns
    -------
    ClassificationMetrics
        ``accuracy``, ``f1``, ``roc_auc`` (``None`` where not computable) and ``reasons``.

    Raises
    ------
    DataError
        Labels not 0/1, shapes that differ, infinite values.

    Notes
    -----
    **F1** = 2 TP / (2 TP + FP + FN), the harmonic mean of precision and recall of the
    abnormal class; accuracy and ROC-AUC as in :func:`detection_metrics`, with the same
    not-computable rules (F1 needs 2 windows of each class).

    """
    values, reasons = _metric_dict(("accuracy", "f1", "roc_auc"), y_true, proba, threshold)
    return cast(ClassificationMetrics, {**values, "reasons": reasons})


def ranking_metrics(y_true: ArrayLike, scores: ArrayLike) -> RankingMetrics:
    """ROC-AUC and PR-AUC of a scorer (baselines), ``None`` + reason where not computable.

    Parameters
    ----------
    y_true : array_like of {0, 1}, shape (n,)
        Labels, 1 = abnormal.
    scores : array_like of float, shape (n,)
        Higher = more abnormal; NaN (e.g. NEWS2 with an input never measured) makes both
        metrics not computable.

    Returns
    -------
    RankingMetrics
        ``roc_auc``, ``pr_auc`` and ``reasons``.

    """
    values, reasons = _metric_dict(("roc_auc", "pr_auc"), y_true, scores, None)
    return cast(RankingMetrics, {**values, "reasons": reasons})


# ---------------------------------------------------------------- threshold, bootstrap


def threshold_for_fpr(normal_scores: ArrayLike, target_fpr: float) -> float:
    """Lowest threshold whose false-positive rate on the given normal scores ≤ target.

    Parameters
    ----------
    normal_scores : array_like of float, shape (n,)
        Scores of normal windows (choose them on validation patients, never on test).
    target_fpr : float
        Target false-positive rate in [0, 1).

    Returns
    -------
    float
        One of the normal scores.

    Raises
    ------
    DataError
        Empty, non-finite or non-1-D scores, or ``target_fpr`` outside [0, 1).

    Notes
    -----
    **Threshold**: with the ``n`` normal scores sorted ascending, the ``k``-th one where
    ``k = n - floor(n × target)``; at most ``floor(n × target)`` normal windows score
    strictly above it, so the false-positive rate at ``score > threshold`` is at most
    the target on these windows.

    """
    s = np.asarray(normal_scores, dtype=np.float64)
    if s.ndim != 1 or s.size == 0:
        raise DataError(
            f"expected a non-empty 1-D array, got shape {s.shape}", column="normal_scores"
        )
    if not np.isfinite(s).all():
        row = int(np.flatnonzero(~np.isfinite(s))[0])
        raise DataError("NaN or infinite score", column="normal_scores", row=row + 1)
    if not 0.0 <= target_fpr < 1.0:
        raise DataError(f"must be in [0, 1), got {target_fpr}", column="target_fpr")
    allowed = int(np.floor(s.size * target_fpr + 1e-9))
    return float(np.sort(s)[s.size - allowed - 1])


def _window_sampler(n: int, rng: np.random.Generator) -> Callable[[], NDArray[np.intp]]:
    """Return a function drawing one window-level bootstrap index array."""

    def draw() -> NDArray[np.intp]:
        return rng.integers(0, n, size=n).astype(np.intp)

    return draw


def _group_sampler(
    groups: ArrayLike, n: int, rng: np.random.Generator
) -> Callable[[], NDArray[np.intp]]:
    """Return a function drawing one cluster-bootstrap index array (whole groups)."""
    g = np.asarray(groups)
    if g.shape != (n,):
        raise DataError(
            f"expected shape ({n},) to match the labels, got {g.shape}", column="groups"
        )
    _, codes = np.unique(g, return_inverse=True)
    sizes = np.bincount(codes)
    if sizes.size < MIN_GROUPS:
        raise NotComputableError(
            f"cluster bootstrap needs at least {MIN_GROUPS} groups (patients), got {sizes.size}"
        )
    order = np.argsort(codes, kind="stable")
    starts = np.cumsum(sizes) - sizes

    def draw() -> NDArray[np.intp]:
        chosen = rng.integers(0, sizes.size, size=sizes.size)
        lengths = sizes[chosen]
        offsets = np.cumsum(lengths) - lengths
        shift = np.repeat(starts[chosen] - offsets, lengths)
        return np.asarray(order[np.arange(int(lengths.sum())) + shift], dtype=np.intp)

    return draw


def _resolve(metric_fn: MetricFn | str) -> MetricFn:
    """Return the metric named in :data:`RANKING_METRICS`, or ``metric_fn`` itself."""
    if not isinstance(metric_fn, str):
        return metric_fn
    if metric_fn not in RANKING_METRICS:
        raise VitalSentryError(
            f"unknown metric {metric_fn!r}; pass a function or one of {', '.join(RANKING_METRICS)}"
        )
    return RANKING_METRICS[metric_fn]


def bootstrap_interval(
    metric_fn: MetricFn | str,
    y_true: ArrayLike,
    scores: ArrayLike,
    *,
    groups: ArrayLike | None = None,
    n_boot: int = 500,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval, raising with the reason when impossible.

    Same as :func:`bootstrap_ci`, but raises :class:`NotComputableError` (whose message
    is the reason) instead of returning ``None``.

    Parameters
    ----------
    metric_fn, y_true, scores, groups, n_boot, seed, alpha
        See :func:`bootstrap_ci`.

    Returns
    -------
    tuple of float
        ``(low, high)``.

    Raises
    ------
    NotComputableError
        The metric is not computable on the data, fewer than 2 groups, or the metric is
        not computable on more than half of the resamples.
    DataError
        Bad shapes or settings.

    """
    y = _labels(y_true)
    s = _scores(scores, y.size)
    if n_boot < 1:
        raise DataError(f"must be ≥ 1, got {n_boot}", column="n_boot")
    if not 0.0 < alpha < 1.0:
        raise DataError(f"must be in (0, 1), got {alpha}", column="alpha")
    fn = _resolve(metric_fn)
    if fn(y, s) is None:
        raise NotComputableError("the metric is not computable on these windows")
    rng = np.random.default_rng(seed)
    draw = _window_sampler(y.size, rng) if groups is None else _group_sampler(groups, y.size, rng)
    values: list[float] = []
    for _ in range(n_boot):
        idx = draw()
        try:
            value = fn(y[idx], s[idx])
        except NotComputableError:
            continue
        if value is not None:
            values.append(float(value))
    if len(values) < MIN_VALID_RESAMPLES * n_boot:
        raise NotComputableError(
            f"the metric is computable on only {len(values)} of {n_boot} bootstrap resamples"
        )
    low, high = np.quantile(values, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def bootstrap_ci(
    metric_fn: MetricFn | str,
    y_true: ArrayLike,
    scores: ArrayLike,
    *,
    groups: ArrayLike | None = None,
    n_boot: int = 500,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float] | None:
    """Percentile bootstrap confidence interval of a metric.

    Parameters
    ----------
    metric_fn : callable or {"roc_auc", "pr_auc"}
        ``metric_fn(y_true (n,), scores (n,)) -> float``; may raise
        :class:`NotComputableError` or return ``None`` (e.g. :func:`roc_auc`,
        :func:`pr_auc`, :func:`threshold_metric`); a name stands for :func:`roc_auc`
        or :func:`pr_auc`.
    y_true : array_like of {0, 1}, shape (n,)
        Labels.
    scores : array_like of float, shape (n,)
        Scores (or probabilities).
    groups : array_like, shape (n,), optional
        Cluster of each window (patient id). Given: whole groups are resampled.
    n_boot : int, default 500
        Number of resamples.
    seed : int, default 0
        Seed of the resampling.
    alpha : float, default 0.05
        1 − confidence level (0.05 → 95% interval).

    Returns
    -------
    tuple of float or None
        ``(low, high)``, or ``None`` when not computable (use
        :func:`bootstrap_interval` for the reason).

    Notes
    -----
    **95% confidence interval**: the 2.5th and 97.5th percentiles of the metric over
    500 bootstrap resamples of the evaluated windows (seeded). With patient ids, whole
    patients are resampled (cluster bootstrap), because overlapping windows of one
    patient are correlated and resampling windows would give intervals that are too
    narrow; for a single monitoring stream, pass block ids (e.g. runs of consecutive
    windows) to get a block bootstrap. Resamples on which the metric is not computable
    (e.g. a single class drawn) are skipped; if more than half are, there is no
    interval.

    """
    try:
        return bootstrap_interval(
            metric_fn, y_true, scores, groups=groups, n_boot=n_boot, seed=seed, alpha=alpha
        )
    except NotComputableError:
        return None


# ---------------------------------------------------------------------- definitions

_SPHINX_ROLE: Final = re.compile(r":\w+:`([^`]+)`")

_DEFINED: Final = (
    separation_ratio,
    embedding_variance,
    detection_metrics,
    classification_metrics,
    threshold_for_fpr,
    bootstrap_ci,
)


def metric_definitions() -> dict[str, str]:
    """Return the metric definitions (the *Notes* sections of this module's functions).

    Returns
    -------
    dict of str to str
        Function name → its definition text (Markdown, Sphinx roles turned into code
        spans), for the report.

    """
    out: dict[str, str] = {}
    for fn in _DEFINED:
        doc = inspect.getdoc(fn) or ""
        _, _, notes = doc.partition("Notes\n-----\n")
        out[fn.__name__] = _SPHINX_ROLE.sub(r"`\1`", notes.strip())
    return out


DEFINITIONS: Final[Mapping[str, str]] = MappingProxyType(metric_definitions())
"""Read-only :func:`metric_definitions`, computed once at import."""
