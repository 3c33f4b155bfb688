"""The training run shared by pre-training and fine-tuning: Lightning trainer, checkpoints, bundle.

A run trains on the training windows, validates on held-out patients, stops early on the
validation loss, keeps ``last`` and ``best`` checkpoints in a folder (``<out>.ckpt/`` beside
the bundle; so an interrupted run resumes exactly where it stopped) and finally loads the best
weights into the model, then removes the checkpoints. The encoder stage
(:class:`vitalsentry.stages.EncoderStage`) calls it and records the run in the manifest.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import signal
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.utilities import rank_zero_only

from vitalsentry.config import LrSchedule, ModelConfig, PipelineConfig, TrainConfig
from vitalsentry.data.prepared import PreparedData
from vitalsentry.errors import DataError, TrainingError
from vitalsentry.models.autoencoder import Autoencoder, count_parameters
from vitalsentry.training.data import (
    WindowDataModule,
    balanced_sample_weights,
    loss_weights,
    stream_seed,
    train_val_parts,
)
from vitalsentry.training.module import CHECKPOINT_KEY, AutoencoderModule, NonFiniteLossError

_INIT_STREAM = 0

FAST_MAX_SPLITS = 4
"""Most parts ``fast`` splits a CPU batch into (one per intra-op thread)."""

_QUIET_WARNINGS = (
    r".*does not have many workers.*",
    r".*Checkpoint directory .* exists and is not empty.*",
    r".*sync_dist=True.*",
    r".*Consider setting `persistent_workers=True`.*",
    r".*LeafSpec.*",
)


@dataclass(frozen=True)
class TrainResult:
    """Outcome of a training run.

    Attributes
    ----------
    epochs : int
        Epochs trained in total (including those before a resume).
    best_val_loss : float
        Lowest validation loss; the bundle holds the weights of that epoch.
    stopped_early : bool
        Whether early stopping ended the run before ``max_epochs``.
    curve : list of dict
        ``{"epoch", "train_loss", "val_loss"}`` per epoch.
    seconds : float
        Wall time of this call.
    validation : str
        Which windows validated (held-out patients or a carved-out part).
    phase : {"pretrain", "finetune"}
        Training phase.
    notes : tuple of str
        Deviations from the requested settings (fast recipe, float32 fallback, resume).
    config : PipelineConfig
        The configs trained with (``train`` as run: ``fast`` and fallbacks applied).
    run : dict
        Accelerator, devices, nodes and precision.
    rank : int
        Global rank of this process (bundles are written by rank 0 only).
    bundle : Path, optional
        The bundle written, once one is (only by the process of global rank 0).
    """

    epochs: int
    best_val_loss: float
    stopped_early: bool
    curve: list[dict[str, float]]
    seconds: float
    validation: str
    phase: str
    config: PipelineConfig
    run: dict[str, Any]
    notes: tuple[str, ...] = ()
    rank: int = 0
    bundle: Path | None = None

    def record(self, model: Autoencoder) -> dict[str, Any]:
        """Return the manifest's ``training`` section: phase, validation, epochs, timing, notes, run."""
        return {
            "phase": self.phase,
            "validation": self.validation,
            "epochs": self.epochs,
            "stopped_early": self.stopped_early,
            "best_val_loss": self.best_val_loss,
            "seconds": round(self.seconds, 3),
            "parameters": count_parameters(model),
            "trainable_parameters": count_parameters(model, trainable_only=True),
            "notes": list(self.notes),
            **self.run,
        }


@dataclass(frozen=True)
class RunSpec:
    """What a run trains and how it records its provenance.

    Attributes
    ----------
    phase : {"pretrain", "finetune"}
        Training phase, recorded in the manifest.
    config : PipelineConfig
        Configs of the bundle to write (its ``train`` section is the requested one).
    class_weights : tuple of float, optional
        Per-window loss weights by class (fine-tuning), or None for a plain mean.
    parent : dict, optional
        Parent bundle identity (fine-tuning), recorded in the manifest.
    """

    phase: str
    config: PipelineConfig
    class_weights: tuple[float, float] | None = None
    parent: dict[str, Any] | None = None


