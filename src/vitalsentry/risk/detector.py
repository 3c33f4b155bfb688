"""IsolationForest on encoder embeddings, with the scikit-learn estimator contract.

One score direction everywhere: **higher = more anomalous**. scikit-learn's
:class:`~sklearn.ensemble.IsolationForest` scores the other way; the sign is flipped in
exactly one place, :meth:`EmbeddingIsolationForest.score_samples`, and everything else
(threshold, decision function, labels) is derived from that method.

Persistence uses skops, which rebuilds objects from a schema and executes no code on
load; :func:`load_detector` refuses any file whose types are not in
:data:`TRUSTED_TYPES`.
"""

from __future__ import annotations

import os
from numbers import Integral, Real
from typing import Any, Final, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.ensemble import IsolationForest
from sklearn.ensemble._iforest import _average_path_length
from sklearn.utils.validation import check_is_fitted

from vitalsentry.errors import DataError, TrainingError
from vitalsentry.persist import load_skops, save_skops

FloatArray = NDArray[np.float64]

AUTO_THRESHOLD: Final = 0.5
"""Threshold of the anomaly score when contamination is ``"auto"`` (Liu et al., 2008)."""

MAX_CONTAMINATION: Final = 0.5
"""Upper limit of the contamination (as in scikit-learn)."""

TRUSTED_TYPES: Final[frozenset[str]] = frozenset(
    {
        "vitalsentry.risk.detector.EmbeddingIsolationForest",
        "sklearn.tree._tree.Tree",
    }
)
"""Types, beyond those skops trusts by default, that a saved detector may contain."""


