"""Fusion classifier: cardio + respiratory embeddings (+ static context) → calibrated risk.

The seed's fusion model: the cardio encoder (HR, SpO2, time) and the respiratory encoder
(RR, SpO2, time) each embed a window; their embeddings, optionally with static context
(age, sex, BMI), feed a supervised classifier. The classifier is gradient boosting
(non-linear: the Vitals 2024 label needs "BMI > 30 or BMI < 18.5") wrapped in
cross-validated probability calibration. Pure scikit-learn objects, no I/O.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier

from vitalsentry.config import FusionConfig
from vitalsentry.data.schema import STATIC_FIELDS
from vitalsentry.errors import DataError

TRUSTED_TYPES: Final[frozenset[str]] = frozenset(
    {
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    }
)
"""Types a saved fusion classifier may contain (checked before loading)."""


def make_fusion_classifier(config: FusionConfig) -> CalibratedClassifierCV:
    """Return an unfitted calibrated gradient-boosting classifier."""
    base = HistGradientBoostingClassifier(max_iter=100, learning_rate=0.1, random_state=config.seed)
    return CalibratedClassifierCV(base, method=config.calibration, cv=3)


def static_matrix(static: pd.DataFrame, patients: np.ndarray) -> np.ndarray:
    """Return the static context rows (age, sex, BMI) of each window's patient.

    Parameters
    ----------
    static : pandas.DataFrame
        Indexed by patient_id, columns among age, sex, bmi.
    patients : numpy.ndarray
        (N,) patient id of each window.

    Returns
    -------
    numpy.ndarray
        (N, 3) float64, NaN where a value is unknown (gradient boosting handles NaN).
    """
    table = static.reindex(columns=list(STATIC_FIELDS)).astype(np.float64)
    return table.reindex(pd.Index(patients.astype(str))).to_numpy()


def fusion_features(
    cardio: np.ndarray, respiratory: np.ndarray, static: np.ndarray | None
) -> np.ndarray:
    """Concatenate the two embeddings and, when given, the static context.

    Parameters
    ----------
    cardio, respiratory : numpy.ndarray
        (N, d1) and (N, d2) embeddings of the same windows.
    static : numpy.ndarray or None
        (N, 3) static context, or None for the ablation without it.

    Returns
    -------
    numpy.ndarray
        (N, d1 + d2 [+ 3]) float64.
    """
    parts = [cardio, respiratory] + ([static] if static is not None else [])
    if len({p.shape[0] for p in parts}) != 1:
        raise DataError(
            f"fusion inputs disagree on the window count: {[p.shape[0] for p in parts]}"
        )
    return np.hstack(parts).astype(np.float64)
