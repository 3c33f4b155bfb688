"""VitalRiskPipeline: a model bundle composed into windows → embeddings → risk.

The CLI (``score``, ``evaluate``) and the HTTP service both call this object, so the same
readings give the same risk everywhere. The stages it loads are fitted in
:mod:`vitalsentry.stages`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vitalsentry.bundle import Bundle, load_bundle, load_stages, save_stages
from vitalsentry.config import DataConfig, DetectorConfig, FusionConfig
from vitalsentry.data.gaps import describe_limits
from vitalsentry.data.prepared import PreparedData, WindowSet, stream_feeds, window_frame
from vitalsentry.data.schema import LABEL_COLUMN, PATIENT_COLUMN
from vitalsentry.errors import BundleError, DataError
from vitalsentry.models.autoencoder import Autoencoder
from vitalsentry.models.inference import encode, encode_with_error, mc_dropout_encode
from vitalsentry.risk.alarms import AlarmPolicy
from vitalsentry.risk.calibrate import channel_contributions, mc_summary
from vitalsentry.risk.multiview import DETECTOR_FILE, ViewInputs, view_inputs
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

STREAM_KEY = "stream"


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

    def embed(self, windows: np.ndarray) -> np.ndarray:
        """Embeddings (N, latent) of unscaled windows (N, C, L)."""
        return encode(self.model, self.bundle.scaler.transform(windows))

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

    def windows_of(
        self, frame: pd.DataFrame, *, stream: bool = False, latest_only: bool = False
    ) -> WindowSet:
        """Cut a readings frame into the bundle's windows (channels, step, window length).

        In stream mode the whole frame is one feed in time order (DESIGN.md §4).
        """
        missing = [c for c in self.channels if c not in frame.columns]
        if missing:
            raise DataError(f"the readings lack the bundle's channel(s) {', '.join(missing)}")
        max_gap = None
        if stream:
            feed_of = dict.fromkeys(frame[PATIENT_COLUMN].unique(), STREAM_KEY)
            frame, max_gap = stream_feeds(frame, feed_of, self.channels, self.data_config.step_s)
        cut, _ = window_frame(
            frame, self.data_config, self.window_config, max_gap_s=max_gap, latest_only=latest_only
        )
        return cut

    def score_frame(
        self,
        frame: pd.DataFrame,
        *,
        stream: bool = False,
        latest_only: bool = False,
        mc_passes: int = 0,
    ) -> pd.DataFrame:
        """Per-window risk for a readings frame.

        Returns
        -------
        pandas.DataFrame
            ``patient_id, window_start, window_end, risk, level, anomaly_score``, one
            ``contribution_<channel>`` per vital channel, one ``view_<name>`` standardised
            score per view of a multi-view bundle, ``risk_mean``/``risk_std`` with
            MC dropout, and ``label`` when the readings carry labels.
        """
        cut = self.windows_of(frame, stream=stream, latest_only=latest_only)
        if len(cut.labels) == 0:
            d = self.data_config
            span = self.window_config.length * d.step_s
            raise DataError(
                f"no complete window: the model needs {span:g} s of {', '.join(self.channels)} "
                f"without gaps beyond the gap policy "
                f"({describe_limits(self.channels, d.gap_interpolate_s, d.gap_carry_s)})"
            )
        scores = self.score_windows(
            cut.windows, mc_passes=mc_passes, where=(cut.patient, cut.start_s)
        )
        step = self.data_config.step_s
        out = pd.DataFrame(
            {
                PATIENT_COLUMN: cut.patient,
                "window_start": pd.to_datetime(cut.start_s, unit="s", utc=True),
                "window_end": pd.to_datetime(
                    cut.start_s + (self.window_config.length - 1) * step, unit="s", utc=True
                ),
                "risk": scores.risk,
                "level": scores.level,
                "anomaly_score": scores.anomaly_score,
            }
        )
        for i, name in enumerate(self.channels):
            out[f"contribution_{name}"] = scores.contributions[:, i]
        for view, values in scores.views.items():
            out[f"view_{view}"] = values
        if scores.risk_std is not None:
            out["risk_mean"], out["risk_std"] = scores.risk_mean, scores.risk_std
        if LABEL_COLUMN in frame.columns:
            out[LABEL_COLUMN] = cut.labels
        return out


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
