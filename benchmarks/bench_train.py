"""Training benchmark: the project's trainer against a plain PyTorch loop of the same model.

Measured in one run on the same machine, interleaved and reported as medians:

* training windows/s (train-phase time of an epoch, first epoch excluded as warm-up) of
  ``vitalsentry.training.pretrain`` against a plain loop (``DataLoader(TensorDataset)``,
  Adam, MSE) at batch 32 and 256, and of the ``fast`` option (``FAST_RECIPE``, bf16
  where fast, batches split over the CPU threads) against the plain loop's batch 32; on
  CUDA the project replays its steps as a CUDA graph (``cuda_graph``), and the run adds
  batch 4096 with bf16 autocast and the captured step alone (no Lightning) at batch 32;
* encoder inference windows/s of ``vitalsentry.models.inference.encode`` against a plain
  ``torch.no_grad`` loop at batch 32 and 256;
* without ``--quick``: time for the project trainer (seed recipe and ``fast``) to reach
  the plain seed recipe's best validation loss (within 2 %) on a vitals2024-scale
  simulated file (``--rows``, default 200,020), prepared with the seed settings.

Usage: ``python benchmarks/bench_train.py [--quick] [--no-target] [--out FILE] [--rows N] [--repeats R]``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, record
from vitalsentry.config import (
    DataConfig,
    LstmPath,
    ModelConfig,
    Precision,
    TrainConfig,
    WindowConfig,
)
from vitalsentry.data.prepared import PreparedData
from vitalsentry.data.scaler import ChannelScaler
from vitalsentry.models.autoencoder import Autoencoder
from vitalsentry.models.inference import encode
from vitalsentry.training.graphstep import StaticStep
from vitalsentry.training.loop import LargeBatchRecipe, fast_recipe, init_model
from vitalsentry.training.module import per_window_mse
from vitalsentry.training.pretrain import pretrain

SEED_MODEL = ModelConfig()
TARGET_MARGIN = 1.02


def synthetic_data(n_train: int, n_val: int, seed: int = 0) -> PreparedData:
    """Seed-shaped (N, 4, 256) windows: HR/SpO2 sines with noise and hour features."""
    rng = np.random.default_rng(seed)
    data, window = DataConfig(), WindowConfig()
    n, length = n_train + n_val, window.length
    t = np.arange(length)
    phase = rng.uniform(0, 2 * np.pi, (n, 1))
    hr = 75 + 8 * np.sin(2 * np.pi * t / 64 + phase) + rng.normal(0, 2, (n, length))
    spo2 = 97 + np.sin(2 * np.pi * t / 128 + phase) + rng.normal(0, 0.5, (n, length))
    hour = 2 * np.pi * (rng.uniform(0, 86400, (n, 1)) + t) / 86400
    windows = np.stack([hr, spo2, np.sin(hour), np.cos(hour)], axis=1).astype(np.float32)
    split = np.r_[np.zeros(n_train), np.ones(n_val)].astype(np.int8)
    patient = np.array([f"p{i % 50}" if s == 0 else f"v{i % 5}" for i, s in enumerate(split)])
    return PreparedData(
        windows=windows,
        labels=np.zeros(n, np.int8),
        split=split,
        patient=patient,
        start_s=np.arange(n) * 128.0,
        feature_names=data.feature_names,
        scaler=ChannelScaler(data.feature_names).fit(windows[:n_train]),
        data=data,
        window=window,
        source="synthetic",
        stream=False,
        notes=(),
        input_sha256="",
        static=pd.DataFrame(index=pd.Index([], name="patient_id")),
    )


class EpochLog(Callback):
    """Train-phase seconds of every epoch and (elapsed seconds, val loss) after each.

    ``budget_s``: stop the run at the first batch end or validation past this many seconds
    since the log was made (the validation Lightning runs on stopping is still logged).
    ``echo``: print each validation point to stderr as it comes (long runs).
    """

    def __init__(self, budget_s: float | None = None, echo: bool = False) -> None:
        self.train_s: list[float] = []
        self.val: list[tuple[float, float]] = []
        self.budget_s = budget_s
        self.echo = echo
        self.stopped_by_budget = False
        self._t0 = self._start = time.perf_counter()

    def elapsed(self) -> float:
        """Seconds since the log was made."""
        return time.perf_counter() - self._t0

    def _check_budget(self, trainer: Trainer) -> None:
        if self.budget_s is not None and self.elapsed() > self.budget_s:
            self.stopped_by_budget = trainer.should_stop = True

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Start the epoch clock."""
        self._start = time.perf_counter()

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Stop the clock: the epoch's training batches are done."""
        self.train_s.append(time.perf_counter() - self._start)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, *args: object
    ) -> None:
        """Stop the run once it is past its time budget."""
        self._check_budget(trainer)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Record the elapsed time and the validation loss; stop past the budget."""
        self.val.append((self.elapsed(), float(trainer.callback_metrics["val_loss"])))
        if self.echo:
            print(
                f"  epoch {len(self.val)}: {self.val[-1][0]:.0f} s, val {self.val[-1][1]:.5f}",
                file=sys.stderr,
                flush=True,
            )
        self._check_budget(trainer)


def project_train(
    data: PreparedData,
    batch: int,
    *,
    epochs: int,
    fast: bool = False,
    precision: Precision = "32",
    lstm_path: LstmPath = "auto",
) -> EpochLog:
    """Run the project's pre-training and return its epoch log."""
    log = EpochLog()
    train = TrainConfig(
        batch_size=batch,
        max_epochs=epochs,
        patience=epochs,
        precision=precision,
        cuda_graph=torch.cuda.is_available() and not fast,  # fast sets it itself
        lstm_path=lstm_path,
    )
    with tempfile.TemporaryDirectory() as tmp:
        pretrain(
            data, SEED_MODEL, train, Path(tmp) / "b", progress=False, fast=fast, callbacks=[log]
        )
    return log


