"""VitalRiskPipeline: a model bundle composed into windows → embeddings → risk.

The CLI (``score``, ``evaluate``) and the HTTP service both call this object, so the same
readings give the same risk everywhere. The stages it loads are fitted in
:mod:`vitalsentry.stages`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vitalsentry.bundle import Bundle, load_bundle, load_stages, save_stages
from vitalsentry.config import DataConfig, DetectorConfig, FusionConfig
from vitalsentry.data.prepared import PreparedData
from vitalsentry.data.schema import LABEL_COLUMN
from vitalsentry.errors import BundleError, DataError
from vitalsentry.models.autoencoder import Autoencoder
from vitalsentry.models.fusion import fusion_features, static_matrix
from vitalsentry.models.inference import (
    encode,
    encode_with_error,
    encode_with_step_error,
    mc_dropout_encode,
)
from vitalsentry.risk.alarms import AlarmPolicy, AlarmState
from vitalsentry.risk.calibrate import channel_contributions, mc_summary
from vitalsentry.risk.multiview import DETECTOR_FILE, ViewInputs, view_inputs
from vitalsentry.scoring import Cut, FrameSource, ScoreTable, score_readings, window_pairs
from vitalsentry.stages import (
    CALIBRATION_FILE,
    AlarmStage,
    DetectorStage,
    EncoderStage,
    FitInputs,
    FusionInputs,
    FusionStage,
    Stages,
    fusion_inputs,
)


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


def _view_inputs(
    embedding: np.ndarray,
    errors: tuple[np.ndarray, np.ndarray],
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
        self.stages = Stages.load(bundle)
        self.model: Autoencoder = self.stages.get(EncoderStage).model
        detector = self.stages.get(DetectorStage)
        self.detector = detector.detector
        self.views = detector.views
        self.calibration = detector.calibration
        alarm = self.stages.parts.get(AlarmStage.name)
        self.alarm_policy = alarm.policy if isinstance(alarm, AlarmStage) else AlarmPolicy()
        self.data_config = bundle.config.data
        self.window_config = bundle.config.window
        fusion = self.stages.parts.get(FusionStage.name)
        self.fusion = FusionHead(fusion) if isinstance(fusion, FusionStage) else None

    @classmethod
    def from_bundle(
        cls, path: str | Path, *, trusted_keys: Sequence[Path] | None = None
    ) -> VitalRiskPipeline:
        """Load and verify a bundle (signed by a trusted key, if given), then build the pipeline."""
        return cls(load_bundle(path, trusted_keys=trusted_keys))

    @classmethod
    def fit(
        cls,
        stages: Iterable[str],
        inputs: FitInputs,
        out: str | Path,
        *,
        base: Stages | None = None,
    ) -> VitalRiskPipeline:
        """Fit the named stages (on top of ``base``'s), save them at ``out`` and load the result.

        E.g. ``("scaler", "encoder", "detector", "alarm")`` on prepared data; the bundle
        must end up with a detector to score.
        """
        fitted = (Stages() if base is None else base).fit(stages, inputs)
        return cls(load_bundle(save_stages(fitted, out)))

    def partial_fit(
        self, inputs: FitInputs, out: str | Path, *, refit: Iterable[str] = ("detector", "alarm")
    ) -> VitalRiskPipeline:
        """Fine-tune the encoder on new data (conv frozen by ``TrainConfig.finetune()``).

        The stages after the encoder are stale once it changes: ``refit`` fits them again
        on ``inputs.data`` (add ``"fusion"`` with ``inputs.respiratory``). Saved at ``out``.
        """
        return VitalRiskPipeline.fit(refit, inputs, out, base=self.stages.partial_fit(inputs))

    def save(self, out: str | Path) -> Path:
        """Write this pipeline's stages as a new bundle at ``out`` (atomically)."""
        return save_stages(self.stages, out)

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
        vitals, inputs = len(self.channels), None
        if self.views is None:  # no view reads the per-step errors: do not build them
            embedding, all_errors = encode_with_error(self.model, scaled)
        else:
            embedding, all_errors, all_steps = encode_with_step_error(self.model, scaled)
        errors = all_errors[:, :vitals]
        if self.views is not None:
            span = self.window_config.length * self.data_config.step_s
            inputs = _view_inputs(
                embedding,
                (errors, all_steps[:, :vitals]),
                windows,
                self.bundle.feature_names,
                span,
                self.views.settings.lookback,
                where,
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


class FusionHead:
    """The fusion stage of a bundle, for scoring: respiratory encoder, scaler and classifier.

    Parameters
    ----------
    stage : FusionStage
        The loaded (or fitted) fusion stage.
    """

    def __init__(self, stage: FusionStage) -> None:
        meta = stage.meta
        self.config = FusionConfig.from_dict(meta["config"])
        self.respiratory_data = DataConfig.from_dict(meta["respiratory"]["data"])
        self.respiratory_features = tuple(meta["respiratory"]["feature_names"])
        self.model = stage.model
        self.respiratory = stage.respiratory
        self.respiratory_scaler = stage.respiratory_scaler

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


def fit_detector(
    bundle_path: str | Path, prepared: PreparedData, out: str | Path, config: DetectorConfig
) -> dict[str, Any]:
    """Fit the detector and alarm stages on a bundle's encoder; write the result at ``out``.

    See :class:`vitalsentry.stages.DetectorStage` and :class:`~vitalsentry.stages.AlarmStage`.

    Returns
    -------
    dict
        Summary: windows used, chosen views, validation FPR and recall, fold FPRs, alarm policy.
    """
    stages = load_stages(bundle_path).fit(
        ("detector", "alarm"), FitInputs(prepared, detector=config)
    )
    save_stages(stages, out)
    summary: dict[str, Any] = stages.record["metrics"]["detector"]
    return summary


def fit_fusion(
    bundle_path: str | Path,
    resp_bundle_path: str | Path,
    cardio: PreparedData,
    resp: PreparedData,
    out: str | Path,
    config: FusionConfig,
) -> dict[str, Any]:
    """Fit the fusion stage on a cardio and a respiratory bundle; write the result at ``out``.

    See :class:`vitalsentry.stages.FusionStage`.

    Returns
    -------
    dict
        Summary: training windows and class counts.
    """
    respiratory = (load_stages(resp_bundle_path), resp)
    inputs = FitInputs(cardio, fusion=config, respiratory=respiratory)
    stages = load_stages(bundle_path).fit(("fusion",), inputs)
    save_stages(stages, out)
    summary: dict[str, Any] = stages.record["metrics"]["fusion"]
    return summary
