"""The static training step: padded batches, non-finite flags (eagerly, on the CPU).

The CUDA capture itself is checked by ``test_cuda_graph.py`` where a GPU is present.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from vitalsentry.config import ModelConfig
from vitalsentry.errors import TrainingError
from vitalsentry.models.autoencoder import Autoencoder
from vitalsentry.training.graphstep import StaticStep
from vitalsentry.training.module import per_window_mse


def _model() -> Autoencoder:
    torch.manual_seed(0)
    return Autoencoder(ModelConfig(seq_len=64, latent_dim=8, lstm_hidden=16, dropout=0.0))


def _loss_fn(model: Autoencoder) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    def loss(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return (per_window_mse(model(x), x) * w).sum() / w.sum()

    return loss


@pytest.mark.parametrize("n", [3, 8])
def test_a_padded_batch_gives_the_loss_and_gradient_of_the_batch(n: int) -> None:
    model = _model()
    x, w = torch.randn(n, 4, 64), torch.rand(n) + 0.5
    expected = (per_window_mse(model(x), x) * w).sum() / w.sum()
    expected.backward()  # type: ignore[no-untyped-call]
    reference = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    model.zero_grad(set_to_none=True)
    step = StaticStep(
        _loss_fn(model), list(model.parameters()), (8, 4, 64), torch.device("cpu"), capture=False
    )
    step.x.normal_()  # stale rows from an earlier batch must not count
    loss, found_inf = step(x, w)
    torch.testing.assert_close(loss, expected.detach())
    assert float(found_inf) == 0.0
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    for got, want in zip(grads, reference, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


def test_the_first_non_finite_step_is_recorded_until_reset() -> None:
    model = _model()
    step = StaticStep(
        _loss_fn(model), list(model.parameters()), (4, 4, 64), torch.device("cpu"), capture=False
    )
    x = torch.randn(4, 4, 64)
    step(x, torch.ones(4))
    model.zero_grad(set_to_none=True)
    loss, found_inf = step(x, torch.zeros(4))  # 0 / 0: NaN
    assert loss.isnan() and float(found_inf) == 1.0
    model.zero_grad(set_to_none=True)
    step(x, torch.full((4,), float("inf")))  # a later bad step does not overwrite the first
    assert int(step.steps) == 3 and int(step.first_bad) == 2 and step.bad_value.isnan()
    step.reset()
    assert int(step.steps) == 0 and int(step.first_bad) == 0


def test_a_batch_larger_than_the_buffers_is_refused() -> None:
    model = _model()
    step = StaticStep(
        _loss_fn(model), list(model.parameters()), (4, 4, 64), torch.device("cpu"), capture=False
    )
    with pytest.raises(TrainingError, match="batch of 5 windows exceeds the step's 4"):
        step(torch.randn(5, 4, 64), torch.ones(5))


def test_fused_adam_skips_the_update_flagged_by_found_inf() -> None:
    """The protocol the static step relies on (GradScaler's): found_inf 1 skips the step."""
    param = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.Adam([param], lr=0.1, fused=True)
    param.grad = torch.full((3,), float("nan"))
    optimizer.found_inf = torch.tensor(1.0)  # type: ignore[attr-defined]
    optimizer.step()
    assert torch.equal(param.detach(), torch.ones(3))
    param.grad = torch.ones(3)
    optimizer.found_inf = torch.tensor(0.0)  # type: ignore[attr-defined]
    optimizer.step()
    assert float(optimizer.state[param]["step"]) == 1.0 and (param < 1).all()
