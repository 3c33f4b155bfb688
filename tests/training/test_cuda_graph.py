"""Training with the training step captured as a CUDA graph (runs only where CUDA is present)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from vitalsentry.bundle import ENCODER, load_bundle
from vitalsentry.config import LstmPath, ModelConfig, TrainConfig
from vitalsentry.data.prepared import PreparedData
from vitalsentry.errors import TrainingError
from vitalsentry.models.autoencoder import Autoencoder
from vitalsentry.training.finetune import finetune
from vitalsentry.training.graphstep import WARMUP_STEPS, StaticStep
from vitalsentry.training.loop import checkpoint_dir
from vitalsentry.training.module import per_window_mse
from vitalsentry.training.pretrain import pretrain

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(autouse=True)
def deterministic_cudnn(monkeypatch: pytest.MonkeyPatch) -> None:
    """Deterministic cuDNN kernels, so that two runs can be compared closely."""
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)


@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_a_replayed_step_gives_the_eager_loss_and_gradient(dropout: float) -> None:
    torch.manual_seed(0)
    model = Autoencoder(ModelConfig(seq_len=64, latent_dim=8, lstm_hidden=16, dropout=dropout))
    model = model.cuda().train()
    params = list(model.parameters())

    def loss_fn(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return (per_window_mse(model(x), x) * w).sum() / w.sum()

    step = StaticStep(loss_fn, params, (16, 4, 64), torch.device("cuda"), capture=True)
    x, w = torch.randn(16, 4, 64, device="cuda"), torch.rand(16, device="cuda") + 0.5
    for _ in range(WARMUP_STEPS + 1):  # eager warm-up steps, then the capture
        model.zero_grad(set_to_none=True)
        step(x, w)
    assert step.graph is not None
    x = torch.randn(16, 4, 64, device="cuda")
    torch.manual_seed(1)
    loss, found_inf = step(x, w)
    replayed = [p.grad.clone() for p in params if p.grad is not None]
    model.zero_grad(set_to_none=True)  # as Lightning does before each validation
    torch.manual_seed(1)
    expected = loss_fn(x, w)
    expected.backward()  # type: ignore[no-untyped-call]
    torch.testing.assert_close(loss, expected.detach(), rtol=1e-5, atol=1e-7)
    assert float(found_inf) == 0.0
    eager = [p.grad for p in params if p.grad is not None]
    assert len(eager) == len(replayed) == len(params)
    for got, want in zip(replayed, eager, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
    model.zero_grad(set_to_none=True)
    step(x, w)  # a replay puts its gradient tensors back
    assert all(p.grad is not None for p in params)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_bundle(path).read_tensors(ENCODER)


@pytest.mark.parametrize("lstm_path", ["layers", "fused"])
@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_graph_training_matches_eager_training(
    prepared: PreparedData,
    tiny_model: ModelConfig,
    tmp_path: Path,
    dropout: float,
    lstm_path: LstmPath,
    assert_same_training: Callable[..., None],
) -> None:
    """48 training windows in batches of 16: 3 eager warm-up steps, then 9 replays."""
    model = tiny_model.replace(dropout=dropout)
    train = TrainConfig(batch_size=16, max_epochs=4, patience=10, lstm_path=lstm_path)
    eager = pretrain(prepared, model, train, tmp_path / "a", accelerator="cuda", progress=False)
    graph = pretrain(
        prepared,
        model,
        train.replace(cuda_graph=True),
        tmp_path / "b",
        accelerator="cuda",
        progress=False,
    )
    assert_same_training(eager, graph, rel=1e-4, rtol=1e-4, atol=1e-5)


def test_graph_training_in_bf16_with_a_padded_last_batch(
    prepared: PreparedData, tiny_model: ModelConfig, tmp_path: Path
) -> None:
    train = TrainConfig(batch_size=20, max_epochs=4, patience=10, precision="bf16", cuda_graph=True)
    result = pretrain(
        prepared, tiny_model, train, tmp_path / "b", accelerator="cuda", progress=False
    )
    losses = [e["train_loss"] for e in result.curve]
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
    assert load_bundle(tmp_path / "b").manifest["training"]["precision"] == "bf16-mixed"


class CrashError(Exception):
    """Simulated crash."""


class CrashAt(Callback):
    """Raise :class:`CrashError` at the start of a (0-based) epoch."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            raise CrashError


