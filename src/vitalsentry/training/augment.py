"""Training-batch augmentation: time warping and amplitude jitter.

Both work on whole (B, C, L) batches on the batch's device, draw from an explicit
``torch.Generator`` (so a run is reproducible under its seed) and are the identity at
strength / sigma 0. Time warping resamples every channel with the same warped time
index, so ``hour_sin`` / ``hour_cos`` stay consistent with the warped vitals; jitter only
touches vital channels, never time features.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F  # noqa: N812

from vitalsentry.errors import VitalSentryError

WARP_KNOTS = 4
"""Random speed values per window, linearly interpolated over its steps (smooth warps)."""


def _check_batch(x: Tensor) -> None:
    if x.ndim != 3 or x.shape[2] < 2:
        raise VitalSentryError(
            f"augmentation: expected a (B, C, L ≥ 2) batch, got {tuple(x.shape)}"
        )


def warp_positions(
    batch: int, length: int, strength: float, generator: torch.Generator, device: torch.device
) -> Tensor:
    """Draw monotone warped sampling positions.

    Each window gets a random playback speed ``1 + strength·u`` (``u`` uniform in
    [-1, 1] at :data:`WARP_KNOTS` knots, linear in between); positions are the cumulative
    speed rescaled to run exactly from 0 to ``length - 1``.

    Parameters
    ----------
    batch, length : int
        Number of windows B and steps L.
    strength : float
        Maximum relative speed change, in [0, 1).
    generator : torch.Generator
        Random source (on ``device``).
    device : torch.device
        Where to create the positions.

    Returns
    -------
    Tensor, shape (B, L), float32
        Non-decreasing positions in [0, L - 1]; exactly ``0, 1, …, L - 1`` at strength 0.
    """
    if not 0.0 <= strength < 1.0:
        raise VitalSentryError(f"warp_strength: must be in [0, 1), got {strength}")
    # Interpolate the deviation from speed 1 (exactly 0 at strength 0, so the identity is exact).
    deviation = strength * (
        2.0 * torch.rand(batch, 1, WARP_KNOTS, generator=generator, device=device) - 1.0
    )
    speed = 1.0 + F.interpolate(
        deviation, size=length - 1, mode="linear", align_corners=True
    ).squeeze(1)
    steps = torch.cumsum(speed, dim=1)
    positions = torch.cat([torch.zeros(batch, 1, device=device), steps], dim=1) * (length - 1)
    positions /= steps[:, -1:]  # tensor division: exact integers when every speed is 1
    positions[:, -1] = length - 1
    return positions


def time_warp(x: Tensor, strength: float, generator: torch.Generator) -> Tensor:
    """Resample each window along a random monotone time warp (linear interpolation).

    Parameters
    ----------
    x : Tensor, shape (B, C, L)
        Batch of windows; every channel of a window (time features included) is
        resampled at the same warped positions.
    strength : float
        Maximum relative speed change, in [0, 1); 0 returns ``x`` unchanged.
    generator : torch.Generator
        Random source on ``x.device``.

    Returns
    -------
    Tensor, shape (B, C, L)
        Warped batch; each value is a convex combination of two neighbouring steps, so
        no channel leaves its original [min, max] range.
    """
    _check_batch(x)
    batch, channels, length = x.shape
    positions = warp_positions(batch, length, strength, generator, x.device)
    lower = positions.floor().long().clamp(max=length - 2)
    frac = (positions - lower).unsqueeze(1).to(x.dtype)
    index = lower.unsqueeze(1).expand(-1, channels, -1)
    left = x.gather(2, index)
    right = x.gather(2, index + 1)
    return left * (1 - frac) + right * frac


def amplitude_jitter(
    x: Tensor, sigma: float, generator: torch.Generator, *, vital_mask: Tensor
) -> Tensor:
    """Add Gaussian noise of standard deviation ``sigma`` to the vital channels.

    Parameters
    ----------
    x : Tensor, shape (B, C, L)
        Batch of scaled windows (noise is in z-score units).
    sigma : float
        Noise standard deviation (≥ 0); 0 returns ``x`` unchanged.
    generator : torch.Generator
        Random source on ``x.device``.
    vital_mask : Tensor, shape (C,), bool
        True for vital channels; time features (False) are never touched.

    Returns
    -------
    Tensor, shape (B, C, L)
        Jittered batch.
    """
    _check_batch(x)
    if sigma < 0:
        raise VitalSentryError(f"jitter_sigma: must be ≥ 0, got {sigma}")
    if vital_mask.shape != (x.shape[1],):
        raise VitalSentryError(
            f"augmentation: vital_mask needs {x.shape[1]} entries, got {tuple(vital_mask.shape)}"
        )
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    scale = vital_mask.to(device=x.device, dtype=x.dtype) * sigma
    return x + noise * scale[None, :, None]
