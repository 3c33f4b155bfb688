"""Data-layer benchmark: simulate a vitals2024-scale file, then prepare it (seed settings).

Each measurement runs in a fresh subprocess so its peak RSS is its own. The baseline is a
plain pandas implementation of the same step (``resample('1s').interpolate()`` per feed,
then copied windows), measured in the same run on the same file.

Usage: ``python benchmarks/bench_data.py [--quick] [--out FILE]``
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, parse_args, record


def _simulate(path: Path, rows: int) -> None:
    from vitalsentry.data.simulate_kaggle import simulate_vitals2024
    from vitalsentry.data.writers import write_table

    write_table(simulate_vitals2024(rows, seed=0), path)


def _prepare(path: Path, out: Path) -> None:
    from vitalsentry.config import DataConfig, WindowConfig
    from vitalsentry.data.prepared import prepare, save_prepared
    from vitalsentry.data.sources import read_readings

    save_prepared(prepare(read_readings(path, "vitals2024"), DataConfig(), WindowConfig()), out)


def _pandas_baseline(path: Path, out: Path) -> None:
    """Run the same step in plain pandas: split, resample each feed to 1 s, interpolate, copy windows."""
    import numpy as np
    import pandas as pd

    raw = pd.read_csv(path)
    raw["ts"] = pd.to_datetime(raw["Timestamp"], utc=True)
    rng = np.random.default_rng(0)
    ids = raw["Patient ID"].unique()
    split = dict(zip(ids, rng.choice(3, size=ids.size, p=[0.7, 0.15, 0.15]), strict=True))
    parts = []
    for _, feed in raw.groupby(raw["Patient ID"].map(split)):
        series = feed.set_index("ts").sort_index()[["Heart Rate", "Oxygen Saturation"]]
        grid = series.resample("1s").mean().interpolate()
        when = pd.DatetimeIndex(grid.index)
        hour = (when.hour + when.minute / 60 + when.second / 3600).to_numpy()
        feats = np.stack(
            [*grid.to_numpy().T, np.sin(2 * np.pi * hour / 24), np.cos(2 * np.pi * hour / 24)]
        )
        view = np.lib.stride_tricks.sliding_window_view(feats.astype(np.float32), 256, axis=1)[
            :, ::128
        ]
        parts.append(np.ascontiguousarray(view.transpose(1, 0, 2)))
    np.save(out / "windows.npy", np.concatenate(parts))


def _worker(task: str, path: str, out: str, rows: int) -> None:
    start = time.perf_counter()
    if task == "simulate":
        _simulate(Path(path), rows)
    elif task == "prepare":
        _prepare(Path(path), Path(out))
    else:
        Path(out).mkdir(parents=True, exist_ok=True)
        _pandas_baseline(Path(path), Path(out))
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "peak_rss_mib": peak_kib / 1024}))


def _measure(task: str, path: Path, out: Path, rows: int, repeats: int) -> dict[str, float]:
    runs = []
    for _ in range(repeats):
        proc = subprocess.run(
            [sys.executable, __file__, "--worker", task, str(path), str(out), str(rows)],
            check=True,
            capture_output=True,
            text=True,
        )
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return {
        "seconds": statistics.median(r["seconds"] for r in runs),
        "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
    }


def main() -> None:
    args = parse_args(__doc__ or "")
    rows = 20_002 if args.quick else 200_020
    repeats = 3
    settings: dict[str, Any] = {
        "rows": rows,
        "repeats": repeats,
        "window": 256,
        "stride": 128,
        "step_s": 1.0,
    }
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "vitals2024.csv"
        sim = _measure("simulate", csv, Path(tmp), rows, repeats)
        prep = _measure("prepare", csv, Path(tmp) / "prepared", rows, repeats)
        base = _measure("baseline", csv, Path(tmp) / "baseline", rows, repeats)
    records = [
        record(
            "simulate_vitals2024_csv_seconds",
            sim["seconds"],
            "s",
            higher_is_better=False,
            settings=settings,
        ),
        record(
            "simulate_vitals2024_peak_rss",
            sim["peak_rss_mib"],
            "MiB",
            higher_is_better=False,
            settings=settings,
        ),
        record(
            "prepare_seconds",
            prep["seconds"],
            "s",
            baseline="pandas resample+interpolate+copied windows",
            baseline_value=base["seconds"],
            higher_is_better=False,
            settings=settings | {"target": "<= 10 s at 200,020 rows"},
        ),
        record(
            "prepare_peak_rss",
            prep["peak_rss_mib"],
            "MiB",
            baseline="pandas resample+interpolate+copied windows",
            baseline_value=base["peak_rss_mib"],
            higher_is_better=False,
            settings=settings | {"target": "<= 2048 MiB at 200,020 rows"},
        ),
    ]
    emit(records, args.out)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        _worker(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        main()