class TorchLSTM(torch.nn.Module):
    """Stock ``nn.LSTM(num_layers, dropout)`` in place of the project's StackedLSTM."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        cfg = SEED_MODEL
        self.lstm = torch.nn.LSTM(
            input_size, hidden_size, cfg.lstm_layers, batch_first=True, dropout=cfg.dropout
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the last layer's outputs (B, T, hidden)."""
        out: torch.Tensor = self.lstm(x)[0]
        return out


def plain_model() -> Autoencoder:
    """Build the seed architecture written plainly (stock multi-layer LSTMs).

    It starts from the same initial weights as the project's trainer (seed 0), so both
    runs differ only in their loops.
    """
    project = init_model(SEED_MODEL, 0)
    model = Autoencoder(SEED_MODEL)
    model.encoder.lstm = TorchLSTM(32, SEED_MODEL.lstm_hidden)  # type: ignore[assignment]
    model.decoder.lstm = TorchLSTM(SEED_MODEL.lstm_hidden, 32)  # type: ignore[assignment]
    state = {}
    for key, value in project.state_dict().items():
        layer = re.fullmatch(r"(.+)\.lstm\.layers\.(\d+)\.(\w+)_l0", key)
        state[f"{layer[1]}.lstm.lstm.{layer[3]}_l{layer[2]}" if layer else key] = value
    model.load_state_dict(state)
    return model


