"""Raw anomaly scores → 0–1 risk, decision thresholds and levels; the "why" and uncertainty.

Detectors return raw scores (higher = more anomalous); everything that turns them into
something a clinician reads lives here.

Risk mapping (rule): ``risk = clip((score - low) / (high - low), 0, 1)``, monotone
non-decreasing in the score. ``low`` is the median (:data:`LOW_PERCENTILE`) of the
normal training scores, so a typical normal window has risk 0. ``high`` is the 95th
percentile (:data:`HIGH_PERCENTILE`) of the abnormal training scores (the seed's "risk
bounds from both classes"). Without abnormal scores, or when their 95th percentile is not
above ``low`` (a detector that does not separate the classes), ``high`` falls back to
the maximum normal score plus the normal interquartile range; the calibration records
which bound was used (``upper_bound_source``).

Thresholds (rule): chosen on validation patients' normal windows, never on training
scores. A window is "high" when its score is strictly above ``threshold_high``, the
``1 - target_fpr`` quantile of the validation normal scores taken as an observed value
(numpy's ``"higher"`` method), so at most ``target_fpr`` of those windows are "high".
That quantile estimates the threshold from a few patients and misses the target on new
ones about half the time; with ``fpr_confidence`` c > 0 and the validation windows'
patients given, ``threshold_high`` is raised to the c-quantile of the same quantile over
:data:`BOOTSTRAP_RESAMPLES` resamples of the validation patients (with replacement,
seeded): an upper confidence bound on the threshold that gives ``target_fpr`` over
patients like these. The bootstrap is optimistic with few patients, so the bound holds
less often than c (simulated, 5 patients: new cohorts exceed the target about 20-30% of
the time instead of about 50%). With ``per_patient`` as well, ``threshold_high`` is at
least the c-quantile, over patients, of each patient's own ``1 - target_fpr`` score
quantile: a threshold that at most a share 1 - c of these patients exceed the target at,
one by one, which is what holds on new patients whose scores sit apart from the others.
"medium" is strictly above ``threshold_medium``, the ``1 - 3 * target_fpr`` quantile
(:data:`MEDIUM_FPR_FACTOR`), capped at ``threshold_high``. Both thresholds are stored
in score and in risk units; levels are decided in score units (the risk is clipped).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any, Final, Literal, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from vitalsentry.errors import BundleError, DataError, VitalSentryError

FloatArray = NDArray[np.float64]

LOW_PERCENTILE: Final = 50.0
"""Percentile of normal training scores mapped to risk 0."""

HIGH_PERCENTILE: Final = 95.0
"""Percentile of abnormal training scores mapped to risk 1."""

MEDIUM_FPR_FACTOR: Final = 3.0
"""The "medium" threshold allows this many times ``target_fpr`` on validation normals."""

BOOTSTRAP_RESAMPLES: Final = 200
"""Patient-level resamples behind the guarded ``threshold_high``."""

UpperBoundSource = Literal["abnormal", "normal"]


@dataclass(frozen=True)
class RiskCalibration:
    """Fitted mapping from raw anomaly scores to risk and levels.

    Attributes
    ----------
    low, high : float
        Scores mapped to risk 0 and 1 (``low < high``).
    threshold_medium, threshold_high : float
        Score thresholds: above ``threshold_high`` is "high", above
        ``threshold_medium`` is "medium", otherwise "low".
    risk_medium, risk_high : float
        The same thresholds in risk units.
    target_fpr : float
        Requested false-positive rate of "high" on validation normal windows.
    val_fpr : float
        Achieved fraction of validation normal windows that are "high".
    val_recall : float or None
        Fraction of validation abnormal windows that are "high"; None when no
        validation abnormal scores were given.
    upper_bound_source : {"abnormal", "normal"}
        Whether ``high`` came from the abnormal class or the normal-only fallback.

    """

    low: float
    high: float
    threshold_medium: float
    threshold_high: float
    risk_medium: float
    risk_high: float
    target_fpr: float
    val_fpr: float
    val_recall: float | None
    upper_bound_source: UpperBoundSource

    def __post_init__(self) -> None:
        optional = {"upper_bound_source"} | ({"val_recall"} if self.val_recall is None else set())
        bad = [
            f.name
            for f in dataclasses.fields(self)
            if f.name not in optional and not _is_finite_number(getattr(self, f.name))
        ]
        if bad:
            raise BundleError(f"risk calibration: not a finite number: {', '.join(bad)}")
        if not self.low < self.high:
            raise BundleError("risk calibration: low bound must be below high bound")
        if not self.threshold_medium <= self.threshold_high:
            raise BundleError("risk calibration: medium threshold above high threshold")
        if self.upper_bound_source not in ("abnormal", "normal"):
            raise BundleError(
                f"risk calibration: unknown upper_bound_source {self.upper_bound_source!r}"
            )

    def risk(self, scores: ArrayLike) -> FloatArray:
        """Map raw scores to risk in [0, 1].

        Parameters
        ----------
        scores : array_like of float, any shape
            Raw anomaly scores (higher = more anomalous).

        Returns
        -------
        ndarray of float64, same shape
            Risk, ``clip((score - low) / (high - low), 0, 1)``.

        """
        values = _finite("scores", scores, allow_empty=True)
        return np.clip((values - self.low) / (self.high - self.low), 0.0, 1.0)

    def level(self, scores: ArrayLike) -> NDArray[np.str_]:
        """Risk levels of raw scores.

        Parameters
        ----------
        scores : array_like of float, any shape
            Raw anomaly scores.

        Returns
        -------
        ndarray of str, same shape
            ``"high"`` above ``threshold_high``, ``"medium"`` above
            ``threshold_medium``, otherwise ``"low"``.

        """
        values = _finite("scores", scores, allow_empty=True)
        return np.select(
            [values > self.threshold_high, values > self.threshold_medium],
            ["high", "medium"],
            default="low",
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the calibration as JSON-ready builtins."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Rebuild a calibration from :meth:`to_dict` output.

        Raises
        ------
        BundleError
            Keys are missing or unknown, or the values are inconsistent.

        """
        names = {f.name for f in dataclasses.fields(cls)}
        missing, unknown = sorted(names - set(data)), sorted(set(data) - names)
        if missing or unknown:
            raise BundleError(
                f"risk calibration: missing keys {missing or 'none'}, unknown keys "
                f"{unknown or 'none'}"
            )
        return cls(**data)


