"""Training-time stages: the detector (with its calibration and alarm policy) and fusion.

Each function takes a bundle path and prepared data, fits its stage and writes a new
bundle; :class:`vitalsentry.pipeline.VitalRiskPipeline` loads the result for scoring.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vitalsentry.bundle import DECODER, ENCODER, SCALER, Bundle, BundleWriter, load_bundle
from vitalsentry.config import DetectorConfig, FusionConfig
from vitalsentry.data.prepared import PreparedData
from vitalsentry.data.scaler import ChannelScaler
from vitalsentry.data.splits import split_patients
from vitalsentry.errors import BundleError, DataError
from vitalsentry.models.autoencoder import Autoencoder
from vitalsentry.models.fusion import fusion_features, make_fusion_classifier, static_matrix
from vitalsentry.models.inference import encode, encode_with_error
from vitalsentry.persist import save_skops
from vitalsentry.risk.alarms import AlarmPolicy, choose_alarm_policy
from vitalsentry.risk.calibrate import RiskCalibration, fit_calibration, fold_fpr
from vitalsentry.risk.multiview import (
    LEGACY_VIEW,
    MultiViewFit,
    ViewInputs,
    ViewSettings,
    fit_multiview,
    fold_groups,
    view_inputs,
)

CALIBRATION_FILE = "calibration.json"
ALARM_FILE = "alarm_policy.json"
FUSION_FILE = "fusion.skops"
FUSION_META = "fusion.json"
RESP_PREFIX = "resp_"


def check_features(bundle: Bundle, feature_names: tuple[str, ...], what: str) -> None:
    """Refuse data whose window channels differ from the bundle's."""
    if tuple(feature_names) != tuple(bundle.feature_names):
        raise BundleError(
            f"{what} has channels ({', '.join(feature_names)}) but the bundle at {bundle.path} "
            f"expects ({', '.join(bundle.feature_names)})"
        )


