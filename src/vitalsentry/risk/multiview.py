"""The detector stage as several views of a window, standardised and combined.

Views (each a raw score, higher = more anomalous, from its own simple detector):

- ``embedding_iforest``: IsolationForest on the encoder embedding;
- ``embedding_knn``: mean distance to the nearest normal embeddings (:class:`KNNDistance`);
- ``recon_error``: the largest robust z-score of a channel's reconstruction error, each
  step weighted by its recency (below);
- ``summary``: IsolationForest on window summaries (level, spread, range, last value and
  trend of each channel; the mean of an observed-mask channel is the observed fraction);
- ``baseline_shift``: the largest robust z-score of a channel's recent level (mean of the
  window's last quarter) minus the median of the same levels of the patient's earlier
  windows (NaN when the patient has no earlier window);
- ``news2``: the NEWS2 aggregate of each step's values (a published clinical chart,
  partial over the NEWS2 vitals the bundle has; absent without any of them), averaged
  with recency weights, as a robust z-score against normal windows.

A window's label is the state at its last step (``label_mode="last"``, the default), and
an event shorter than the window may cover only its tail, or have ended before it: the
reconstruction error and NEWS2 views therefore weight each step by its recency,
``0.5 ** (age / half-life)`` with a half-life of ``ViewSettings.recency`` of the window
length (:func:`recency_weights`; the whole window still counts, the recent steps most).
The half-life is chosen per bundle on held-out windows among a few candidates
(:func:`choose_recency`; the default without labels) and recorded in ``views.json``.
Bundles fitted before this (no ``recency`` in ``views.json``) keep the uniform error and
the last step's NEWS2.

Each view's raw score is standardised on normal windows the view did not see in fit
(out-of-fold scores of the training patients: ``(raw - median) / IQR``), so views are on
one scale. The combination (which views; mean or max of their standardised scores, NaN
views skipped) is chosen on held-out windows — the validation patients and the training patients'
out-of-fold scores — by PR-AUC when they have both classes (:func:`choose_combination`);
otherwise the mean of all views is used (no label-free choice is made). The fitted stage
is saved as ``views.json`` and one skops file per view (:data:`VIEWS_FILE`,
:func:`view_file`; the embedding IsolationForest stays in the bundle's ``detector.skops``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import average_precision_score
from sklearn.model_selection import GroupKFold

from vitalsentry.data.schema import CHANNELS
from vitalsentry.errors import BundleError, DataError
from vitalsentry.evaluation.baselines import NEWS2_INPUTS, window_summary_features
from vitalsentry.persist import load_skops, save_skops
from vitalsentry.risk.detector import TRUSTED_TYPES as IFOREST_TYPES
from vitalsentry.risk.detector import EmbeddingIsolationForest
from vitalsentry.risk.news2 import news2_score
from vitalsentry.risk.views import TRUSTED_TYPES as VIEW_TYPES
from vitalsentry.risk.views import KNNDistance, RobustZScore, robust_center_scale

FloatArray = NDArray[np.float64]
Combine = Literal["mean", "max"]

VIEW_NAMES: Final[tuple[str, ...]] = (
    "embedding_iforest",
    "embedding_knn",
    "recon_error",
    "summary",
    "baseline_shift",
    "news2",
)
"""Every view, in output order."""

RECENT_DIVISOR: Final = 4
"""The baseline view's level is the mean of the last ``1 / RECENT_DIVISOR`` of a window."""

RECENCY: Final = 0.125
"""Default half-life of the recency weights, as a share of the window length."""

RECENCY_CANDIDATES: Final = (RECENCY, RECENCY / 2, RECENCY / 4, RECENCY * 2)
"""Half-lives :func:`choose_recency` tries, the default first (it wins ties)."""

RECENCY_VIEWS: Final = ("recon_error", "news2")
"""Views whose inputs the step weights change."""

OPTIONAL_VIEWS: Final = frozenset({"baseline_shift"})
"""Views that can be missing (NaN) for a window, so never chosen alone."""

VIEWS_FILE: Final = "views.json"
"""Bundle file of the fitted stage (standardisation, chosen combination, settings)."""

DETECTOR_FILE: Final = "detector.skops"
"""Bundle file of the embedding IsolationForest (the only detector of older bundles)."""

