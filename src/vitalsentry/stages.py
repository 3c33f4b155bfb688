"""The pipeline's stages: scaler, encoder, detector and calibration, alarm, fusion, context head.

Each stage fits on prepared data (given the stages before it), saves its files into a
bundle and loads itself back from one. The encoder checks that data fits it (``check``:
channels, window length); the later stages take its output. It owns its bundle file
names (:attr:`Stage.files`) and the validators of its JSON files; :mod:`vitalsentry.bundle`
writes and verifies bundles from these declarations only. :class:`Stages` composes them in
the order of :data:`STAGES`: ``fit`` runs the named stages, ``partial_fit`` fine-tunes the
encoder with its conv layers frozen; :func:`vitalsentry.bundle.save_stages` and
:func:`vitalsentry.bundle.load_stages` move a composition to and from disk. Adding a stage
means one class here (and an entry in :data:`STAGES`) plus its tests.

This module imports the bundle only for type hints: the bundle imports the stages (the
context head imports the sepsis model's Platt calibration on use for the same reason).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self, TypeVar

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier

from vitalsentry.config import (
    DataConfig,
    DetectorConfig,
    FusionConfig,
    ModelConfig,
    PipelineConfig,
    TrainConfig,
)
from vitalsentry.data.prepared import PreparedData
from vitalsentry.data.scaler import ChannelScaler
from vitalsentry.data.splits import split_patients
from vitalsentry.errors import BundleError, DataError, TrainingError, VitalSentryError
from vitalsentry.evaluation.sepsis.baselines import (
    GBM_TRUSTED_TYPES,
    Columns,
    GbmConfig,
    fit_gbm,
    gbm_proba,
)
from vitalsentry.evaluation.sepsis.recipe import HeadRecipe
from vitalsentry.models.autoencoder import Autoencoder
from vitalsentry.models.fusion import TRUSTED_TYPES as FUSION_TRUSTED_TYPES
from vitalsentry.models.fusion import fusion_features, make_fusion_classifier, static_matrix
from vitalsentry.models.inference import encode, encode_with_step_error
from vitalsentry.persist import load_skops, save_skops
from vitalsentry.risk.alarms import AlarmPolicy, choose_alarm_policy
from vitalsentry.risk.calibrate import (
    RiskCalibration,
    fit_calibration,
    fold_fpr,
    fold_patients,
)
from vitalsentry.risk.detector import EmbeddingIsolationForest, load_detector, save_detector
from vitalsentry.risk.multiview import (
    DETECTOR_FILE,
    LEGACY_VIEW,
    VIEWS_FILE,
    MultiViewDetector,
    MultiViewFit,
    ViewSettings,
    fit_multiview,
    fold_groups,
    view_inputs,
)
from vitalsentry.scoring import window_pairs

if TYPE_CHECKING:
    from vitalsentry.bundle import Bundle, BundleWriter
    from vitalsentry.evaluation.sepsis.model import PlattCalibration
    from vitalsentry.training.loop import RunSpec, TrainOptions, TrainResult

ENCODER, DECODER = "encoder.safetensors", "decoder.safetensors"
SCALER, CURVE = "scaler.json", "curve.json"
CALIBRATION_FILE = "calibration.json"
ALARM_FILE = "alarm_policy.json"
FUSION_FILE = "fusion.skops"
FUSION_META = "fusion.json"
RESP_PREFIX = "resp_"
CONTEXT_HEAD_FILE = "context_head.skops"
CONTEXT_HEAD_META = "context_head.json"

JsonCheck = Callable[[Any], object]
"""Validator of a JSON file's content: raises on a malformed one."""


class Stage(Protocol):
    """What every stage provides (class attributes, fitting, saving, loading, checking).

    Attributes
    ----------
    name : str
        Its name in :data:`STAGES`, the CLI's ``--stages`` and the manifest's sections.
    files : tuple of str
        Bundle files it owns with fixed names; the first tells whether a bundle holds it.
    json_checks : mapping of str to callable
        Validator of each of its JSON files (run by ``load_bundle`` on every load).
    invalidates : tuple of str
        Later stages a refit of this one makes stale (dropped from the composition).
    prefixes : tuple of str
        Name prefixes of files it owns besides ``files`` (e.g. one file per view).
    """

    name: ClassVar[str]
    files: ClassVar[tuple[str, ...]]
    json_checks: ClassVar[Mapping[str, JsonCheck]]
    invalidates: ClassVar[tuple[str, ...]]
    prefixes: ClassVar[tuple[str, ...]]

    @classmethod
    def fit(cls, chain: Stages, inputs: FitInputs) -> Self:
        """Fit on ``inputs`` after the stages of ``chain``; record provenance in its manifest."""
        ...

    @classmethod
    def load(cls, bundle: Bundle) -> Self:
        """Rebuild from a verified bundle."""
        ...

    def save(self, writer: BundleWriter) -> None:
        """Put this stage's files into a bundle being written."""
        ...