def plain_train(
    train_x: torch.Tensor,
    batch: int,
    *,
    epochs: int,
    val_x: torch.Tensor | None = None,
    device: str = "cpu",
    bf16: bool = False,
    patience: int | None = None,
    resident: bool = False,
) -> tuple[list[float], list[tuple[float, float]]]:
    """Train with the plain seed-style loop; return train seconds per epoch and (elapsed, val loss).

    ``resident``: the windows live on ``device`` and batches are cut by a shuffled index
    (no DataLoader), the leanest plain loop.
    """
    torch.manual_seed(0)  # shuffling and dropout of the plain loop
    model = plain_model().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(train_x), batch_size=batch, shuffle=True)
    on_device = train_x.to(device) if resident else train_x

    def batches() -> Iterator[torch.Tensor]:
        if resident:
            index = torch.randperm(len(on_device), device=on_device.device)
            return (on_device[i] for i in torch.split(index, batch))
        return (x.to(device) for (x,) in loader)

    train_s, val = [], []
    best, wait, t0 = float("inf"), 0, time.perf_counter()
    for _ in range(epochs):
        model.train()
        start = time.perf_counter()
        for x in batches():
            opt.zero_grad()
            with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
                loss = torch.nn.functional.mse_loss(model(x).float(), x)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        train_s.append(time.perf_counter() - start)
        if val_x is None:
            continue
        model.eval()
        with torch.no_grad():
            errs = [
                torch.nn.functional.mse_loss(model(v.to(device)), v.to(device), reduction="sum")
                for v in torch.split(val_x, 512)
            ]
        loss_v = float(sum(errs)) / val_x.numel()
        val.append((time.perf_counter() - t0, loss_v))
        if loss_v < best - 0.001:
            best, wait = loss_v, 0
        else:
            wait += 1
            if patience is not None and wait >= patience:
                break
    return train_s, val


