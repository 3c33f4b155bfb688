"""Archive-scoring benchmark: readings/s of one process against Dask on the same cores.

A simulated cohort is written as one Parquet partition per patient and a seed-sized bundle
(default model, one training epoch: speed does not depend on the weights) is fitted. Then,
in interleaved rounds, the archive is scored by ``score_archive`` with the local engine
(this process, ``torch`` threads = 1 and, on more than two cores, the cores less one that
``vitalsentry score`` uses by default) and on warm local Dask clusters of 1 and of all-cores
workers (one thread each), every method writing a fresh output folder. The baseline of the
all-cores cluster is the faster of these single-process runs on the same cores (all cores
as torch threads is left out: with every core busy its threads wait on each other, and on a
shared 2-core machine it scored two orders of magnitude slower).
Bundle loading and cluster start are outside the timed part (each is paid once per run, not
per partition; the cluster start is reported on its own). Every output must equal the
single-process output row for row, or the script exits non-zero. Besides wall-clock
readings/s, the CPU seconds of this process and of the cluster's workers are measured: on a
machine shared with other work, readings per CPU second show the engine's overhead when wall
time shows mostly the share of the cores each process got.

Usage: ``python benchmarks/bench_score.py [--quick] [--out FILE] [--repeats N]``
"""

from __future__ import annotations

import argparse
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
import psutil
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


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by these processes (all their threads)."""
    total = 0.0
    for pid in pids:
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


def start_clusters(sizes: set[int]) -> tuple[dict[int, Any], float]:
    """Local Dask clusters of these sizes (one thread per worker) and the mean start time."""
    from distributed import Client

    from vitalsentry.archive_dask import local_cluster

    start = time.perf_counter()
    clusters = {}
    for n in sorted(sizes):
        cluster = local_cluster(n)
        with Client(cluster) as client:
            pids = list(client.run(os.getpid).values())
        clusters[n] = (cluster, pids)
    return clusters, (time.perf_counter() - start) / len(sizes)


Method = tuple[Callable[[Path], object], list[int]]
"""A way to score the archive into a folder, and the processes whose CPU it uses."""


def local_threads(cores: int) -> list[int]:
    """Torch thread counts of the single-process runs: 1 and the CLI's default, cores less one."""
    return sorted({1, max(1, cores - 1)})


def methods_of(
    job: ArchiveJob, parts: Path, clusters: dict[int, Any], cores: int
) -> dict[str, Method]:
    """Build the timed methods: ``local_<threads>`` and ``dask_<workers>``."""
    me = os.getpid()

    def local(threads: int) -> Method:
        def run(out: Path) -> object:
            torch.set_num_threads(threads)
            return score_archive(job, parts, out)

        return run, [me]

    def dask(n: int) -> Method:
        cluster, pids = clusters[n]
        address = cluster.scheduler_address
        return lambda out: score_archive(job, parts, out, engine="dask", address=address), [
            me,
            *pids,
        ]

    methods = {f"local_{k}": local(k) for k in local_threads(cores)}
    return methods | {f"dask_{n}": dask(n) for n in sorted(clusters)}


def time_rounds(
    methods: dict[str, Method], root: Path, repeats: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and CPU seconds of every method in ``repeats`` interleaved rounds, outputs checked."""
    wall: dict[str, list[float]] = {m: [] for m in methods}
    cpu: dict[str, list[float]] = {m: [] for m in methods}
    reference: dict[bool, pd.DataFrame] = {}
    for i in range(repeats):
        for name, (run, pids) in methods.items():
            out = root / f"{name}-{i}"
            cpu0, start = cpu_seconds(pids), time.perf_counter()
            run(out)
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(cpu_seconds(pids) - cpu0)
            multi = name.startswith("local_") and name != "local_1"
            check_identical(outputs(out), reference, multi_thread=multi)
            shutil.rmtree(out)
    return wall, cpu


def build_records(
    rate: dict[str, float], per_cpu: dict[str, float], cores: int, settings: dict[str, Any]
) -> list[dict[str, Any]]:
    """Readings/s (Dask against one process on the same cores) and readings per CPU second.

    On ``cores`` cores the single-process baseline is the faster of its runs; per CPU
    second every other run is set against the one-thread process.
    """
    threads = local_threads(cores)
    best = max((f"local_{k}" for k in threads), key=rate.__getitem__)
    rows_of: list[tuple[str, str, str | None]] = [
        (f"score_local_{k}thread{'s' * (k > 1)}", f"local_{k}", None) for k in threads
    ]
    rows_of += [
        ("score_dask_1worker", "dask_1", "local_1"),
        (f"score_dask_{cores}workers", f"dask_{cores}", best),
    ]
    records = [
        record(
            name,
            rate[case],
            "readings/s",
            baseline=None if base is None else f"score_{base} (one process, same cores)",
            baseline_value=None if base is None else rate[base],
            settings=settings,
        )
        for name, case, base in rows_of
    ]
    return records + [
        record(
            f"score_{case}_per_cpu_second",
            per_cpu[case],
            "readings/cpu-s",
            baseline="score_local_1 per CPU second (engine overhead: ratio < 1)",
            baseline_value=per_cpu["local_1"],
            settings=settings,
        )
        for case in per_cpu
        if case != "local_1"
    ]


def main() -> None:
    args = parse_args(__doc__.splitlines()[0], _extra)
    cores = os.cpu_count() or 1
    patients, hours = (6, 1.0) if args.quick else (24, 3.0)
    root = Path(tempfile.mkdtemp(prefix="bench-score-"))
    load_before = [round(x, 2) for x in os.getloadavg()]
    try:
        job, parts, rows = build_archive(root, patients, hours)
        load_pipeline(job)
        clusters, cluster_start = start_clusters({1, cores})
        methods = methods_of(job, parts, clusters, cores)
        for n in clusters:  # workers load the bundle once (plugin), outside the timing
            methods[f"dask_{n}"][0](root / f"warm{n}")
        wall, cpu = time_rounds(methods, root, args.repeats)
        for cluster, _ in clusters.values():
            cluster.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    settings: dict[str, Any] = {
        "patients": patients,
        "hours": hours,
        "readings": rows,
        "partitions": patients,
        "repeats": args.repeats,
        "identical_output": "exact for every one-thread run (local and Dask); a "
        "several-thread local run within rtol 1e-5 (float32 summation order)",
        "timed": "score_archive on a warm cluster / loaded bundle; medians of interleaved rounds",
        "cpu": "user+system seconds of this process (client, scheduler, nannies, local "
        "scoring) and the cluster's worker processes",
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }
    rate = {m: rows / statistics.median(t) for m, t in wall.items()}
    per_cpu = {m: rows / statistics.median(t) for m, t in cpu.items()}
    records = build_records(rate, per_cpu, cores, settings)
    records.append(record("dask_local_cluster_start", cluster_start, "s", settings=settings))
    emit(records, args.out)


if __name__ == "__main__":
    main()
