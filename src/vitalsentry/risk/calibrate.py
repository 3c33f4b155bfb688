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
scores. A window is "high" when its score is strictly above ``threshold_high``, at least
the ``1 - target_fpr`` quantile of the validation normal scores taken as an observed value
(numpy's ``"higher"`` method), so at most ``target_fpr`` of those windows are "high".
That pooled quantile controls the FPR of the windows it saw, not of new patients: patients
differ in their own level, so the FPR of a cohort of new patients scatters around the
target and exceeds it about half the time. With ``fpr_confidence`` c > 0 and the
validation windows' patients given, ``threshold_high`` is raised to the smallest observed
score at which a share c of random cohorts of new patients keep their FPR (windows above
it / windows) within ``target_fpr`` (:func:`cohort_threshold`): cohorts of
``cohort_patients`` patients (default: all the validation patients; the detector stage
passes the size of a cross-fitting fold) are drawn with replacement from the validation
patients, :data:`BOOTSTRAP_RESAMPLES` times (seeded). Because the validation patients are
themselves a sample, a cohort of m patients is drawn as ``m n / (m + n)`` of the n
validation patients, whose cohort FPR has the variance of m new patients' plus that of
the estimate (the prediction-interval correction). The bootstrap is still optimistic in
the tail with few patients and a wide between-patient spread (simulated: 40 patients whose
levels spread as much as their own noise, c = 0.9, 8-patient cohorts: 83% of new cohorts
within the target; 200 patients: 90%; the pooled quantile: about 50%). When different fitted models scored
the validation windows (``val_normal_scorer``: the detector stage's cross-fitting folds
and its final views), a cohort is drawn from one model's windows, so the spread between
models counts too. With ``per_patient`` as well,
``threshold_high`` is at least the c-quantile, over patients, of each patient's own
``1 - target_fpr`` score quantile: a threshold that at most a share 1 - c of these
patients exceed the target at, one by one.
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

BOOTSTRAP_RESAMPLES: Final = 1000
"""Cohorts of patients drawn for the guarded ``threshold_high``."""

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
    cohort_patients: int | None = None,
    val_normal_scorer: ArrayLike | None = None,
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
        Share, in [0, 1), of new-patient cohorts whose FPR must stay within the target
        (:func:`cohort_threshold`); 0 (or fewer than two patients) keeps the plain
        validation quantile.
    seed : int, default 0
        Seed of the cohort draws.
    per_patient : bool, default False
        Also bound ``threshold_high`` below by the ``fpr_confidence``-quantile over
        patients of each patient's own ``1 - target_fpr`` quantile (needs the groups).
    cohort_patients : int, optional
        Patients in a new cohort; default: as many as the validation patients (of one
        scorer).
    val_normal_scorer : array_like of shape (n_val_normal,), optional
        Fitted model that scored each validation normal window (e.g. its cross-fitting
        fold): cohorts are drawn within one scorer (:func:`cohort_threshold`).

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
        ``target_fpr`` is not in (0, 1), ``fpr_confidence`` not in [0, 1),
        ``cohort_patients`` is below 1, or the groups do not match the validation scores.

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
            cohort_threshold(
                val_normal,
                val_normal_groups,
                target_fpr=target_fpr,
                confidence=fpr_confidence,
                cohort_patients=cohort_patients,
                scorer=val_normal_scorer,
                seed=seed,
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


def _group_codes(
    scores: FloatArray, groups: ArrayLike, name: str = "val_normal_groups"
) -> NDArray[np.int64]:
    """Code 0..G-1 of each score's group (patient), in sorted group order."""
    keys = np.asarray(groups)
    if keys.shape != scores.shape:
        raise VitalSentryError(
            f"{name}: shape {keys.shape} does not match the scores {scores.shape}"
        )
    codes: NDArray[np.int64] = np.unique(keys, return_inverse=True)[1].ravel().astype(np.int64)
    return codes


def _groups_of(scores: FloatArray, groups: ArrayLike) -> list[FloatArray]:
    """Split ``scores`` by their group (patient), in sorted group order."""
    codes = _group_codes(scores, groups)
    order = np.argsort(codes, kind="stable")
    return np.split(scores[order], np.cumsum(np.bincount(codes))[:-1])


def _patient_quantile(
    scores: FloatArray, groups: ArrayLike, level: float, confidence: float
) -> float:
    """``confidence``-quantile over patients of each patient's ``level`` score quantile."""
    per_group = _groups_of(scores, groups)
    own = [np.quantile(part, level, method="higher") for part in per_group]
    return float(np.quantile(own, confidence, method="higher"))


def cohort_threshold(
    scores: ArrayLike,
    groups: ArrayLike,
    *,
    target_fpr: float,
    confidence: float,
    cohort_patients: int | None = None,
    scorer: ArrayLike | None = None,
    seed: int = 0,
) -> float:
    """Smallest observed score at which a share ``confidence`` of new cohorts meet the target.

    A cohort's FPR is the fraction of its normal windows strictly above the threshold. A
    cohort is drawn from the patients of one scorer (``scorer``: the fitted model that
    scored a window, e.g. its cross-fitting fold; scorers take turns), as
    ``m n / (m + n)`` of its ``n`` patients with replacement (``m = cohort_patients``;
    rounded, at least 1); :data:`BOOTSTRAP_RESAMPLES` cohorts in all, seeded. The
    ``confidence``-quantile (``"higher"``) of their FPR is non-increasing in the
    threshold, so the smallest observed score meeting the target is found by bisection.

    Parameters
    ----------
    scores, groups : array_like of shape (n_windows,)
        Normal windows' scores and their patient.
    target_fpr : float
        Largest FPR allowed to a cohort, in (0, 1).
    confidence : float
        Share of cohorts within the target, in [0, 1).
    cohort_patients : int, optional
        Patients of a new cohort; default: as many as one scorer's.
    scorer : array_like of shape (n_windows,), optional
        Scorer of each window; cohorts never mix scorers, so the spread between fitted
        models counts as well as the spread between patients. Default: one scorer.
    seed : int, default 0

    Returns
    -------
    float
        The threshold (the plain ``1 - target_fpr`` quantile with fewer than two patients).

    Raises
    ------
    VitalSentryError
        The groups or scorers do not match the scores, or ``cohort_patients`` < 1.
    """
    values = _scores("scores", scores)
    patient = _group_codes(values, groups, "val_normal_groups")
    if patient.max() < 1:
        return float(np.quantile(values, 1.0 - target_fpr, method="higher"))
    if cohort_patients is not None and cohort_patients < 1:
        raise VitalSentryError(f"cohort_patients: must be ≥ 1, got {cohort_patients!r}")
    model = np.zeros_like(patient) if scorer is None else _group_codes(values, scorer, "scorer")
    pairs, unit = np.unique(model * (patient.max() + 1) + patient, return_inverse=True)
    unit = unit.ravel()
    cohorts = _draw_cohorts(pairs // (patient.max() + 1), cohort_patients, seed)
    windows = np.bincount(unit)
    candidates = np.unique(values)

    def meets(threshold: float) -> bool:
        above = np.bincount(unit, weights=values > threshold, minlength=windows.size)
        fpr = np.concatenate([above[c].sum(axis=1) / windows[c].sum(axis=1) for c in cohorts])
        return bool(np.quantile(fpr, confidence, method="higher") <= target_fpr)

    lo, hi = 0, candidates.size - 1  # the largest score always meets it (no window above)
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if meets(candidates[mid]) else (mid + 1, hi)
    return float(candidates[lo])


def _draw_cohorts(
    unit_model: NDArray[np.int64], cohort_patients: int | None, seed: int
) -> list[NDArray[np.int64]]:
    """Per scorer, cohorts (rows) of unit indices drawn with replacement (sizes above)."""
    rng = np.random.default_rng(seed)
    models = np.unique(unit_model)
    per_model = max(1, BOOTSTRAP_RESAMPLES // models.size)
    out = []
    for k in models:
        members = np.flatnonzero(unit_model == k)
        m = members.size if cohort_patients is None else cohort_patients
        size = max(1, round(m * members.size / (m + members.size)))
        out.append(rng.choice(members, (per_model, size)))
    return out


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
    cohort_patients: int | None = None,
) -> dict[str, Any]:
    """False-positive rate on unseen patients, fold by fold (leave-patients-out).

    For each fold, ``threshold_high`` is fitted by :func:`fit_calibration`'s rule on the
    normal scores of the other folds (and ``extra``), then applied to the fold's normals.
    The rule's new cohorts have ``cohort_patients`` patients: by default the patients of
    a fold (:func:`fold_patients`), the cohorts these folds are; each fold's windows (and
    ``extra``'s) count as one scorer, since different fitted views scored them.

    Parameters
    ----------
    scores, fold, groups : array_like of shape (n,)
        Out-of-fold scores of normal windows, their fold and their patient.
    target_fpr, fpr_confidence, per_patient
        As in :func:`fit_calibration`.
    extra : (scores, groups), optional
        Further normal windows (validation patients) always in the threshold pool.
    seed : int, default 0
        Seed of the cohort draws.
    cohort_patients : int, optional
        As in :func:`fit_calibration`; default: the patients of a fold.

    Returns
    -------
    dict
        ``fpr`` per fold, ``exceeded`` (folds above the target), ``folds``,
        ``share_within_target``, ``target_fpr`` and ``cohort_patients``.
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
    if cohort_patients is None:
        cohort_patients = fold_patients(folds, keys)
    rates = []
    for k in np.unique(folds):
        held = folds == k
        pool = np.concatenate([values[~held], more])
        pool_keys = np.concatenate([keys[~held].astype(str), more_keys.astype(str)])
        pool_scorer = np.concatenate([folds[~held].astype(str), np.full(more.size, "extra")])
        threshold = fit_calibration(
            pool,
            val_normal_scores=pool,
            target_fpr=target_fpr,
            val_normal_groups=pool_keys,
            fpr_confidence=fpr_confidence,
            seed=seed,
            per_patient=per_patient,
            cohort_patients=cohort_patients,
            val_normal_scorer=pool_scorer,
        ).threshold_high
        rates.append(float(np.mean(values[held] > threshold)))
    exceeded = int(sum(rate > target_fpr for rate in rates))
    return {
        "fpr": rates,
        "folds": len(rates),
        "exceeded": exceeded,
        "share_within_target": 1.0 - exceeded / len(rates),
        "target_fpr": target_fpr,
        "cohort_patients": cohort_patients,
    }


def fold_patients(fold: ArrayLike, groups: ArrayLike) -> int:
    """Mean number of patients (``groups``) per fold, rounded, at least 1."""
    folds, keys = np.asarray(fold), np.asarray(groups)
    per_fold = [np.unique(keys[folds == k]).size for k in np.unique(folds)]
    return max(1, round(float(np.mean(per_fold))))