def _calibration_split(prepared: PreparedData, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Masks (fit, validation) of windows for the detector and its thresholds.

    The validation split (1) sets the thresholds; data without one (a 70/30 split) gets a
    deterministic 80/20 patient-level part of the training patients instead.
    """
    train = prepared.split == 0
    if (prepared.split == 1).any():
        return train, prepared.split == 1, "validation patients (split 1)"
    patients = np.unique(prepared.patient[train])
    if patients.size < 2:
        raise DataError("cannot hold out calibration patients: the training split has one patient")
    part = split_patients(patients.tolist(), (0.8, 0.2), seed)
    held = np.isin(prepared.patient, [p for p, code in part.items() if code != 0])
    return (
        train & ~held,
        train & held,
        "20% of the training patients (the data has no validation split)",
    )


def _alarm_policy(prepared: PreparedData, val_mask: np.ndarray, high: np.ndarray) -> dict[str, Any]:
    """Alarm policy chosen on validation patients: ≤ 1 alarm per patient-day (per-patient data)."""
    if prepared.stream:
        return {
            "policy": dataclasses.asdict(AlarmPolicy()),
            "chosen_on": "default: stream-mode data has no per-patient series",
        }
    policy, report = choose_alarm_policy(
        prepared.patient[val_mask],
        prepared.end_s[val_mask],
        high[val_mask],
        prepared.labels[val_mask],
        window_s=prepared.window.length * prepared.data.step_s,
    )
    return {
        "policy": dataclasses.asdict(policy),
        "chosen_on": "validation windows: most sensitive policy within 1 false alarm per patient-day",
        "validation": report.to_dict(),
    }


def _view_inputs(
    embedding: np.ndarray,
    errors: np.ndarray,
    windows: np.ndarray,
    feature_names: tuple[str, ...],
    span_s: float,
    lookback: int,
    where: tuple[np.ndarray, np.ndarray] | None,
) -> ViewInputs:
    """Every view's inputs; ``where`` = (patient, start_s) of each window, or None."""
    patient, start = (None, None) if where is None else where
    return view_inputs(
        embedding,
        errors,
        windows,
        feature_names,
        patient=patient,
        start_s=start,
        span_s=span_s,
        lookback=lookback,
    )


def fit_detector(
    bundle_path: str | Path, prepared: PreparedData, out: str | Path, config: DetectorConfig
) -> dict[str, Any]:
    """Fit the multi-view detector stage on normal training windows and calibrate its risk.

    The views are cross-fitted over the training patients (leave-patients-out folds):
    their out-of-fold scores standardise each view and, with the validation patients,
    set the threshold; the combination is chosen on validation patients
    (:mod:`vitalsentry.risk.multiview`).

    Parameters
    ----------
    bundle_path : path-like
        Bundle with a trained encoder.
    prepared : PreparedData
        Data prepared with the bundle's channels.
    out : path-like
        New bundle: the input bundle plus ``detector.skops``, the view files
        (``views.json``, ``view_*.skops``) and ``calibration.json``.
    config : DetectorConfig
        Forest, views and calibration settings.

    Returns
    -------
    dict
        Summary: windows used, chosen views, validation FPR and recall, fold FPRs.
    """
    bundle = load_bundle(bundle_path)
    check_features(bundle, prepared.feature_names, "the data")
    model = bundle.autoencoder()
    fit_mask, val_mask, val_source = _calibration_split(prepared, config.random_state)
    if (fit_mask & (prepared.labels != 1)).sum() < 2:
        raise DataError("fewer than 2 normal training windows: cannot fit the detector")
    settings = ViewSettings(
        seed=config.random_state,
        n_estimators=config.n_estimators,
        folds=config.cv_folds,
        contamination=config.contamination,
    )
    emb, errors = encode_with_error(model, bundle.scaler.transform(prepared.windows))
    inputs = _view_inputs(
        emb,
        errors[:, : len(prepared.data.channels)],
        prepared.windows,
        prepared.feature_names,
        prepared.window.length * prepared.data.step_s,
        settings.lookback,
        (prepared.patient, prepared.start_s),
    )
    groups = fold_groups(prepared.patient[fit_mask], prepared.start_s[fit_mask], settings.folds)
    fitted = fit_multiview(
        (inputs.select(fit_mask), prepared.labels[fit_mask], groups),
        (inputs.select(val_mask), prepared.labels[val_mask]),
        settings,
        allowed=config.views,
    )
    calibration, folds = _cross_fitted_calibration(
        prepared, fit_mask, val_mask, groups, fitted, config
    )
    scores = np.full(len(prepared), np.nan)
    scores[fit_mask], scores[val_mask] = fitted.fit_scores, fitted.val_scores
    alarm = _alarm_policy(prepared, val_mask, scores > calibration.threshold_high)
    stage = fitted.stage
    summary = {
        "alarm_policy": alarm["policy"],
        "fit_windows": int((fit_mask & (prepared.labels != 1)).sum()),
        "views": list(stage.views),
        "combine": stage.how,
        "contamination": stage.detectors[LEGACY_VIEW].contamination_,
        "selection": stage.selection,
        "threshold_source": f"cross-fitted training patients + {val_source}",
        "val_fpr": calibration.val_fpr,
        "val_recall": calibration.val_recall,
        "fold_fpr": folds,
    }
    with BundleWriter(out, base=bundle.path) as writer:
        stage.save(writer.put_json, writer.put_file)
        writer.put_json(CALIBRATION_FILE, calibration.to_dict())
        writer.put_json(ALARM_FILE, alarm)
        writer.manifest["config"]["detector"] = config.to_dict()
        # scoring grids and windows data as the detector and its thresholds saw it
        writer.manifest["config"]["data"] = prepared.data.to_dict()
        writer.manifest["config"]["window"] = prepared.window.to_dict()
        writer.manifest["detector_data"] = {
            "fingerprint": prepared.fingerprint,
            "source": prepared.source,
        }
        writer.manifest.setdefault("metrics", {})["detector"] = summary
    return summary


def _cross_fitted_calibration(
    prepared: PreparedData,
    fit_mask: np.ndarray,
    val_mask: np.ndarray,
    groups: np.ndarray,
    fitted: MultiViewFit,
    config: DetectorConfig,
) -> tuple[RiskCalibration, dict[str, Any]]:
    """Calibration on out-of-fold training scores + validation scores, and the fold FPRs.

    The threshold pool is every normal window of patients the scoring views did not see:
    the training patients' out-of-fold scores and the validation patients' scores.
    """
    fit_labels, val_labels = prepared.labels[fit_mask], prepared.labels[val_mask]
    normal, abnormal = fit_labels != 1, fit_labels == 1
    val_normal = val_labels != 1
    pool = np.concatenate([fitted.fit_scores[normal], fitted.val_scores[val_normal]])
    pool_groups = np.concatenate(
        [groups[normal].astype(str), prepared.patient[val_mask][val_normal].astype(str)]
    )
    calibration = fit_calibration(
        fitted.fit_scores[normal],
        fitted.fit_scores[abnormal] if abnormal.any() else None,
        val_normal_scores=pool,
        target_fpr=config.target_fpr,
        val_abnormal_scores=fitted.val_scores[~val_normal] if (~val_normal).any() else None,
        val_normal_groups=pool_groups,
        fpr_confidence=config.fpr_confidence,
        seed=config.random_state,
        per_patient=config.per_patient_threshold,
    )
    folds = fold_fpr(
        fitted.fit_scores[normal],
        fitted.fold[normal],
        groups[normal],
        target_fpr=config.target_fpr,
        fpr_confidence=config.fpr_confidence,
        extra=(fitted.val_scores[val_normal], prepared.patient[val_mask][val_normal]),
        seed=config.random_state,
        per_patient=config.per_patient_threshold,
    )
    return calibration, folds


@dataclass(frozen=True)
class FusionInputs:
    """Embeddings and context of the windows the cardio and respiratory data share.

    Attributes
    ----------
    cardio, respiratory : numpy.ndarray
        (M, d1), (M, d2) embeddings.
    static : numpy.ndarray
        (M, 3) static context (NaN where unknown).
    labels, split, patient : numpy.ndarray
        (M,) of the shared windows (patient: in stream mode, the latest reading's).
    """

    cardio: np.ndarray
    respiratory: np.ndarray
    static: np.ndarray
    labels: np.ndarray
    split: np.ndarray
    patient: np.ndarray

    def matrix(self, use_static: bool, rows: np.ndarray | None = None) -> np.ndarray:
        """Classifier input (M, F) — optionally only ``rows`` — with or without static context."""
        pick = slice(None) if rows is None else rows
        static = self.static[pick] if use_static else None
        return fusion_features(self.cardio[pick], self.respiratory[pick], static)


def fusion_inputs(
    cardio_model: tuple[Autoencoder, ChannelScaler],
    resp_model: tuple[Autoencoder, ChannelScaler],
    cardio: PreparedData,
    resp: PreparedData,
) -> FusionInputs:
    """Align the two datasets' windows by (patient, start) and embed both."""
    left = pd.DataFrame({"p": cardio.patient, "t": cardio.start_s, "i": np.arange(len(cardio))})
    right = pd.DataFrame({"p": resp.patient, "t": resp.start_s, "j": np.arange(len(resp))})
    both = left.merge(right, on=["p", "t"], how="inner")
    if both.empty:
        raise DataError("the cardio and respiratory windows have no window in common")
    i, j = both["i"].to_numpy(), both["j"].to_numpy()
    (c_model, c_scaler), (r_model, r_scaler) = cardio_model, resp_model
    patient = cardio.context_patient[i]
    return FusionInputs(
        cardio=encode(c_model, c_scaler.transform(cardio.windows[i])),
        respiratory=encode(r_model, r_scaler.transform(resp.windows[j])),
        static=static_matrix(cardio.static, patient),
        labels=cardio.labels[i],
        split=cardio.split[i],
        patient=patient,
    )


def fit_fusion(
    bundle_path: str | Path,
    resp_bundle_path: str | Path,
    cardio: PreparedData,
    resp: PreparedData,
    out: str | Path,
    config: FusionConfig,
) -> dict[str, Any]:
    """Fit the fusion classifier on labelled training windows and add it to the bundle.

    Parameters
    ----------
    bundle_path : path-like
        Cardio bundle (HR, SpO2, time), with or without a detector.
    resp_bundle_path : path-like
        Respiratory bundle (RR, SpO2, time) trained on the same patients.
    cardio, resp : PreparedData
        The same data prepared with each bundle's channels (same split settings).
    out : path-like
        New bundle: the cardio bundle plus the fusion files.
    config : FusionConfig
        Static context on/off, calibration method, seed.

    Returns
    -------
    dict
        Summary: training windows and class counts.
    """
    bundle, resp_bundle = load_bundle(bundle_path), load_bundle(resp_bundle_path)
    check_features(bundle, cardio.feature_names, "the cardio data")
    check_features(resp_bundle, resp.feature_names, "the respiratory data")
    if resp.data.split != cardio.data.split or resp.data.seed != cardio.data.seed:
        raise DataError("the cardio and respiratory data were split with different settings")
    inputs = fusion_inputs(
        (bundle.autoencoder(), bundle.scaler),
        (resp_bundle.autoencoder(), resp_bundle.scaler),
        cardio,
        resp,
    )
    train = (inputs.split == 0) & (inputs.labels >= 0)
    y = inputs.labels[train]
    if np.unique(y).size < 2:
        raise DataError("the fusion classifier needs both classes among the training windows")
    x = inputs.matrix(config.use_static, train)
    model = make_fusion_classifier(config).fit(x, y)
    summary = {"train_windows": int(y.size), "abnormal": int(y.sum()), "features": int(x.shape[1])}
    meta = {
        "config": config.to_dict(),
        "respiratory": {
            "data": resp.data.to_dict(),
            "model": resp_bundle.config.model.to_dict(),
            "feature_names": list(resp.feature_names),
            "bundle_manifest_sha256": resp_bundle.manifest_sha256,
        },
        "summary": summary,
    }
    with BundleWriter(out, base=bundle.path) as writer:
        writer.put_file(FUSION_FILE, lambda p: save_skops(model, p))
        writer.put_json(FUSION_META, meta)
        for name in (ENCODER, DECODER):
            writer.put_tensors(f"{RESP_PREFIX}{name}", resp_bundle.read_tensors(name))
        writer.put_json(f"{RESP_PREFIX}{SCALER}", resp_bundle.scaler.to_dict())
        writer.manifest["config"]["fusion"] = config.to_dict()
        writer.manifest.setdefault("metrics", {})["fusion"] = summary
    return summary
