"""Shared helpers of the benchmark scripts (DESIGN.md §10): records, medians, machine name."""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vitalsentry.data.prepared import PreparedData
    from vitalsentry.pipeline import WindowScores


def machine() -> str:
    """Describe this machine in one line (CPU model, cores, and GPU when present)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(
                line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass
    text = f"{cpu}, {os.cpu_count()} cores"
    try:
        import torch

        if torch.cuda.is_available():
            text += f", {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return text


def median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def record(
    name: str,
    value: float,
    unit: str,
    *,
    baseline: str | None = None,
    baseline_value: float | None = None,
    higher_is_better: bool = True,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build one result record; ``ratio`` is > 1 when the figure beats its baseline."""
    ratio = None
    if baseline_value is not None and value > 0 and baseline_value > 0:
        ratio = value / baseline_value if higher_is_better else baseline_value / value
    return {
        "name": name,
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "baseline_value": baseline_value,
        "ratio": ratio,
        "machine": machine(),
        "settings": settings or {},
    }


def parse_args(
    description: str, extra: Callable[[argparse.ArgumentParser], object] | None = None
) -> argparse.Namespace:
    """Parse the flags every benchmark takes (``--quick``, ``--out FILE``) and ``extra``'s."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small sizes, about a minute")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON records here")
    if extra is not None:
        extra(parser)
    return parser.parse_args()


def emit(records: list[dict[str, Any]], out: Path | None) -> None:
    """Print the records as JSON and write them to ``out`` when given."""
    text = json.dumps(records, indent=2)
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")


def fit_and_score_detector(
    prepared: PreparedData, *, latent_dim: int, batch_size: int, epochs: int, seed: int
) -> tuple[WindowScores, dict[str, Any]]:
    """Pre-train a small autoencoder, fit the detector stage, score the test split.

    Returns the test windows' scores and ``fit_detector``'s summary (views, combination,
    per-fold FPR) with the calibrated ``threshold_high`` added. Everything is written to a
    temporary folder and removed.
    """
    from vitalsentry.config import DetectorConfig, ModelConfig, TrainConfig
    from vitalsentry.pipeline import VitalRiskPipeline, fit_detector
    from vitalsentry.training.pretrain import pretrain

    model = ModelConfig(
        input_channels=prepared.windows.shape[1],
        seq_len=prepared.windows.shape[2],
        lstm_hidden=32,
        latent_dim=latent_dim,
    )
    test = prepared.split_part(2)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        train = TrainConfig(max_epochs=epochs, batch_size=batch_size, seed=seed)
        pretrain(prepared, model, train, folder / "ae", accelerator="cpu", progress=False)
        summary = fit_detector(
            folder / "ae", prepared, folder / "det", DetectorConfig(random_state=seed)
        )
        pipe = VitalRiskPipeline.from_bundle(folder / "det")
        scores = pipe.score_windows(test.windows, where=(test.patient, test.start_s))
        return scores, {**summary, "threshold_high": pipe.calibration.threshold_high}


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free now (for a server a benchmark starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
