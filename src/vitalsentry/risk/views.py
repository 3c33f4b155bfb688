"""Simple detectors for the views of a window beside the embedding IsolationForest.

Both follow the project's detector contract (scikit-learn style: keyword ``__init__``
arguments stored unchanged and validated in ``fit``, fitted attributes ending in ``_``,
**higher score = more anomalous**, ``predict`` 1 = anomalous):

- :class:`KNNDistance`: mean distance to the ``n_neighbors`` nearest normal training
  points after a robust per-feature scaling (median / IQR); a local-density view that an
  IsolationForest's axis-parallel cuts miss.
- :class:`RobustZScore`: the largest (or mean) robust z-score of a window's features
  against the normal training distribution; the view of single extreme features
  (one channel's reconstruction error, one vital's shift from the patient's baseline).

Both persist with skops; :data:`TRUSTED_TYPES` lists their types.
"""

from __future__ import annotations

from numbers import Real
from typing import Final, Literal, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils.validation import check_is_fitted

from vitalsentry.errors import DataError, TrainingError
from vitalsentry.risk.detector import _check_embeddings, _check_int

FloatArray = NDArray[np.float64]

TRUSTED_TYPES: Final[frozenset[str]] = frozenset(
    {"vitalsentry.risk.views.KNNDistance", "vitalsentry.risk.views.RobustZScore"}
)
"""Types, beyond skops' defaults, that a saved view detector may contain."""

_QUERY_CHUNK: Final = 1024
"""Query rows per distance block (bounds the (chunk, max_samples) distance matrix)."""


