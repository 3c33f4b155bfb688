"""Learning-rate schedule and gradient clipping in every step mode; resumable schedules."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch.optim.optimizer import register_optimizer_step_post_hook

from vitalsentry.bundle import ENCODER, load_bundle
from vitalsentry.config import ModelConfig, TrainConfig
from vitalsentry.data.prepared import PreparedData
from vitalsentry.errors import TrainingError
from vitalsentry.training import loop
from vitalsentry.training.loop import LargeBatchRecipe, fast_recipe
from vitalsentry.training.pretrain import pretrain

LR, CLIP = 4e-3, 0.05


@pytest.fixture
def steps() -> Iterator[list[tuple[float, float]]]:
    """(learning rate, gradient norm) of every optimizer step, whichever code path steps."""
    seen: list[tuple[float, float]] = []

    def hook(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        seen.append((optimizer.param_groups[0]["lr"], float(norm)))

    handle = register_optimizer_step_post_hook(hook)
    yield seen
    handle.remove()


@pytest.mark.parametrize("mode", ["automatic", "automatic_bf16", "batch_splits", "static_step"])
def test_onecycle_and_clipping_in_every_step_mode(
    prepared: PreparedData,
    tiny_model: ModelConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    steps: list[tuple[float, float]],
    mode: str,
) -> None:
    if mode == "static_step":  # the CUDA-graph step, run eagerly on the CPU
        monkeypatch.setattr(loop, "check_step_options", lambda *args: None)
    if mode == "automatic_bf16" and not loop.bf16_is_fast("cpu"):
        pytest.skip("bf16 autocast on the CPU needs AMX (else the run falls back to float32)")
    train = TrainConfig(
        batch_size=16,
        max_epochs=3,
        patience=10,
        lr=LR,
        lr_schedule="onecycle",
        grad_clip=CLIP,
        batch_splits=2 if mode == "batch_splits" else 1,
        cuda_graph=mode == "static_step",
        precision="bf16" if mode == "automatic_bf16" else "32",
    )
    pretrain(prepared, tiny_model, train, tmp_path / "b", progress=False)
    lrs, norms = zip(*steps, strict=True)
    assert len(lrs) == 9  # 48 training windows in batches of 16, 3 epochs
    assert lrs[0] == pytest.approx(LR / 25)
    assert max(lrs) == pytest.approx(LR, rel=0.05) and lrs.index(max(lrs)) in (2, 3)
    assert lrs[-1] < lrs[0] and all(b <= a for a, b in itertools.pairwise(lrs[3:]))
    assert max(norms) <= CLIP * (1 + 1e-4)
    saved = load_bundle(tmp_path / "b").config.train
    assert (saved.lr_schedule, saved.grad_clip) == ("onecycle", CLIP)


def test_without_clipping_the_gradients_exceed_the_clip(
    prepared: PreparedData,
    tiny_model: ModelConfig,
    tmp_path: Path,
    steps: list[tuple[float, float]],
) -> None:
    """The clipping assertion above can fail: unclipped gradients here are larger."""
    train = TrainConfig(batch_size=16, max_epochs=1, lr=LR)
    pretrain(prepared, tiny_model, train, tmp_path / "b", progress=False)
    assert max(norm for _, norm in steps) > CLIP
    assert {lr for lr, _ in steps} == {LR}


class CrashError(Exception):
    """Simulated crash."""


class CrashAt(Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            raise CrashError


def test_resume_continues_the_schedule_exactly(
    prepared: PreparedData, tiny_model: ModelConfig, tmp_path: Path
) -> None:
    train = TrainConfig(
        batch_size=16, max_epochs=4, patience=10, lr=LR, lr_schedule="onecycle", grad_clip=CLIP
    )
    straight = pretrain(prepared, tiny_model, train, tmp_path / "straight", progress=False)
    out = tmp_path / "resumed"
    with pytest.raises(CrashError):
        pretrain(prepared, tiny_model, train, out, progress=False, callbacks=[CrashAt(2)])
    resumed = pretrain(prepared, tiny_model, train, out, progress=False, resume=True)
    assert resumed.curve == straight.curve
    a, b = (load_bundle(p).read_tensors(ENCODER) for p in (tmp_path / "straight", out))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_another_length_of_a_one_cycle_run(
    prepared: PreparedData, tiny_model: ModelConfig, tmp_path: Path
) -> None:
    train = TrainConfig(batch_size=16, max_epochs=3, lr_schedule="onecycle")
    with pytest.raises(CrashError):
        pretrain(
            prepared, tiny_model, train, tmp_path / "b", progress=False, callbacks=[CrashAt(1)]
        )
    with pytest.raises(TrainingError, match="belongs to another run"):
        pretrain(
            prepared,
            tiny_model,
            train.replace(max_epochs=5),
            tmp_path / "b",
            progress=False,
            resume=True,
        )


def test_large_batch_recipe_scales_and_caps() -> None:
    base = TrainConfig(batch_size=32, lr=1e-3, max_epochs=100)
    linear = LargeBatchRecipe(batch_size=256, max_epochs=20).apply(base)
    assert (linear.batch_size, linear.lr, linear.max_epochs) == (256, pytest.approx(8e-3), 20)
    sqrt = LargeBatchRecipe(batch_size=128, lr_scaling="sqrt").apply(base)
    assert sqrt.lr == pytest.approx(2e-3) and sqrt.max_epochs == 100
    short = LargeBatchRecipe(max_epochs=20).apply(base.replace(max_epochs=5))
    assert short.max_epochs == 5
    recipe = LargeBatchRecipe(lr_schedule="onecycle", grad_clip=1.0)
    fast, note = fast_recipe(base, "cpu", 1, recipe)
    assert (fast.lr_schedule, fast.grad_clip) == ("onecycle", 1.0)
    assert "one-cycle" in note and "clipped at 1" in note
