"""Conv1d + LSTM autoencoder of the seed (pure ``nn.Module``s, no I/O).

Shape flow of the default configuration (the seed's "After" diagram)::

    (B, 4, 256) → Conv1d(4→16, k5 s2) → ReLU → Conv1d(16→32, k5 s2) → ReLU → (B, 32, 64)
    → permute (B, 64, 32) → LSTM(32→64, 2 layers, dropout 0.5) → last step (B, 64)
    → Linear(64→32) → latent (B, 32)

The decoder mirrors it: Linear(32→64) repeated over 64 steps → LSTM(64→32, 2 layers)
→ permute (B, 32, 64) → ConvTranspose1d(32→16) → ReLU → ConvTranspose1d(16→4) → (B, 4, 256).
``use_lstm=False`` is the seed's "Before" variant: the conv features are flattened into
one Linear layer (and mirrored). ``pooling="attention"`` replaces "last step" by learned
additive attention over the LSTM outputs, whose weights can be returned for plotting.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator
from typing import Literal, overload

import torch
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812

from vitalsentry.config import LstmPath, ModelConfig
from vitalsentry.errors import VitalSentryError

CONV_CHANNELS = (16, 32)
"""Output channels of the two strided convolutions."""
KERNEL, STRIDE, PADDING = 5, 2, 2
"""Each convolution halves the length exactly (for even lengths)."""
DOWNSAMPLE = STRIDE**2
"""The conv stack maps a length ``L`` to ``L / 4`` steps."""

_masks = threading.local()
"""This thread's generator of CPU dropout masks (``generator``; unset: torch's default)."""


def count_parameters(module: nn.Module, *, trainable_only: bool = False) -> int:
    """Return the number of parameters of ``module`` (optionally only those with grad)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


@contextlib.contextmanager
def dropout_generator(generator: torch.Generator) -> Iterator[None]:
    """Draw this thread's CPU dropout masks from ``generator`` inside the block.

    Threads that train parts of a batch at once each use their own seeded generator, so
    their masks do not depend on how the threads interleave.
    """
    previous = getattr(_masks, "generator", None)
    _masks.generator = generator
    try:
        yield
    finally:
        _masks.generator = previous


class Dropout(nn.Module):
    """Inverted dropout whose CPU mask comes from ``torch.rand``.

    Same distribution as :func:`torch.nn.functional.dropout`, but on CPU drawing the mask
    with ``torch.rand`` is faster than its ``bernoulli_`` (a visible share of a seed-model
    training step); other devices use the fused kernel. The mask is drawn from
    this thread's :func:`dropout_generator` when one is set, else torch's default.

    Parameters
    ----------
    p : float
        Probability of zeroing an element, in [0, 1).

    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        """Zero each element with probability ``p`` and rescale by 1 / (1 - p) (training only)."""
        if not self.training or self.p == 0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.p, training=True)
        generator = getattr(_masks, "generator", None)
        keep = (torch.rand(x.shape, generator=generator) >= self.p).to(x.dtype)  # fp32 draws
        return x * keep.mul_(1.0 / (1.0 - self.p))


class StackedLSTM(nn.Module):
    """Batch-first multi-layer LSTM with dropout between layers (as ``nn.LSTM(dropout=p)``).

    The parameters live in one single-layer ``nn.LSTM`` per layer (``layers.{i}.weight_ih_l0``
    …), whatever the path, so state dicts and bundles are the same for both paths:

    - ``layers``: one call per layer with :class:`Dropout` between them, whose CPU masks
      come from this thread's :func:`dropout_generator` (per-part masks of ``batch_splits``).
    - ``fused``: one multi-layer ``torch.lstm`` call over the same parameters, so that on CUDA
      cuDNN runs the stacked layers as one fused kernel sequence (dropout between layers is
      then cuDNN's own, re-seeded by ``torch.manual_seed``). Under bf16 autocast cuDNN packs
      the cast weights into one buffer per call anyway; in float32 it packs the separate
      parameters per call (a copy of a few tens of thousands of values).

    In eval mode, and in training with dropout 0, both paths compute the same function.
    Dropout between layers is on when ``self.dropout`` is in training mode (Monte Carlo
    dropout switches on only the dropout modules), in both paths.

    Parameters
    ----------
    input_size, hidden_size : int
        Feature sizes of the input and of every layer's output.
    config : ModelConfig
        ``lstm_layers`` and ``dropout``.

    Attributes
    ----------
    path : {"auto", "fused", "layers"}
        Which path ``forward`` takes (see :func:`set_lstm_path`).
    """

    def __init__(self, input_size: int, hidden_size: int, config: ModelConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.LSTM(input_size if i == 0 else hidden_size, hidden_size, batch_first=True)
            for i in range(config.lstm_layers)
        )
        self.dropout = Dropout(config.dropout)
        self.hidden_size = hidden_size
        self.path: LstmPath = "auto"

    def forward(self, x: Tensor) -> Tensor:
        """Run (B, T, input_size) through the layers; return the last layer's (B, T, hidden)."""
        if self.fused_on(x.device):
            return self._fused(x)
        for i, layer in enumerate(self.layers):
            if i:
                x = self.dropout(x)
            x, _ = layer(x)
        return x

    def fused_on(self, device: torch.device) -> bool:
        """Whether ``forward`` takes the fused path for inputs on ``device``."""
        return self.path == "fused" or (self.path == "auto" and device.type == "cuda")

    def _fused(self, x: Tensor) -> Tensor:
        """One multi-layer LSTM call over the per-layer parameters (cuDNN fuses it on CUDA)."""
        # each layer's weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, in order
        weights: list[Tensor] = [w for layer in self.layers for w in layer.parameters()]
        zeros = x.new_zeros(len(self.layers), x.shape[0], self.hidden_size)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_NOT_CONTIGUOUS)
            out, _, _ = torch.lstm(
                x,
                (zeros, zeros),
                weights,
                True,  # has_biases
                len(self.layers),
                self.dropout.p,
                self.dropout.training,  # MC dropout turns on only the Dropout modules
                False,  # bidirectional
                True,  # batch_first
            )
        return out