LEGACY_VIEW: Final = "embedding_iforest"
"""The view whose detector is :data:`DETECTOR_FILE`."""


def view_file(name: str) -> str:
    """Bundle file name of a view's detector (:data:`DETECTOR_FILE` for the embedding forest)."""
    return DETECTOR_FILE if name == LEGACY_VIEW else f"view_{name}.skops"


@dataclass(frozen=True)
class ViewInputs:
    """What each view looks at, for N windows of L steps.

    Attributes
    ----------
    embedding : ndarray of shape (N, latent)
    mean_errors : ndarray of shape (N, V)
        Mean squared reconstruction error per vital channel, as the encoder computed it
        (:attr:`errors` without recency, so older bundles score bit-identically).
    step_errors : ndarray of shape (N, V, L)
        Squared reconstruction error per vital channel and step.
    summary : ndarray of shape (N, F)
        Window summary features (:func:`window_summary_features`).
    baseline : ndarray of shape (N, V)
        Channel level over the window's last quarter minus the patient's baseline of it;
        NaN rows without history.
    step_news2 : ndarray of shape (N, L)
        Partial NEWS2 of each step; NaN without any NEWS2 vital.
    recency : float or None
        Half-life of the step weights (:func:`recency_weights`) of :attr:`errors` and
        :attr:`news2`; None: uniform error and the last step's NEWS2.
    """

    embedding: FloatArray
    mean_errors: FloatArray
    step_errors: FloatArray
    summary: FloatArray
    baseline: FloatArray
    step_news2: FloatArray
    recency: float | None = None

    @property
    def errors(self) -> FloatArray:
        """Reconstruction error per vital channel, the steps' weighted mean, (N, V)."""
        if self.recency is None:
            return self.mean_errors
        out: FloatArray = self.step_errors @ recency_weights(
            self.step_errors.shape[2], self.recency
        )
        return out

    @property
    def news2(self) -> FloatArray:
        """NEWS2 of the steps' weighted mean (the last step's without recency), (N, 1)."""
        if self.recency is None:
            return self.step_news2[:, -1:]
        out: FloatArray = self.step_news2 @ recency_weights(self.step_news2.shape[1], self.recency)
        return out[:, None]

    def of(self, view: str) -> FloatArray:
        """Return the feature matrix of ``view``."""
        match view:
            case "embedding_iforest" | "embedding_knn":
                return self.embedding
            case "recon_error":
                return self.errors
            case "summary":
                return self.summary
            case "baseline_shift":
                return self.baseline
            case "news2":
                return self.news2
        raise DataError(f"unknown view {view!r}; known: {', '.join(VIEW_NAMES)}")

    def select(self, rows: NDArray[Any]) -> ViewInputs:
        """Return the inputs of the windows ``rows`` (bool mask or indices) selects."""
        return ViewInputs(
            self.embedding[rows],
            self.mean_errors[rows],
            self.step_errors[rows],
            self.summary[rows],
            self.baseline[rows],
            self.step_news2[rows],
            self.recency,
        )

    def with_recency(self, recency: float | None) -> ViewInputs:
        """Return these inputs with the step weights of ``recency``."""
        return dataclasses.replace(self, recency=recency)


def baseline_deviation(
    levels: FloatArray,
    patient: NDArray[Any],
    start_s: NDArray[Any],
    span_s: float,
    lookback: int,
) -> FloatArray:
    """Each window's levels minus the median levels of the patient's recent earlier windows.

    Earlier windows are those that end before the window starts (no overlap) and start at
    most ``lookback`` window spans before it.

    Parameters
    ----------
    levels : ndarray of shape (N, V)
        Per-window channel levels (means).
    patient, start_s : ndarray of shape (N,)
        Patient (or stream) of each window and its first step in seconds.
    span_s : float
        Seconds from a window's first step to the next window-length block.
    lookback : int
        Window spans of history used.

    Returns
    -------
    ndarray of shape (N, V)
        Deviations; NaN rows for windows without an earlier window.
    """
    out = np.full(levels.shape, np.nan)
    starts = np.asarray(start_s, dtype=np.float64)
    for key in np.unique(patient):
        rows = np.flatnonzero(patient == key)
        rows = rows[np.argsort(starts[rows], kind="stable")]
        times = starts[rows]
        first = np.searchsorted(times, times - lookback * span_s, side="left")
        last = np.searchsorted(times, times - span_s, side="right")
        for i, (lo, hi) in enumerate(zip(first, last, strict=True)):
            if hi > lo:
                out[rows[i]] = levels[rows[i]] - np.median(levels[rows[lo:hi]], axis=0)
    return out


