"""Metrics of hourly sepsis scores on a set of patients: utility, ranking, alarms, calibration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from vitalsentry.evaluation import metrics
from vitalsentry.evaluation.sepsis.bootstrap import PatientBootstrap
from vitalsentry.evaluation.sepsis.utility import CohortUtility, UtilityParams, relative_hours

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Patients:
    """The patient-hours a score is evaluated on.

    Attributes
    ----------
    patient : ndarray, shape (n,)
        Patient of each row (contiguous, time order).
    label : ndarray of int8, shape (n,)
        ``SepsisLabel``.
    utility : CohortUtility
        Per-row utilities of these rows.
    relative : ndarray of float64, shape (n,)
        Hours from onset (``-inf``: never septic).
    """

    patient: NDArray[Any]
    label: NDArray[np.int8]
    utility: CohortUtility
    relative: FloatArray

    @classmethod
    def of(cls, patient: NDArray[Any], label: NDArray[np.int8]) -> Patients:
        """Build from rows' patients and labels."""
        return cls(patient, label, CohortUtility.of(patient, label), relative_hours(patient, label))


def lead_times(p: Patients, alarm: NDArray[np.bool_]) -> tuple[FloatArray, int]:
    """Hours from each septic patient's first useful alarm to onset.

    Notes
    -----
    **Lead time**: for each septic patient, onset minus the hour of its first alarm that
    comes no later than 3 h after onset (the end of the utility's reward); positive =
    before onset. Patients without such an alarm are missed.

    Returns
    -------
    (leads, septic) : ndarray of float64 and int
        Lead of every detected septic patient, and the number of septic patients.
    """
    useful = alarm & np.isfinite(p.relative) & (p.relative <= 3.0)
    _, first = np.unique(p.patient[useful], return_index=True)
    septic = int(np.unique(p.patient[np.isfinite(p.relative)]).size)
    return -p.relative[np.flatnonzero(useful)[first]], septic


def _ideal(p: Patients) -> NDArray[np.bool_]:
    """Rows the ideal predictions alarm at (12 h before to 3 h after onset)."""
    params = UtilityParams()
    with np.errstate(invalid="ignore"):
        out: NDArray[np.bool_] = (p.relative >= params.dt_early) & (p.relative <= params.dt_late)
    return out


def _patient_gains(p: Patients, boot: PatientBootstrap, alarm: NDArray[np.bool_]) -> FloatArray:
    """(P,) utility gained over alarming never by each patient of ``boot`` with ``alarm``."""
    gain = p.utility.u_positive - p.utility.u_negative
    weights = np.where(alarm, gain, 0.0)
    return np.bincount(boot.codes, weights, boot.counts.shape[1]).astype(np.float64)


def paired_utility_difference(
    p: Patients, a: NDArray[np.bool_], b: NDArray[np.bool_], boot: PatientBootstrap
) -> dict[str, Any]:
    """Normalised utility of alarms ``a`` minus that of alarms ``b`` on ``p``, with a paired CI.

    Notes
    -----
    Both alarm sets (each method's test alarms at its validation threshold, held fixed)
    are scored on the same patient-bootstrap resamples ``boot`` of ``p``; each resample's
    utilities are normalised by its own ideal, as the challenge normalises a cohort.

    Returns
    -------
    dict
        ``difference`` and ``ci`` (2.5th, 97.5th percentiles).
    """
    ideal = boot.counts @ _patient_gains(p, boot, _ideal(p))
    diffs = boot.counts @ (_patient_gains(p, boot, a) - _patient_gains(p, boot, b))
    diffs = diffs / np.maximum(ideal, 1e-12)
    return {
        "difference": p.utility.normalised(a) - p.utility.normalised(b),
        "ci": [float(q) for q in np.quantile(diffs, [0.025, 0.975])],
    }