_NOT_CONTIGUOUS = "RNN module weights are not part of single contiguous chunk"
"""cuDNN's warning for separate parameters: expected here, the packing is per call by design."""


def set_lstm_path(model: nn.Module, path: LstmPath) -> None:
    """Choose the path of every :class:`StackedLSTM` in ``model`` (parameters unchanged)."""
    if path not in ("auto", "fused", "layers"):
        raise VitalSentryError(f"lstm path: auto, fused or layers, not {path!r}")
    for module in model.modules():
        if isinstance(module, StackedLSTM):
            module.path = path


def fused_dropout_on(model: nn.Module, device: torch.device) -> bool:
    """Whether training ``model`` on ``device`` draws dropout masks inside a fused LSTM call.

    On CUDA those masks come from cuDNN's dropout state, which ``torch.manual_seed``
    re-seeds at its next eager use, not inside a replayed CUDA graph.
    """
    return any(
        isinstance(m, StackedLSTM) and m.fused_on(device) and m.dropout.p > 0
        for m in model.modules()
    )


class AttentionPooling(nn.Module):
    """Additive attention over time: ``w = softmax(v·tanh(W h_t))``, output ``Σ w_t h_t``.

    Parameters
    ----------
    hidden : int
        Size of each step's feature vector.
    """

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.proj = nn.Linear(hidden, hidden)
        self.score = nn.Linear(hidden, 1, bias=False)

    def forward(self, steps: Tensor) -> tuple[Tensor, Tensor]:
        """Pool (B, T, H) step features into (B, H); also return the (B, T) weights."""
        weights = torch.softmax(self.score(torch.tanh(self.proj(steps))).squeeze(-1), dim=1)
        return torch.bmm(weights.unsqueeze(1), steps).squeeze(1), weights


