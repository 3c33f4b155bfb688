from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from vitalsentry.bundle import CURVE, ENCODER, load_bundle
from vitalsentry.config import ModelConfig, TrainConfig
from vitalsentry.data.prepared import PreparedData
from vitalsentry.errors import DataError, TrainingError
from vitalsentry.training import loop
from vitalsentry.training.loop import checkpoint_dir, resolve_accelerator
from vitalsentry.training.pretrain import pretrain


class CrashError(Exception):
    """Simulated crash."""


class CrashAt(Callback):
    """Raise ``error`` at the start of a (0-based) epoch."""

    def __init__(self, epoch: int, error: BaseException) -> None:
        self.epoch, self.error = epoch, error

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            raise self.error


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_bundle(path).read_tensors(ENCODER)


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_pretrain_writes_a_loadable_bundle(
    prepared: PreparedData, tiny_model: ModelConfig, quick_train: TrainConfig, tmp_path: Path
) -> None:
    out = tmp_path / "pre"
    result = pretrain(prepared, tiny_model, quick_train, out, progress=False)
    assert result.bundle == out and result.rank == 0
    assert result.epochs == 3 == len(result.curve)
    assert [row["epoch"] for row in result.curve] == [1, 2, 3]
    assert result.best_val_loss == min(row["val_loss"] for row in result.curve)
    assert not result.stopped_early
    assert "held-out patients" in result.validation
    assert not checkpoint_dir(out).exists()
    bundle = load_bundle(out)
    assert bundle.read_json(CURVE) == result.curve
    manifest = bundle.manifest
    assert manifest["data"]["fingerprint"] == prepared.fingerprint
    assert manifest["data"]["notes"] == ["synthetic test data"]
    assert manifest["training"]["phase"] == "pretrain"
    assert manifest["training"]["best_val_loss"] == result.best_val_loss
    assert manifest["parent"] is None
    assert bundle.config.model == tiny_model and bundle.config.train == quick_train
    assert bundle.feature_names == prepared.feature_names
    assert not (tmp_path / "lightning_logs").exists() and not Path("lightning_logs").exists()


def test_training_reduces_the_loss(
    prepared: PreparedData, tiny_model: ModelConfig, tmp_path: Path
) -> None:
    train = TrainConfig(batch_size=16, max_epochs=6, lr=5e-3)
    result = pretrain(
        prepared, tiny_model.replace(dropout=0.0), train, tmp_path / "b", progress=False
    )
    assert result.curve[-1]["train_loss"] < 0.9 * result.curve[0]["train_loss"]


def test_same_seed_same_weights_other_seed_other_weights(
    prepared: PreparedData, tiny_model: ModelConfig, tmp_path: Path
) -> None:
    train = TrainConfig(
        batch_size=16, max_epochs=2, time_warp=True, jitter=True, weighted_sampling=True
    )
    pretrain(prepared, tiny_model, train, tmp_path / "a", progress=False)
    pretrain(prepared, tiny_model, train, tmp_path / "b", progress=False)
    pretrain(prepared, tiny_model, train.replace(seed=1), tmp_path / "c", progress=False)
    assert _same(_weights(tmp_path / "a"), _weights(tmp_path / "b"))
    assert not _same(_weights(tmp_path / "a"), _weights(tmp_path / "c"))


@pytest.mark.parametrize("splits", [1, 2])
def test_resume_after_a_crash_gives_identical_weights(
    prepared: PreparedData, tiny_model: ModelConfig, tmp_path: Path, splits: int
) -> None:
    train = TrainConfig(
        batch_size=16, max_epochs=4, patience=10, jitter=True, time_warp=True, batch_splits=splits
    )
    straight = pretrain(prepared, tiny_model, train, tmp_path / "straight", progress=False)
    out = tmp_path / "resumed"
    with pytest.raises(CrashError):
        pretrain(
            prepared, tiny_model, train, out, progress=False, callbacks=[CrashAt(2, CrashError())]
        )
    assert (checkpoint_dir(out) / "last.ckpt").is_file() and not out.exists()
    resumed = pretrain(prepared, tiny_model, train, out, progress=False, resume=True)
    assert any("resumed from" in note for note in resumed.notes)
    assert resumed.curve == straight.curve
    assert _same(_weights(out), _weights(tmp_path / "straight"))
    assert not checkpoint_dir(out).exists()