@dataclass(frozen=True)
class TrainOptions:
    """How a run trains (hardware, resumption, display); not part of the recipe.

    Attributes
    ----------
    checkpoints : Path
        Folder of the run's checkpoints (:func:`checkpoint_dir` of a bundle); removed at the end.
    accelerator : str
        ``auto`` (CUDA, else MPS, else CPU), ``cpu``, ``cuda``, ``mps`` or ``gpu``.
    devices, num_nodes : int
        Processes per node and nodes; more than one in total trains with DDP (gloo on CPU).
    resume : bool
        Continue from the last checkpoint of the same run (identical final weights).
    progress : bool
        Show Lightning's progress bar.
    fast : bool
        :data:`FAST_RECIPE` (batch, learning rate and its schedule) and bf16 autocast where it is
        fast (a different recipe; see :func:`fast_recipe`).
    callbacks : sequence of Callback
        Extra Lightning callbacks.
    """

    checkpoints: Path
    accelerator: str = "auto"
    devices: int = 1
    num_nodes: int = 1
    resume: bool = False
    progress: bool = True
    fast: bool = False
    callbacks: Sequence[Callback] = ()


def init_model(config: ModelConfig, seed: int) -> Autoencoder:
    """Build an autoencoder whose initial weights depend only on ``seed`` (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(stream_seed(seed, _INIT_STREAM))
        return Autoencoder(config)


def checkpoint_dir(out: str | Path) -> Path:
    """Folder of a run's checkpoints: ``<out>.ckpt`` beside the bundle."""
    path = Path(out)
    return path.parent / f"{path.name}.ckpt"


def resolve_accelerator(accelerator: str) -> str:
    """Turn ``auto`` / ``gpu`` into ``cuda``, ``mps`` or ``cpu`` (what is available)."""
    if accelerator not in ("auto", "gpu", "cuda", "mps", "cpu"):
        raise TrainingError(f"accelerator: auto, cpu, cuda, mps or gpu, got {accelerator!r}")
    if accelerator in ("auto", "gpu"):
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        if accelerator == "gpu":
            raise TrainingError("accelerator 'gpu': no CUDA or MPS device is available")
        return "cpu"
    return accelerator


def bf16_is_fast(accelerator: str) -> bool:
    """Whether bf16 autocast speeds training up here: CUDA with bf16, or a CPU with AMX.

    On CPUs without AMX tiles bf16 is emulated and much slower than float32; with AMX
    (e.g. Sapphire Rapids) it is faster at large batches (``benchmarks/bench_train.py``).
    """
    if accelerator == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if accelerator == "cpu":
        return bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())
    return False