class Encoder(nn.Module):
    """Windows (B, C, L) → latent (B, latent_dim).

    Parameters
    ----------
    config : ModelConfig
        Architecture; ``pooling="attention"`` needs ``use_lstm=True``.

    Attributes
    ----------
    conv : nn.Sequential
        The two strided convolutions with ReLUs (frozen when fine-tuning).
    lstm : StackedLSTM or None
        Recurrent layers (``use_lstm=True``).
    attention : AttentionPooling or None
        Present when ``pooling="attention"``.
    head : nn.Linear
        Last LSTM features (or flattened conv features) → latent.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.pooling == "attention" and not config.use_lstm:
            raise VitalSentryError(
                "pooling='attention' needs use_lstm=True (the flatten variant has no sequence to pool)"
            )
        self.config = config
        c1, c2 = CONV_CHANNELS
        self.conv = nn.Sequential(
            nn.Conv1d(config.input_channels, c1, KERNEL, STRIDE, PADDING),
            nn.ReLU(),
            nn.Conv1d(c1, c2, KERNEL, STRIDE, PADDING),
            nn.ReLU(),
        )
        self.lstm = StackedLSTM(c2, config.lstm_hidden, config) if config.use_lstm else None
        self.attention = (
            AttentionPooling(config.lstm_hidden) if config.pooling == "attention" else None
        )
        features = config.lstm_hidden if config.use_lstm else c2 * (config.seq_len // DOWNSAMPLE)
        self.head = nn.Linear(features, config.latent_dim)

    @overload
    def forward(self, x: Tensor, return_attention: Literal[False] = ...) -> Tensor: ...

    @overload
    def forward(self, x: Tensor, return_attention: Literal[True]) -> tuple[Tensor, Tensor]: ...

    def forward(self, x: Tensor, return_attention: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Encode windows.

        Parameters
        ----------
        x : Tensor, shape (B, C, L)
            Scaled windows.
        return_attention : bool
            Also return the attention weights (needs ``pooling="attention"``).

        Returns
        -------
        Tensor, shape (B, latent_dim)
            Latent vectors, and with ``return_attention`` the (B, L/4) weights.
        """
        features = self.conv(x)
        weights: Tensor | None = None
        if self.lstm is None:
            pooled = features.flatten(1)
        else:
            steps = self.lstm(features.transpose(1, 2))
            if self.attention is None:
                pooled = steps[:, -1]
            else:
                pooled, weights = self.attention(steps)
        z: Tensor = self.head(pooled)
        if not return_attention:
            return z
        if weights is None:
            raise VitalSentryError("attention weights need a model with pooling='attention'")
        return z, weights


class Decoder(nn.Module):
    """Latent (B, latent_dim) → reconstructed windows (B, C, L), mirroring :class:`Encoder`.

    Attributes
    ----------
    head : nn.Linear
        Latent → LSTM input (or flattened conv features).
    lstm : StackedLSTM or None
        Recurrent layers back to the conv width (``use_lstm=True``).
    conv : nn.Sequential
        Transposed convolutions back to ``C`` channels and ``L`` steps (frozen when
        fine-tuning).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.steps = config.seq_len // DOWNSAMPLE
        c1, c2 = CONV_CHANNELS
        width = config.lstm_hidden if config.use_lstm else c2 * self.steps
        self.head = nn.Linear(config.latent_dim, width)
        self.lstm = StackedLSTM(config.lstm_hidden, c2, config) if config.use_lstm else None
        self.conv = nn.Sequential(
            nn.ConvTranspose1d(c2, c1, KERNEL, STRIDE, PADDING, output_padding=1),
            nn.ReLU(),
            nn.ConvTranspose1d(
                c1, config.input_channels, KERNEL, STRIDE, PADDING, output_padding=1
            ),
        )

    def forward(self, z: Tensor) -> Tensor:
        """Decode latent vectors (B, latent_dim) into windows (B, C, L)."""
        h = self.head(z)
        if self.lstm is None:
            features = torch.relu(h).view(-1, CONV_CHANNELS[1], self.steps)
        else:
            steps = self.lstm(h.unsqueeze(1).expand(-1, self.steps, -1))
            features = steps.transpose(1, 2)
        out: Tensor = self.conv(features)
        return out


class Autoencoder(nn.Module):
    """Encoder + decoder; ``forward`` returns the reconstruction.

    Parameters
    ----------
    config : ModelConfig
        Architecture.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)

    def forward(self, x: Tensor) -> Tensor:
        """Reconstruct windows: (B, C, L) → (B, C, L)."""
        out: Tensor = self.decoder(self.encoder(x))
        return out

    def conv_modules(self) -> tuple[nn.Sequential, nn.Sequential]:
        """Return the encoder's and decoder's conv stacks (the layers fine-tuning freezes)."""
        return self.encoder.conv, self.decoder.conv