def recency_weights(length: int, recency: float | None) -> FloatArray:
    """Weights of a window's steps, summing to 1: ``0.5 ** (age / (recency * length))``.

    Parameters
    ----------
    length : int
        Steps in the window (the last one has age 0).
    recency : float or None
        Half-life as a share of ``length``; None: equal weights.

    Returns
    -------
    ndarray of shape (length,)
    """
    if recency is None:
        return np.full(length, 1.0 / length)
    if recency <= 0:
        raise DataError(f"recency: must be > 0, got {recency!r}")
    weights = 0.5 ** (np.arange(length - 1, -1, -1, dtype=np.float64) / (recency * length))
    out: FloatArray = weights / weights.sum()
    return out


def view_inputs(
    embedding: NDArray[Any],
    errors: tuple[NDArray[Any], NDArray[Any]],
    windows: NDArray[Any],
    feature_names: Sequence[str],
    *,
    patient: NDArray[Any] | None,
    start_s: NDArray[Any] | None,
    span_s: float,
    lookback: int,
) -> ViewInputs:
    """Build every view's inputs for N windows (without recency weights: :class:`ViewInputs`).

    Parameters
    ----------
    embedding : ndarray of shape (N, latent)
    errors : (ndarray of shape (N, V), ndarray of shape (N, V, L))
        Mean squared reconstruction error per vital channel, and per channel and step.
    windows : ndarray of shape (N, C, L)
        Unscaled windows (vitals, then time features).
    feature_names : sequence of str, length C
    patient, start_s : ndarray of shape (N,) or None
        Patient and start of each window; None (a lone request) leaves the baseline view
        empty (NaN).
    span_s : float
        Window span in seconds.
    lookback : int
        Window spans of history of the baseline view.

    Returns
    -------
    ViewInputs
    """
    summary, _ = window_summary_features(windows, tuple(feature_names))
    vitals = [i for i, n in enumerate(feature_names) if n in CHANNELS]  # no masks, no time
    recent = max(1, windows.shape[2] // RECENT_DIVISOR)
    levels = np.asarray(windows[:, vitals, -recent:], dtype=np.float64).mean(axis=2)
    if patient is None or start_s is None:
        baseline = np.full(levels.shape, np.nan)
    else:
        baseline = baseline_deviation(levels, np.asarray(patient), start_s, span_s, lookback)
    return ViewInputs(
        np.asarray(embedding, dtype=np.float64),
        np.asarray(errors[0], dtype=np.float64),
        np.asarray(errors[1], dtype=np.float64),
        summary,
        baseline,
        step_news2(windows, feature_names),
    )


def step_news2(windows: NDArray[Any], feature_names: Sequence[str]) -> FloatArray:
    """Partial NEWS2 of every step of every window, shape (N, L).

    Parameters
    ----------
    windows : ndarray of shape (N, C, L)
        Unscaled windows; values are clipped to each channel's plausible range.
    feature_names : sequence of str, length C

    Returns
    -------
    ndarray of shape (N, L)
        NEWS2 over the NEWS2 vitals present (room air, alert); NaN when none is present.
    """
    names = list(feature_names)
    values = []
    for channel in NEWS2_INPUTS:
        if channel in names:
            spec = CHANNELS[channel]
            part = np.asarray(windows[:, names.index(channel)], dtype=np.float64)
            values.append(np.clip(part, spec.low, spec.high))
        else:
            values.append(np.full((windows.shape[0], windows.shape[2]), np.nan))
    return news2_score(*values, allow_partial=True)


def make_view_detector(view: str, settings: ViewSettings) -> Any:
    """Return the unfitted detector of ``view`` (see the module docstring).

    The embedding forest keeps the seed's contamination rule (``settings.contamination``,
    or from the class balance when None; it sets only its own ``threshold_``).
    """
    if view in ("embedding_iforest", "summary"):
        return EmbeddingIsolationForest(
            n_estimators=settings.n_estimators,
            contamination=settings.contamination if view == LEGACY_VIEW else "auto",
            random_state=settings.seed,
        )
    if view == "embedding_knn":
        return KNNDistance(n_neighbors=settings.n_neighbors, random_state=settings.seed)
    if view == "recon_error":
        return RobustZScore(two_sided=False)
    if view == "baseline_shift":
        return RobustZScore(two_sided=True)
    if view == "news2":
        return RobustZScore(two_sided=False)
    raise DataError(f"unknown view {view!r}; known: {', '.join(VIEW_NAMES)}")


@dataclass(frozen=True)
class ViewSettings:
    """How the views are fitted (saved in ``views.json``)."""

    seed: int = 0
    n_estimators: int = 200
    n_neighbors: int = 5
    lookback: int = 8
    folds: int = 5
    contamination: float | None = None
    recency: float | None = RECENCY


def _raw_scores(detectors: Mapping[str, Any], inputs: ViewInputs) -> dict[str, FloatArray]:
    """Raw score of every view (NaN rows where a view has no input)."""
    out: dict[str, FloatArray] = {}
    for view, detector in detectors.items():
        x = inputs.of(view)
        ok = np.isfinite(x).all(axis=1)
        scores = np.full(x.shape[0], np.nan)
        if ok.any():
            scores[ok] = detector.score_samples(x[ok])
        out[view] = scores
    return out


def fit_views(
    inputs: ViewInputs,
    normal: NDArray[np.bool_],
    settings: ViewSettings,
    abnormal_fraction: float | None = None,
    views: Sequence[str] = VIEW_NAMES,
) -> dict[str, Any]:
    """Fit each of ``views``' detectors on the normal windows (rows with that view's input).

    ``abnormal_fraction`` (of the fit windows) sets the embedding forest's contamination
    when ``settings.contamination`` is None, as in the seed.
    """
    fitted: dict[str, Any] = {}
    for view in views:
        x = inputs.of(view)[normal]
        x = x[np.isfinite(x).all(axis=1)]
        if x.shape[0] < 2:
            continue
        detector = make_view_detector(view, settings)
        if view == LEGACY_VIEW and settings.contamination is None:
            fitted[view] = detector.fit(x, abnormal_fraction=abnormal_fraction)
        else:
            fitted[view] = detector.fit(x)
    if LEGACY_VIEW in views and LEGACY_VIEW not in fitted:
        raise DataError("fewer than 2 normal training windows: cannot fit the detector")
    return fitted


def fold_groups(patient: NDArray[Any], start_s: NDArray[Any], folds: int) -> NDArray[Any]:
    """Return fold groups: patients, or time blocks for one patient (a long recording)."""
    if np.unique(patient).size >= 2:
        return np.asarray(patient)
    order = np.argsort(np.asarray(start_s), kind="stable")
    blocks = np.empty(order.size, dtype=np.int64)
    blocks[order] = np.arange(order.size) * folds // max(order.size, 1)
    return blocks


def cross_fit(
    inputs: ViewInputs,
    normal: NDArray[np.bool_],
    groups: NDArray[Any],
    settings: ViewSettings,
    views: Sequence[str] = VIEW_NAMES,
) -> tuple[dict[str, FloatArray], NDArray[np.int64]]:
    """Out-of-fold raw scores of ``views``: each group scored by views fitted without it.

    Returns
    -------
    scores : dict of str to ndarray of shape (N,)
    fold : ndarray of shape (N,)
        Fold of each window.
    """
    n_groups = np.unique(groups).size
    n_folds = min(settings.folds, n_groups)
    if n_folds < 2:
        raise DataError("cross-fitting needs at least 2 patients or time blocks")
    scores = {v: np.full(normal.size, np.nan) for v in views}
    fold = np.empty(normal.size, dtype=np.int64)
    splitter = GroupKFold(n_splits=n_folds)
    for k, (fit_rows, held) in enumerate(splitter.split(np.zeros(normal.size), groups=groups)):
        mask = np.zeros(normal.size, dtype=bool)
        mask[fit_rows] = True
        fitted = fit_views(inputs, normal & mask, settings, views=views)
        for view, values in _raw_scores(fitted, inputs.select(held)).items():
            scores[view][held] = values
        fold[held] = k
    return scores, fold


@dataclass(frozen=True)
class Standardiser:
    """Per-view robust standardisation ``(raw - center) / scale`` from held-out normals."""

    center: dict[str, float]
    scale: dict[str, float]

    @classmethod
    def fit(cls, raw: Mapping[str, FloatArray], normal: NDArray[np.bool_]) -> Standardiser:
        """Median and IQR of each view's scores of normal windows (NaN skipped)."""
        center, scale = {}, {}
        for view, values in raw.items():
            part = values[normal & np.isfinite(values)]
            if part.size >= 2:
                c, s = robust_center_scale(part[:, None])
                center[view], scale[view] = float(c[0]), float(s[0])
        return cls(center, scale)

    def apply(self, raw: Mapping[str, FloatArray]) -> dict[str, FloatArray]:
        """Standardised scores of the views this standardiser knows."""
        return {v: (raw[v] - self.center[v]) / self.scale[v] for v in self.center if v in raw}


def combine(standard: Mapping[str, FloatArray], views: Sequence[str], how: Combine) -> FloatArray:
    """Mean or max over ``views`` of the standardised scores, NaN views skipped per row."""
    stack = np.stack([standard[v] for v in views], axis=1)
    present = np.isfinite(stack)
    if not present.any(axis=1).all():
        raise DataError("a window has no score in any chosen view")
    if how == "max":
        out: FloatArray = np.where(present, stack, -np.inf).max(axis=1)
    else:
        out = np.where(present, stack, 0.0).sum(axis=1) / present.sum(axis=1)
    return out


def _pr_auc(y: NDArray[Any], score: FloatArray) -> float:
    """PR-AUC over the windows where ``score`` is finite (0 without both classes there)."""
    ok = np.isfinite(score)
    if np.unique(y[ok]).size < 2:
        return 0.0
    return float(average_precision_score(y[ok], score[ok]))


def candidates(ranked: Sequence[str]) -> list[tuple[tuple[str, ...], Combine]]:
    """Return the top-k views of ``ranked`` for every k ≥ 2, as mean and max.

    At least two views, so that no single representation decides (one view alone only
    when it is the only one ranked); a set of optional views (sometimes missing) alone is
    not a candidate.
    """
    out: list[tuple[tuple[str, ...], Combine]] = []
    for k in range(1 if len(ranked) == 1 else 2, len(ranked) + 1):
        views = tuple(ranked[:k])
        if set(views) <= OPTIONAL_VIEWS:
            continue
        out.extend([(views, "mean"), (views, "max")] if k > 1 else [(views, "mean")])
    return out


def choose_combination(
    standard: Mapping[str, FloatArray], labels: NDArray[Any]
) -> tuple[tuple[str, ...], Combine, dict[str, Any]]:
    """Choose the combination with the best PR-AUC on held-out windows (rule below).

    Views are ranked by their own PR-AUC; the candidates are the top-k views for every
    k ≥ 2 (:func:`candidates`), as the mean and the max of their standardised scores (few, nested candidates, so
    the choice does not chase noise); the best PR-AUC wins, ties to fewer views. Without
    both classes the mean of all views is used.
    """
    available = [v for v in VIEW_NAMES if v in standard]
    known = labels >= 0
    y = labels[known]
    if y.size == 0 or y.min() == y.max():
        return (
            tuple(available),
            "mean",
            {"criterion": "default: the held-out windows lack a class; mean of all views"},
        )
    single = {v: _pr_auc(y, standard[v][known]) for v in available}
    ranked = sorted(available, key=lambda v: -single[v])
    table = [
        (views, how, _pr_auc(y, combine(standard, views, how)[known]))
        for views, how in candidates(ranked)
    ]
    views, how, best = max(table, key=lambda row: row[2])
    detail = {
        "criterion": "PR-AUC (average precision) on held-out windows: validation patients and "
        "out-of-fold training patients; top-k (k ≥ 2) views by own PR-AUC × mean/max",
        "windows": int(y.size),
        "abnormal": int(y.sum()),
        "single_views": single,
        "best_pr_auc": best,
    }
    return views, how, detail


@dataclass
class MultiViewDetector:
    """The fitted detector stage: view detectors, standardisation and combination.

    Attributes
    ----------
    detectors : dict of str to estimator
        Fitted detector of each view.
    standardiser : Standardiser
    views : tuple of str
        Chosen views.
    how : {"mean", "max"}
        Chosen combination.
    settings : ViewSettings
    selection : dict
        How the combination was chosen (criterion, validation PR-AUCs).
    """

    detectors: dict[str, Any]
    standardiser: Standardiser
    views: tuple[str, ...]
    how: Combine
    settings: ViewSettings
    selection: dict[str, Any] = field(default_factory=dict)

    def score(self, inputs: ViewInputs) -> tuple[FloatArray, dict[str, FloatArray]]:
        """Return the combined score (N,) and every view's standardised score (N,) (the "why")."""
        raw = _raw_scores(self.detectors, inputs.with_recency(self.settings.recency))
        standard = self.standardiser.apply(raw)
        return combine(standard, self.views, self.how), standard

    def to_json(self) -> dict[str, Any]:
        """Return the JSON part of the stage (detectors are saved apart)."""
        return {
            "views": list(self.views),
            "combine": self.how,
            "fitted_views": sorted(self.detectors),
            "center": self.standardiser.center,
            "scale": self.standardiser.scale,
            "settings": self.settings.__dict__,
            "selection": self.selection,
        }

    def save(self, put_json: Callable[[str, Any], None], put_file: Callable[..., None]) -> None:
        """Write ``views.json`` and each view's skops file through a bundle writer."""
        for view, detector in self.detectors.items():
            put_file(view_file(view), lambda p, d=detector: save_skops(d, p))
        put_json(VIEWS_FILE, self.to_json())

    @classmethod
    def load(cls, meta: Mapping[str, Any], path_of: Callable[[str], Any]) -> MultiViewDetector:
        """Rebuild from ``views.json`` and the skops files (``path_of(name)`` gives a path)."""
        try:
            fitted = [str(v) for v in meta["fitted_views"]]
            detectors = {
                v: load_skops(
                    path_of(view_file(v)),
                    IFOREST_TYPES | VIEW_TYPES,
                    type(make_view_detector(v, ViewSettings())),
                )
                for v in fitted
            }
            stage = cls(
                detectors=detectors,
                standardiser=Standardiser(dict(meta["center"]), dict(meta["scale"])),
                views=tuple(meta["views"]),
                how=meta["combine"],
                # bundles fitted before the recency weights: uniform error, last NEWS2
                settings=ViewSettings(**{"recency": None, **meta["settings"]}),
                selection=dict(meta.get("selection", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{VIEWS_FILE}: malformed ({exc})") from exc
        usable = set(detectors) & set(stage.standardiser.center)
        if not set(stage.views) <= usable or stage.how not in ("mean", "max") or not stage.views:
            raise BundleError(f"{VIEWS_FILE}: inconsistent views {sorted(stage.views)}")
        return stage


@dataclass(frozen=True)
class MultiViewFit:
    """A fitted stage and the scores its calibration needs.

    Attributes
    ----------
    stage : MultiViewDetector
        Views fitted on every normal fit window.
    fit_scores : ndarray of shape (N_fit,)
        Out-of-fold combined score of each fit window (scored by views that did not see
        its patient).
    fold : ndarray of shape (N_fit,)
        Fold of each fit window.
    val_scores : ndarray of shape (N_val,)
        Combined score of each validation window.
    """

    stage: MultiViewDetector
    fit_scores: FloatArray
    fold: NDArray[np.int64]
    val_scores: FloatArray


def choose_recency(
    fit: tuple[ViewInputs, NDArray[Any], NDArray[Any]],
    val: tuple[ViewInputs, NDArray[Any]],
    settings: ViewSettings,
    allowed: Sequence[str] = (),
) -> tuple[float | None, dict[str, Any]]:
    """Choose the step weights' half-life on held-out windows (arguments of :func:`fit_multiview`).

    For each of :data:`RECENCY_CANDIDATES`, the views it changes (:data:`RECENCY_VIEWS`,
    those ``allowed``) score the training patients out of fold and the validation
    patients as in :func:`fit_multiview`; the candidate whose views have the best mean
    PR-AUC over these held-out windows wins (first of equals: the default). Without both
    classes there (or no such view allowed), ``settings.recency`` is kept.

    Returns
    -------
    recency : float or None
    detail : dict
        Criterion, each candidate's mean PR-AUC, the choice.
    """
    inputs, labels, groups = fit
    y = np.concatenate([labels, val[1]])
    known = y >= 0
    views = [v for v in RECENCY_VIEWS if not allowed or v in allowed]
    if not views or np.unique(y[known]).size < 2:
        reason = "no allowed view uses it" if not views else "the held-out windows lack a class"
        return settings.recency, {"criterion": f"default: {reason}", "chosen": settings.recency}
    normal = labels != 1
    table: dict[float, float] = {}
    for recency in RECENCY_CANDIDATES:
        trial = dataclasses.replace(settings, recency=recency)
        fit_in = inputs.with_recency(recency)
        oof, _ = cross_fit(fit_in, normal, groups, trial, views=views)
        detectors = fit_views(fit_in, normal, trial, views=views)
        held = _raw_scores(detectors, val[0].with_recency(recency))
        aucs = [_pr_auc(y[known], np.concatenate([oof[v], held[v]])[known]) for v in held]
        table[recency] = float(np.mean(aucs)) if aucs else 0.0
    chosen = max(table, key=lambda r: table[r])
    detail = {
        "criterion": "mean PR-AUC of the recency-weighted views on held-out windows "
        "(validation patients and out-of-fold training patients)",
        "views": views,
        "candidates": {str(r): v for r, v in table.items()},
        "chosen": chosen,
    }
    return chosen, detail


def fit_multiview(
    fit: tuple[ViewInputs, NDArray[Any], NDArray[Any]],
    val: tuple[ViewInputs, NDArray[Any]],
    settings: ViewSettings,
    allowed: Sequence[str] = (),
) -> MultiViewFit:
    """Choose the step weights, cross-fit, standardise, fit on all windows, choose the views.

    The step weights' half-life comes first (:func:`choose_recency`), then the views are
    fitted and combined with it.

    Parameters
    ----------
    fit : (ViewInputs, labels (N_fit,), groups (N_fit,))
        Fit windows (their normal ones train the views), labels (1 = abnormal) and the
        fold groups (patients, or time blocks: :func:`fold_groups`).
    val : (ViewInputs, labels (N_val,))
        Validation windows that choose the combination.
    settings : ViewSettings
    allowed : sequence of str, optional
        Views the combination may use (empty: all).

    Returns
    -------
    MultiViewFit
    """
    unknown = sorted(set(allowed) - set(VIEW_NAMES))
    if unknown:
        raise DataError(f"unknown view(s) {', '.join(unknown)}; known: {', '.join(VIEW_NAMES)}")
    recency, recency_detail = choose_recency(fit, val, settings, allowed)
    settings = dataclasses.replace(settings, recency=recency)
    inputs, labels, groups = fit[0].with_recency(recency), fit[1], fit[2]
    val_inputs = val[0].with_recency(recency)
    normal = labels != 1
    oof, fold = cross_fit(inputs, normal, groups, settings)
    standardiser = Standardiser.fit(oof, normal)
    known = labels[labels >= 0]
    detectors = fit_views(
        inputs, normal, settings, float((known == 1).mean()) if known.size else None
    )
    fit_standard = standardiser.apply(oof)
    val_standard = standardiser.apply(_raw_scores(detectors, val_inputs))
    usable = [v for v in val_standard if v in fit_standard and (not allowed or v in allowed)]
    if not set(usable) - OPTIONAL_VIEWS:
        raise DataError("no usable view: too few normal windows to standardise the views")
    pooled = {v: np.concatenate([fit_standard[v], val_standard[v]]) for v in usable}
    views, how, detail = choose_combination(pooled, np.concatenate([labels, val[1]]))
    detail["recency"] = recency_detail
    stage = MultiViewDetector(detectors, standardiser, views, how, settings, detail)
    return MultiViewFit(
        stage=stage,
        fit_scores=combine(fit_standard, views, how),
        fold=fold,
        val_scores=combine(val_standard, views, how),
    )
