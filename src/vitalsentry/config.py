"""Configuration as frozen dataclasses, saved in every prepared dataset and bundle.

Each class has ``to_dict`` / ``from_dict``; ``from_dict`` rejects unknown keys and
restores tuples, so a saved config round-trips exactly.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, Self

from vitalsentry.channels import CHANNELS, STAY_FEATURE, resolve_limits
from vitalsentry.errors import VitalSentryError

LabelMode = Literal["last", "any", "majority"]
TimeEncoding = Literal["per_timestep", "per_window"]
Pooling = Literal["last", "attention"]
Precision = Literal["32", "bf16"]
SplitBy = Literal["patient", "time"]
TimeFeatures = Literal["clock", "stay", "none", "auto"]
LrSchedule = Literal["constant", "onecycle"]
LstmPath = Literal["auto", "fused", "layers"]
"""How stacked LSTM layers run: ``fused`` (one multi-layer call, cuDNN-fused on CUDA),
``layers`` (one call per layer), ``auto`` (fused on CUDA, per layer elsewhere)."""


class ConfigMixin:
    """``to_dict`` / ``from_dict`` for frozen dataclasses."""

    def to_dict(self) -> dict[str, Any]:
        """Return the config as JSON-ready builtins (tuples become lists)."""
        out: dict[str, Any] = dataclasses.asdict(self)  # type: ignore[call-overload]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Build the config from a dict; unknown keys are an error.

        Parameters
        ----------
        data : dict
            Output of :meth:`to_dict` (possibly with keys omitted for defaults).

        Returns
        -------
        Self
            The config.
        """
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise VitalSentryError(f"{cls.__name__}: unknown setting(s) {', '.join(unknown)}")
        hints = typing.get_type_hints(cls)
        kwargs = {k: _restore(hints[k], v) for k, v in data.items()}
        return cls(**kwargs)

    def replace(self, **changes: Any) -> Self:
        """Return a copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


def _restore(hint: Any, value: Any) -> Any:
    """Turn JSON lists back into tuples where the field is a tuple."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        arms = [a for a in typing.get_args(hint) if a is not type(None)]
        return _restore(arms[0], value) if len(arms) == 1 else value
    if origin is tuple and isinstance(value, list):
        return tuple(value)
    return value


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise VitalSentryError(message)


