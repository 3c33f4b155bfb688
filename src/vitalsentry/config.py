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

from vitalsentry.errors import VitalSentryError

LabelMode = Literal["last", "any", "majority"]
TimeEncoding = Literal["per_timestep", "per_window"]
Pooling = Literal["last", "attention"]
Precision = Literal["32", "bf16"]
SplitBy = Literal["patient", "time"]


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
        Longest gap (seconds) bridged by linear interpolation; longer gaps stay missing
        and are masked.
    time_encoding : {"per_timestep", "per_window"}
        Hour-of-day encoding at every step, or one value per window (its start).
    day_of_week : bool
        Add the sin/cos day-of-week pair.
    split : tuple of float
        Patient-level split fractions (train, val, test) or (train, test).
    seed : int
        Seed of the patient split.
    spo2_proxy : bool
        IoT source only: derive an SpO2 proxy from temperature (recorded in outputs).
    split_by : {"patient", "time"}
        Split whole patients, or each series into contiguous time blocks one window's
        length apart (for fewer patients than splits, e.g. one long recording).
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

    def __post_init__(self) -> None:
        from vitalsentry.data.schema import CHANNELS

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

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Names of the window channels: vitals, then time features."""
        time = ("hour_sin", "hour_cos") + (("dow_sin", "dow_cos") if self.day_of_week else ())
        return self.channels + time


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

    def __post_init__(self) -> None:
        _check(self.lr > 0, f"lr: must be > 0, got {self.lr}")
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

    def __post_init__(self) -> None:
        _check(self.n_estimators >= 1, "n_estimators: must be ≥ 1")
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