def robust_center_scale(data: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Per-column median and spread (IQR, else standard deviation, else 1).

    Parameters
    ----------
    data : ndarray of shape (n, d)
        Finite values.

    Returns
    -------
    center, scale : ndarray of shape (d,)
        Medians and strictly positive spreads.
    """
    q25, center, q75 = np.percentile(data, [25.0, 50.0, 75.0], axis=0)
    scale = q75 - q25
    std = data.std(axis=0)
    scale = np.where(scale > 0, scale, np.where(std > 0, std, 1.0))
    return center, scale


def _check_contamination(value: object) -> float:
    """Return ``contamination`` as a float in (0, 0.5], or raise :class:`TrainingError`."""
    if isinstance(value, Real) and not isinstance(value, bool) and 0.0 < float(value) <= 0.5:
        return float(value)
    raise TrainingError(f"contamination: must be in (0, 0.5], got {value!r}")


class _ThresholdMixin:
    """``decision_function`` and ``predict`` derived from ``score_samples`` and ``threshold_``."""

    threshold_: float

    def score_samples(self, X: ArrayLike) -> FloatArray:  # noqa: N803
        raise NotImplementedError

    def decision_function(self, X: ArrayLike) -> FloatArray:  # noqa: N803
        """Scores minus ``threshold_``: positive = anomalous, shape (n,)."""
        return self.score_samples(X) - self.threshold_

    def predict(self, X: ArrayLike) -> NDArray[np.int64]:  # noqa: N803
        """Labels of shape (n,): 1 anomalous (score above ``threshold_``), 0 normal."""
        return (self.decision_function(X) > 0).astype(np.int64)


class KNNDistance(_ThresholdMixin, OutlierMixin, BaseEstimator):  # type: ignore[misc]
    """Mean distance to the nearest normal training points (robustly scaled features).

    Parameters
    ----------
    n_neighbors : int, default 5
        Neighbours averaged (capped at the training size minus one).
    max_samples : int, default 2000
        Training points kept (a seeded random subset when there are more).
    contamination : float, default 0.05
        Fraction of training points above :attr:`threshold_` (leave-self-out scores).
    random_state : int or None, default 0
        Seed of the subset.

    Attributes
    ----------
    center_, scale_ : ndarray of shape (n_features,)
        Robust scaling (median, IQR) of the training features.
    train_ : ndarray of shape (n_kept, n_features)
        Scaled training points kept.
    n_neighbors_ : int
        Neighbours used.
    n_features_in_ : int
        Features seen in :meth:`fit`.
    threshold_ : float
        Score above which a point is anomalous.
    """

    def __init__(
        self,
        *,
        n_neighbors: int = 5,
        max_samples: int = 2000,
        contamination: float = 0.05,
        random_state: int | None = 0,
    ) -> None:
        self.n_neighbors = n_neighbors
        self.max_samples = max_samples
        self.contamination = contamination
        self.random_state = random_state

    def fit(self, X: ArrayLike, y: object = None) -> Self:  # noqa: N803
        """Keep (a subset of) the scaled normal training points.

        Raises
        ------
        DataError
            ``X`` is not a finite 2-D array with at least two rows.
        TrainingError
            A hyperparameter is invalid.
        """
        _check_int("n_neighbors", self.n_neighbors, minimum=1, allow_none=False)
        _check_int("max_samples", self.max_samples, minimum=2, allow_none=False)
        _check_int("random_state", self.random_state, minimum=0, allow_none=True)
        contamination = _check_contamination(self.contamination)
        data = _check_embeddings(X, n_features=None)
        if data.shape[0] < 2:
            raise DataError(f"need at least 2 rows to fit, got {data.shape[0]}", column="X")
        self.center_, self.scale_ = robust_center_scale(data)
        if data.shape[0] > self.max_samples:
            rng = np.random.default_rng(self.random_state)
            data = data[np.sort(rng.choice(data.shape[0], self.max_samples, replace=False))]
        self.train_ = (data - self.center_) / self.scale_
        self.n_neighbors_ = min(int(self.n_neighbors), self.train_.shape[0] - 1)
        self.n_features_in_ = data.shape[1]
        own = self._distances(self.train_, skip_self=True)
        self.threshold_ = float(np.percentile(own, 100.0 * (1.0 - contamination)))
        return self

    def score_samples(self, X: ArrayLike) -> FloatArray:  # noqa: N803
        """Mean distance to the ``n_neighbors_`` nearest training points, shape (n,)."""
        check_is_fitted(self)
        data = _check_embeddings(X, n_features=self.n_features_in_)
        return self._distances((data - self.center_) / self.scale_, skip_self=False)

    def _distances(self, scaled: FloatArray, *, skip_self: bool) -> FloatArray:
        """Mean k-NN distance of scaled rows; ``skip_self`` drops each row's own zero."""
        k = self.n_neighbors_ + int(skip_self)
        sq_train = np.einsum("ij,ij->i", self.train_, self.train_)
        out = np.empty(scaled.shape[0], dtype=np.float64)
        for start in range(0, scaled.shape[0], _QUERY_CHUNK):
            part = scaled[start : start + _QUERY_CHUNK]
            sq = np.einsum("ij,ij->i", part, part)[:, None] + sq_train - 2.0 * part @ self.train_.T
            nearest = np.sort(np.partition(np.maximum(sq, 0.0), k - 1, axis=1)[:, :k], axis=1)
            out[start : start + _QUERY_CHUNK] = np.sqrt(nearest[:, int(skip_self) :]).mean(axis=1)
        return out


class RobustZScore(_ThresholdMixin, OutlierMixin, BaseEstimator):  # type: ignore[misc]
    """Largest (or mean) robust z-score of a row's features against normal training rows.

    Parameters
    ----------
    aggregate : {"max", "mean"}, default "max"
        How the per-feature z-scores of a row are combined.
    two_sided : bool, default True
        Whether values below the median count (``|z|``) or only those above (``max(z, 0)``,
        e.g. reconstruction errors, where small is normal).
    contamination : float, default 0.05
        Fraction of training rows above :attr:`threshold_`.

    Attributes
    ----------
    center_, scale_ : ndarray of shape (n_features,)
        Median and IQR (standard deviation, else 1, where the IQR is 0) of training rows.
    n_features_in_ : int
        Features seen in :meth:`fit`.
    threshold_ : float
        Score above which a row is anomalous.
    """

    def __init__(
        self,
        *,
        aggregate: Literal["max", "mean"] = "max",
        two_sided: bool = True,
        contamination: float = 0.05,
    ) -> None:
        self.aggregate = aggregate
        self.two_sided = two_sided
        self.contamination = contamination

    def fit(self, X: ArrayLike, y: object = None) -> Self:  # noqa: N803
        """Fit the per-feature median and spread.

        Raises
        ------
        DataError
            ``X`` is not a finite 2-D array with at least two rows.
        TrainingError
            A hyperparameter is invalid.
        """
        if self.aggregate not in ("max", "mean"):
            raise TrainingError(f"aggregate: must be 'max' or 'mean', got {self.aggregate!r}")
        if not isinstance(self.two_sided, bool):
            raise TrainingError(f"two_sided: must be a bool, got {self.two_sided!r}")
        contamination = _check_contamination(self.contamination)
        data = _check_embeddings(X, n_features=None)
        if data.shape[0] < 2:
            raise DataError(f"need at least 2 rows to fit, got {data.shape[0]}", column="X")
        self.center_, self.scale_ = robust_center_scale(data)
        self.n_features_in_ = data.shape[1]
        train = self.score_samples(data)
        self.threshold_ = float(np.percentile(train, 100.0 * (1.0 - contamination)))
        return self

    def score_samples(self, X: ArrayLike) -> FloatArray:  # noqa: N803
        """Return the aggregated robust z-scores, shape (n,)."""
        check_is_fitted(self)
        data = _check_embeddings(X, n_features=self.n_features_in_)
        z = (data - self.center_) / self.scale_
        z = np.abs(z) if self.two_sided else np.maximum(z, 0.0)
        out: FloatArray = z.max(axis=1) if self.aggregate == "max" else z.mean(axis=1)
        return out