def _is_finite_number(value: object) -> bool:
    """Whether ``value`` is a real, finite, non-boolean number."""
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def _finite(name: str, values: ArrayLike, *, allow_empty: bool) -> FloatArray:
    """Return ``values`` as a finite float64 array, or raise :class:`DataError`."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"not numeric ({exc})", column=name) from exc
    if arr.size == 0 and not allow_empty:
        raise DataError("no scores", column=name)
    if not np.isfinite(arr).all():
        raise DataError("NaN or infinite value", column=name)
    return arr


def _scores(name: str, values: ArrayLike) -> FloatArray:
    """Return a non-empty finite 1-D score array."""
    arr = _finite(name, values, allow_empty=False)
    if arr.ndim != 1:
        raise DataError(f"expected a 1-D array of scores, got shape {arr.shape}", column=name)
    return arr


def fit_calibration(
    normal_scores: ArrayLike,
    abnormal_scores: ArrayLike | None = None,
    *,
    val_normal_scores: ArrayLike,
    target_fpr: float = 0.03,
    val_abnormal_scores: ArrayLike | None = None,
    val_normal_groups: ArrayLike | None = None,
    fpr_confidence: float = 0.0,
    seed: int = 0,
    per_patient: bool = False,
) -> RiskCalibration:
    """Fit the risk bounds and the thresholds (rules in the module docstring).

    Parameters
    ----------
    normal_scores : array_like of shape (n_normal,)
        Raw scores of normal training windows.
    abnormal_scores : array_like of shape (n_abnormal,), optional
        Raw scores of abnormal training windows.
    val_normal_scores : array_like of shape (n_val_normal,)
        Raw scores of normal windows of validation patients (sets the thresholds).
    target_fpr : float, default 0.03
        Largest fraction of validation normal windows allowed to be "high", in (0, 1).
    val_abnormal_scores : array_like of shape (n_val_abnormal,), optional
        Raw scores of abnormal validation windows (only reported, as ``val_recall``).
    val_normal_groups : array_like of shape (n_val_normal,), optional
        Patient of each validation normal window (for the guarded threshold).
    fpr_confidence : float, default 0.0
        Confidence, in [0, 1), of the patient-bootstrap bound on the threshold;
        0 (or fewer than two patients) keeps the plain validation quantile.
    seed : int, default 0
        Seed of the patient resampling.
    per_patient : bool, default False
        Also bound ``threshold_high`` below by the ``fpr_confidence``-quantile over
        patients of each patient's own ``1 - target_fpr`` quantile (needs the groups).

    Returns
    -------
    RiskCalibration
        The fitted calibration.

    Raises
    ------
    DataError
        An input is empty, not 1-D or not finite, or the normal scores are constant
        when the normal-only upper bound is needed.
    VitalSentryError
        ``target_fpr`` is not in (0, 1), ``fpr_confidence`` not in [0, 1), or the groups
        do not match the validation scores.

    """
    if not 0.0 < target_fpr < 1.0:
        raise VitalSentryError(f"target_fpr: must be in (0, 1), got {target_fpr!r}")
    if not 0.0 <= fpr_confidence < 1.0:
        raise VitalSentryError(f"fpr_confidence: must be in [0, 1), got {fpr_confidence!r}")
    normal = _scores("normal_scores", normal_scores)
    val_normal = _scores("val_normal_scores", val_normal_scores)
    low = float(np.percentile(normal, LOW_PERCENTILE))
    high, source = _upper_bound(normal, low, abnormal_scores)
    threshold_high = float(np.quantile(val_normal, 1.0 - target_fpr, method="higher"))
    if fpr_confidence > 0 and val_normal_groups is not None:
        threshold_high = max(
            threshold_high,
            _guarded_quantile(
                val_normal, val_normal_groups, 1.0 - target_fpr, fpr_confidence, seed
            ),
        )
        if per_patient:
            threshold_high = max(
                threshold_high,
                _patient_quantile(val_normal, val_normal_groups, 1.0 - target_fpr, fpr_confidence),
            )
    medium_level = max(0.0, 1.0 - MEDIUM_FPR_FACTOR * target_fpr)
    threshold_medium = min(
        float(np.quantile(val_normal, medium_level, method="higher")), threshold_high
    )
    recall = None
    if val_abnormal_scores is not None:
        val_abnormal = _scores("val_abnormal_scores", val_abnormal_scores)
        recall = float(np.mean(val_abnormal > threshold_high))
    span = high - low
    return RiskCalibration(
        low=low,
        high=high,
        threshold_medium=threshold_medium,
        threshold_high=threshold_high,
        risk_medium=float(np.clip((threshold_medium - low) / span, 0.0, 1.0)),
        risk_high=float(np.clip((threshold_high - low) / span, 0.0, 1.0)),
        target_fpr=float(target_fpr),
        val_fpr=float(np.mean(val_normal > threshold_high)),
        val_recall=recall,
        upper_bound_source=source,
    )


def _groups_of(scores: FloatArray, groups: ArrayLike) -> list[FloatArray]:
    """Split ``scores`` by their group (patient), in sorted group order."""
    keys = np.asarray(groups)
    if keys.shape != scores.shape:
        raise VitalSentryError(
            f"val_normal_groups: shape {keys.shape} does not match the scores {scores.shape}"
        )
    codes = np.unique(keys, return_inverse=True)[1].ravel()
    order = np.argsort(codes, kind="stable")
    return np.split(scores[order], np.cumsum(np.bincount(codes))[:-1])


def _patient_quantile(
    scores: FloatArray, groups: ArrayLike, level: float, confidence: float
) -> float:
    """``confidence``-quantile over patients of each patient's ``level`` score quantile."""
    per_group = _groups_of(scores, groups)
    own = [np.quantile(part, level, method="higher") for part in per_group]
    return float(np.quantile(own, confidence, method="higher"))


