"""Fine-tuning: the seed's phase 2 (adapt a pre-trained bundle to a small target dataset)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lightning.pytorch.callbacks import Callback

from vitalsentry.bundle import load_stages
from vitalsentry.config import TrainConfig
from vitalsentry.data.prepared import PreparedData
from vitalsentry.stages import FitInputs
from vitalsentry.training.loop import TrainOptions, TrainResult, checkpoint_dir
from vitalsentry.training.pretrain import save_trained


def finetune(
    parent_bundle: str | Path,
    data: PreparedData,
    train_config: TrainConfig | None,
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
    """Continue training a bundle's autoencoder on new data; write a new bundle.

    With the seed defaults (``TrainConfig.finetune()``: lr 1e-4, batch 16, 50 epochs) the
    conv layers of encoder and decoder are frozen (no gradient, kept in eval mode), the
    classes are sampled equally often and each window's loss is weighted by
    ``class_weights`` (normal 0.6 / abnormal 1.4; unknown labels count as normal). The new
    bundle records the parent's manifest sha256 and keeps its detector and fusion
    settings; the scaler is the new data's (fitted on its training split).

    Parameters
    ----------
    parent_bundle : path
        Pre-trained bundle (verified on load).
    data : PreparedData
        Target data; its feature names must be the parent's.
    train_config : TrainConfig, optional
        Settings; None means ``TrainConfig.finetune()``.
    out : path
        New bundle directory (atomically written); checkpoints live in ``<out>.ckpt``.
    accelerator, devices, num_nodes, resume, progress, fast, callbacks
        As for :func:`vitalsentry.training.pretrain.pretrain`.

    Returns
    -------
    TrainResult
        Bundle path, epochs, best validation loss, curve, timing and notes.

    Raises
    ------
    BundleError
        The parent bundle is invalid or expects other features or window length.
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
    train = TrainConfig.finetune() if train_config is None else train_config
    inputs = FitInputs(data, train=train, options=options)
    return save_trained(load_stages(parent_bundle).partial_fit(inputs), out)