@dataclass(frozen=True)
class LargeBatchRecipe:
    """A large-batch training recipe: what ``fast`` changes in the seed's.

    Attributes
    ----------
    batch_size : int
        Training batch (256 by default: the batch of the earlier ``fast``).
    lr_scaling : {"linear", "sqrt"}
        Peak learning rate = base lr × (batch_size / base batch) or its square root.
    lr_schedule : {"constant", "onecycle"}
        Warm-up then cosine decay (``onecycle``) or a constant learning rate.
    warmup_fraction : float
        Share of the run's steps spent warming up (``onecycle``).
    grad_clip : float
        Gradient-norm clipping (0: off).
    max_epochs : int
        Cap on the epochs (the one-cycle schedule spans the run).
    """

    batch_size: int = 256
    lr_scaling: Literal["linear", "sqrt"] = "linear"
    lr_schedule: LrSchedule = "constant"
    warmup_fraction: float = 0.3
    grad_clip: float = 0.0
    max_epochs: int = 100

    def apply(self, train: TrainConfig) -> TrainConfig:
        """Return ``train`` with this recipe's batch, learning rate, schedule and clipping."""
        factor = self.batch_size / train.batch_size
        return train.replace(
            batch_size=self.batch_size,
            lr=train.lr * (factor if self.lr_scaling == "linear" else factor**0.5),
            lr_schedule=self.lr_schedule,
            warmup_fraction=self.warmup_fraction,
            grad_clip=self.grad_clip,
            max_epochs=min(train.max_epochs, self.max_epochs),
        )

    def describe(self, base: TrainConfig) -> str:
        """One line: batch, learning rate and how it was scaled, schedule, clipping, epochs."""
        lr = self.apply(base).lr
        schedule = (
            f"one-cycle (warm-up over {self.warmup_fraction:.0%} of the steps, cosine decay)"
            if self.lr_schedule == "onecycle"
            else "constant"
        )
        clip = f", gradient norm clipped at {self.grad_clip:g}" if self.grad_clip else ""
        return (
            f"batch {self.batch_size} with peak lr {lr:g} ({self.lr_scaling} scaling of "
            f"{base.lr:g}), {schedule} learning rate{clip}, at most {self.max_epochs} epochs"
        )


FAST_RECIPE = LargeBatchRecipe(
    batch_size=64, lr_schedule="onecycle", warmup_fraction=0.1, grad_clip=1.0, max_epochs=18
)
"""The recipe ``fast`` applies (chosen by measurement: README, "Training recipes").

Raced at 200,020 rows on the 2-core CPU (``benchmarks/bench_train.py --race``): batch 64,
lr 2e-3, warm-up over 10 % of the steps then cosine decay over 18 epochs, clipping at 1.0.
"""


def fast_recipe(
    train: TrainConfig,
    accelerator: str,
    processes: int = 1,
    recipe: LargeBatchRecipe = FAST_RECIPE,
) -> tuple[TrainConfig, str]:
    """Return the ``fast`` variant and a note saying what it changed.

    ``recipe`` (batch, learning rate and its schedule, clipping), plus bf16 autocast where
    :func:`bf16_is_fast`. This is a different recipe from the seed's. On a CPU run by one
    process with 2–4 intra-op threads, each batch is also split into one part per thread
    (``batch_splits``; its throughput is measured by ``benchmarks/bench_train.py``);
    on one CUDA device each step is replayed as a CUDA graph (``cuda_graph``).
    """
    bf16 = train.precision == "bf16" or bf16_is_fast(accelerator)
    threads = torch.get_num_threads()
    splits = (
        threads
        if accelerator == "cpu" and processes == 1 and 2 <= threads <= FAST_MAX_SPLITS
        else train.batch_splits
    )
    graph = train.cuda_graph or (accelerator == "cuda" and processes == 1)
    fast = recipe.apply(train).replace(
        precision="bf16" if bf16 else "32", batch_splits=splits, cuda_graph=graph
    )
    note = (
        f"fast: {recipe.describe(train)}"
        f"{' and bf16 autocast' if bf16 else ''}"
        f"{f', split over {splits} CPU threads' if splits > 1 else ''}"
        f"{', steps replayed as a CUDA graph' if graph else ''} "
        f"instead of batch {train.batch_size}; "
        "this changes the recipe, so results differ from the seed's"
    )
    return fast, note


def check_step_options(train: TrainConfig, accelerator: str, processes: int) -> None:
    """Refuse ``batch_splits`` off one CPU process or with the fused LSTM, ``cuda_graph`` off one GPU."""
    if train.batch_splits > 1 and (accelerator != "cpu" or processes > 1):
        raise TrainingError(
            f"batch_splits {train.batch_splits} needs accelerator cpu and one process "
            f"(got {accelerator}, {processes} process(es)); DDP splits batches itself"
        )
    if train.batch_splits > 1 and train.lstm_path == "fused":
        raise TrainingError(
            "batch_splits draws per-part dropout masks between LSTM layers: use lstm_path "
            "auto or layers with it"
        )
    if train.cuda_graph and (accelerator != "cuda" or processes > 1):
        raise TrainingError(
            f"cuda_graph needs accelerator cuda and one process "
            f"(got {accelerator}, {processes} process(es))"
        )