class EmbeddingIsolationForest(OutlierMixin, BaseEstimator):  # type: ignore[misc]
    """IsolationForest fitted on embeddings of normal training windows.

    Hyperparameters are stored unchanged by ``__init__`` and validated in :meth:`fit`.
    ``OutlierMixin`` comes before ``BaseEstimator`` so that scikit-learn tags the
    estimator as an outlier detector.

    Parameters
    ----------
    n_estimators : int, default 200
        Number of trees.
    max_samples : "auto", int, float or None, default "auto"
        Samples drawn per tree, as in :class:`~sklearn.ensemble.IsolationForest`
        (``None`` means ``"auto"``, i.e. ``min(256, n_samples)``).
    contamination : float, "auto" or None, default None
        Expected fraction of anomalies, in (0, 0.5], setting :attr:`threshold_`.
        ``None`` computes it from the class distribution in :meth:`fit`
        (``abnormal_fraction``); ``"auto"`` uses the fixed threshold
        :data:`AUTO_THRESHOLD`.
    random_state : int or None, default 0
        Seed of the forest.
    n_jobs : int or None, default None
        Parallel jobs for fitting and scoring.

    Attributes
    ----------
    model_ : sklearn.ensemble.IsolationForest
        The fitted forest.
    n_features_in_ : int
        Embedding size seen in :meth:`fit`.
    contamination_ : float or "auto"
        The contamination used.
    threshold_ : float
        Anomaly score above which a window is anomalous.

    Notes
    -----
    :meth:`predict` returns 1 for anomalous and 0 for normal, unlike scikit-learn's
    -1 / +1, because the project uses label 1 = abnormal everywhere; ``fit_predict``
    (from ``OutlierMixin``) follows :meth:`predict`.

    """

    def __init__(
        self,
        *,
        n_estimators: int = 200,
        max_samples: str | int | float | None = "auto",
        contamination: float | str | None = None,
        random_state: int | None = 0,
        n_jobs: int | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.contamination = contamination
        self.random_state = random_state
        self.n_jobs = n_jobs

    def fit(
        self,
        X: ArrayLike,  # noqa: N803
        y: object = None,
        *,
        abnormal_fraction: float | None = None,
    ) -> Self:
        """Fit the forest on embeddings of normal windows.

        Parameters
        ----------
        X : array_like of shape (n_windows, n_features)
            Embeddings of normal training windows.
        y : ignored
            Present for the scikit-learn API.
        abnormal_fraction : float, optional
            Fraction of abnormal windows in the training class distribution, in [0, 1].
            Used only when ``contamination`` is None: clipped to at most 0.5 and taken
            as the contamination; 0 or not given means ``"auto"``.

        Returns
        -------
        EmbeddingIsolationForest
            ``self``, fitted.

        Raises
        ------
        DataError
            ``X`` is not a finite 2-D array with at least two rows.
        TrainingError
            A hyperparameter or ``abnormal_fraction`` is invalid.

        """
        contamination = self._resolve_contamination(abnormal_fraction)
        max_samples = self._checked_max_samples()
        _check_int("n_estimators", self.n_estimators, minimum=1, allow_none=False)
        _check_int("random_state", self.random_state, minimum=0, allow_none=True)
        _check_int("n_jobs", self.n_jobs, minimum=None, allow_none=True)
        data = _check_embeddings(X, n_features=None)
        if data.shape[0] < 2:
            raise DataError(f"need at least 2 windows to fit, got {data.shape[0]}", column="X")
        self.model_ = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=max_samples,
            contamination="auto",
            random_state=self.random_state,
            n_jobs=self.n_jobs,
        ).fit(data)
        self.n_features_in_ = data.shape[1]
        self.flat_forest_ = _flatten(self.model_)
        self.contamination_ = contamination
        if isinstance(contamination, str):
            self.threshold_ = AUTO_THRESHOLD
        else:
            train_scores = self.score_samples(data)
            self.threshold_ = float(np.percentile(train_scores, 100.0 * (1.0 - contamination)))
        return self

    def score_samples(self, X: ArrayLike) -> FloatArray:  # noqa: N803
        """Anomaly scores, higher = more anomalous.

        Parameters
        ----------
        X : array_like of shape (n_windows, n_features)
            Embeddings.

        Returns
        -------
        ndarray of shape (n_windows,)
            Scores in (0, 1] (the negated scikit-learn ``score_samples``).

        """
        check_is_fitted(self)
        data = _check_embeddings(X, n_features=self.n_features_in_)
        return _flat_scores(self.flat_forest_, data)

    def decision_function(self, X: ArrayLike) -> FloatArray:  # noqa: N803
        """Scores minus :attr:`threshold_`: positive = anomalous.

        Parameters
        ----------
        X : array_like of shape (n_windows, n_features)
            Embeddings.

        Returns
        -------
        ndarray of shape (n_windows,)
            Signed distance to the threshold.

        """
        return self.score_samples(X) - self.threshold_

    def predict(self, X: ArrayLike) -> NDArray[np.int64]:  # noqa: N803
        """Labels: 1 anomalous (score above :attr:`threshold_`), 0 normal.

        Parameters
        ----------
        X : array_like of shape (n_windows, n_features)
            Embeddings.

        Returns
        -------
        ndarray of int64, shape (n_windows,)
            1 = anomalous, 0 = normal (not scikit-learn's -1 / +1).

        """
        return (self.decision_function(X) > 0).astype(np.int64)

    def _resolve_contamination(self, abnormal_fraction: float | None) -> float | str:
        """Validate ``contamination`` / ``abnormal_fraction`` and return the one to use."""
        if self.contamination is not None:
            if abnormal_fraction is not None:
                raise TrainingError(
                    "give either the contamination hyperparameter or abnormal_fraction "
                    "to fit, not both"
                )
            if self.contamination == "auto":
                return "auto"
            if not (
                isinstance(self.contamination, Real)
                and 0.0 < float(self.contamination) <= MAX_CONTAMINATION
            ):
                raise TrainingError(
                    f"contamination: must be None, 'auto' or in (0, {MAX_CONTAMINATION}], "
                    f"got {self.contamination!r}"
                )
            return float(self.contamination)
        if abnormal_fraction is None:
            return "auto"
        if not (isinstance(abnormal_fraction, Real) and 0.0 <= abnormal_fraction <= 1.0):
            raise TrainingError(f"abnormal_fraction: must be in [0, 1], got {abnormal_fraction!r}")
        if abnormal_fraction == 0.0:
            return "auto"
        return min(float(abnormal_fraction), MAX_CONTAMINATION)

    def _checked_max_samples(self) -> str | int | float:
        """Validate ``max_samples``; None means ``"auto"``."""
        value = self.max_samples
        if value is None or value == "auto":
            return "auto"
        if isinstance(value, Integral) and not isinstance(value, bool) and value >= 1:
            return int(value)
        if isinstance(value, Real) and not isinstance(value, Integral) and 0.0 < value <= 1.0:
            return float(value)
        raise TrainingError(
            f"max_samples: must be 'auto', None, an integer ≥ 1 or a fraction in (0, 1], "
            f"got {value!r}"
        )


def _check_int(name: str, value: object, *, minimum: int | None, allow_none: bool) -> None:
    """Raise :class:`TrainingError` unless ``value`` is an integer (≥ ``minimum``) or None."""
    if value is None and allow_none:
        return
    if (
        isinstance(value, Integral)
        and not isinstance(value, bool)
        and (minimum is None or int(value) >= minimum)
    ):
        return
    bound = "" if minimum is None else f" ≥ {minimum}"
    extra = " or None" if allow_none else ""
    raise TrainingError(f"{name}: must be an integer{bound}{extra}, got {value!r}")