def _guarded_quantile(
    scores: FloatArray, groups: ArrayLike, level: float, confidence: float, seed: int
) -> float:
    """``confidence``-quantile of the ``level`` score quantile over patient resamples."""
    per_group = _groups_of(scores, groups)
    n_groups = len(per_group)
    if n_groups < 2:
        return float(np.quantile(scores, level, method="higher"))
    rng = np.random.default_rng(seed)
    draws = [
        np.quantile(
            np.concatenate([per_group[g] for g in rng.integers(0, n_groups, n_groups)]),
            level,
            method="higher",
        )
        for _ in range(BOOTSTRAP_RESAMPLES)
    ]
    return float(np.quantile(draws, confidence))


def _upper_bound(
    normal: FloatArray, low: float, abnormal_scores: ArrayLike | None
) -> tuple[float, UpperBoundSource]:
    """Score mapped to risk 1, and which class it came from."""
    if abnormal_scores is not None:
        abnormal = _scores("abnormal_scores", abnormal_scores)
        high = float(np.percentile(abnormal, HIGH_PERCENTILE))
        if high > low:
            return high, "abnormal"
    q25, q75 = np.percentile(normal, [25.0, 75.0])
    high = float(normal.max() + (q75 - q25))
    if not high > low:
        raise DataError(
            "normal scores are constant, so no risk scale can be fitted", column="normal_scores"
        )
    return high, "normal"


def channel_contributions(errors: ArrayLike, channel_names: Sequence[str]) -> FloatArray:
    """Share of each channel in a window's reconstruction error (the "why").

    Parameters
    ----------
    errors : array_like of shape (n_windows, n_channels)
        Non-negative per-channel reconstruction errors.
    channel_names : sequence of str, length n_channels
        Channel names, in column order.

    Returns
    -------
    ndarray of shape (n_windows, n_channels)
        Rows summing to 1; a row of zero errors gets equal shares.

    Raises
    ------
    DataError
        Wrong shape, a name count that does not match, NaN/inf or negative errors.

    """
    values = _channel_matrix("errors", errors, channel_names)
    if (values < 0).any():
        raise DataError("negative reconstruction error", column="errors")
    totals = values.sum(axis=1, keepdims=True)
    uniform = np.full_like(values, 1.0 / values.shape[1])
    safe_totals = np.where(totals > 0, totals, 1.0)
    return np.where(totals > 0, values / safe_totals, uniform)