def resolve_precision(train: TrainConfig, accelerator: str) -> tuple[str, str | None]:
    """Return Lightning's precision for ``train.precision`` here, and a note on a fallback."""
    if train.precision != "bf16":
        return "32-true", None
    if bf16_is_fast(accelerator):
        return "bf16-mixed", None
    return "32-true", (
        f"bf16 requested but {accelerator} has no fast bf16 (CUDA with bf16, or a CPU with AMX); "
        "trained in float32"
    )


def check_compatible(model: Autoencoder, data: PreparedData) -> None:
    """Refuse data whose channels or window length do not fit the model."""
    cfg = model.config
    _, channels, length = data.windows.shape
    if channels != cfg.input_channels or len(data.feature_names) != channels:
        raise TrainingError(
            f"the model takes {cfg.input_channels} input channels but the data has {channels} "
            f"({', '.join(data.feature_names)}); set input_channels={channels}"
        )
    if length != cfg.seq_len:
        raise TrainingError(
            f"the model takes windows of {cfg.seq_len} steps but the data's have {length}"
        )


def _train_identity(train: TrainConfig) -> dict[str, Any]:
    """Return the training settings a resume must match (all but a constant max_epochs).

    max_epochs may grow on resume, except where it sets the one-cycle schedule's length.
    """
    return {
        k: v
        for k, v in train.to_dict().items()
        if k != "max_epochs" or train.lr_schedule != "constant"
    }


def _identity(spec: RunSpec, train: TrainConfig, data: PreparedData) -> dict[str, Any]:
    """Return what must match for a checkpoint to be resumed (max_epochs may grow)."""
    return {
        "phase": spec.phase,
        "model": spec.config.model.to_dict(),
        "train": _train_identity(train),
        "data": data.fingerprint,
        "parent": None if spec.parent is None else spec.parent["weights_sha256"],
    }


def _with_defaults(saved: dict[str, Any]) -> dict[str, Any]:
    """Return a saved identity with settings added since it was written at their defaults.

    An older version's checkpoint then resumes a run whose new settings are at defaults.
    """
    return saved | {
        "model": ModelConfig.from_dict(saved["model"]).to_dict(),
        "train": _train_identity(TrainConfig.from_dict(saved["train"])),
    }


def _resume_path(
    ckpt_dir: Path, identity: dict[str, Any], resume: bool, notes: list[str]
) -> Path | None:
    """Return the checkpoint to resume from, after checking it belongs to this run."""
    last = ckpt_dir / "last.ckpt"
    if not resume:
        if getattr(rank_zero_only, "rank", 0) == 0:
            shutil.rmtree(ckpt_dir, ignore_errors=True)
        return None
    if not last.is_file():
        notes.append(f"resume: no checkpoint at {last}; started from scratch")
        return None
    try:
        saved = torch.load(last, map_location="cpu", weights_only=True)[CHECKPOINT_KEY]["identity"]
        saved = _with_defaults(saved)
    except Exception as exc:
        raise TrainingError(
            f"resume: cannot read checkpoint {last} ({exc}); delete it to start again"
        ) from None
    if saved != identity:
        changed = sorted(k for k in identity if saved.get(k) != identity[k])
        raise TrainingError(
            f"resume: checkpoint {last} belongs to another run (different {', '.join(changed)}); "
            "delete it or train without resume"
        )
    notes.append(f"resumed from {last}")
    return last


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence Lightning's hardware banner and hints that do not apply to this trainer."""
    logger = logging.getLogger("lightning.pytorch")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for pattern in _QUIET_WARNINGS:
                warnings.filterwarnings("ignore", message=pattern)
            yield
    finally:
        logger.setLevel(level)


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError | MemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )


