"""VitalRiskPipeline: a model bundle composed into windows → embeddings → risk.

The CLI (``score``, ``evaluate``) and the HTTP service both call this object, so the same
readings give the same risk everywhere. :func:`fit_detector` is the training-time arrow
from a trained encoder to a detector and its calibration.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV

from vitalsentry.bundle import DECODER, ENCODER, SCALER, Bundle, BundleWriter, load_bundle
from vitalsentry.config import DataConfig, DetectorConfig, FusionConfig, ModelConfig
from vitalsentry.data.prepared import PreparedData
from vitalsentry.data.scaler import ChannelScaler
from vitalsentry.data.schema import LABEL_COLUMN
from vitalsentry.data.splits import split_patients
from vitalsentry.errors import BundleError, DataError
from vitalsentry.models.autoencoder import Autoencoder
from vitalsentry.models.fusion import TRUSTED_TYPES as FUSION_TRUSTED_TYPES
from vitalsentry.models.fusion import fusion_features, make_fusion_classifier, static_matrix
from vitalsentry.models.inference import encode, encode_with_error, mc_dropout_encode
from vitalsentry.persist import load_skops, save_skops
from vitalsentry.risk.alarms import AlarmPolicy, AlarmState, choose_alarm_policy
from vitalsentry.risk.calibrate import (
    RiskCalibration,
    channel_contributions,
    fit_calibration,
    fold_fpr,
    mc_summary,
)
from vitalsentry.risk.detector import load_detector
from vitalsentry.risk.multiview import (
    DETECTOR_FILE,
    LEGACY_VIEW,
    VIEWS_FILE,
    MultiViewDetector,
    MultiViewFit,
    ViewInputs,
    ViewSettings,
    fit_multiview,
    fold_groups,
    view_inputs,
)
from vitalsentry.scoring import Cut, FrameSource, ScoreTable, score_readings, window_pairs

CALIBRATION_FILE = "calibration.json"
ALARM_FILE = "alarm_policy.json"
FUSION_FILE = "fusion.skops"
FUSION_META = "fusion.json"
RESP_PREFIX = "resp_"


@dataclass(frozen=True)
class WindowScores:
    """Scores of N windows.

    Attributes
    ----------
    anomaly_score : numpy.ndarray
        (N,) raw detector score, higher = more anomalous.
    risk : numpy.ndarray
        (N,) calibrated risk in [0, 1].
    level : numpy.ndarray
        (N,) "low" | "medium" | "high".
    contributions : numpy.ndarray
        (N, V) share of each vital channel in the reconstruction error (rows sum to 1).
    embedding : numpy.ndarray
        (N, latent) encoder embeddings (dropout off).
    recon_error : numpy.ndarray
        (N,) reconstruction error summed over the vital channels.
    risk_mean, risk_std : numpy.ndarray or None
        (N,) Monte Carlo dropout mean and standard deviation of the risk, when asked for.
    views : dict of str to numpy.ndarray
        (N,) standardised score of each view of a multi-view bundle (NaN where a view has
        no input, e.g. no earlier window for the baseline view); empty for older bundles.
    """

    anomaly_score: np.ndarray
    risk: np.ndarray
    level: np.ndarray
    contributions: np.ndarray
    embedding: np.ndarray
    recon_error: np.ndarray
    risk_mean: np.ndarray | None = None
    risk_std: np.ndarray | None = None
    views: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


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


class VitalRiskPipeline:
    """A verified bundle ready to score readings: grid → windows → encoder → risk.

    Parameters
    ----------
    bundle : Bundle
        A loaded bundle holding a detector and its calibration.
    """

    def __init__(self, bundle: Bundle) -> None:
        for name in (DETECTOR_FILE, CALIBRATION_FILE):
            if not bundle.has(name):
                raise BundleError(
                    f"{bundle.path}: no {name}; run `vitalsentry fit-detector` on this bundle first"
                )
        self.bundle = bundle
        self.model: Autoencoder = bundle.autoencoder()
        self.detector = load_detector(bundle.path_of(DETECTOR_FILE))
        self.views = (
            MultiViewDetector.load(bundle.read_json(VIEWS_FILE), bundle.path_of)
            if bundle.has(VIEWS_FILE)
            else None
        )
        self.calibration = RiskCalibration.from_dict(bundle.read_json(CALIBRATION_FILE))
        self.alarm_policy = (
            AlarmPolicy(**bundle.read_json(ALARM_FILE)["policy"])
            if bundle.has(ALARM_FILE)
            else AlarmPolicy()
        )
        self.data_config = bundle.config.data
        self.window_config = bundle.config.window
        self.fusion = FusionHead(bundle) if bundle.has(FUSION_FILE) else None

    @classmethod
    def from_bundle(
        cls, path: str | Path, *, trusted_keys: Sequence[Path] | None = None
    ) -> VitalRiskPipeline:
        """Load and verify a bundle (signed by a trusted key, if given), then build the pipeline."""
        return cls(load_bundle(path, trusted_keys=trusted_keys))

    @property
    def channels(self) -> tuple[str, ...]:
        """Vital channels the model needs."""
        return self.data_config.channels

    @property
    def model_version(self) -> str:
        """Short identifier of the bundle (first 12 hex digits of its manifest hash)."""
        return self.bundle.manifest_sha256[:12]

    def score_windows(
        self,
        windows: np.ndarray,
        *,
        mc_passes: int = 0,
        seed: int = 0,
        where: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> WindowScores:
        """Score unscaled windows.

        Parameters
        ----------
        windows : numpy.ndarray
            (N, C, L) unscaled windows with the bundle's features.
        mc_passes : int, default 0
            Monte Carlo dropout passes (0 = off; otherwise ≥ 2).
        seed : int, default 0
            Seed of the dropout masks.
        where : (numpy.ndarray, numpy.ndarray), optional
            (N,) patient and (N,) start seconds of each window, for the view of a
            patient's deviation from their own earlier windows (without it that view is
            left out).

        Returns
        -------
        WindowScores
            Scores, risk, level, per-channel contributions, view scores and optional
            uncertainty.
        """
        scaled = self.bundle.scaler.transform(windows)
        embedding, all_errors = encode_with_error(self.model, scaled)
        errors = all_errors[:, : len(self.channels)]
        inputs = None
        if self.views is not None:
            span = self.window_config.length * self.data_config.step_s
            lookback = self.views.settings.lookback
            inputs = _view_inputs(
                embedding, errors, windows, self.bundle.feature_names, span, lookback, where
            )
        scores, views = self._scores(embedding, inputs)
        result = WindowScores(
            anomaly_score=scores,
            risk=self.calibration.risk(scores),
            level=self.calibration.level(scores),
            contributions=channel_contributions(errors, self.channels),
            embedding=embedding,
            recon_error=errors.sum(axis=1),
            views=views,
        )
        if mc_passes:
            draws = mc_dropout_encode(self.model, scaled, mc_passes, seed)
            risks = np.stack([self.calibration.risk(self._scores(d, inputs)[0]) for d in draws])
            mean, std = mc_summary(risks)
            result = dataclasses.replace(result, risk_mean=mean, risk_std=std)
        return result

    def _scores(
        self, embedding: np.ndarray, inputs: ViewInputs | None
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Raw detector score (N,) and the views' scores; ``embedding`` replaces the inputs'."""
        if self.views is None or inputs is None:
            return self.detector.score_samples(embedding), {}
        inputs = dataclasses.replace(inputs, embedding=np.asarray(embedding, dtype=np.float64))
        return self.views.score(inputs)

    def _frame_source(
        self, frame: pd.DataFrame, stream: bool, static: pd.DataFrame | None = None
    ) -> FrameSource:
        """Return the frame as a window source, after refusing one without the bundle's channels."""
        source = FrameSource(frame, stream, pd.DataFrame() if static is None else static)
        missing = source.missing(self.channels)
        if missing:
            raise DataError(f"the readings lack the bundle's channel(s) {', '.join(missing)}")
        return source

    def score(
        self,
        frame: pd.DataFrame,
        *,
        stream: bool = False,
        latest_only: bool = False,
        mc_passes: int = 0,
        seed: int = 0,
        static: pd.DataFrame | None = None,
        history: Mapping[str, AlarmState] | None = None,
    ) -> ScoreTable:
        """Score a readings frame along the one scoring path (:func:`score_readings`).

        Parameters
        ----------
        frame : pandas.DataFrame
            Readings frame sorted by patient then time.
        stream : bool, default False
            Stream mode: the whole frame is one feed in time order.
        latest_only : bool, default False
            Only each patient's latest complete window.
        mc_passes, seed : int
            Monte Carlo dropout passes (0 = off) and their seed.
        static : pandas.DataFrame, optional
            Per-patient static context (age, sex, BMI) for the fusion head.
        history : mapping of str to AlarmState, optional
            Each patient's alarm state before these windows (``{}``: all start quiet);
            None: no alarm state.

        Returns
        -------
        ScoreTable
            Scores, fused risk (or why not) and alarm states.
        """
        return score_readings(
            self,
            self._frame_source(frame, stream, static),
            latest_only=latest_only,
            mc_passes=mc_passes,
            seed=seed,
            history=history,
        )

    def score_frame(
        self,
        frame: pd.DataFrame,
        *,
        stream: bool = False,
        latest_only: bool = False,
        mc_passes: int = 0,
    ) -> pd.DataFrame:
        """Per-window risk for a readings frame (:meth:`score` as a frame).

        Returns
        -------
        pandas.DataFrame
            See :meth:`ScoreTable.frame`; ``label`` when the readings carry labels.
        """
        table = self.score(frame, stream=stream, latest_only=latest_only, mc_passes=mc_passes)
        return table.frame(self.channels, labels=LABEL_COLUMN in frame.columns)


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
    i, j = window_pairs(cardio, resp)
    if i.size == 0:
        raise DataError("the cardio and respiratory windows have no window in common")
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


