"""Batched inference with a trained autoencoder: embeddings, reconstruction error, MC dropout.

Every function takes SCALED windows (N, C, L) (``ChannelScaler.transform`` output), runs
the model in eval mode under ``torch.inference_mode`` in batches (no per-window Python),
restores the model's train/eval mode afterwards, and returns float32 numpy arrays.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from vitalsentry.errors import DataError, VitalSentryError
from vitalsentry.models.autoencoder import DOWNSAMPLE, Autoencoder, Dropout

CPU_BATCH, ACCELERATOR_BATCH = 256, 2048
"""Default windows per forward pass: on CPU the LSTM runs fastest at a few hundred windows
(``benchmarks/bench_train.py``'s encode records); accelerators want large batches."""


def _check_windows(model: Autoencoder, windows: NDArray[np.floating]) -> None:
    """Refuse windows whose shape does not fit the model or that hold NaN/inf."""
    cfg = model.config
    expected = (cfg.input_channels, cfg.seq_len)
    if windows.ndim != 3 or tuple(windows.shape[1:]) != expected:
        raise DataError(
            f"expected windows of shape (N, {expected[0]}, {expected[1]}), got {tuple(windows.shape)}",
            column="windows",
        )
    if not np.isfinite(windows).all():
        raise DataError("windows contain NaN or infinite values", column="windows")


def _device_of(model: nn.Module, device: str | torch.device | None) -> torch.device:
    """Return the requested device, or the one the model's parameters live on."""
    if device is not None:
        return torch.device(device)
    return next(model.parameters()).device


def _batched(
    model: Autoencoder,
    windows: NDArray[np.floating],
    fn: Callable[[Tensor], Tensor],
    *,
    batch_size: int | None,
    device: str | torch.device | None,
    dropout: bool = False,
) -> NDArray[np.float32]:
    """Apply ``fn`` to batches of ``windows`` in eval mode and concatenate the results.

    ``dropout=True`` switches only the dropout layers (between LSTM layers) back to
    sampling, for Monte Carlo dropout. A model on another device is moved there for the call
    and back after.
    """
    _check_windows(model, windows)
    target = _device_of(model, device)
    if batch_size is None:
        batch_size = CPU_BATCH if target.type == "cpu" else ACCELERATOR_BATCH
    if batch_size < 1:
        raise VitalSentryError(f"batch_size: must be ≥ 1, got {batch_size}")
    home = _device_of(model, None)
    was_training = model.training
    mixed = dropout or any(m.training for m in model.modules())
    if home != target:
        model.to(target)
    if mixed:  # a model wholly in eval mode is left as it is (cheaper small calls)
        model.eval()
    if dropout:
        for module in model.modules():
            if isinstance(module, nn.Dropout | Dropout):
                module.train()
    x = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32))
    try:
        with torch.inference_mode():
            parts = [
                fn(x[i : i + batch_size].to(target)).float().cpu()
                for i in range(0, len(x), batch_size)
            ]
    finally:
        if home != target:
            model.to(home)
        if mixed:
            model.train(was_training)
    if not parts:
        return np.empty((0,), np.float32)
    return torch.cat(parts).numpy()


def encode(
    model: Autoencoder,
    windows: NDArray[np.floating],
    *,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
) -> NDArray[np.float32]:
    """Embed windows with the encoder.

    Parameters
    ----------
    model : Autoencoder
        Trained model.
    windows : numpy.ndarray, shape (N, C, L)
        Scaled windows.
    batch_size : int, optional
        Windows per forward pass (default 256 on CPU, 2048 on an accelerator).
    device : str or torch.device, optional
        Where to run (default: where the model is).

    Returns
    -------
    numpy.ndarray, shape (N, latent_dim), float32
        Embeddings.
    """
    out = _batched(model, windows, model.encoder, batch_size=batch_size, device=device)
    return out.reshape(len(windows), model.config.latent_dim)


def reconstruction_error(
    model: Autoencoder,
    windows: NDArray[np.floating],
    *,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
) -> NDArray[np.float32]:
    """Mean squared reconstruction error per window and channel.

    Parameters
    ----------
    model : Autoencoder
        Trained model.
    windows : numpy.ndarray, shape (N, C, L)
        Scaled windows.
    batch_size : int, optional
        Windows per forward pass (default 256 on CPU, 2048 on an accelerator).
    device : str or torch.device, optional
        Where to run (default: where the model is).

    Returns
    -------
    numpy.ndarray, shape (N, C), float32
        Mean over the ``L`` steps of the squared difference, per channel.
    """
    return encode_with_error(model, windows, batch_size=batch_size, device=device)[1]


