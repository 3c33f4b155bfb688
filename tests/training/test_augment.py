from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vitalsentry.errors import VitalSentryError
from vitalsentry.training.augment import amplitude_jitter, time_warp, warp_positions

SETTINGS = settings(max_examples=40, deadline=None)


@st.composite
def batches(draw: st.DrawFn) -> torch.Tensor:
    b = draw(st.integers(1, 4))
    c = draw(st.integers(1, 5))
    length = draw(st.integers(2, 80))
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(st.floats(0.01, 100.0))
    return torch.randn(b, c, length, generator=torch.Generator().manual_seed(seed)) * scale


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@SETTINGS
@given(x=batches(), strength=st.floats(0.0, 0.9), seed=st.integers(0, 1000))
def test_time_warp_keeps_shape_and_each_channel_range(
    x: torch.Tensor, strength: float, seed: int
) -> None:
    out = time_warp(x, strength, _gen(seed))
    assert out.shape == x.shape
    tol = 1e-5 * x.abs().amax(dim=2) + 1e-6
    assert bool((out.amax(dim=2) <= x.amax(dim=2) + tol).all())
    assert bool((out.amin(dim=2) >= x.amin(dim=2) - tol).all())
    torch.testing.assert_close(out[..., 0], x[..., 0])
    torch.testing.assert_close(out[..., -1], x[..., -1])


@SETTINGS
@given(x=batches(), seed=st.integers(0, 1000))
def test_time_warp_is_identity_at_strength_zero(x: torch.Tensor, seed: int) -> None:
    assert torch.equal(time_warp(x, 0.0, _gen(seed)), x)


@SETTINGS
@given(
    b=st.integers(1, 4),
    length=st.integers(2, 300),
    strength=st.floats(0.0, 0.99),
    seed=st.integers(0, 1000),
)
def test_warp_positions_are_a_monotone_resampling(
    b: int, length: int, strength: float, seed: int
) -> None:
    pos = warp_positions(b, length, strength, _gen(seed), torch.device("cpu"))
    assert pos.shape == (b, length)
    assert bool((pos.diff(dim=1) > 0).all())
    torch.testing.assert_close(pos[:, 0], torch.zeros(b))
    torch.testing.assert_close(pos[:, -1], torch.full((b,), float(length - 1)))


def test_time_warp_moves_all_channels_with_the_same_index() -> None:
    ramp = torch.arange(64, dtype=torch.float32)
    x = torch.stack([ramp, 2 * ramp + 5, -ramp]).unsqueeze(0)
    out = time_warp(x, 0.5, _gen(7))
    assert not torch.equal(out, x)
    torch.testing.assert_close(out[0, 1], 2 * out[0, 0] + 5)
    torch.testing.assert_close(out[0, 2], -out[0, 0])


def test_time_warp_keeps_the_hour_encoding_on_the_unit_circle() -> None:
    t = torch.arange(256, dtype=torch.float32)
    angle = 2 * torch.pi * (36_000 + t) / 86_400
    x = torch.stack(
        [torch.randn(256, generator=_gen(1)), torch.sin(angle), torch.cos(angle)]
    ).unsqueeze(0)
    out = time_warp(x, 0.2, _gen(2))
    torch.testing.assert_close(out[0, 1] ** 2 + out[0, 2] ** 2, torch.ones(256), atol=1e-6, rtol=0)


@SETTINGS
@given(x=batches(), sigma=st.floats(0.0, 2.0), seed=st.integers(0, 1000), data=st.data())
def test_jitter_never_touches_time_channels(
    x: torch.Tensor, sigma: float, seed: int, data: st.DataObject
) -> None:
    mask = torch.tensor(
        data.draw(st.lists(st.booleans(), min_size=x.shape[1], max_size=x.shape[1]))
    )
    out = amplitude_jitter(x, sigma, _gen(seed), vital_mask=mask)
    assert out.shape == x.shape
    assert torch.equal(out[:, ~mask], x[:, ~mask])
    if sigma == 0:
        assert torch.equal(out, x)


def test_jitter_noise_has_the_requested_sigma() -> None:
    x = torch.zeros(64, 2, 256)
    out = amplitude_jitter(x, 0.03, _gen(0), vital_mask=torch.tensor([True, False]))
    assert abs(float(out[:, 0].std()) - 0.03) < 0.001
    assert bool((out[:, 1] == 0).all())


def test_augmentation_is_reproducible_under_a_seed() -> None:
    x = torch.randn(3, 4, 50, generator=_gen(5))
    assert torch.equal(time_warp(x, 0.2, _gen(9)), time_warp(x, 0.2, _gen(9)))
    assert not torch.equal(time_warp(x, 0.2, _gen(9)), time_warp(x, 0.2, _gen(10)))


def test_bad_settings_are_refused() -> None:
    x = torch.zeros(1, 2, 16)
    with pytest.raises(VitalSentryError, match="warp_strength"):
        time_warp(x, 1.0, _gen())
    with pytest.raises(VitalSentryError, match="jitter_sigma"):
        amplitude_jitter(x, -0.1, _gen(), vital_mask=torch.tensor([True, True]))
    with pytest.raises(VitalSentryError, match="vital_mask"):
        amplitude_jitter(x, 0.1, _gen(), vital_mask=torch.tensor([True]))
    with pytest.raises(VitalSentryError, match=r"\(B, C, L"):
        time_warp(torch.zeros(2, 16), 0.1, _gen())