class FusionHead:
    """The fusion stage of a bundle: respiratory encoder, scaler and classifier.

    Parameters
    ----------
    bundle : Bundle
        A bundle holding ``fusion.skops``, ``fusion.json`` and the ``resp_*`` encoder files.
    """

    def __init__(self, bundle: Bundle) -> None:
        meta = bundle.read_json(FUSION_META)
        self.config = FusionConfig.from_dict(meta["config"])
        self.respiratory_data = DataConfig.from_dict(meta["respiratory"]["data"])
        self.respiratory_features = tuple(meta["respiratory"]["feature_names"])
        self.model = load_skops(
            bundle.path_of(FUSION_FILE), FUSION_TRUSTED_TYPES, CalibratedClassifierCV
        )
        self.respiratory = bundle.autoencoder(
            ModelConfig.from_dict(meta["respiratory"]["model"]), prefix=RESP_PREFIX
        )
        self.respiratory_scaler = ChannelScaler.from_dict(
            bundle.read_json(f"{RESP_PREFIX}{SCALER}")
        )

    def inputs(
        self, pipe: VitalRiskPipeline, cardio: PreparedData, resp: PreparedData
    ) -> FusionInputs:
        """Fusion inputs of the windows both datasets share (see :func:`fusion_inputs`)."""
        if resp.feature_names != self.respiratory_features:
            raise BundleError(
                f"the respiratory data has channels ({', '.join(resp.feature_names)}) but the fusion "
                f"model expects ({', '.join(self.respiratory_features)})"
            )
        return fusion_inputs(
            (pipe.model, pipe.bundle.scaler),
            (self.respiratory, self.respiratory_scaler),
            cardio,
            resp,
        )

    def fused_risk(
        self, embedding: np.ndarray, cardio: Cut, resp: Cut, static: pd.DataFrame
    ) -> np.ndarray:
        """Fused probability of each cardio window (the scoring side of :func:`fusion_inputs`).

        Parameters
        ----------
        embedding : numpy.ndarray
            (N, d1) cardio embeddings of ``cardio``'s windows.
        cardio, resp : Cut
            The cardio windows and the same readings' respiratory windows.
        static : pandas.DataFrame
            Static context indexed by the cardio windows' context keys (NaN where unknown).

        Returns
        -------
        numpy.ndarray
            (N,) probability of the abnormal class; NaN where no respiratory window has the
            cardio window's key and start.
        """
        i, j = window_pairs(cardio.windows, resp.windows)
        out = np.full(len(cardio), np.nan)
        if i.size:
            scaled = self.respiratory_scaler.transform(resp.windows.windows[j])
            context = static_matrix(static, cardio.context[i]) if self.config.use_static else None
            x = fusion_features(embedding[i], encode(self.respiratory, scaled), context)
            out[i] = self.predict_proba(x)
        return out

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """(M,) calibrated probability of the abnormal class."""
        proba: np.ndarray = self.model.predict_proba(x)[:, 1]
        return proba


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