def _check_embeddings(values: ArrayLike, *, n_features: int | None) -> FloatArray:
    """Return ``values`` as a finite float64 (n, d) array, or raise :class:`DataError`."""
    try:
        data = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"embeddings are not numeric ({exc})", column="X") from exc
    if data.ndim != 2:
        raise DataError(
            f"expected a 2-D array (n_windows, n_features), got shape {data.shape}", column="X"
        )
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise DataError(f"empty embeddings, shape {data.shape}", column="X")
    if n_features is not None and data.shape[1] != n_features:
        raise DataError(
            f"expected {n_features} features per window (as in fit), got {data.shape[1]}",
            column="X",
        )
    finite = np.isfinite(data)
    if not finite.all():
        row = int(np.argwhere(~finite)[0, 0])
        raise DataError("NaN or infinite embedding value", column="X", row=row + 1)
    return data


def save_detector(detector: EmbeddingIsolationForest, path: str | os.PathLike[str]) -> None:
    """Save a fitted detector with skops, atomically (:func:`vitalsentry.persist.save_skops`).

    Raises
    ------
    BundleError
        The detector is not fitted.

    """
    save_skops(detector, path)


def load_detector(path: str | os.PathLike[str]) -> EmbeddingIsolationForest:
    """Load a detector saved by :func:`save_detector`, executing no code.

    The file's untrusted types must all be in :data:`TRUSTED_TYPES`.

    Raises
    ------
    BundleError
        The file is missing or unreadable, holds types outside the allow-list, or does
        not hold a fitted :class:`EmbeddingIsolationForest`.

    """
    return load_skops(path, TRUSTED_TYPES, EmbeddingIsolationForest)


_CHUNK: Final = 2048
"""Windows scored per vectorised pass (bounds the (chunk, trees) index arrays)."""


def _flatten(model: IsolationForest) -> dict[str, NDArray[Any]]:
    """All trees of a fitted forest as flat arrays, for vectorised scoring.

    scikit-learn scores tree by tree (about 40 µs per tree even for one window); walking
    every tree at once, one depth level per numpy step, gives the same path lengths with
    a per-call cost that suits live scoring. Leaves point to themselves, so extra steps
    stay put.
    """
    if model._max_features != model.n_features_in_:
        raise TrainingError(
            "vectorised scoring needs max_features=1.0 (every tree sees every feature)"
        )
    features, thresholds, lefts, rights, values, roots = [], [], [], [], [], []
    offset = 0
    for tree, path_len, avg_len in zip(
        model.estimators_,
        model._decision_path_lengths,
        model._average_path_length_per_tree,
        strict=True,
    ):
        t = tree.tree_
        leaf = t.children_left < 0
        index = np.arange(t.node_count) + offset
        features.append(np.where(leaf, 0, t.feature))
        thresholds.append(t.threshold)
        lefts.append(np.where(leaf, index, t.children_left + offset))
        rights.append(np.where(leaf, index, t.children_right + offset))
        values.append(np.where(leaf, path_len + avg_len - 1.0, 0.0))
        roots.append(offset)
        offset += t.node_count
    depth = max(int(tree.tree_.max_depth) for tree in model.estimators_)
    return {
        "feature": np.concatenate(features).astype(np.int64),
        "threshold": np.concatenate(thresholds).astype(np.float64),
        "left": np.concatenate(lefts).astype(np.int64),
        "right": np.concatenate(rights).astype(np.int64),
        "leaf_value": np.concatenate(values).astype(np.float64),
        "roots": np.asarray(roots, dtype=np.int64),
        "max_depth": np.asarray(depth, dtype=np.int64),
        "denominator": np.asarray(
            len(model.estimators_) * _average_path_length([model._max_samples])[0]
        ),
    }


def _flat_scores(flat: dict[str, NDArray[Any]], data: FloatArray) -> FloatArray:
    """Anomaly scores (higher = more anomalous) of ``data`` (n, d), equal to scikit-learn's.

    As in scikit-learn, inputs are compared as float32 and the per-tree path lengths are
    added tree by tree in float64.
    """
    x = data.astype(np.float32)
    out = np.empty(x.shape[0], dtype=np.float64)
    for start in range(0, x.shape[0], _CHUNK):
        part = x[start : start + _CHUNK]
        rows = np.arange(part.shape[0])[:, None]
        node = np.broadcast_to(flat["roots"], (part.shape[0], flat["roots"].size))
        for _ in range(int(flat["max_depth"])):
            go_left = part[rows, flat["feature"][node]] <= flat["threshold"][node]
            node = np.where(go_left, flat["left"][node], flat["right"][node])
        lengths = flat["leaf_value"][node]
        depths = np.zeros(part.shape[0], dtype=np.float64)
        for column in lengths.T:
            depths += column
        denominator = float(flat["denominator"])
        out[start : start + _CHUNK] = 2.0 ** (-depths / denominator) if denominator else 1.0
    return out