@dataclass(frozen=True)
class ContextInputs:
    """What ``context_head`` fits on: an hourly feature table and its labels.

    Attributes
    ----------
    blocks : sequence of ndarray of float32
        Column blocks of the same (n,) rows (rolling features, context, embeddings, anomaly).
    labels : ndarray of int8, shape (n,)
    split : ndarray of int8, shape (n,)
        0: fits the classifier; 1: stops its boosting early and fits its Platt calibration;
        other codes are not used.
    gbm : GbmConfig
        The classifier's settings.
    recipe : HeadRecipe
        What the classifier fits on (default: the labels, every row weighing 1).
    patient : ndarray, optional, shape (n,)
        Patient of each row (each one's rows contiguous, in time order): a ``"utility"``
        recipe needs it.
    """

    blocks: Columns
    labels: np.ndarray
    split: np.ndarray
    gbm: GbmConfig = field(default_factory=GbmConfig)
    recipe: HeadRecipe = field(default_factory=HeadRecipe)
    patient: np.ndarray | None = None


@dataclass(frozen=True)
class FitInputs:
    """The data and settings the named stages fit with.

    Attributes
    ----------
    data : PreparedData, optional
        The prepared windows every stage but ``context_head`` fits on (cardio data for fusion).
    model : ModelConfig, optional
        Architecture of a fresh encoder (``fit`` of ``encoder``).
    train : TrainConfig
        Training recipe of the encoder (``TrainConfig.finetune()`` for ``partial_fit``).
    detector : DetectorConfig
        Detector, calibration and views settings.
    fusion : FusionConfig
        Fusion settings.
    respiratory : (Stages, PreparedData), optional
        A respiratory encoder and its data, for ``fusion``.
    options : TrainOptions, optional
        How to train the encoder (needed when the encoder is fitted).
    context : ContextInputs, optional
        Hourly feature table, labels and settings of ``context_head``.
    """

    data: PreparedData | None = None
    model: ModelConfig | None = None
    train: TrainConfig = field(default_factory=TrainConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    respiratory: tuple[Stages, PreparedData] | None = None
    options: TrainOptions | None = None
    context: ContextInputs | None = None

    def prepared(self) -> PreparedData:
        """Return the prepared windows (refused when absent)."""
        if self.data is None:
            raise TrainingError("this stage fits on prepared data: FitInputs.data is missing")
        return self.data

    def train_options(self) -> TrainOptions:
        """Return the encoder's training options (refused when absent)."""
        if self.options is None:
            raise TrainingError("fitting the encoder needs TrainOptions (a checkpoint folder)")
        return self.options


def _fresh(model: Autoencoder) -> Autoencoder:
    """Return a new model with ``model``'s weights, in eval mode, as loading a bundle builds it."""
    fresh = Autoencoder(model.config)
    fresh.load_state_dict(model.state_dict())
    return fresh.eval()


S = TypeVar("S", bound=Stage)


@dataclass(frozen=True)
class ScalerStage:
    """Per-channel z-scores of the training split (fitted by ``prepare``; ``scaler.json``)."""

    name: ClassVar[str] = "scaler"
    files: ClassVar[tuple[str, ...]] = (SCALER,)
    json_checks: ClassVar[Mapping[str, JsonCheck]] = {SCALER: ChannelScaler.from_dict}
    invalidates: ClassVar[tuple[str, ...]] = ("detector", "alarm", "fusion", "context_head")
    prefixes: ClassVar[tuple[str, ...]] = ()

    scaler: ChannelScaler

    @classmethod
    def fit(cls, chain: Stages, inputs: FitInputs) -> Self:
        """Take the prepared data's scaler (fitted on its training split)."""
        return cls(inputs.prepared().scaler)

    @classmethod
    def load(cls, bundle: Bundle) -> Self:
        """Load the bundle's scaler (parsed and checked by ``load_bundle``)."""
        return cls(bundle.scaler)

    def save(self, writer: BundleWriter) -> None:
        """Write ``scaler.json``."""
        writer.put_json(SCALER, self.scaler.to_dict())


def _curve(obj: Any) -> None:
    if not isinstance(obj, list) or not all(isinstance(row, dict) for row in obj):
        raise BundleError("training curve: expected a list of objects")


def weights_sha256(model: Autoencoder) -> str:
    """sha256 of a model's weights (names, shapes and bytes): its identity when unsaved."""
    digest = hashlib.sha256()
    for key, value in model.state_dict().items():
        digest.update(f"{key}{tuple(value.shape)}".encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class EncoderStage:
    """The Conv1d + LSTM autoencoder (``encoder/decoder.safetensors``, ``curve.json``).

    Attributes
    ----------
    model : Autoencoder
        Trained weights, in eval mode.
    feature_names : tuple of str
        Window channels it was trained on.
    curve : list of dict
        Training curve (``epoch``, ``train_loss``, ``val_loss``).
    result : TrainResult, optional
        The training run, when fitted in this process (not saved).
    """

    name: ClassVar[str] = "encoder"
    files: ClassVar[tuple[str, ...]] = (ENCODER, DECODER, CURVE)
    json_checks: ClassVar[Mapping[str, JsonCheck]] = {CURVE: _curve}
    invalidates: ClassVar[tuple[str, ...]] = ("detector", "alarm", "fusion", "context_head")
    prefixes: ClassVar[tuple[str, ...]] = ()

    model: Autoencoder
    feature_names: tuple[str, ...]
    curve: list[dict[str, float]]
    result: TrainResult | None = None

    @classmethod
    def fit(cls, chain: Stages, inputs: FitInputs) -> Self:
        """Pre-train a fresh autoencoder (the seed's phase 1) on ``inputs.data``."""
        from vitalsentry.training.loop import RunSpec, init_model  # Lightning: import on use

        if inputs.model is None:
            raise TrainingError("fitting a fresh encoder needs a ModelConfig")
        data = inputs.prepared()
        config = PipelineConfig(
            data=data.data, window=data.window, model=inputs.model, train=inputs.train
        )
        options = inputs.train_options()
        spec = RunSpec(phase="pretrain", config=config)
        return cls._train(chain, init_model(inputs.model, inputs.train.seed), data, spec, options)

    def partial_fit(self, chain: Stages, inputs: FitInputs, parent: dict[str, Any]) -> Self:
        """Fine-tune this encoder on ``inputs.data`` (the seed's phase 2).

        ``inputs.train`` decides what is frozen (``TrainConfig.finetune()``: the conv
        layers) and the class weights; ``chain`` carries the parent's configs (those of
        later stages are kept) and ``parent`` its identity, recorded in the manifest.
        """
        from vitalsentry.training.loop import RunSpec  # Lightning: import on use

        data = inputs.prepared()
        self.check(data)
        train = inputs.train
        config = chain.config.replace(data=data.data, window=data.window, train=train)
        options = inputs.train_options()
        spec = RunSpec(
            phase="finetune",
            config=config,
            class_weights=train.class_weights,
            parent=parent,
        )
        return self._train(chain, _fresh(self.model), data, spec, options)

    @classmethod
    def _train(
        cls,
        chain: Stages,
        model: Autoencoder,
        data: PreparedData,
        spec: RunSpec,
        options: TrainOptions,
    ) -> Self:
        from vitalsentry.training.loop import fit_autoencoder

        result = fit_autoencoder(model, data, spec, options)
        chain.record = {
            "config": result.config.to_dict(),
            "feature_names": list(data.feature_names),
            "data": {
                "fingerprint": data.fingerprint,
                "source": data.source,
                "stream": data.stream,
                "input_sha256": data.input_sha256,
                "notes": list(data.notes),
                "counts": data.counts(),
            },
            "training": result.record(model),
            "metrics": {},
            "parent": spec.parent,
        }
        return cls(_fresh(model.cpu()), tuple(data.feature_names), list(result.curve), result)

    @classmethod
    def load(cls, bundle: Bundle) -> Self:
        """Load the bundle's autoencoder (shapes checked against its model config)."""
        curve = bundle.read_json(CURVE) if bundle.has(CURVE) else []
        return cls(bundle.autoencoder(), bundle.feature_names, curve)

    def save(self, writer: BundleWriter) -> None:
        """Write the encoder and decoder weights and the training curve."""
        writer.put_tensors(ENCODER, self.model.encoder.state_dict())
        writer.put_tensors(DECODER, self.model.decoder.state_dict())
        writer.put_json(CURVE, self.curve)

    def check(self, data: PreparedData) -> None:
        """Refuse data whose channels or window length differ from the training data's."""
        if tuple(data.feature_names) != self.feature_names:
            raise BundleError(
                f"the encoder was trained on features ({', '.join(self.feature_names)}) but the "
                f"data has ({', '.join(data.feature_names)}); prepare it with the same channels "
                "and time encoding"
            )
        if data.window.length != self.model.config.seq_len:
            raise BundleError(
                f"the encoder takes windows of {self.model.config.seq_len} steps but the data's "
                f"have {data.window.length}"
            )


@dataclass(frozen=True)
class _Validation:
    """What the detector's fit leaves for the alarm policy: validation windows and high flags."""

    mask: np.ndarray
    high: np.ndarray


@dataclass(frozen=True)
class DetectorStage:
    """The multi-view detector and its risk calibration.

    Files: ``detector.skops`` (the embedding forest), ``views.json`` and
    ``view_<name>.skops`` (:class:`~vitalsentry.risk.multiview.MultiViewDetector`; older
    bundles have none and score with the forest alone) and ``calibration.json``.

    Attributes
    ----------
    detector : EmbeddingIsolationForest
        The embedding forest.
    views : MultiViewDetector, optional
        The views and their combination.
    calibration : RiskCalibration
        Raw score → risk, thresholds, levels.
    validation : _Validation, optional
        Set when fitted in this process, for the alarm policy (not saved).
    """

    name: ClassVar[str] = "detector"
    files: ClassVar[tuple[str, ...]] = (DETECTOR_FILE, VIEWS_FILE, CALIBRATION_FILE)
    json_checks: ClassVar[Mapping[str, JsonCheck]] = {CALIBRATION_FILE: RiskCalibration.from_dict}
    invalidates: ClassVar[tuple[str, ...]] = ("alarm",)
    prefixes: ClassVar[tuple[str, ...]] = ("view_",)

    detector: EmbeddingIsolationForest
    views: MultiViewDetector | None
    calibration: RiskCalibration
    validation: _Validation | None = None

    @classmethod
    def fit(cls, chain: Stages, inputs: FitInputs) -> Self:
        """Fit the multi-view detector on normal training windows and calibrate its risk.

        The views are cross-fitted over the training patients (leave-patients-out folds):
        their out-of-fold scores standardise each view and, with the validation patients,
        set the threshold; the combination is chosen on validation patients
        (:mod:`vitalsentry.risk.multiview`). The summary (windows used, chosen views,
        validation FPR and recall, fold FPRs) goes to the manifest's ``metrics.detector``.
        """
        prepared, config = inputs.prepared(), inputs.detector
        encoder = chain.get(EncoderStage)
        encoder.check(prepared)
        fit_mask, val_mask, val_source = _calibration_split(prepared, config.random_state)
        if (fit_mask & (prepared.labels != 1)).sum() < 2:
            raise DataError("fewer than 2 normal training windows: cannot fit the detector")
        settings = ViewSettings(
            seed=config.random_state,
            n_estimators=config.n_estimators,
            folds=config.cv_folds,
            contamination=config.contamination,
        )
        scaler = chain.get(ScalerStage).scaler
        emb, errors, steps = encode_with_step_error(
            encoder.model, scaler.transform(prepared.windows)
        )
        vitals = len(prepared.data.channels)
        inputs_ = view_inputs(
            emb,
            (errors[:, :vitals], steps[:, :vitals]),
            prepared.windows,
            prepared.feature_names,
            patient=prepared.patient,
            start_s=prepared.start_s,
            span_s=prepared.window.length * prepared.data.step_s,
            lookback=settings.lookback,
        )
        groups = fold_groups(prepared.patient[fit_mask], prepared.start_s[fit_mask], settings.folds)
        fitted = fit_multiview(
            (inputs_.select(fit_mask), prepared.labels[fit_mask], groups),
            (inputs_.select(val_mask), prepared.labels[val_mask]),
            settings,
            allowed=config.views,
        )
        calibration, folds = _cross_fitted_calibration(
            prepared, fit_mask, val_mask, groups, fitted, config
        )
        scores = np.full(len(prepared), np.nan)
        scores[fit_mask], scores[val_mask] = fitted.fit_scores, fitted.val_scores
        stage = fitted.stage
        summary = {
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
        record = chain.record
        record["config"]["detector"] = config.to_dict()
        # scoring grids and windows data as the detector and its thresholds saw it
        record["config"]["data"] = prepared.data.to_dict()
        record["config"]["window"] = prepared.window.to_dict()
        record["detector_data"] = {"fingerprint": prepared.fingerprint, "source": prepared.source}
        record.setdefault("metrics", {})["detector"] = summary
        forest = stage.detectors[LEGACY_VIEW]
        if not isinstance(forest, EmbeddingIsolationForest):
            raise TrainingError(f"the {LEGACY_VIEW} view is not an embedding forest")
        validation = _Validation(val_mask, scores > calibration.threshold_high)
        return cls(forest, stage, calibration, validation)

    @classmethod
    def load(cls, bundle: Bundle) -> Self:
        """Load the forest, the views (when the bundle has ``views.json``) and the calibration."""
        views = (
            MultiViewDetector.load(bundle.read_json(VIEWS_FILE), bundle.path_of)
            if bundle.has(VIEWS_FILE)
            else None
        )
        return cls(
            load_detector(bundle.path_of(DETECTOR_FILE)),
            views,
            RiskCalibration.from_dict(bundle.read_json(CALIBRATION_FILE)),
        )

    def save(self, writer: BundleWriter) -> None:
        """Write the forest (or every view), ``views.json`` and ``calibration.json``."""
        if self.views is not None:
            self.views.save(writer.put_json, writer.put_file)
        else:
            writer.put_file(DETECTOR_FILE, lambda p: save_detector(self.detector, p))
        writer.put_json(CALIBRATION_FILE, self.calibration.to_dict())


def _alarm_record(obj: Any) -> None:
    policy = _keys(obj, "alarm policy", {"policy", "chosen_on"}, frozenset({"validation"}))
    AlarmPolicy(**_keys(policy["policy"], "alarm policy", {"k", "n", "clear_after"}))


def _keys(obj: Any, what: str, required: set[str], optional: frozenset[str] = frozenset()) -> Any:
    """Return ``obj`` after checking it is an object with exactly the allowed keys."""
    if not isinstance(obj, dict):
        raise BundleError(f"{what}: expected an object")
    missing, unknown = sorted(required - set(obj)), sorted(set(obj) - required - optional)
    if missing or unknown:
        raise BundleError(
            f"{what}: missing keys {missing or 'none'}, unknown keys {unknown or 'none'}"
        )
    return obj


@dataclass(frozen=True)
class AlarmStage:
    """The k-of-n alarm policy chosen on validation patients (``alarm_policy.json``).

    Attributes
    ----------
    policy : AlarmPolicy
        The policy.
    record : dict
        ``policy``, ``chosen_on`` and the validation report, as saved.
    """

    name: ClassVar[str] = "alarm"
    files: ClassVar[tuple[str, ...]] = (ALARM_FILE,)
    json_checks: ClassVar[Mapping[str, JsonCheck]] = {ALARM_FILE: _alarm_record}
    invalidates: ClassVar[tuple[str, ...]] = ()
    prefixes: ClassVar[tuple[str, ...]] = ()

    policy: AlarmPolicy
    record: dict[str, Any]

    @classmethod
    def fit(cls, chain: Stages, inputs: FitInputs) -> Self:
        """Choose the policy on the validation windows of a detector fitted in this run."""
        validation = chain.get(DetectorStage).validation
        if validation is None:
            raise TrainingError("the alarm policy is chosen with the detector: fit both together")
        record = _alarm_policy(inputs.prepared(), validation.mask, validation.high)
        chain.record.setdefault("metrics", {}).setdefault("detector", {})["alarm_policy"] = record[
            "policy"
        ]
        return cls(AlarmPolicy(**record["policy"]), record)

    @classmethod
    def load(cls, bundle: Bundle) -> Self:
        """Load the bundle's policy."""
        record = bundle.read_json(ALARM_FILE)
        return cls(AlarmPolicy(**record["policy"]), record)

    def save(self, writer: BundleWriter) -> None:
        """Write ``alarm_policy.json``."""
        writer.put_json(ALARM_FILE, self.record)


def _fusion_meta(obj: Any) -> None:
    meta = _keys(obj, "fusion", {"config", "respiratory", "summary"})
    FusionConfig.from_dict(meta["config"])
    resp = _keys(
        meta["respiratory"],
        "fusion respiratory",
        {"data", "model", "feature_names", "bundle_manifest_sha256"},
        frozenset({"weights_sha256"}),
    )
    data, model = DataConfig.from_dict(resp["data"]), ModelConfig.from_dict(resp["model"])
    if resp["feature_names"] != list(data.feature_names) or len(data.feature_names) != (
        model.input_channels
    ):
        raise BundleError("fusion respiratory: feature names disagree with its data or model")


@dataclass(frozen=True)
class FusionStage:
    """The fusion classifier with its respiratory encoder and scaler.

    Files: ``fusion.skops``, ``fusion.json`` (config, respiratory provenance, summary),
    ``resp_encoder/decoder.safetensors`` and ``resp_scaler.json``.

    Attributes
    ----------
    model : CalibratedClassifierCV
        The classifier.
    meta : dict
        The content of ``fusion.json``.
    respiratory : Autoencoder
        The respiratory encoder, in eval mode.
    respiratory_scaler : ChannelScaler
        Its scaler.
    """

    name: ClassVar[str] = "fusion"
    files: ClassVar[tuple[str, ...]] = (
        FUSION_FILE,
        FUSION_META,
        RESP_PREFIX + ENCODER,
        RESP_PREFIX + DECODER,
        RESP_PREFIX + SCALER,
    )
    json_checks: ClassVar[Mapping[str, JsonCheck]] = {
        FUSION_META: _fusion_meta,
        RESP_PREFIX + SCALER: ChannelScaler.from_dict,
    }
    invalidates: ClassVar[tuple[str, ...]] = ()
    prefixes: ClassVar[tuple[str, ...]] = ()

    model: CalibratedClassifierCV
    meta: dict[str, Any]
    respiratory: Autoencoder
    respiratory_scaler: ChannelScaler

    @classmethod
    def fit(cls, chain: Stages, inputs: FitInputs) -> Self:
        """Fit the classifier on labelled training windows both datasets share.

        ``inputs.data`` is the cardio data (this composition's channels);
        ``inputs.respiratory`` a respiratory encoder trained on the same patients and its
        data, prepared with the same split settings.
        """
        if inputs.respiratory is None:
            raise TrainingError("fitting fusion needs a respiratory encoder and its data")
        (resp_stages, resp), cardio, config = inputs.respiratory, inputs.prepared(), inputs.fusion
        encoder, resp_encoder = chain.get(EncoderStage), resp_stages.get(EncoderStage)
        encoder.check(cardio)
        resp_encoder.check(resp)
        if resp.data.split != cardio.data.split or resp.data.seed != cardio.data.seed:
            raise DataError("the cardio and respiratory data were split with different settings")
        resp_scaler = resp_stages.get(ScalerStage).scaler
        fused = fusion_inputs(
            (encoder.model, chain.get(ScalerStage).scaler),
            (resp_encoder.model, resp_scaler),
            cardio,
            resp,
        )
        train = (fused.split == 0) & (fused.labels >= 0)
        y = fused.labels[train]
        if np.unique(y).size < 2:
            raise DataError("the fusion classifier needs both classes among the training windows")
        x = fused.matrix(config.use_static, train)
        model = make_fusion_classifier(config).fit(x, y)
        summary = {
            "train_windows": int(y.size),
            "abnormal": int(y.sum()),
            "features": int(x.shape[1]),
        }
        identity = resp_stages.identity()
        meta = {
            "config": config.to_dict(),
            "respiratory": {
                "data": resp.data.to_dict(),
                "model": resp_encoder.model.config.to_dict(),
                "feature_names": list(resp.feature_names),
                "bundle_manifest_sha256": identity["manifest_sha256"],
                "weights_sha256": identity["weights_sha256"],
            },
            "summary": summary,
        }
        chain.record["config"]["fusion"] = config.to_dict()
        chain.record.setdefault("metrics", {})["fusion"] = summary
        return cls(model, meta, resp_encoder.model, resp_scaler)

    @classmethod
    def load(cls, bundle: Bundle) -> Self:
        """Load the classifier (its trusted types only), the respiratory encoder and scaler."""
        meta = bundle.read_json(FUSION_META)
        return cls(
            load_skops(bundle.path_of(FUSION_FILE), FUSION_TRUSTED_TYPES, CalibratedClassifierCV),
            meta,
            bundle.autoencoder(
                ModelConfig.from_dict(meta["respiratory"]["model"]), prefix=RESP_PREFIX
            ),
            ChannelScaler.from_dict(bundle.read_json(RESP_PREFIX + SCALER)),
        )

    def save(self, writer: BundleWriter) -> None:
        """Write the classifier, ``fusion.json`` and the respiratory encoder and scaler."""
        writer.put_file(FUSION_FILE, lambda p: save_skops(self.model, p))
        writer.put_json(FUSION_META, self.meta)
        writer.put_tensors(RESP_PREFIX + ENCODER, self.respiratory.encoder.state_dict())
        writer.put_tensors(RESP_PREFIX + DECODER, self.respiratory.decoder.state_dict())
        writer.put_json(RESP_PREFIX + SCALER, self.respiratory_scaler.to_dict())


RECIPE_KEY = frozenset({"recipe"})
"""Optional key of ``context_head.json``: the head's :class:`HeadRecipe`."""


def _context_head_meta(obj: Any) -> None:
    meta = _keys(
        obj, "context head", {"gbm", "platt", "features", "summary", "encoder"}, RECIPE_KEY
    )
    GbmConfig(
        **_keys(meta["gbm"], "context head gbm", {f.name for f in dataclasses.fields(GbmConfig)})
    )
    if "recipe" in meta:  # bundles written before the recipe was recorded trained on labels
        fields = {f.name for f in dataclasses.fields(HeadRecipe)}
        try:
            HeadRecipe(**_keys(meta["recipe"], "context head recipe", fields))
        except DataError as exc:
            raise BundleError(f"context head recipe: {exc}") from None
    platt = _keys(meta["platt"], "context head platt", {"a", "b"})
    if not all(isinstance(v, float) for v in platt.values()) or not isinstance(
        meta["features"], int
    ):
        raise BundleError("context head: platt a, b must be numbers and features an integer")


@dataclass(frozen=True)
class ContextHeadStage:
    """The sepsis benchmark's risk: gradient boosting on hourly features, Platt-calibrated.

    Files: ``context_head.skops`` (the classifier) and ``context_head.json`` (its settings
    and :class:`HeadRecipe`, the Platt ``a``, ``b``, its feature count, a summary and the
    encoder's weights hash: the embeddings among its features come from this bundle's
    encoder). The classifier fits what the recipe says (labels, or utility-weighted hours);
    its early stopping uses the same targets on the validation rows, and Platt always the
    labels there, so the risk is a calibrated probability of ``SepsisLabel`` either way.

    Attributes
    ----------
    model : HistGradientBoostingClassifier
        Fitted on the training rows (split 0).
    platt : PlattCalibration
        Fitted on its probabilities of the validation rows (split 1).
    meta : dict
        The content of ``context_head.json``.
    """

    name: ClassVar[str] = "context_head"
    files: ClassVar[tuple[str, ...]] = (CONTEXT_HEAD_FILE, CONTEXT_HEAD_META)
    json_checks: ClassVar[Mapping[str, JsonCheck]] = {CONTEXT_HEAD_META: _context_head_meta}
    invalidates: ClassVar[tuple[str, ...]] = ()
    prefixes: ClassVar[tuple[str, ...]] = ()

    model: HistGradientBoostingClassifier
    platt: PlattCalibration
    meta: dict[str, Any]

    @classmethod
    def fit(cls, chain: Stages, inputs: FitInputs) -> Self:
        """Fit the classifier on training rows (early stopping and Platt on validation rows).

        The recipe (``inputs.context.recipe``) sets the classifier's targets and weights.
        """
        from vitalsentry.evaluation.sepsis.model import PlattCalibration  # imports the bundle

        if inputs.context is None:
            raise TrainingError("fitting the context head needs FitInputs.context (its table)")
        table = inputs.context
        train, val = table.split == 0, table.split == 1
        targets, weights = table.recipe.targets(table.patient, table.labels, train)
        model = fit_gbm(table.blocks, targets, train, table.gbm, val, weights)
        platt = PlattCalibration.fit(gbm_proba(model, table.blocks, val)[val], table.labels[val])
        summary = {
            "train_rows": int(train.sum()),
            "calibration_rows": int(val.sum()),
            "positive_train_rows": int(targets[train].sum()),
            "trees": int(model.n_iter_),
        }
        meta = {
            "gbm": dataclasses.asdict(table.gbm),
            "recipe": dataclasses.asdict(table.recipe),
            "platt": dataclasses.asdict(platt),
            "features": int(model.n_features_in_),
            "summary": summary,
            "encoder": weights_sha256(chain.get(EncoderStage).model),
        }
        chain.record.setdefault("metrics", {})["context_head"] = summary
        return cls(model, platt, meta)

    def predict(self, blocks: Columns, rows: np.ndarray | None = None) -> np.ndarray:
        """(n,) calibrated risk at ``rows`` (default all) of a table like the fitted one."""
        width = sum(b.shape[1] for b in blocks)
        if width != self.meta["features"]:
            raise DataError(f"the context head takes {self.meta['features']} features, not {width}")
        return self.platt(gbm_proba(self.model, blocks, rows))

    @classmethod
    def load(cls, bundle: Bundle) -> Self:
        """Load the classifier (its trusted types only) and its calibration."""
        from vitalsentry.evaluation.sepsis.model import PlattCalibration  # imports the bundle

        meta = bundle.read_json(CONTEXT_HEAD_META)
        model = load_skops(
            bundle.path_of(CONTEXT_HEAD_FILE), GBM_TRUSTED_TYPES, HistGradientBoostingClassifier
        )
        return cls(model, PlattCalibration(**meta["platt"]), meta)

    def save(self, writer: BundleWriter) -> None:
        """Write the classifier and ``context_head.json``."""
        writer.put_file(CONTEXT_HEAD_FILE, lambda p: save_skops(self.model, p))
        writer.put_json(CONTEXT_HEAD_META, self.meta)


STAGES: dict[str, type[Stage]] = {
    kind.name: kind
    for kind in (
        ScalerStage,
        EncoderStage,
        DetectorStage,
        AlarmStage,
        FusionStage,
        ContextHeadStage,
    )
}
"""Every stage by name, in the order a composition fits them."""

_MANIFEST_OWN = ("format", "versions", "created", "files")


@dataclass
class Stages:
    """An ordered composition of fitted stages and the manifest record they carry.

    Attributes
    ----------
    parts : dict of str to Stage
        Fitted stages by name (a subset of :data:`STAGES`, in its order).
    record : dict
        The manifest's content besides format, versions and files: ``config``,
        ``feature_names``, data provenance, ``training``, ``metrics``, ``parent``.
    origin : dict, optional
        ``manifest_sha256`` and ``path`` of the bundle it was loaded from (None once refitted).
    """

    parts: dict[str, Stage] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)
    origin: dict[str, str] | None = None

    @classmethod
    def load(cls, bundle: Bundle) -> Stages:
        """Load every stage a verified bundle holds."""
        parts = {
            name: kind.load(bundle) for name, kind in STAGES.items() if bundle.has(kind.files[0])
        }
        record = {k: copy.deepcopy(v) for k, v in bundle.manifest.items() if k not in _MANIFEST_OWN}
        origin = {"manifest_sha256": bundle.manifest_sha256, "path": str(bundle.path)}
        return cls(parts, record, origin)

    @property
    def config(self) -> PipelineConfig:
        """Every config the composition was fitted with."""
        return PipelineConfig.from_dict(self.record["config"])

    def get(self, kind: type[S]) -> S:
        """Return the fitted stage of a kind; refused when the composition lacks it."""
        part = self.parts.get(kind.name)
        if not isinstance(part, kind):
            raise BundleError(
                f"no {kind.name} stage: fit it first (stages: {', '.join(self.parts)})"
            )
        return part

    def identity(self) -> dict[str, Any]:
        """Provenance as a parent: bundle manifest hash (if loaded), weights hash, data."""
        origin = self.origin or {}
        return {
            "manifest_sha256": origin.get("manifest_sha256"),
            "path": origin.get("path"),
            "data_fingerprint": self.record.get("data", {}).get("fingerprint"),
            "weights_sha256": weights_sha256(self.get(EncoderStage).model),
        }

    def fit(self, names: Iterable[str], inputs: FitInputs) -> Stages:
        """Fit the named stages in :data:`STAGES` order; return the new composition.

        Stages a refit makes stale (``invalidates``) are dropped; the others are kept.
        """
        chain = Stages(dict(self.parts), copy.deepcopy(self.record), None)
        for name in stage_order(names):
            kind = STAGES[name]
            for later in kind.invalidates:
                chain.parts.pop(later, None)
            chain.parts[name] = kind.fit(chain, inputs)
        chain.parts = {name: chain.parts[name] for name in STAGES if name in chain.parts}
        return chain

    def partial_fit(self, inputs: FitInputs) -> Stages:
        """Fine-tune the encoder on new data (scaler refitted; later stages dropped).

        ``inputs.train`` is the recipe (``TrainConfig.finetune()``: conv layers frozen,
        class weights); the new composition records this one as its parent.
        """
        encoder = self.get(EncoderStage)
        parent = self.identity()
        chain = Stages({}, copy.deepcopy(self.record), None)
        chain.parts[ScalerStage.name] = ScalerStage.fit(chain, inputs)
        chain.parts[EncoderStage.name] = encoder.partial_fit(chain, inputs, parent)
        return chain


def owns(kind: type[Stage], file: str) -> bool:
    """Whether ``file`` is one of a stage's files (a fixed name or one of its prefixes)."""
    return file in kind.files or file.startswith(kind.prefixes)


def stage_order(names: Iterable[str]) -> tuple[str, ...]:
    """Validate stage names and put them in :data:`STAGES` order."""
    wanted = set(names)
    unknown = sorted(wanted - set(STAGES))
    if unknown:
        raise TrainingError(f"unknown stage {unknown[0]!r}: choose from {', '.join(STAGES)}")
    return tuple(name for name in STAGES if name in wanted)


def weight_configs(
    config: PipelineConfig, has: Callable[[str], bool], read_json: Callable[[str], Any]
) -> dict[str, ModelConfig]:
    """Architecture of each weights file a bundle holds (encoder, respiratory encoder)."""
    models = {ENCODER: config.model, DECODER: config.model}
    if has(FUSION_META):
        try:
            meta = read_json(FUSION_META)
            _fusion_meta(meta)
            resp = ModelConfig.from_dict(meta["respiratory"]["model"])
        except (VitalSentryError, ValueError, TypeError, KeyError) as exc:
            raise BundleError(f"'{FUSION_META}' is malformed ({exc})") from None
        models |= {RESP_PREFIX + ENCODER: resp, RESP_PREFIX + DECODER: resp}
    return models


# ---- fitting helpers --------------------------------------------------------------------


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
        cohort_patients=fold_patients(fitted.fold[normal], groups[normal]),
        val_normal_scorer=np.concatenate(
            [fitted.fold[normal].astype(str), np.full(val_normal.sum(), "validation")]
        ),
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