@pytest.mark.parametrize("graph", [True, False])
@pytest.mark.parametrize("lstm_path", ["layers", "fused"])
def test_resume_after_a_crash_gives_identical_weights(
    prepared: PreparedData,
    tiny_model: ModelConfig,
    tmp_path: Path,
    lstm_path: LstmPath,
    graph: bool,
) -> None:
    """Dropout 0.5: the fused path's cuDNN masks must be re-seeded each epoch too."""
    train = TrainConfig(
        batch_size=16, max_epochs=4, patience=10, cuda_graph=graph, lstm_path=lstm_path
    )
    pretrain(prepared, tiny_model, train, tmp_path / "straight", accelerator="cuda", progress=False)
    out = tmp_path / "resumed"
    with pytest.raises(CrashError):
        pretrain(
            prepared,
            tiny_model,
            train,
            out,
            accelerator="cuda",
            progress=False,
            callbacks=[CrashAt(2)],
        )
    assert (checkpoint_dir(out) / "last.ckpt").is_file()
    pretrain(prepared, tiny_model, train, out, accelerator="cuda", progress=False, resume=True)
    a, b = _weights(tmp_path / "straight"), _weights(out)
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6)


def test_graph_training_stops_on_a_diverging_loss(
    prepared: PreparedData, tiny_model: ModelConfig, tmp_path: Path
) -> None:
    train = TrainConfig(batch_size=16, max_epochs=10, lr=1e38, cuda_graph=True)
    with pytest.raises(TrainingError, match=r"(NaN|infinite) loss at epoch \d+ step \d+"):
        pretrain(
            prepared,
            tiny_model.replace(dropout=0.0),
            train,
            tmp_path / "b",
            accelerator="cuda",
            progress=False,
        )


def test_fast_on_one_gpu_replays_the_step_as_a_graph(
    prepared: PreparedData, tiny_model: ModelConfig, tmp_path: Path
) -> None:
    train = TrainConfig(max_epochs=2)
    result = pretrain(
        prepared, tiny_model, train, tmp_path / "b", accelerator="cuda", progress=False, fast=True
    )
    assert any("CUDA graph" in note for note in result.notes)
    assert load_bundle(tmp_path / "b").config.train.cuda_graph


def test_graph_finetune_keeps_the_conv_layers_and_matches_eager(
    prepared: PreparedData, make_data: Callable[..., PreparedData], tmp_path: Path
) -> None:
    """Frozen conv stacks (no gradient), class-weighted losses, weighted sampling.

    No dropout: the last, padded batch of an epoch draws other masks than an eager one.
    """
    config = ModelConfig(input_channels=4, seq_len=64, latent_dim=8, lstm_hidden=16, dropout=0.0)
    parent = tmp_path / "pre"
    pretrain(prepared, config, TrainConfig(batch_size=16, max_epochs=1), parent, progress=False)
    target = make_data(n_patients=8, per_patient=6, split=(0.7, 0.3), seed=1)
    train = TrainConfig.finetune().replace(max_epochs=4, lr=1e-2)
    for name, graph in (("eager", False), ("graph", True)):
        finetune(
            parent,
            target,
            train.replace(cuda_graph=graph),
            tmp_path / name,
            accelerator="cuda",
            progress=False,
        )
    before = load_bundle(parent).autoencoder()
    eager, graph = (load_bundle(tmp_path / n).autoencoder() for n in ("eager", "graph"))
    for old, new in zip(before.conv_modules(), graph.conv_modules(), strict=True):
        for a, b in zip(old.parameters(), new.parameters(), strict=True):
            assert torch.equal(a, b)
    for a, b in zip(eager.parameters(), graph.parameters(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