def bagged_threshold(
    scores: FloatArray, p: Patients, boot: PatientBootstrap
) -> tuple[float, float]:
    """Alarm threshold of ``scores >= threshold`` chosen on ``p`` by bagging.

    Notes
    -----
    The utility curve is flat near its top, so its single argmax jumps with a few
    patients. This takes the argmax on each patient-bootstrap resample of ``p`` (``boot``,
    drawn on ``p``'s patients; every curve from one sort of the scores) and returns their
    median: Breiman's bagging of an unstable choice.

    Returns
    -------
    (threshold, utility) : tuple of float
        The threshold and ``p``'s own normalised utility at it; ``inf`` and 0.0 when no
        threshold beats alarming never on ``p`` itself.
    """
    s = np.asarray(scores, dtype=np.float64)
    if not np.isfinite(p.utility.best_threshold(s)[0]):
        return float("inf"), 0.0
    gain = p.utility.u_positive - p.utility.u_negative
    ideal_gain = _patient_gains(p, boot, _ideal(p))
    finite = np.flatnonzero(~np.isnan(s))
    order = finite[np.argsort(-s[finite], kind="stable")]
    ordered = s[order]
    last = np.r_[ordered[1:] != ordered[:-1], True]
    thresholds, codes, gain = ordered[last], boot.codes[order], gain[order]

    def argmax(w: FloatArray) -> float:
        curve = np.cumsum(w[codes] * gain)[last] / max(float(w @ ideal_gain), 1e-12)
        return float(thresholds[np.argmax(curve)]) if curve.max() > 0 else np.inf

    threshold = float(np.median([argmax(w) for w in boot.counts]))
    return threshold, p.utility.normalised(np.where(np.isnan(s), -np.inf, s) >= threshold)


def alarms_per_day(p: Patients, alarm: NDArray[np.bool_]) -> float:
    """Return new alarms (an alarm hour after a non-alarm hour or the stay's start) per 24 h."""
    new_stay = np.r_[True, p.patient[1:] != p.patient[:-1]]
    rising = alarm & (new_stay | ~np.r_[False, alarm[:-1]])
    return float(rising.sum() / (alarm.size / 24.0))


def evaluate_scores(
    scores: FloatArray,
    p: Patients,
    threshold: float,
    *,
    probability: bool,
    boot: PatientBootstrap,
) -> dict[str, Any]:
    """Every metric of one method's hourly scores at its validation-chosen threshold.

    ``boot`` resamples the patients of ``p`` (shared by every method, so their intervals
    come from the same resamples).

    Returns
    -------
    dict
        ``utility``, ``roc_auc`` / ``pr_auc`` with ``*_ci`` (patient bootstrap, 95 %),
        ``lead_time_median_h``, ``detected``, ``alarms_per_patient_day``,
        ``alarm_hours_share``, ``brier`` (probabilities only), ``threshold`` (None: no threshold beat
        alarming never on validation, so the method never alarms).
    """
    filled = np.where(np.isnan(scores), -np.inf, scores)
    ranked = np.nan_to_num(filled, neginf=-1e9)
    alarm = filled >= threshold
    leads, septic = lead_times(p, alarm)
    y = p.label
    return {
        "threshold": threshold if np.isfinite(threshold) else None,
        "utility": p.utility.normalised(alarm),
        "roc_auc": metrics.roc_auc(y, ranked),
        "pr_auc": metrics.pr_auc(y, ranked),
        "lead_time_median_h": float(np.median(leads)) if leads.size else None,
        "detected": f"{leads.size}/{septic}",
        "alarms_per_patient_day": alarms_per_day(p, alarm),
        "alarm_hours_share": float(alarm.mean()),
        "brier": float(np.mean((scores - y) ** 2)) if probability else None,
        "roc_auc_ci": boot.interval(boot.roc_auc(y, ranked)),
        "pr_auc_ci": boot.interval(boot.pr_auc(y, ranked)),
    }


def paired_auc_difference(
    y: NDArray[np.int8], a: FloatArray, b: FloatArray, boot: PatientBootstrap
) -> dict[str, Any]:
    """ROC-AUC of scores ``a`` minus that of ``b`` on the same hours, with a paired CI.

    Notes
    -----
    **Paired difference**: both methods are scored on the same patient-bootstrap
    resamples (whole patients drawn with replacement), so the interval reflects the
    difference itself, not two overlapping intervals; resamples with one class are
    skipped.

    Returns
    -------
    dict
        ``difference`` and ``ci`` (2.5th, 97.5th percentiles; None if not computable).
    """
    diffs = boot.roc_auc(y, a) - boot.roc_auc(y, b)
    diffs = diffs[np.isfinite(diffs)]
    ci = (
        None
        if diffs.size < boot.n_boot // 2
        else [float(q) for q in np.quantile(diffs, [0.025, 0.975])]
    )
    return {"difference": metrics.roc_auc(y, a) - metrics.roc_auc(y, b), "ci": ci}
