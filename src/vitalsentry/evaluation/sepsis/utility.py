"""The PhysioNet/CinC 2019 normalised clinical utility (Reyna et al., Crit Care Med 2020).

Implemented from the challenge's published definition (``evaluate_sepsis_score.py``),
vectorised over all patient-hours of a cohort at once.

Definitions. Rows of one patient are hours ``t = 0, 1, …`` (row index, as the official
code). ``SepsisLabel`` is 1 from 6 h before the clinical onset on, so a septic patient's
onset is ``t_s = first labelled row + 6`` (``- dt_optimal``); a patient never labelled
has no onset. With ``d = t - t_s``, a positive prediction earns

- septic, ``d ≤ -6``: ``max((d + 12) / 6, u_fp)`` (0 at 12 h before onset, 1 at 6 h
  before; earlier alarms cost ``u_fp = -0.05``);
- septic, ``-6 < d ≤ 3``: ``(3 - d) / 9`` (from 1 down to 0 at 3 h after onset);
- not septic: ``u_fp = -0.05``;

and a negative prediction earns

- septic, ``-6 < d ≤ 3``: ``-2 (d + 6) / 9`` (a missed onset costs up to 2);
- anything else: 0 (``u_tn``).

Hours with ``d > 3`` count 0 whatever the prediction. A cohort's utility is the sum over
its rows; normalised, ``(U - U_inaction) / (U_best - U_inaction)``, where ``U_inaction``
predicts nothing (always negative → 0) and ``U_best`` predicts positive exactly for
``-12 ≤ d ≤ 3`` (ideal → 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from vitalsentry.errors import DataError

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class UtilityParams:
    """Parameters of the utility curve (the challenge's values by default).

    Attributes
    ----------
    dt_early, dt_optimal, dt_late : float
        Hours relative to onset where the reward starts, peaks and ends.
    max_u_tp : float
        Reward of a positive prediction at ``dt_optimal``.
    min_u_fn : float
        Cost of a missed onset at ``dt_late``.
    u_fp, u_tn : float
        Utility of a false alarm and of a true negative.
    """

    dt_early: float = -12.0
    dt_optimal: float = -6.0
    dt_late: float = 3.0
    max_u_tp: float = 1.0
    min_u_fn: float = -2.0
    u_fp: float = -0.05
    u_tn: float = 0.0


def _groups(patient: ArrayLike, labels: ArrayLike) -> tuple[NDArray[np.intp], NDArray[np.int8]]:
    """Validate inputs; return contiguous group codes and labels (rows grouped by patient)."""
    y = np.asarray(labels)
    if y.ndim != 1 or not np.isin(y, (0, 1)).all():
        raise DataError("labels must be a 1-d array of 0 and 1", column="labels")
    p = np.asarray(patient)
    if p.shape != y.shape:
        raise DataError(f"expected shape {y.shape}, got {p.shape}", column="patient")
    if p.size == 0:
        raise DataError("no patient-hours to score", column="labels")
    change = np.r_[True, p[1:] != p[:-1]]
    codes = np.cumsum(change) - 1
    if np.unique(p[change]).size != int(change.sum()):
        raise DataError("each patient's hours must be contiguous", column="patient")
    return codes.astype(np.intp), y.astype(np.int8)


def relative_hours(patient: ArrayLike, labels: ArrayLike) -> FloatArray:
    """Return the hours from sepsis onset (``t - t_s``) of each row (``-inf``: never septic).

    Parameters
    ----------
    patient : array_like, shape (n,)
        Patient of each row; each patient's rows contiguous and in time order.
    labels : array_like of {0, 1}, shape (n,)
        ``SepsisLabel`` of each row.

    Returns
    -------
    ndarray of float64, shape (n,)
    """
    codes, y = _groups(patient, labels)
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    t = np.arange(y.size) - np.repeat(starts, np.diff(np.r_[starts, y.size]))
    first = np.full(starts.size, np.inf)
    positive = np.flatnonzero(y)
    np.minimum.at(first, codes[positive], t[positive].astype(np.float64))
    onset = first[codes] - UtilityParams().dt_optimal
    return np.where(np.isfinite(onset), t - onset, -np.inf)


def row_utilities(
    relative: FloatArray, params: UtilityParams = UtilityParams()
) -> tuple[FloatArray, FloatArray]:
    """Return the utility of predicting positive and of predicting negative at each row.

    Parameters
    ----------
    relative : ndarray of float64, shape (n,)
        Hours from onset (:func:`relative_hours`); ``-inf`` = never septic.
    params : UtilityParams
        Curve parameters.

    Returns
    -------
    (u_positive, u_negative) : tuple of ndarray of float64, shape (n,)
    """
    d = relative
    septic = np.isfinite(d)
    early_slope = params.max_u_tp / (params.dt_optimal - params.dt_early)
    late_slope = -params.max_u_tp / (params.dt_late - params.dt_optimal)
    miss_slope = params.min_u_fn / (params.dt_late - params.dt_optimal)
    with np.errstate(invalid="ignore"):
        early = septic & (d <= params.dt_optimal)
        late = septic & (d > params.dt_optimal) & (d <= params.dt_late)
        u_pos = np.where(septic, 0.0, params.u_fp)
        u_pos = np.where(early, np.maximum(early_slope * (d - params.dt_early), params.u_fp), u_pos)
        u_pos = np.where(late, late_slope * (d - params.dt_late), u_pos)
        u_neg = np.where(septic, 0.0, params.u_tn)
        u_neg = np.where(late, miss_slope * (d - params.dt_optimal), u_neg)
    return u_pos.astype(np.float64), u_neg.astype(np.float64)


@dataclass(frozen=True)
class CohortUtility:
    """Per-row utilities of a cohort, for scoring any predictions on it quickly.

    Attributes
    ----------
    u_positive, u_negative : ndarray of float64, shape (n,)
        Utility of a positive / negative prediction at each row.
    best, inaction : float
        Unnormalised utility of the ideal predictions and of predicting nothing.
    """

    u_positive: FloatArray
    u_negative: FloatArray
    best: float
    inaction: float

    @classmethod
    def of(
        cls, patient: ArrayLike, labels: ArrayLike, params: UtilityParams = UtilityParams()
    ) -> CohortUtility:
        """Build from the rows' patients and ``SepsisLabel`` (see :func:`relative_hours`)."""
        d = relative_hours(patient, labels)
        u_pos, u_neg = row_utilities(d, params)
        with np.errstate(invalid="ignore"):
            ideal = np.isfinite(d) & (d >= params.dt_early) & (d <= params.dt_late)
        best = float(np.where(ideal, u_pos, u_neg).sum())
        inaction = float(u_neg.sum())
        if best == inaction:
            raise DataError(
                "utility cannot be normalised: the ideal predictions score as inaction",
                column="labels",
            )
        return cls(u_pos, u_neg, best, inaction)

    def raw(self, predictions: ArrayLike) -> float:
        """Unnormalised utility of binary ``predictions`` (shape (n,))."""
        pred = np.asarray(predictions, dtype=bool)
        if pred.shape != self.u_positive.shape:
            raise DataError(
                f"expected shape {self.u_positive.shape}, got {pred.shape}", column="predictions"
            )
        return float(np.where(pred, self.u_positive, self.u_negative).sum())

    def normalised(self, predictions: ArrayLike) -> float:
        """Normalised utility of binary ``predictions``: inaction = 0, ideal = 1."""
        return (self.raw(predictions) - self.inaction) / (self.best - self.inaction)

    def curve(self, scores: ArrayLike) -> tuple[FloatArray, FloatArray]:
        """Normalised utility of ``scores >= threshold`` at every distinct threshold.

        Parameters
        ----------
        scores : array_like of float, shape (n,)
            Higher = more likely septic; NaN is never an alarm.

        Returns
        -------
        (thresholds, utilities) : tuple of ndarray of float64
            Distinct finite scores in decreasing order and the normalised utility of
            alarming at rows whose score is ≥ each.
        """
        s = np.asarray(scores, dtype=np.float64)
        if s.shape != self.u_positive.shape:
            raise DataError(
                f"expected shape {self.u_positive.shape}, got {s.shape}", column="scores"
            )
        finite = np.flatnonzero(~np.isnan(s))
        order = finite[np.argsort(-s[finite], kind="stable")]
        gain = np.cumsum((self.u_positive - self.u_negative)[order])
        ordered = s[order]
        last = np.r_[ordered[1:] != ordered[:-1], True]
        raw = self.inaction + gain[last]
        return ordered[last], (raw - self.inaction) / (self.best - self.inaction)

    def best_threshold(self, scores: ArrayLike) -> tuple[float, float]:
        """Threshold maximising the normalised utility of ``scores >= threshold``.

        Returns
        -------
        (threshold, utility) : tuple of float
            ``inf`` and 0.0 when no threshold beats predicting nothing.
        """
        thresholds, utilities = self.curve(scores)
        if utilities.size == 0 or utilities.max() <= 0.0:
            return float("inf"), 0.0
        i = int(np.argmax(utilities))
        return float(thresholds[i]), float(utilities[i])