def graph_step_train(train_x: torch.Tensor, batch: int, *, epochs: int) -> list[float]:
    """Train with the captured static step and fused Adam alone (no Lightning), on CUDA.

    The ceiling of the project's ``cuda_graph`` trainer: what is left is Lightning's
    per-batch work. Returns train seconds per epoch.
    """
    device = torch.device("cuda")
    torch.manual_seed(0)
    model = init_model(SEED_MODEL, 0).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)

    def loss_fn(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return (per_window_mse(model(x), x) * w).sum() / w.sum()

    _, channels, length = train_x.shape
    step = StaticStep(
        loss_fn, list(model.parameters()), (batch, channels, length), device, capture=True
    )
    x = train_x.to(device)
    w = torch.ones(len(x), device=device)
    train_s = []
    for _ in range(epochs):
        torch.cuda.synchronize()
        start = time.perf_counter()
        for index in torch.split(torch.randperm(len(x), device=device), batch):
            _, found_inf = step(x[index], w[index])
            opt.found_inf = found_inf  # type: ignore[attr-defined]
            opt.step()
            if step.graph is None:
                opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        train_s.append(time.perf_counter() - start)
    return train_s


def plain_encode(model: Autoencoder, windows: torch.Tensor, batch: int) -> None:
    """Seed-style inference: DataLoader batches through the encoder under no_grad."""
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        for (x,) in DataLoader(TensorDataset(windows), batch_size=batch):
            model.encoder(x.to(device))
    if device.type == "cuda":
        torch.cuda.synchronize()


def steady_rate(n: int, epoch_seconds: list[float]) -> float:
    """Windows/s from the median epoch, skipping the first (warm-up)."""
    return n / statistics.median(epoch_seconds[1:] or epoch_seconds)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def train_throughput(quick: bool, repeats: int) -> list[dict[str, Any]]:
    """Training windows/s: project vs plain, interleaved over ``repeats`` rounds."""
    n_train, epochs = (1536, 3) if quick else (4096, 4)
    data = synthetic_data(n_train, 64)
    train_x = torch.from_numpy(data.split_part(0).scaled_windows())
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    cases: dict[str, Callable[[], float]] = {
        "plain32": lambda: steady_rate(
            n_train, plain_train(train_x, 32, epochs=epochs, device=device)[0]
        ),
        "project32": lambda: steady_rate(n_train, project_train(data, 32, epochs=epochs).train_s),
        "plain256": lambda: steady_rate(
            n_train, plain_train(train_x, 256, epochs=epochs, device=device)[0]
        ),
        "project256": lambda: steady_rate(n_train, project_train(data, 256, epochs=epochs).train_s),
        "fast": lambda: steady_rate(
            n_train, project_train(data, 32, epochs=epochs, fast=True).train_s
        ),
    }
    if cuda:
        cases["graph32"] = lambda: steady_rate(
            n_train, graph_step_train(train_x, 32, epochs=epochs)
        )
        big = synthetic_data(4 * 4096, 512)
        big_x = torch.from_numpy(big.split_part(0).scaled_windows())
        n_big = len(big_x)
        cases["plain4096bf16"] = lambda: steady_rate(
            n_big, plain_train(big_x, 4096, epochs=epochs, device=device, bf16=True)[0]
        )
        cases["plain4096bf16resident"] = lambda: steady_rate(
            n_big,
            plain_train(big_x, 4096, epochs=epochs, device=device, bf16=True, resident=True)[0],
        )
        cases["project4096bf16"] = lambda: steady_rate(
            n_big, project_train(big, 4096, epochs=epochs, precision="bf16").train_s
        )
        cases["project4096bf16layers"] = lambda: steady_rate(
            n_big,
            project_train(big, 4096, epochs=epochs, precision="bf16", lstm_path="layers").train_s,
        )
    rates: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(repeats):
        for key, fn in cases.items():
            rates[key].append(fn())
    med = {k: statistics.median(v) for k, v in rates.items()}
    settings = {
        "windows": n_train,
        "epochs": epochs,
        "repeats": repeats,
        "device": device,
        "model": "seed",
        "project_step": "cuda graph" if cuda else "eager",
    }
    # (record, project case, baseline, baseline case, extra settings)
    comparisons: list[tuple[str, str, str, str, dict[str, Any]]] = [
        ("train_batch32", "project32", "plain PyTorch loop, batch 32", "plain32", {}),
        ("train_batch256", "project256", "plain PyTorch loop, batch 256", "plain256", {}),
        (
            "train_fast",
            "fast",
            "plain PyTorch loop, batch 32",
            "plain32",
            {"fast": fast_recipe(TrainConfig(), device)[1]},
        ),
    ]
    if cuda:
        comparisons += [
            (
                "train_graph_step_only_batch32",
                "graph32",
                "plain PyTorch loop, batch 32",
                "plain32",
                {"note": "captured step + fused Adam, no Lightning"},
            ),
            (
                "train_batch4096_bf16",
                "project4096bf16",
                "plain loop, batch 4096, bf16 autocast",
                "plain4096bf16",
                {},
            ),
            (
                "train_batch4096_bf16_vs_resident_plain",
                "project4096bf16",
                "plain loop, batch 4096, bf16 autocast, windows resident on the GPU",
                "plain4096bf16resident",
                {},
            ),
            (
                "train_batch4096_bf16_fused_vs_layers",
                "project4096bf16",
                "project, batch 4096, bf16, lstm_path layers (one nn.LSTM call per layer)",
                "project4096bf16layers",
                {"note": "auto = one fused multi-layer cuDNN LSTM call on CUDA"},
            ),
        ]
    return [
        record(
            name,
            med[case],
            "windows/s",
            baseline=baseline,
            baseline_value=med[baseline_case],
            settings={**settings, **extra},
        )
        for name, case, baseline, baseline_case, extra in comparisons
    ]


def encode_throughput(quick: bool, repeats: int) -> list[dict[str, Any]]:
    """Measure encoder inference windows/s: ``encode`` vs plain no_grad loops."""
    n = 2048 if quick else 8192
    windows = synthetic_data(n, 1).split_part(0).scaled_windows()
    x = torch.from_numpy(windows)
    model, plain = init_model(SEED_MODEL, 0), plain_model()
    if torch.cuda.is_available():
        model, plain = model.cuda(), plain.cuda()
    encode(model, windows[:64])
    times: dict[str, list[float]] = {"project": [], "plain32": [], "plain256": []}
    for _ in range(repeats):
        times["project"].append(timed(lambda: encode(model, windows)))
        times["plain32"].append(timed(lambda: plain_encode(plain, x, 32)))
        times["plain256"].append(timed(lambda: plain_encode(plain, x, 256)))
    rate = {k: n / statistics.median(v) for k, v in times.items()}
    settings = {"windows": n, "repeats": repeats, "batch": "encode default (CPU 256, GPU 2048)"}
    return [
        record(
            "encode",
            rate["project"],
            "windows/s",
            baseline="plain no_grad loop, batch 32",
            baseline_value=rate["plain32"],
            settings=settings,
        ),
        record(
            "encode_vs_batch256",
            rate["project"],
            "windows/s",
            baseline="plain no_grad loop, batch 256",
            baseline_value=rate["plain256"],
            settings=settings,
        ),
    ]


def vitals2024_data(rows: int) -> PreparedData:
    """Simulate a vitals2024-schema file of ``rows`` rows and prepare it (seed settings)."""
    from vitalsentry.data.prepared import prepare
    from vitalsentry.data.simulate_kaggle import simulate_vitals2024
    from vitalsentry.data.sources import read_readings
    from vitalsentry.data.writers import write_table

    with tempfile.TemporaryDirectory() as tmp:
        path = write_table(simulate_vitals2024(rows, seed=0), Path(tmp) / "vitals2024.csv")
        return prepare(read_readings(path, "vitals2024"), DataConfig(), WindowConfig())


def time_to_target(rows: int, max_epochs: int) -> list[dict[str, Any]]:
    """Seconds for the project to reach the plain seed recipe's best val loss (+2 %)."""
    data = vitals2024_data(rows)
    train_x = torch.from_numpy(data.split_part(0).scaled_windows())
    val_x = torch.from_numpy(data.split_part(1).scaled_windows())
    cuda = torch.cuda.is_available()
    _, plain_val = plain_train(
        train_x,
        32,
        epochs=max_epochs,
        val_x=val_x,
        patience=10,
        device="cuda" if cuda else "cpu",
    )
    best_t, best = min(plain_val, key=lambda tv: tv[1])
    target = best * TARGET_MARGIN
    settings = {
        "rows": rows,
        "windows": len(data),
        "train_windows": len(train_x),
        "target_val_loss": target,
        "plain_best_val_loss": best,
        "plain_epochs": len(plain_val),
        "max_epochs": max_epochs,
    }
    out = []
    for name, fast in (("time_to_seed_best", False), ("time_to_seed_best_fast", True)):
        train = TrainConfig(max_epochs=max_epochs, cuda_graph=cuda and not fast)
        log = EpochLog()
        with tempfile.TemporaryDirectory() as tmp:
            pretrain(
                data, SEED_MODEL, train, Path(tmp) / "b", progress=False, fast=fast, callbacks=[log]
            )
        reached = [t for t, v in log.val if v <= target]
        # Not reached: the figure is the whole run's time and there is no ratio.
        value = reached[0] if reached else log.val[-1][0]
        rec = record(
            name,
            value,
            "s",
            baseline="plain seed loop: time to its best val loss",
            baseline_value=best_t,
            higher_is_better=False,
            settings={
                **settings,
                "fast": fast,
                "reached_target": bool(reached),
                "project_best_val_loss": min(v for _, v in log.val),
                "project_epochs": len(log.val),
            },
        )
        out.append(rec if reached else {**rec, "ratio": None})
    return out


RACE_EPOCHS = 20
"""Epoch cap of the large-batch candidates in the recipe race (the one-cycle horizon)."""

RACE_BUDGET = 0.5
"""A candidate still short of the target at this share of the seed's wall time is stopped."""

CANDIDATES: dict[str, LargeBatchRecipe] = {
    "onecycle_linear_clip": LargeBatchRecipe(
        lr_schedule="onecycle", grad_clip=1.0, max_epochs=RACE_EPOCHS
    ),
    "onecycle_sqrt_clip": LargeBatchRecipe(
        lr_scaling="sqrt", lr_schedule="onecycle", grad_clip=1.0, max_epochs=RACE_EPOCHS
    ),
    "constant_linear": LargeBatchRecipe(max_epochs=RACE_EPOCHS),  # the earlier --fast
    "onecycle_linear_warm10_clip": LargeBatchRecipe(
        lr_schedule="onecycle", warmup_fraction=0.1, grad_clip=1.0, max_epochs=RACE_EPOCHS
    ),
    # 200,020 rows: more optimizer steps per second than batch 256, a schedule that ends
    # inside the time budget (4 epochs ≈ 7,000 steps; 3 epochs ≈ 10,500)
    "onecycle_b128_sqrt_warm10_clip_4ep": LargeBatchRecipe(
        batch_size=128,
        lr_scaling="sqrt",
        lr_schedule="onecycle",
        warmup_fraction=0.1,
        grad_clip=1.0,
        max_epochs=4,
    ),
    "onecycle_b64_linear_warm10_clip_3ep": LargeBatchRecipe(
        batch_size=64, lr_schedule="onecycle", warmup_fraction=0.1, grad_clip=1.0, max_epochs=3
    ),
    # the second 200,020-row race (--seed-from the first): batch 64 left the plateau, 128 did
    # not, at the same time per epoch; schedules ending at about 60 % and 80 % of the budget
    **{
        f"onecycle_b64_linear_warm10_clip_{n}ep": LargeBatchRecipe(
            batch_size=64, lr_schedule="onecycle", warmup_fraction=0.1, grad_clip=1.0, max_epochs=n
        )
        for n in (18, 24)
    },
}
"""Large-batch recipes raced against the seed recipe (``--race``)."""


def _curve(data: PreparedData, train: TrainConfig, budget_s: float | None = None) -> EpochLog:
    """Train one run; its log holds (seconds since it started, val loss) after every epoch."""
    print(
        f"batch {train.batch_size} lr {train.lr:g} {train.lr_schedule} "
        f"(budget {'none' if budget_s is None else f'{budget_s:.0f} s'}):",
        file=sys.stderr,
        flush=True,
    )
    log = EpochLog(budget_s, echo=True)
    with tempfile.TemporaryDirectory() as tmp:
        pretrain(data, SEED_MODEL, train, Path(tmp) / "b", progress=False, callbacks=[log])
    t, v = min(log.val, key=lambda tv: tv[1])
    print(
        f"  {len(log.val)} epochs in {log.val[-1][0]:.0f} s, best val {v:.5f} at {t:.0f} s"
        f"{'; stopped by the time budget' if log.stopped_by_budget else ''}",
        file=sys.stderr,
        flush=True,
    )
    return log


def time_to(curve: list[tuple[float, float]], target: float) -> float | None:
    """Seconds of the first validation at or below ``target``, or None if none is."""
    return next((t for t, v in curve if v <= target), None)


def recipe_race(
    rows: int,
    names: list[str],
    out: Path | None,
    *,
    epochs: int | None = None,
    seed_curve: list[tuple[float, float]] | None = None,
) -> list[dict[str, Any]]:
    """Seed recipe vs large-batch candidates: time to the seed's best val loss (+2 %).

    One run each, in this order, in one process on the same prepared file; the ratio is
    the seed recipe's whole wall time over the candidate's time to the target (target
    ≥ 2, i.e. ≤ 0.5× the seed's time). Each record keeps its validation curve. The
    records so far are written to ``out`` after every run (long runs on a shared machine).
    A candidate is stopped once past ``RACE_BUDGET`` × the seed's wall time: reaching the
    target later cannot meet it.
    ``epochs`` overrides the candidates' epoch cap; ``seed_curve`` reuses the seed run of
    an earlier race on the same rows instead of training it again.
    """
    data = vitals2024_data(rows)
    accelerator = "cuda" if torch.cuda.is_available() else "cpu"
    seed_train = TrainConfig(cuda_graph=accelerator == "cuda")
    seed = seed_curve or _curve(data, seed_train).val
    seed_wall = seed[-1][0]
    budget_s = RACE_BUDGET * seed_wall
    best_t, best = min(seed, key=lambda tv: tv[1])
    target = best * TARGET_MARGIN
    common = {
        "rows": rows,
        "windows": len(data),
        "target_val_loss": target,
        "budget_s": budget_s,
        "torch_threads": torch.get_num_threads(),
    }
    records = [
        record(
            "recipe_seed_wall",
            seed_wall,
            "s",
            higher_is_better=False,
            settings={
                **common,
                "best_val_loss": best,
                "time_to_best_s": best_t,
                "epochs": len(seed),
                "curve": seed,
            },
        )
    ]
    if out is not None:
        out.write_text(json.dumps(records, indent=2) + "\n")
    for name in names:
        recipe = CANDIDATES[name]
        recipe = recipe if epochs is None else dataclasses.replace(recipe, max_epochs=epochs)
        name = name if epochs is None else f"{name}_{epochs}ep"
        train, note = fast_recipe(TrainConfig(), accelerator, 1, recipe)
        log = _curve(data, train, budget_s)
        curve = log.val
        reached = time_to(curve, target)
        met = reached is not None and reached <= budget_s
        rec = record(
            f"recipe_{name}_time_to_seed_best",
            curve[-1][0] if reached is None else reached,
            "s",
            baseline="seed recipe (batch 32, lr 1e-3, early stopping): whole wall time",
            baseline_value=seed_wall,
            higher_is_better=False,
            settings={
                **common,
                "recipe": note,
                "reached_target": reached is not None,
                "within_budget": met,
                "stopped_by_budget": log.stopped_by_budget,
                "best_val_loss": min(v for _, v in curve),
                "epochs": len(curve),
                "curve": curve,
            },
        )
        records.append(rec if reached is not None else {**rec, "ratio": None})
        if out is not None:
            out.write_text(json.dumps(records, indent=2) + "\n")
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, about a minute")
    parser.add_argument(
        "--no-target", action="store_true", help="skip the 200,020-row time-to-target runs"
    )
    parser.add_argument("--out", type=Path, default=None, help="write the JSON records here")
    parser.add_argument(
        "--rows", type=int, default=200_020, help="rows of the simulated vitals2024 file"
    )
    parser.add_argument(
        "--max-epochs", type=int, default=100, help="epoch cap of the time-to-target runs"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="interleaved rounds (default 3, quick 2)"
    )
    parser.add_argument(
        "--race",
        nargs="*",
        choices=sorted(CANDIDATES),
        default=None,
        help="only race the seed recipe against these large-batch recipes (all if none "
        "named) at --rows, reporting each validation curve",
    )
    parser.add_argument(
        "--race-epochs", type=int, default=None, help="epoch cap of the raced recipes"
    )
    parser.add_argument(
        "--seed-from", type=Path, default=None, help="reuse the seed run of this race JSON"
    )
    args = parser.parse_args()
    if args.race is not None:
        seed_curve = None
        if args.seed_from is not None:
            seed_curve = json.loads(args.seed_from.read_text())[0]["settings"]["curve"]
        names = args.race or list(CANDIDATES)
        race = recipe_race(
            args.rows, names, args.out, epochs=args.race_epochs, seed_curve=seed_curve
        )
        emit(race, args.out)
        return
    repeats = args.repeats or (2 if args.quick else 3)
    records = train_throughput(args.quick, repeats) + encode_throughput(args.quick, repeats)
    if not (args.quick or args.no_target):
        records += time_to_target(args.rows, args.max_epochs)
    emit(records, args.out)


if __name__ == "__main__":
    main()