def _scaled(part: PreparedData) -> np.ndarray:
    windows = part.scaled_windows()
    if not np.isfinite(windows).all():
        raise DataError(
            "windows contain NaN or infinite values; prepare the data again",
            column="windows",
        )
    return windows


def _trainer(
    accelerator: str,
    devices: int,
    num_nodes: int,
    precision: str,
    train: TrainConfig,
    callbacks: list[Callback],
    ckpt_dir: Path,
    progress: bool,
) -> pl.Trainer:
    strategy: str | DDPStrategy = "auto"
    if devices * num_nodes > 1:
        strategy = DDPStrategy(process_group_backend="gloo" if accelerator == "cpu" else None)
    return pl.Trainer(
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
        precision=precision,  # type: ignore[arg-type]
        max_epochs=train.max_epochs,
        logger=False,
        callbacks=callbacks,
        enable_progress_bar=progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=ckpt_dir,
        use_distributed_sampler=False,
    )


def _run_fit(
    trainer: pl.Trainer,
    module: AutoencoderModule,
    datamodule: WindowDataModule,
    ckpt_path: Path | None,
    train: TrainConfig,
    accelerator: str,
) -> None:
    """Run ``trainer.fit``, turning NaN loss, interruption and out-of-memory into TrainingError."""
    last = Path(trainer.default_root_dir) / "last.ckpt"
    kept = f"last good checkpoint kept at {last} (train again with resume to continue)"
    try:
        with torch.random.fork_rng(devices=[]):
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except NonFiniteLossError as exc:
        where = kept if last.is_file() else "no checkpoint yet (first epoch)"
        raise TrainingError(f"{exc}; {where}; try a lower learning rate") from None
    except SystemExit:
        if not trainer.interrupted:
            raise
        signal.signal(signal.SIGINT, signal.default_int_handler)
        raise TrainingError(
            f"training interrupted at epoch {trainer.current_epoch + 1}; {kept}"
        ) from None
    except BaseException as exc:
        if not _is_oom(exc):
            raise
        raise TrainingError(
            f"out of memory with batch size {train.batch_size} on {accelerator}: "
            f"lower the batch size (e.g. {max(1, train.batch_size // 2)})"
        ) from None
    finally:
        module.release_step()


def fit_autoencoder(
    model: Autoencoder, data: PreparedData, spec: RunSpec, options: TrainOptions
) -> TrainResult:
    """Train ``model`` on ``data``; on rank 0 it ends holding the best epoch's weights (on the CPU).

    Parameters
    ----------
    model : Autoencoder
        Initialised (pre-training) or parent (fine-tuning) model.
    data : PreparedData
        Windows with split codes; the scaler is fitted on split 0.
    spec : RunSpec
        Phase, configs, loss weighting and provenance.
    options : TrainOptions
        Checkpoint folder, hardware, resumption, display.

    Returns
    -------
    TrainResult
        Summary of the run.

    Raises
    ------
    TrainingError
        Incompatible data, NaN loss, out of memory, interrupted run, foreign checkpoint.
    DataError
        Non-finite windows.
    """
    started = time.perf_counter()
    notes: list[str] = []
    check_compatible(model, data)
    accelerator = resolve_accelerator(options.accelerator)
    devices, num_nodes = options.devices, options.num_nodes
    train, precision = _run_recipe(
        spec.config.train, accelerator, devices * num_nodes, options.fast, notes
    )
    datamodule, validation = _datamodule(data, train, spec.class_weights)
    identity = _identity(spec, train, data)
    ckpt_dir = Path(options.checkpoints)
    ckpt_path = _resume_path(ckpt_dir, identity, options.resume, notes)
    module = AutoencoderModule(model, train, data.feature_names, identity)
    checkpoint, latest, early = _callbacks(ckpt_dir, train)
    callbacks = [checkpoint, latest, early, *options.callbacks]
    with _quiet():
        trainer = _trainer(
            accelerator, devices, num_nodes, precision, train, callbacks, ckpt_dir, options.progress
        )
        _run_fit(trainer, module, datamodule, ckpt_path, train, accelerator)
    if datamodule.resident and accelerator != "cpu":
        notes.append(f"training windows were kept on the {accelerator} device")
    if trainer.is_global_zero:
        _keep_best(module, checkpoint.best_model_path, ckpt_dir)
    best = checkpoint.best_model_score
    return TrainResult(
        epochs=len(module.curve),
        best_val_loss=float("nan") if best is None else float(best),
        stopped_early=early.stopped_epoch > 0,
        curve=list(module.curve),
        seconds=time.perf_counter() - started,
        validation=validation,
        phase=spec.phase,
        config=spec.config.replace(train=train),
        run={
            "accelerator": accelerator,
            "devices": devices,
            "num_nodes": num_nodes,
            "precision": precision,
        },
        notes=tuple(notes),
        rank=trainer.global_rank,
    )