@dataclass(frozen=True)
class DataConfig(ConfigMixin):
    """How readings become a per-patient (or per-stream) grid and features.

    Attributes
    ----------
    channels : tuple of str
        Canonical vital channels to model, in order.
    step_s : float
        Grid step in seconds (seed: 1 s).
    max_gap_s : float
        Longest gap (seconds) of a continuous channel (heart rate, SpO2, respiratory rate)
        bridged by linear interpolation: the default of ``gap_interpolate_s`` for them.
    time_encoding : {"per_timestep", "per_window"}
        Time features at every step, or one value per window (its start).
    day_of_week : bool
        Add the sin/cos day-of-week pair (clock time features only).
    split : tuple of float
        Patient-level split fractions (train, val, test) or (train, test).
    seed : int
        Seed of the patient split.
    spo2_proxy : bool
        IoT source only: derive an SpO2 proxy from temperature (recorded in outputs).
    split_by : {"patient", "time"}
        Split whole patients, or each series into contiguous time blocks one window's
        length apart (for fewer patients than splits, e.g. one long recording).
    gap_interpolate_s, gap_carry_s : tuple of float
        Per channel (in ``channels`` order): longest gap bridged by interpolation, and how
        long a reading is then carried forward (see :mod:`vitalsentry.data.gaps`). Empty
        means the defaults of each channel's kind of measurement; saved resolved.
    observed_mask, time_since : bool
        Add per channel an input channel ``<channel>_observed`` (1 where a reading falls
        in the step) and/or ``<channel>_since`` (time since its latest reading as a
        fraction of its gap limit, 0-1). Inputs only: never scaled or reconstructed.
    time_features : {"clock", "stay", "none", "auto"}
        ``clock``: sin/cos of the UTC hour of day (needs wall-clock timestamps); ``stay``:
        ``log1p`` of hours since the series' first reading; ``none``; ``auto``: ``clock``
        when the data has a wall clock, else ``stay`` (``none`` in stream mode), resolved
        by ``prepare`` and saved resolved.
    """

    channels: tuple[str, ...] = ("heart_rate", "spo2")
    step_s: float = 1.0
    max_gap_s: float = 300.0
    time_encoding: TimeEncoding = "per_timestep"
    day_of_week: bool = False
    split: tuple[float, ...] = (0.7, 0.15, 0.15)
    seed: int = 0
    spo2_proxy: bool = True
    split_by: SplitBy = "patient"
    gap_interpolate_s: tuple[float, ...] = ()
    gap_carry_s: tuple[float, ...] = ()
    observed_mask: bool = False
    time_since: bool = False
    time_features: TimeFeatures = "clock"

    def __post_init__(self) -> None:
        _check(len(self.channels) > 0, "channels: at least one channel is needed")
        for name in self.channels:
            _check(
                name in CHANNELS,
                f"channels: unknown channel '{name}' (known: {', '.join(CHANNELS)})",
            )
        _check(len(set(self.channels)) == len(self.channels), "channels: duplicate channel")
        _check(self.step_s > 0, f"step_s: must be > 0, got {self.step_s}")
        _check(self.max_gap_s >= self.step_s, "max_gap_s: must be ≥ step_s")
        _check(
            self.time_encoding in ("per_timestep", "per_window"),
            "time_encoding: per_timestep or per_window",
        )
        _check(len(self.split) in (2, 3), "split: two or three fractions")
        _check(all(f > 0 for f in self.split), "split: fractions must be > 0")
        _check(
            abs(sum(self.split) - 1.0) < 1e-6,
            f"split: fractions must sum to 1, got {sum(self.split):g}",
        )
        _check(self.split_by in ("patient", "time"), "split_by: patient or time")
        _check(
            self.time_features in ("clock", "stay", "none", "auto"),
            "time_features: clock, stay, none or auto",
        )
        _check(
            not self.day_of_week or self.time_features in ("clock", "auto"),
            f"day_of_week: needs clock time features, not {self.time_features}",
        )
        interp, carry = resolve_limits(self.channels, {}, self.max_gap_s, self.step_s)
        for name, default in (("gap_interpolate_s", interp), ("gap_carry_s", carry)):
            given = getattr(self, name) or default
            _check(
                len(given) == len(self.channels),
                f"{name}: one value per channel ({len(self.channels)}), got {len(given)}",
            )
            _check(all(v >= 0 for v in given), f"{name}: limits must be ≥ 0, got {list(given)}")
            object.__setattr__(self, name, tuple(float(v) for v in given))

    @property
    def gap_features(self) -> tuple[str, ...]:
        """Names of the observed-mask and time-since input channels (possibly none)."""
        return tuple(f"{c}_observed" for c in self.channels if self.observed_mask) + tuple(
            f"{c}_since" for c in self.channels if self.time_since
        )

    @property
    def time_feature_names(self) -> tuple[str, ...]:
        """Names of the time features (``time_features`` must be resolved, not ``auto``)."""
        _check(self.time_features != "auto", "time_features: 'auto' is resolved by prepare")
        if self.time_features == "stay":
            return (STAY_FEATURE,)
        if self.time_features == "none":
            return ()
        return ("hour_sin", "hour_cos") + (("dow_sin", "dow_cos") if self.day_of_week else ())

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Names of the window channels: vitals, gap features, then time features."""
        return self.channels + self.gap_features + self.time_feature_names


@dataclass(frozen=True)
class WindowConfig(ConfigMixin):
    """Sliding windows over the grid.

    Attributes
    ----------
    length : int
        Window length in steps (seed: 256).
    stride : int
        Step between window starts (seed: 128, 50% overlap).
    label_mode : {"last", "any", "majority"}
        Window label from its steps' labels.
    """

    length: int = 256
    stride: int = 128
    label_mode: LabelMode = "last"

    def __post_init__(self) -> None:
        _check(self.length >= 8, f"window length: must be ≥ 8, got {self.length}")
        _check(self.length % 4 == 0, f"window length: must be a multiple of 4, got {self.length}")
        _check(self.stride >= 1, f"stride: must be ≥ 1, got {self.stride}")
        _check(self.label_mode in ("last", "any", "majority"), "label_mode: last, any or majority")


@dataclass(frozen=True)
class ModelConfig(ConfigMixin):
    """Conv1d + LSTM autoencoder architecture (seed "After" diagram by default)."""

    input_channels: int = 4
    seq_len: int = 256
    latent_dim: int = 32
    lstm_hidden: int = 64
    lstm_layers: int = 2
    dropout: float = 0.5
    use_lstm: bool = True
    pooling: Pooling = "last"

    def __post_init__(self) -> None:
        _check(self.input_channels >= 1, "input_channels: must be ≥ 1")
        _check(self.seq_len % 4 == 0, "seq_len: must be a multiple of 4")
        _check(
            self.latent_dim >= 1 and self.lstm_hidden >= 1, "latent_dim, lstm_hidden: must be ≥ 1"
        )
        _check(self.lstm_layers >= 1, "lstm_layers: must be ≥ 1")
        _check(0.0 <= self.dropout < 1.0, "dropout: must be in [0, 1)")
        _check(self.pooling in ("last", "attention"), "pooling: last or attention")


@dataclass(frozen=True)
class TrainConfig(ConfigMixin):
    """One training phase (pre-training defaults are the seed's).

    ``batch_splits`` > 1 (CPU, one process) trains each batch as that many parts on
    concurrent threads with one intra-op thread each and sums their gradients in order:
    the same gradient up to float rounding, with dropout masks from per-part generators.
    ``cuda_graph`` (CUDA, one process) replays forward, loss and backward of each batch as
    one captured CUDA graph: the same results up to float rounding, far fewer launches.
    ``lstm_path`` picks how the stacked LSTM layers run (same parameters either way).
    ``lr_schedule="onecycle"`` warms the learning rate up from ``lr / 25`` to ``lr`` over
    the first ``warmup_fraction`` of the run's steps (``max_epochs``), then anneals it by
    a cosine; ``grad_clip`` > 0 clips the gradient norm (0: off).
    """

    lr: float = 1e-3
    batch_size: int = 32
    max_epochs: int = 100
    patience: int = 10
    min_delta: float = 0.001
    seed: int = 0
    precision: Precision = "32"
    freeze_conv: bool = False
    weighted_sampling: bool = False
    class_weights: tuple[float, float] = (0.6, 1.4)
    time_warp: bool = False
    jitter: bool = False
    warp_strength: float = 0.2
    jitter_sigma: float = 0.03
    batch_splits: int = 1
    cuda_graph: bool = False
    lstm_path: LstmPath = "auto"
    lr_schedule: LrSchedule = "constant"
    warmup_fraction: float = 0.3
    grad_clip: float = 0.0

    def __post_init__(self) -> None:
        _check(self.lr > 0, f"lr: must be > 0, got {self.lr}")
        _check(
            self.lr_schedule in ("constant", "onecycle"),
            f"lr_schedule: constant or onecycle, got {self.lr_schedule!r}",
        )
        _check(0 < self.warmup_fraction < 1, "warmup_fraction: must be in (0, 1)")
        _check(self.grad_clip >= 0, "grad_clip: must be ≥ 0 (0 = off)")
        _check(
            self.lstm_path in ("auto", "fused", "layers"),
            f"lstm_path: auto, fused or layers, got {self.lstm_path!r}",
        )
        _check(self.batch_splits >= 1, f"batch_splits: must be ≥ 1, got {self.batch_splits}")
        _check(self.batch_size >= 1, f"batch_size: must be ≥ 1, got {self.batch_size}")
        _check(self.max_epochs >= 1, f"max_epochs: must be ≥ 1, got {self.max_epochs}")
        _check(self.patience >= 1, f"patience: must be ≥ 1, got {self.patience}")
        _check(self.min_delta >= 0, "min_delta: must be ≥ 0")
        _check(self.precision in ("32", "bf16"), "precision: 32 or bf16")
        _check(
            len(self.class_weights) == 2 and min(self.class_weights) > 0,
            "class_weights: two positive numbers",
        )

    @classmethod
    def finetune(cls) -> TrainConfig:
        """Return the seed's fine-tuning defaults (lr 1e-4, batch 16, 50 epochs, frozen conv)."""
        return cls(lr=1e-4, batch_size=16, max_epochs=50, freeze_conv=True, weighted_sampling=True)


@dataclass(frozen=True)
class DetectorConfig(ConfigMixin):
    """IsolationForest on embeddings and its calibration."""

    n_estimators: int = 200
    max_samples: int | None = None
    contamination: float | None = None
    random_state: int = 0
    target_fpr: float = 0.03
    fpr_confidence: float = 0.9
    views: tuple[str, ...] = ()
    """Views the combination may use (empty: all; see ``risk/multiview.py``)."""
    cv_folds: int = 5
    """Leave-patients-out folds of the cross-fitted standardisation and threshold."""
    per_patient_threshold: bool = True
    """Bound the threshold by the patients' own quantiles too (``risk/calibrate.py``)."""

    def __post_init__(self) -> None:
        _check(self.n_estimators >= 1, "n_estimators: must be ≥ 1")
        _check(self.cv_folds >= 2, "cv_folds: must be ≥ 2")
        _check(0 <= self.fpr_confidence < 1, "fpr_confidence: in [0, 1)")
        _check(
            self.contamination is None or 0 < self.contamination <= 0.5,
            "contamination: in (0, 0.5]",
        )
        _check(0 < self.target_fpr < 1, "target_fpr: in (0, 1)")


@dataclass(frozen=True)
class FusionConfig(ConfigMixin):
    """Fusion of cardio and respiratory embeddings (optionally static context)."""

    use_static: bool = True
    calibration: Literal["sigmoid", "isotonic"] = "sigmoid"
    seed: int = 0


@dataclass(frozen=True)
class PipelineConfig(ConfigMixin):
    """Every config of a bundle, saved in its manifest."""

    data: DataConfig = field(default_factory=DataConfig)
    window: WindowConfig = field(default_factory=WindowConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)

    def to_dict(self) -> dict[str, Any]:
        """Return nested dicts of every section."""
        return {f.name: getattr(self, f.name).to_dict() for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Build from nested dicts; unknown sections are an error."""
        sections = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(sections))
        if unknown:
            raise VitalSentryError(f"PipelineConfig: unknown section(s) {', '.join(unknown)}")
        hints = typing.get_type_hints(cls)
        return cls(**{k: hints[k].from_dict(v) for k, v in data.items()})