def encode_with_error(
    model: Autoencoder,
    windows: NDArray[np.floating],
    *,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Embeddings and per-channel reconstruction error from one encoder pass.

    Same embeddings as :func:`encode`; the decoder reconstructs from the embedding it
    already has, so the encoder runs once (:func:`reconstruction_error` is this function's
    second output).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        (N, latent_dim) embeddings and (N, C) mean squared error per channel, float32.
    """
    latent = model.config.latent_dim

    def both(x: Tensor) -> Tensor:
        z = model.encoder(x)
        return torch.cat([z, (model.decoder(z) - x).square().mean(dim=2)], dim=1)

    out = _batched(model, windows, both, batch_size=batch_size, device=device)
    out = out.reshape(len(windows), latent + model.config.input_channels)
    return out[:, :latent], out[:, latent:]


def encode_with_step_error(
    model: Autoencoder,
    windows: NDArray[np.floating],
    *,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
    """:func:`encode_with_error` and the squared error of every step, from one encoder pass.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray, numpy.ndarray)
        (N, latent_dim) embeddings, (N, C) mean squared error per channel (as
        :func:`encode_with_error`) and (N, C, L) squared error per channel and step, float32.
    """
    cfg = model.config

    def all_three(x: Tensor) -> Tensor:
        z = model.encoder(x)
        step = (model.decoder(z) - x).square()
        return torch.cat([z, step.mean(dim=2), step.flatten(1)], dim=1)

    out = _batched(model, windows, all_three, batch_size=batch_size, device=device)
    out = out.reshape(len(windows), cfg.latent_dim + cfg.input_channels * (1 + cfg.seq_len))
    head = cfg.latent_dim + cfg.input_channels
    step = out[:, head:].reshape(len(windows), cfg.input_channels, cfg.seq_len)
    return out[:, : cfg.latent_dim], out[:, cfg.latent_dim : head], step


def mc_dropout_encode(
    model: Autoencoder,
    windows: NDArray[np.floating],
    passes: int,
    seed: int,
    *,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
) -> NDArray[np.float32]:
    """Embed windows ``passes`` times with dropout sampling (Monte Carlo dropout).

    Only dropout is switched on (the inter-layer dropout of the encoder LSTM); everything
    else stays in eval mode. The draws are reproducible under ``seed`` and leave the global
    random state untouched.

    Parameters
    ----------
    model : Autoencoder
        Trained model; needs ``dropout > 0`` and ``use_lstm`` with ``lstm_layers ≥ 2``.
    windows : numpy.ndarray, shape (N, C, L)
        Scaled windows.
    passes : int
        Number of stochastic passes P (≥ 1).
    seed : int
        Seed of the dropout masks.
    batch_size : int, optional
        Windows per forward pass (default 256 on CPU, 2048 on an accelerator).
    device : str or torch.device, optional
        Where to run (default: where the model is).

    Returns
    -------
    numpy.ndarray, shape (P, N, latent_dim), float32
        One embedding per pass and window.

    Raises
    ------
    VitalSentryError
        ``passes < 1`` or the model has no dropout to sample.
    """
    cfg = model.config
    if passes < 1:
        raise VitalSentryError(f"passes: must be ≥ 1, got {passes}")
    if not (cfg.use_lstm and cfg.lstm_layers > 1 and cfg.dropout > 0):
        raise VitalSentryError(
            "MC dropout needs dropout in the encoder: use_lstm with lstm_layers ≥ 2 and dropout > 0"
        )
    target = _device_of(model, device)
    with torch.random.fork_rng(devices=[target] if target.type == "cuda" else []):
        torch.manual_seed(seed)
        draws = [
            _batched(
                model, windows, model.encoder, batch_size=batch_size, device=target, dropout=True
            )
            for _ in range(passes)
        ]
    return np.stack(draws).reshape(passes, len(windows), cfg.latent_dim)


def attention_weights(
    model: Autoencoder,
    windows: NDArray[np.floating],
    *,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
) -> NDArray[np.float32]:
    """Attention weights of the encoder over its L/4 LSTM steps.

    Parameters
    ----------
    model : Autoencoder
        Trained model with ``pooling="attention"``.
    windows : numpy.ndarray, shape (N, C, L)
        Scaled windows.
    batch_size : int, optional
        Windows per forward pass (default 256 on CPU, 2048 on an accelerator).
    device : str or torch.device, optional
        Where to run (default: where the model is).

    Returns
    -------
    numpy.ndarray, shape (N, L / 4), float32
        Non-negative weights summing to 1 per window; step ``t`` covers input steps
        ``4t … 4t + 3`` (plus the conv kernels' reach).

    Raises
    ------
    VitalSentryError
        The model pools by last step, not attention.
    """
    if model.config.pooling != "attention":
        raise VitalSentryError("attention weights need a model with pooling='attention'")

    def weights(x: Tensor) -> Tensor:
        out: tuple[Tensor, Tensor] = model.encoder(x, return_attention=True)
        return out[1]

    out = _batched(model, windows, weights, batch_size=batch_size, device=device)
    return out.reshape(len(windows), model.config.seq_len // DOWNSAMPLE)