def _run_recipe(
    train: TrainConfig, accelerator: str, processes: int, fast: bool, notes: list[str]
) -> tuple[TrainConfig, str]:
    """Return the recipe as run here (``fast``, precision fallback; noted) and Lightning's precision."""
    if fast:
        train, note = fast_recipe(train, accelerator, processes)
        notes.append(note)
    check_step_options(train, accelerator, processes)
    precision, fallback = resolve_precision(train, accelerator)
    if fallback is not None:
        train = train.replace(precision="32")
        notes.append(fallback)
    return train, precision


def _datamodule(
    data: PreparedData, train: TrainConfig, class_weights: tuple[float, float] | None
) -> tuple[WindowDataModule, str]:
    """Return the training and validation windows (scaled, weighted) and which validate."""
    parts = train_val_parts(data, train.seed)
    if len(parts.train) == 0 or len(parts.val) == 0:
        raise TrainingError(
            f"need training and validation windows, got {len(parts.train)} and {len(parts.val)} ({parts.note})"
        )
    train_labels = parts.train.labels
    datamodule = WindowDataModule(
        _scaled(parts.train),
        _scaled(parts.val),
        loss_weights(train_labels, class_weights),
        sample_weights=balanced_sample_weights(train_labels) if train.weighted_sampling else None,
        batch_size=train.batch_size,
        seed=train.seed,
    )
    return datamodule, parts.note


def _callbacks(
    ckpt_dir: Path, train: TrainConfig
) -> tuple[ModelCheckpoint, ModelCheckpoint, EarlyStopping]:
    """Return the best and last checkpoints (every epoch) and early stopping on the validation loss."""
    checkpoint = ModelCheckpoint(
        dirpath=ckpt_dir,
        filename="best",
        monitor="val_loss",
        mode="min",
        save_top_k=1,
        save_on_train_epoch_end=False,
        enable_version_counter=False,
    )
    latest = ModelCheckpoint(  # every epoch: Lightning's save_last follows only improvements
        dirpath=ckpt_dir,
        filename="last",
        save_top_k=1,
        save_on_train_epoch_end=False,
        enable_version_counter=False,
    )
    early = EarlyStopping(
        monitor="val_loss",
        mode="min",
        patience=train.patience,
        min_delta=train.min_delta,
        check_on_train_epoch_end=False,
    )
    return checkpoint, latest, early


def _keep_best(module: AutoencoderModule, best: str, ckpt_dir: Path) -> None:
    """Load the best epoch's weights into the model (on the CPU); remove the checkpoints."""
    state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
    module.load_state_dict(state)
    module.model.cpu()
    shutil.rmtree(ckpt_dir, ignore_errors=True)
