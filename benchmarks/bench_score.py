"""Archive-scoring benchmark: readings/s of one process against Dask on the same cores.

A simulated cohort is written as one Parquet partition per patient and a seed-sized bundle
(default model, one training epoch: speed does not depend on the weights) is fitted. Then,
in interleaved rounds, the archive is scored by ``score_archive`` with the local engine
(this process, ``torch`` threads = 1 and = all cores) and on warm local Dask clusters of 1
and of all-cores workers (one thread each), every method writing a fresh output folder.
Bundle loading and cluster start are outside the timed part (each is paid once per run, not
per partition; the cluster start is reported on its own). Every output must equal the
single-process output row for row, or the script exits non-zero.

Usage: ``python benchmarks/bench_score.py [--quick] [--out FILE] [--repeats N]``
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, parse_args, record
from vitalsentry.archive import (
    ArchiveJob,
    list_partitions,
    load_pipeline,
    score_archive,
    write_partitions,
)
from vitalsentry.config import DataConfig, DetectorConfig, ModelConfig, TrainConfig, WindowConfig
from vitalsentry.data.prepared import prepare
from vitalsentry.data.readings import Readings, validate_frame
from vitalsentry.data.simulate import SimulationConfig, simulate_cohort
from vitalsentry.pipeline import fit_detector
from vitalsentry.training.pretrain import pretrain


def _extra(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds")


def build_archive(root: Path, patients: int, hours: float) -> tuple[ArchiveJob, Path, int]:
    """Write the partitions and fit a bundle; return the job, the archive and its row count."""
    frame, _ = simulate_cohort(SimulationConfig(patients=patients, hours=hours, seed=0))
    frame = frame.drop(columns=["age", "sex", "bmi"])
    readings = Readings(validate_frame(frame, "cohort"), pd.DataFrame(), "tidy", False, "bench")
    data = prepare(readings, DataConfig(), WindowConfig())
    train = TrainConfig(max_epochs=1)
    pretrain(data, ModelConfig(), train, root / "enc", accelerator="cpu", progress=False)
    fit_detector(root / "enc", data, root / "bundle", DetectorConfig())
    write_partitions(frame, root / "parts")
    return ArchiveJob.create(root / "bundle"), root / "parts", len(frame)


def outputs(out: Path) -> pd.DataFrame:
    """All partition outputs of a run, concatenated in partition order."""
    return pd.concat([pd.read_parquet(out / p) for p in list_partitions(out)], ignore_index=True)


def check_identical(
    got: pd.DataFrame, reference: dict[bool, pd.DataFrame], *, multi_thread: bool
) -> None:
    """Require every one-thread output to equal the first one-thread output exactly.

    torch sums in another order with several intra-op threads, so the multi-thread local
    run equals the others within float32 rounding (rtol 1e-5), and exactly its own first run.
    """
    reference.setdefault(multi_thread, got)
    pd.testing.assert_frame_equal(got, reference[multi_thread], check_exact=True)
    pd.testing.assert_frame_equal(got, reference.setdefault(False, got), rtol=1e-5)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], _extra)
    from distributed import LocalCluster

    cores = os.cpu_count() or 1
    patients, hours = (6, 1.0) if args.quick else (24, 3.0)
    root = Path(tempfile.mkdtemp(prefix="bench-score-"))
    try:
        job, parts, rows = build_archive(root, patients, hours)
        load_pipeline(job)
        start = time.perf_counter()
        clusters = {
            n: LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
                silence_logs=logging.ERROR,
            )
            for n in sorted({1, cores})
        }
        cluster_start = (time.perf_counter() - start) / len(clusters)

        def local(threads: int) -> Callable[[Path], object]:
            def run(out: Path) -> object:
                torch.set_num_threads(threads)
                return score_archive(job, parts, out)

            return run

        def dask(n: int) -> Callable[[Path], object]:
            address = clusters[n].scheduler_address
            return lambda out: score_archive(job, parts, out, engine="dask", address=address)

        methods = {"local_1": local(1), f"local_{cores}": local(cores), "dask_1": dask(1)}
        methods[f"dask_{cores}"] = dask(cores)
        dask(cores)(root / "warm")  # workers load the bundle once (plugin), outside the timing
        dask(1)(root / "warm1")
        times: dict[str, list[float]] = {m: [] for m in methods}
        reference: dict[bool, pd.DataFrame] = {}
        for i in range(args.repeats):
            for name, run in methods.items():
                out = root / f"{name}-{i}"
                start = time.perf_counter()
                run(out)
                times[name].append(time.perf_counter() - start)
                check_identical(outputs(out), reference, multi_thread=name == f"local_{cores}")
                shutil.rmtree(out)
        for cluster in clusters.values():
            cluster.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    rate = {m: rows / statistics.median(t) for m, t in times.items()}
    settings: dict[str, Any] = {
        "patients": patients,
        "hours": hours,
        "readings": rows,
        "partitions": patients,
        "repeats": args.repeats,
        "identical_output": "exact for every one-thread run (local and Dask); the "
        f"{cores}-thread local run within rtol 1e-5 (float32 summation order)",
        "timed": "score_archive on a warm cluster / loaded bundle; medians of interleaved rounds",
    }
    records = [
        record("score_local_1thread", rate["local_1"], "readings/s", settings=settings),
        record(
            "score_dask_1worker",
            rate["dask_1"],
            "readings/s",
            baseline="score_local_1thread",
            baseline_value=rate["local_1"],
            settings=settings,
        ),
        record(
            f"score_local_{cores}threads", rate[f"local_{cores}"], "readings/s", settings=settings
        ),
        record(
            f"score_dask_{cores}workers",
            rate[f"dask_{cores}"],
            "readings/s",
            baseline=f"score_local_{cores}threads",
            baseline_value=rate[f"local_{cores}"],
            settings=settings,
        ),
        record("dask_local_cluster_start", cluster_start, "s", settings=settings),
    ]
    emit(records, args.out)


if __name__ == "__main__":
    main()
