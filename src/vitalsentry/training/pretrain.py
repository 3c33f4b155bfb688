"""Pre-training: the seed's phase 1 (reconstruction on the large vitals dataset).

The scaler and encoder stages (:mod:`vitalsentry.stages`) fitted and saved as a bundle.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from lightning.pytorch.callbacks import Callback

from vitalsentry.bundle import save_stages
from vitalsentry.config import ModelConfig, TrainConfig
from vitalsentry.data.prepared import PreparedData
from vitalsentry.errors import TrainingError
from vitalsentry.stages import EncoderStage, FitInputs, Stages
from vitalsentry.training.loop import TrainOptions, TrainResult, checkpoint_dir


def save_trained(stages: Stages, out: Path) -> TrainResult:
    """Write a freshly trained composition as a bundle at ``out`` (rank 0 only); return its run."""
    result = stages.get(EncoderStage).result
    if result is None:
        raise TrainingError("the encoder was not trained in this process")
    if result.rank != 0:
        return result
    save_stages(stages, out)
    return dataclasses.replace(result, bundle=out)


def pretrain(
    data: PreparedData,
    model_config: ModelConfig,
    train_config: TrainConfig,
    out: str | Path,
    *,
    accelerator: str = "auto",
    devices: int = 1,
    num_nodes: int = 1,
    resume: bool = False,
    progress: bool = True,
    fast: bool = False,
    callbacks: Sequence[Callback] = (),
) -> TrainResult:
    """Train a fresh autoencoder to reconstruct the training windows; write a bundle.

    The loss is the plain mean squared reconstruction error (``class_weights`` are a
    fine-tuning setting); ``weighted_sampling`` balances the classes if set. Validation
    uses held-out patients (split 1) or, for 70/30 data, a seeded share of the training
    patients (see :func:`vitalsentry.training.data.train_val_parts`).

    Parameters
    ----------
    data : PreparedData
        Prepared windows (unscaled) with splits and the training-split scaler.
    model_config : ModelConfig
        Architecture; ``input_channels`` and ``seq_len`` must match the data.
    train_config : TrainConfig
        Seed defaults: lr 1e-3, batch 32, ≤ 100 epochs, patience 10 / min_delta 0.001.
    out : path
        Bundle directory to write (atomically); checkpoints live in ``<out>.ckpt``.
    accelerator : str
        ``auto`` (CUDA, else MPS, else CPU), ``cpu``, ``cuda``, ``mps`` or ``gpu``.
    devices, num_nodes : int
        Passed to Lightning; more than one process in total trains with DDP.
    resume : bool
        Continue an interrupted run from ``<out>.ckpt/last.ckpt``.
    progress : bool
        Show the progress bar.
    fast : bool
        Batch 256 with the learning rate scaled by 256 / batch_size, and bf16 autocast
        where it is fast (CUDA, CPUs with AMX); a different recipe, recorded in the notes.
    callbacks : sequence of Callback
        Extra Lightning callbacks.

    Returns
    -------
    TrainResult
        Bundle path, epochs, best validation loss, curve, timing and notes.
    """
    out = Path(out)
    options = TrainOptions(
        checkpoint_dir(out),
        accelerator=accelerator,
        devices=devices,
        num_nodes=num_nodes,
        resume=resume,
        progress=progress,
        fast=fast,
        callbacks=tuple(callbacks),
    )
    inputs = FitInputs(data, model=model_config, train=train_config, options=options)
    return save_trained(Stages().fit(("scaler", "encoder"), inputs), out)
