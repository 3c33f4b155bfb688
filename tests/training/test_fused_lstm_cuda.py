"""The fused (one cuDNN call) LSTM path on CUDA against the per-layer path (CUDA only)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vitalsentry.config import ModelConfig
from vitalsentry.models.autoencoder import Autoencoder, set_lstm_path
from vitalsentry.models.inference import mc_dropout_encode
from vitalsentry.training.graphstep import WARMUP_STEPS, StaticStep
from vitalsentry.training.module import per_window_mse

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(autouse=True)
def exact_cudnn(monkeypatch: pytest.MonkeyPatch) -> None:
    """Deterministic float32 cuDNN kernels (no TF32), so that the paths compare closely."""
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)


def _pair(dropout: float) -> tuple[Autoencoder, Autoencoder]:
    torch.manual_seed(0)
    config = ModelConfig(seq_len=64, latent_dim=8, lstm_hidden=16, dropout=dropout)
    layers, fused = Autoencoder(config), Autoencoder(config)
    fused.load_state_dict(layers.state_dict())
    set_lstm_path(layers, "layers")
    set_lstm_path(fused, "auto")  # auto is fused on CUDA
    return layers.cuda(), fused.cuda()


def test_fused_equals_layers_on_cuda_in_eval_and_in_gradients() -> None:
    layers, fused = _pair(0.0)
    x = torch.randn(64, 4, 64, device="cuda")
    with torch.no_grad():
        torch.testing.assert_close(fused.eval()(x), layers.eval()(x), rtol=1e-5, atol=1e-6)
    for model in (layers, fused):
        per_window_mse(model.train()(x), x).mean().backward()  # type: ignore[no-untyped-call]
    for a, b in zip(layers.parameters(), fused.parameters(), strict=True):
        assert a.grad is not None and b.grad is not None
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-5, atol=1e-7)


def test_fused_cudnn_masks_follow_the_seed_and_advance_between_calls() -> None:
    _, fused = _pair(0.5)
    x = torch.randn(16, 4, 64, device="cuda")
    fused.train()
    torch.manual_seed(5)
    first, second = fused(x), fused(x)
    assert not torch.allclose(first, second)
    torch.manual_seed(5)  # re-seeds cuDNN's dropout state at its next use
    torch.testing.assert_close(fused(x), first)
    torch.testing.assert_close(fused(x), second)


def test_replays_of_the_fused_step_draw_new_masks() -> None:
    """In a captured step cuDNN's dropout state must advance per replay (not one fixed mask)."""
    _, model = _pair(0.5)
    model.train()

    def loss_fn(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return (per_window_mse(model(x), x) * w).sum() / w.sum()

    params = list(model.parameters())
    step = StaticStep(loss_fn, params, (16, 4, 64), torch.device("cuda"), capture=True)
    x, w = torch.randn(16, 4, 64, device="cuda"), torch.ones(16, device="cuda")
    for _ in range(WARMUP_STEPS + 1):
        model.zero_grad(set_to_none=True)
        step(x, w)
    assert step.graph is not None
    losses = [float(step(x, w)[0]) for _ in range(3)]
    assert len(set(losses)) == 3, losses


def test_mc_dropout_on_cuda_samples_the_fused_calls_dropout() -> None:
    _, fused = _pair(0.5)
    windows = np.random.default_rng(0).normal(size=(32, 4, 64)).astype(np.float32)
    draws = mc_dropout_encode(fused.eval(), windows, passes=4, seed=1)
    assert draws.std(axis=0).mean() > 0
    np.testing.assert_array_equal(draws, mc_dropout_encode(fused, windows, passes=4, seed=1))