def test_the_last_checkpoint_is_the_last_epoch_even_without_improvement(
    prepared: PreparedData, tiny_model: ModelConfig, tmp_path: Path
) -> None:
    out = tmp_path / "b"
    frozen = TrainConfig(batch_size=16, max_epochs=4, lr=1e-30)  # the same val loss every epoch
    with pytest.raises(CrashError):
        pretrain(
            prepared, tiny_model, frozen, out, progress=False, callbacks=[CrashAt(3, CrashError())]
        )
    last = torch.load(checkpoint_dir(out) / "last.ckpt", map_location="cpu", weights_only=False)
    assert [e["epoch"] for e in last["vitalsentry"]["curve"]] == [1, 2, 3]
    resumed = pretrain(prepared, tiny_model, frozen, out, progress=False, resume=True)
    assert [e["epoch"] for e in resumed.curve] == [1, 2, 3, 4]


def _crash_after_one_epoch(
    prepared: PreparedData, model: ModelConfig, train: TrainConfig, out: Path
) -> None:
    """Train until a crash after the first epoch (its checkpoint is left behind)."""
    with pytest.raises(CrashError):
        pretrain(prepared, model, train, out, progress=False, callbacks=[CrashAt(1, CrashError())])


def test_resume_refuses_a_checkpoint_of_another_run(
    prepared: PreparedData, tiny_model: ModelConfig, quick_train: TrainConfig, tmp_path: Path
) -> None:
    out = tmp_path / "b"
    _crash_after_one_epoch(prepared, tiny_model, quick_train, out)
    with pytest.raises(TrainingError, match=r"belongs to another run .*train"):
        pretrain(
            prepared, tiny_model, quick_train.replace(lr=0.01), out, progress=False, resume=True
        )


def test_resume_accepts_a_checkpoint_from_before_a_setting_existed(
    prepared: PreparedData, tiny_model: ModelConfig, quick_train: TrainConfig, tmp_path: Path
) -> None:
    """A checkpoint written before ``grad_clip`` existed resumes a run at its default."""
    out = tmp_path / "b"
    _crash_after_one_epoch(prepared, tiny_model, quick_train, out)
    path = checkpoint_dir(out) / "last.ckpt"
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    del checkpoint["vitalsentry"]["identity"]["train"]["grad_clip"]
    torch.save(checkpoint, path)
    resumed = pretrain(prepared, tiny_model, quick_train, out, progress=False, resume=True)
    assert any("resumed from" in note for note in resumed.notes)


def test_resume_without_a_checkpoint_starts_from_scratch(
    prepared: PreparedData, tiny_model: ModelConfig, quick_train: TrainConfig, tmp_path: Path
) -> None:
    result = pretrain(
        prepared,
        tiny_model,
        quick_train.replace(max_epochs=1),
        tmp_path / "b",
        progress=False,
        resume=True,
    )
    assert any("started from scratch" in note for note in result.notes)


def test_early_stopping_on_the_validation_loss(
    prepared: PreparedData, tiny_model: ModelConfig, tmp_path: Path
) -> None:
    train = TrainConfig(batch_size=16, max_epochs=20, patience=2, min_delta=10.0)
    result = pretrain(prepared, tiny_model, train, tmp_path / "b", progress=False)
    assert result.stopped_early and result.epochs == 3


@pytest.mark.parametrize("splits", [1, 2])
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(
    prepared: PreparedData,
    tiny_model: ModelConfig,
    tmp_path: Path,
    splits: int,
    request: pytest.FixtureRequest,
) -> None:
    out = tmp_path / "b"
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # a count the part threads (one each) must not leave behind
    request.addfinalizer(lambda: torch.set_num_threads(threads))
    train = TrainConfig(batch_size=16, max_epochs=10, lr=1e38, batch_splits=splits)
    with pytest.raises(
        TrainingError,
        match=r"(NaN|infinite) loss at epoch \d+ step \d+; (last good checkpoint kept at|no checkpoint)",
    ) as err:
        pretrain(prepared, tiny_model.replace(dropout=0.0), train, out, progress=False)
    assert "\n" not in str(err.value)
    assert not out.exists()
    assert_parts_stopped(2)