def top_channel(contributions: ArrayLike, channel_names: Sequence[str]) -> list[str]:
    """Name of the largest contributor per window (ties: first in ``channel_names``).

    Parameters
    ----------
    contributions : array_like of shape (n_windows, n_channels)
        Output of :func:`channel_contributions`.
    channel_names : sequence of str, length n_channels
        Channel names, in column order.

    Returns
    -------
    list of str, length n_windows
        The top channel of each window.

    """
    values = _channel_matrix("contributions", contributions, channel_names)
    return [channel_names[i] for i in np.argmax(values, axis=1)]


def _channel_matrix(name: str, values: ArrayLike, channel_names: Sequence[str]) -> FloatArray:
    """Return a finite (n_windows, n_channels) matrix matching ``channel_names``."""
    arr = _finite(name, values, allow_empty=True)
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise DataError(f"expected shape (n_windows, n_channels), got {arr.shape}", column=name)
    if arr.shape[1] != len(channel_names):
        raise DataError(
            f"{arr.shape[1]} channels but {len(channel_names)} channel names", column=name
        )
    return arr


def mc_summary(samples: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Mean and standard deviation over Monte Carlo dropout passes.

    Parameters
    ----------
    samples : array_like of shape (n_passes, n_windows)
        One score per pass and window (dropout on at inference), ``n_passes ≥ 2``.

    Returns
    -------
    mean, std : ndarray of shape (n_windows,)
        Per-window mean and population standard deviation (``ddof=0``) over passes.

    Raises
    ------
    DataError
        Not 2-D, fewer than two passes, or NaN/inf values.

    """
    values = _finite("samples", samples, allow_empty=True)
    if values.ndim != 2:
        raise DataError(
            f"expected shape (n_passes, n_windows), got {values.shape}", column="samples"
        )
    if values.shape[0] < 2:
        raise DataError(
            f"need at least 2 Monte Carlo passes, got {values.shape[0]}", column="samples"
        )
    return values.mean(axis=0), values.std(axis=0)


def fold_fpr(
    scores: ArrayLike,
    fold: ArrayLike,
    groups: ArrayLike,
    *,
    target_fpr: float,
    fpr_confidence: float,
    extra: tuple[ArrayLike, ArrayLike] | None = None,
    seed: int = 0,
    per_patient: bool = False,
) -> dict[str, Any]:
    """False-positive rate on unseen patients, fold by fold (leave-patients-out).

    For each fold, ``threshold_high`` is fitted by :func:`fit_calibration`'s rule on the
    normal scores of the other folds (and ``extra``), then applied to the fold's normals.

    Parameters
    ----------
    scores, fold, groups : array_like of shape (n,)
        Out-of-fold scores of normal windows, their fold and their patient.
    target_fpr, fpr_confidence, per_patient
        As in :func:`fit_calibration`.
    extra : (scores, groups), optional
        Further normal windows (validation patients) always in the threshold pool.
    seed : int, default 0
        Seed of the patient bootstrap.

    Returns
    -------
    dict
        ``fpr`` per fold, ``exceeded`` (folds above the target), ``folds`` and
        ``share_within_target``.
    """
    values = _scores("scores", scores)
    folds, keys = np.asarray(fold), np.asarray(groups)
    more, more_keys = (
        (np.empty(0), np.empty(0, dtype=keys.dtype))
        if extra is None
        else (
            _finite("extra", extra[0], allow_empty=True),
            np.asarray(extra[1]),
        )
    )
    rates = []
    for k in np.unique(folds):
        held = folds == k
        pool = np.concatenate([values[~held], more])
        pool_keys = np.concatenate([keys[~held].astype(str), more_keys.astype(str)])
        threshold = fit_calibration(
            pool,
            val_normal_scores=pool,
            target_fpr=target_fpr,
            val_normal_groups=pool_keys,
            fpr_confidence=fpr_confidence,
            seed=seed,
            per_patient=per_patient,
        ).threshold_high
        rates.append(float(np.mean(values[held] > threshold)))
    exceeded = int(sum(rate > target_fpr for rate in rates))
    return {
        "fpr": rates,
        "folds": len(rates),
        "exceeded": exceeded,
        "share_within_target": 1.0 - exceeded / len(rates),
        "target_fpr": target_fpr,
    }
