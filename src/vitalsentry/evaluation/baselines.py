"""Baselines evaluated on the same split as the detector.

- :func:`raw_iforest_scores`: IsolationForest on summary features of the raw windows
  (does the autoencoder add anything over the vitals themselves?);
- :func:`gbm_scores`: supervised gradient boosting on the same features, trained on
  the labelled training windows (the ceiling a label-aware model reaches);
- :func:`news2_at_windows`: the NEWS2 clinical score at each window's end.

All scores are higher = more abnormal.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from sklearn.ensemble import HistGradientBoostingClassifier

from vitalsentry.data.schema import PATIENT_COLUMN, TIMESTAMP_COLUMN, is_input_only
from vitalsentry.errors import DataError
from vitalsentry.evaluation.metrics import MIN_PER_CLASS, NotComputableError
from vitalsentry.risk.detector import EmbeddingIsolationForest
from vitalsentry.risk.news2 import news2_score

FloatArray = NDArray[np.float64]

WINDOW_STATS: Final[tuple[str, ...]] = ("mean", "std", "min", "max", "last", "slope")
"""Summary statistics of each vital channel, in feature order."""

HOUR_FEATURES: Final[tuple[str, ...]] = ("hour_sin", "hour_cos")
"""Time features whose window mean (time of day) is a feature."""

NEWS2_INPUTS: Final[tuple[str, ...]] = (
    "respiratory_rate",
    "spo2",
    "systolic_bp",
    "heart_rate",
    "temperature",
)
"""Readings-frame channels NEWS2 needs, in :func:`~vitalsentry.risk.news2.news2_score` order."""

RAW_IFOREST_TREES: Final = 200
"""Trees of the raw-feature IsolationForest baseline."""

_TIME_DTYPE: Final = "datetime64[ns, UTC]"

_END_TOLERANCE: Final = pd.Timedelta(milliseconds=1)
"""Readings up to this much after a window end count as "at" the end (float seconds)."""


def window_summary_features(
    windows: ArrayLike, feature_names: tuple[str, ...] | list[str]
) -> tuple[FloatArray, list[str]]:
    """Per-window summary features of the raw (unscaled) vitals.

    Parameters
    ----------
    windows : array_like, shape (N, C, L)
        Unscaled windows; channel ``c`` is ``feature_names[c]``.
    feature_names : sequence of str, length C
        Channel names: vitals and time features (``hour_sin``, ``hour_cos``,
        ``dow_sin``, ``dow_cos``).

    Returns
    -------
    features : ndarray of float64, shape (N, F)
        For each vital channel in order: mean, std, min, max, last value and
        least-squares slope (per step) over the window; then the window mean of
        ``hour_sin`` and ``hour_cos`` when present (time of day). Day-of-week
        features are left out.
    names : list of str, length F
        ``"<channel>_<stat>"`` and ``"<time feature>_mean"``.

    Raises
    ------
    DataError
        Not a finite 3-D array, fewer than 2 steps, or ``C != len(feature_names)``.
    """
    x = np.asarray(windows)
    names = list(feature_names)
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"windows are not numeric (dtype {x.dtype})", column="windows")
    if x.ndim != 3 or x.shape[1] != len(names) or x.shape[2] < 2:
        raise DataError(
            f"expected windows of shape (N, {len(names)}, L ≥ 2) matching the feature names, "
            f"got {x.shape}",
            column="windows",
        )
    if not np.isfinite(x).all():
        row = int(np.argwhere(~np.isfinite(x))[0, 0])
        raise DataError("NaN or infinite value in a window", column="windows", row=row + 1)
    vital_idx = [i for i, n in enumerate(names) if not is_input_only(n)]
    hour_idx = [names.index(n) for n in HOUR_FEATURES if n in names]
    vitals = x[:, vital_idx, :].astype(np.float64)  # only the vitals are copied
    steps = np.arange(x.shape[2], dtype=np.float64)
    centred = steps - steps.mean()
    slope = vitals @ centred / float(centred @ centred)
    stats = np.stack(
        [
            vitals.mean(axis=2),
            vitals.std(axis=2),
            vitals.min(axis=2),
            vitals.max(axis=2),
            vitals[:, :, -1],
            slope,
        ],
        axis=2,
    )  # (N, V, S)
    features = np.concatenate(
        [stats.reshape(x.shape[0], -1), x[:, hour_idx, :].mean(axis=2, dtype=np.float64)], axis=1
    )
    out_names = [f"{names[i]}_{stat}" for i in vital_idx for stat in WINDOW_STATS]
    out_names += [f"{names[i]}_mean" for i in hour_idx]
    return features, out_names


def make_raw_iforest(
    seed: int, *, n_estimators: int = RAW_IFOREST_TREES
) -> EmbeddingIsolationForest:
    """Unfitted IsolationForest of the raw-feature baseline.

    Parameters
    ----------
    seed : int
        Random state of the forest.
    n_estimators : int, default :data:`RAW_IFOREST_TREES`
        Number of trees.

    Returns
    -------
    EmbeddingIsolationForest
        The project's detector (higher score = more anomalous), with contamination
        ``"auto"`` (only the scores are used, not its threshold).
    """
    return EmbeddingIsolationForest(
        n_estimators=n_estimators, contamination="auto", random_state=seed
    )


def raw_iforest_scores(
    train_normal_feats: ArrayLike, eval_feats: ArrayLike, seed: int
) -> FloatArray:
    """IsolationForest baseline on raw window features.

    Parameters
    ----------
    train_normal_feats : array_like, shape (n, F)
        :func:`window_summary_features` of the normal training windows.
    eval_feats : array_like, shape (m, F)
        Features of the evaluated windows.
    seed : int
        Random state of the forest.

    Returns
    -------
    ndarray of float64, shape (m,)
        Anomaly scores, higher = more anomalous.

    Raises
    ------
    DataError
        Non-finite features, fewer than 2 training windows, or widths that differ.
    """
    return make_raw_iforest(seed).fit(train_normal_feats).score_samples(eval_feats)


def gbm_scores(
    train_feats: ArrayLike, train_labels: ArrayLike, eval_feats: ArrayLike, seed: int
) -> FloatArray:
    """Supervised gradient-boosting reference (the ceiling of a label-aware model).

    Parameters
    ----------
    train_feats : array_like, shape (n, F)
        Features of the training-split windows.
    train_labels : array_like of int, shape (n,)
        1 abnormal, 0 normal, -1 unknown (unknown windows are left out).
    eval_feats : array_like, shape (m, F)
        Features of the evaluated windows.
    seed : int
        Random state of the classifier.

    Returns
    -------
    ndarray of float64, shape (m,)
        Predicted probability of "abnormal".

    Raises
    ------
    NotComputableError
        Fewer than 2 labelled training windows of a class (e.g. a single-class split):
        report the baseline as not computable with this reason.
    DataError
        Shapes that differ, labels outside {-1, 0, 1}, non-finite features.
    """
    x = np.asarray(train_feats, dtype=np.float64)
    y = np.asarray(train_labels)
    x_eval = np.asarray(eval_feats, dtype=np.float64)
    if x.ndim != 2 or x_eval.ndim != 2 or x.shape[1] != x_eval.shape[1] or y.shape != x.shape[:1]:
        raise DataError(
            f"expected train (n, F), labels (n,) and eval (m, F), got {x.shape}, {y.shape} "
            f"and {x_eval.shape}",
            column="train_feats",
        )
    if not np.isin(y, (-1, 0, 1)).all():
        raise DataError("labels must be -1 (unknown), 0 or 1", column="train_labels")
    if not (np.isfinite(x).all() and np.isfinite(x_eval).all()):
        raise DataError("NaN or infinite feature value", column="train_feats")
    known = y >= 0
    counts = np.bincount(y[known].astype(np.int64), minlength=2)
    if counts.min() < MIN_PER_CLASS:
        raise NotComputableError(
            f"the training split has {counts[0]} normal and {counts[1]} abnormal labelled "
            f"windows; a supervised reference needs at least {MIN_PER_CLASS} of each"
        )
    model = HistGradientBoostingClassifier(random_state=seed).fit(x[known], y[known])
    return np.asarray(model.predict_proba(x_eval)[:, 1], dtype=np.float64)


def news2_unavailable_inputs(readings_frame: pd.DataFrame) -> tuple[str, ...]:
    """NEWS2 inputs never measured anywhere in a readings frame.

    Parameters
    ----------
    readings_frame : pandas.DataFrame
        Tidy readings frame.

    Returns
    -------
    tuple of str
        Names from :data:`NEWS2_INPUTS` that are absent or all NaN (their NEWS2 is NaN
        everywhere).
    """
    return tuple(
        name
        for name in NEWS2_INPUTS
        if name not in readings_frame or not readings_frame[name].notna().any()
    )


def news2_at_windows(
    readings_frame: pd.DataFrame, window_patient: ArrayLike, window_end_s: ArrayLike
) -> FloatArray:
    """NEWS2 aggregate at the end of each window, from the latest reading of each input.

    Parameters
    ----------
    readings_frame : pandas.DataFrame
        Tidy readings: ``patient_id`` (str), ``timestamp`` (datetime64[ns, UTC]) and
        channel columns (NaN = not measured at that instant); channels of
        :data:`NEWS2_INPUTS` that are absent count as never measured. In stream mode
        ``patient_id`` holds the stream name of the windows.
    window_patient : array_like of str, shape (N,)
        Patient (or stream) of each window.
    window_end_s : array_like of float, shape (N,)
        Epoch seconds (UTC) of each window's last step.

    Returns
    -------
    ndarray of float64, shape (N,)
        NEWS2 aggregate (0–20); NaN where an input has no reading of that patient at or
        before the window end.

    Raises
    ------
    DataError
        Missing ``patient_id`` / ``timestamp`` columns, shapes that differ, non-finite
        window ends, or a reading outside its plausible range.

    Notes
    -----
    For each of respiratory rate, SpO2, systolic BP, heart rate and temperature, the
    value used is the patient's latest measured reading at or before the window end
    (readings of different channels are matched separately, so a blood pressure taken
    every 30 minutes is carried forward until the next one). The patient is assumed to
    breathe room air (no supplemental oxygen) and to be alert, because the data record
    neither; SpO2 scale 1 is used.
    """
    for column in (PATIENT_COLUMN, TIMESTAMP_COLUMN):
        if column not in readings_frame:
            raise DataError("readings frame lacks this column", column=column)
    patients = np.asarray(window_patient).astype(str)
    ends = np.asarray(window_end_s, dtype=np.float64)
    if patients.ndim != 1 or ends.shape != patients.shape:
        raise DataError(
            f"window_patient and window_end_s must be 1-D of the same length, got "
            f"{patients.shape} and {ends.shape}",
            column="window_end_s",
        )
    if not np.isfinite(ends).all():
        raise DataError("NaN or infinite window end", column="window_end_s")
    try:
        times = readings_frame[TIMESTAMP_COLUMN].astype(_TIME_DTYPE)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"timestamps must be timezone-aware datetimes ({exc})", column=TIMESTAMP_COLUMN
        ) from exc
    readings = readings_frame.copy()
    readings[PATIENT_COLUMN] = readings[PATIENT_COLUMN].astype(str)
    readings[TIMESTAMP_COLUMN] = times
    readings = readings.sort_values(TIMESTAMP_COLUMN, kind="stable")
    windows = pd.DataFrame(
        {
            PATIENT_COLUMN: pd.Series(patients, dtype=readings[PATIENT_COLUMN].dtype),
            TIMESTAMP_COLUMN: (pd.to_datetime(ends, unit="s", utc=True) + _END_TOLERANCE).astype(
                _TIME_DTYPE
            ),
            "_order": np.arange(ends.size),
        }
    ).sort_values(TIMESTAMP_COLUMN, kind="stable")
    latest: dict[str, FloatArray] = {}
    for name in NEWS2_INPUTS:
        values = np.full(ends.size, np.nan)
        if name in readings:
            measured = readings.loc[
                readings[name].notna(), [PATIENT_COLUMN, TIMESTAMP_COLUMN, name]
            ]
            matched = pd.merge_asof(
                windows,
                measured,
                on=TIMESTAMP_COLUMN,
                by=PATIENT_COLUMN,
                direction="backward",
            )
            values[matched["_order"].to_numpy()] = matched[name].to_numpy(dtype=np.float64)
        latest[name] = values
    return news2_score(*(latest[name] for name in NEWS2_INPUTS))