@pytest.fixture
def static_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let ``cuda_graph`` train on the CPU: its static step then runs eagerly (no capture)."""
    monkeypatch.setattr(loop, "check_step_options", lambda *args: None)


@pytest.mark.parametrize("cuda_graph", [False, True])
def test_nan_loss_after_a_good_epoch_keeps_its_checkpoint(
    prepared: PreparedData,
    tiny_model: ModelConfig,
    quick_train: TrainConfig,
    tmp_path: Path,
    cuda_graph: bool,
    request: pytest.FixtureRequest,
) -> None:
    class PoisonWeights(Callback):
        def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            if trainer.current_epoch == 1:
                with torch.no_grad():
                    next(pl_module.parameters()).fill_(float("nan"))

    if cuda_graph:  # the static step flags the loss and reports it at the end of the epoch
        request.getfixturevalue("static_on_cpu")
    out = tmp_path / "b"
    train = quick_train.replace(cuda_graph=cuda_graph)
    with pytest.raises(
        TrainingError,
        match=r"NaN loss at epoch 2 step 1; last good checkpoint kept at .*last\.ckpt",
    ):
        pretrain(prepared, tiny_model, train, out, progress=False, callbacks=[PoisonWeights()])
    state = torch.load(checkpoint_dir(out) / "last.ckpt", weights_only=True)["state_dict"]
    assert all(torch.isfinite(v).all() for v in state.values())


def test_out_of_memory_becomes_advice(
    prepared: PreparedData, tiny_model: ModelConfig, quick_train: TrainConfig, tmp_path: Path
) -> None:
    oom = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    with pytest.raises(
        TrainingError,
        match=r"out of memory with batch size 16 on cpu: lower the batch size \(e\.g\. 8\)",
    ):
        pretrain(
            prepared,
            tiny_model,
            quick_train,
            tmp_path / "b",
            progress=False,
            callbacks=[CrashAt(0, oom)],
        )


def test_keyboard_interrupt_becomes_a_resumable_training_error(
    prepared: PreparedData, tiny_model: ModelConfig, quick_train: TrainConfig, tmp_path: Path
) -> None:
    with pytest.raises(
        TrainingError, match="training interrupted at epoch 2; last good checkpoint kept"
    ):
        pretrain(
            prepared,
            tiny_model,
            quick_train,
            tmp_path / "b",
            progress=False,
            callbacks=[CrashAt(1, KeyboardInterrupt())],
        )


def test_channel_mismatch_is_refused(
    prepared: PreparedData, quick_train: TrainConfig, tmp_path: Path
) -> None:
    with pytest.raises(
        TrainingError,
        match=r"takes 6 input channels but the data has 4 \(heart_rate, spo2, hour_sin, hour_cos\)",
    ):
        pretrain(
            prepared,
            ModelConfig(input_channels=6, seq_len=64),
            quick_train,
            tmp_path / "b",
            progress=False,
        )
    with pytest.raises(TrainingError, match="windows of 256 steps but the data's have 64"):
        pretrain(prepared, ModelConfig(), quick_train, tmp_path / "b", progress=False)


def test_non_finite_windows_are_a_data_error(
    prepared: PreparedData, tiny_model: ModelConfig, quick_train: TrainConfig, tmp_path: Path
) -> None:
    windows = prepared.windows.copy()
    windows[0, 0, 5] = np.inf
    with pytest.raises(DataError, match="NaN or infinite"):
        pretrain(
            replace(prepared, windows=windows),
            tiny_model,
            quick_train,
            tmp_path / "b",
            progress=False,
        )


def test_bf16_without_fast_bf16_falls_back_to_float32_and_says_so(
    prepared: PreparedData, tiny_model: ModelConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loop, "bf16_is_fast", lambda accelerator: False)
    train = TrainConfig(batch_size=16, max_epochs=1, precision="bf16")
    result = pretrain(
        prepared, tiny_model, train, tmp_path / "b", progress=False, accelerator="cpu"
    )
    assert any("cpu has no fast bf16" in note and "float32" in note for note in result.notes)
    bundle = load_bundle(tmp_path / "b")
    assert bundle.manifest["training"]["precision"] == "32-true"
    assert bundle.manifest["training"]["notes"] == list(result.notes)
    assert bundle.config.train.precision == "32"


def test_bf16_autocast_where_it_is_fast(
    prepared: PreparedData, tiny_model: ModelConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loop, "bf16_is_fast", lambda accelerator: True)
    train = TrainConfig(batch_size=16, max_epochs=1, precision="bf16")
    result = pretrain(
        prepared, tiny_model, train, tmp_path / "b", progress=False, accelerator="cpu"
    )
    assert result.notes == ()
    assert np.isfinite(result.best_val_loss)
    assert load_bundle(tmp_path / "b").manifest["training"]["precision"] == "bf16-mixed"


@pytest.mark.parametrize("bf16", [False, True])
def test_fast_option_changes_batch_lr_and_precision_and_says_so(
    prepared: PreparedData,
    tiny_model: ModelConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    bf16: bool,
) -> None:
    monkeypatch.setattr(loop, "bf16_is_fast", lambda accelerator: bf16)
    result = pretrain(
        prepared, tiny_model, TrainConfig(max_epochs=1), tmp_path / "b", progress=False, fast=True
    )
    (note,) = result.notes
    assert "changes the recipe" in note and ("bf16 autocast" in note) == bf16
    bundle = load_bundle(tmp_path / "b")
    train = bundle.config.train
    recipe = loop.FAST_RECIPE
    assert recipe.lr_scaling == "linear"
    assert (train.batch_size, train.lr_schedule, train.grad_clip) == (
        recipe.batch_size,
        recipe.lr_schedule,
        recipe.grad_clip,
    )
    assert train.lr == pytest.approx(1e-3 * recipe.batch_size / 32)
    assert train.precision == ("bf16" if bf16 else "32")
    assert bundle.manifest["training"]["precision"] == ("bf16-mixed" if bf16 else "32-true")
    fast, _ = loop.fast_recipe(TrainConfig(batch_size=16, lr=1e-4), "cpu")
    assert fast.lr == pytest.approx(1e-4 * recipe.batch_size / 16)


@pytest.mark.parametrize(
    ("threads", "accelerator", "processes", "splits"),
    [
        (2, "cpu", 1, 2),
        (4, "cpu", 1, 4),
        (1, "cpu", 1, 1),
        (8, "cpu", 1, 1),
        (2, "cpu", 2, 1),
        (2, "cuda", 1, 1),
    ],
)
def test_fast_splits_cpu_batches_over_the_intra_op_threads(
    monkeypatch: pytest.MonkeyPatch, threads: int, accelerator: str, processes: int, splits: int
) -> None:
    monkeypatch.setattr(loop.torch, "get_num_threads", lambda: threads)
    fast, note = loop.fast_recipe(TrainConfig(), accelerator, processes)
    assert fast.batch_splits == splits
    assert (f"split over {splits} CPU threads" in note) == (splits > 1)


def test_static_step_trains_like_the_automatic_step(
    prepared: PreparedData,
    tiny_model: ModelConfig,
    tmp_path: Path,
    static_on_cpu: None,
    assert_same_training: Callable[..., None],
) -> None:
    model = tiny_model.replace(dropout=0.0)
    train = TrainConfig(batch_size=20, max_epochs=3, patience=10)  # 48 windows: last batch padded
    plain = pretrain(prepared, model, train, tmp_path / "a", progress=False)
    static = pretrain(
        prepared, model, train.replace(cuda_graph=True), tmp_path / "b", progress=False
    )
    assert_same_training(plain, static, rel=1e-5, rtol=1e-4, atol=1e-6)
    assert load_bundle(tmp_path / "b").config.train.cuda_graph


def test_static_step_stops_on_a_diverging_loss(
    prepared: PreparedData, tiny_model: ModelConfig, tmp_path: Path, static_on_cpu: None
) -> None:
    train = TrainConfig(batch_size=16, max_epochs=10, lr=1e38, cuda_graph=True)
    with pytest.raises(
        TrainingError,
        match=r"(NaN|infinite) loss at epoch \d+ step \d+; (last good checkpoint kept at|no checkpoint)",
    ):
        pretrain(prepared, tiny_model.replace(dropout=0.0), train, tmp_path / "b", progress=False)


@pytest.mark.parametrize(
    ("accelerator", "processes", "graph"),
    [("cuda", 1, True), ("cuda", 2, False), ("cpu", 1, False)],
)
def test_fast_replays_single_gpu_steps_as_a_cuda_graph(
    accelerator: str, processes: int, graph: bool
) -> None:
    fast, note = loop.fast_recipe(TrainConfig(), accelerator, processes)
    assert fast.cuda_graph == graph
    assert ("CUDA graph" in note) == graph


def test_cuda_graph_needs_cuda_and_one_process(
    prepared: PreparedData, tiny_model: ModelConfig, tmp_path: Path
) -> None:
    train = TrainConfig(batch_size=16, max_epochs=1, cuda_graph=True)
    with pytest.raises(TrainingError, match="cuda_graph needs accelerator cuda and one process"):
        pretrain(prepared, tiny_model, train, tmp_path / "b", accelerator="cpu", progress=False)


def test_batch_splits_need_the_cpu_and_one_process(
    prepared: PreparedData, tiny_model: ModelConfig, tmp_path: Path
) -> None:
    train = TrainConfig(batch_size=16, max_epochs=1, batch_splits=2)
    with pytest.raises(TrainingError, match="batch_splits 2 needs accelerator cpu and one process"):
        pretrain(prepared, tiny_model, train, tmp_path / "b", devices=2, progress=False)


def test_split_training_is_deterministic_and_restores_the_thread_count(
    prepared: PreparedData, tiny_model: ModelConfig, tmp_path: Path
) -> None:
    train = TrainConfig(batch_size=16, max_epochs=2, batch_splits=3)
    threads = torch.get_num_threads()
    first = pretrain(prepared, tiny_model, train, tmp_path / "a", progress=False)
    second = pretrain(prepared, tiny_model, train, tmp_path / "b", progress=False)
    assert first.curve == second.curve
    assert _same(_weights(tmp_path / "a"), _weights(tmp_path / "b"))
    assert_parts_stopped(threads)
    assert load_bundle(tmp_path / "a").config.train.batch_splits == 3


def assert_parts_stopped(threads: int) -> None:
    """No part thread is left, and a new thread starts with ``threads`` intra-op threads."""
    assert not [t for t in threading.enumerate() if t.name.startswith("vitalsentry-part")]
    seen: list[int] = []
    thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    assert seen == [threads] and torch.get_num_threads() == threads


def test_seventy_thirty_data_validates_on_carved_patients(
    make_data: Callable[..., PreparedData], tiny_model: ModelConfig, tmp_path: Path
) -> None:
    data = make_data(n_patients=12, split=(0.7, 0.3))
    result = pretrain(
        data, tiny_model, TrainConfig(batch_size=16, max_epochs=1), tmp_path / "b", progress=False
    )
    assert "no validation split in the data" in result.validation
    assert load_bundle(tmp_path / "b").manifest["training"]["validation"] == result.validation


def test_accelerator_resolution() -> None:
    assert resolve_accelerator("cpu") == "cpu"
    assert resolve_accelerator("auto") in ("cpu", "cuda", "mps")
    with pytest.raises(TrainingError, match="accelerator"):
        resolve_accelerator("tpu")


def test_fused_lstm_path_trains_as_the_layer_path(
    prepared: PreparedData,
    tiny_model: ModelConfig,
    tmp_path: Path,
    assert_same_training: Callable[..., None],
) -> None:
    """Without dropout the fused multi-layer call and the per-layer calls train alike."""
    model = tiny_model.replace(dropout=0.0)
    train = TrainConfig(batch_size=16, max_epochs=2, patience=10)
    layers = pretrain(prepared, model, train, tmp_path / "a", progress=False)
    fused = pretrain(
        prepared, model, train.replace(lstm_path="fused"), tmp_path / "b", progress=False
    )
    assert_same_training(layers, fused, rel=1e-5, rtol=1e-4, atol=1e-6)
    assert load_bundle(tmp_path / "b").config.train.lstm_path == "fused"


def test_fused_lstm_path_with_batch_splits_is_refused(
    prepared: PreparedData, tiny_model: ModelConfig, tmp_path: Path
) -> None:
    train = TrainConfig(max_epochs=1, batch_splits=2, lstm_path="fused")
    with pytest.raises(TrainingError, match="per-part dropout masks"):
        pretrain(prepared, tiny_model, train, tmp_path / "b", progress=False)
