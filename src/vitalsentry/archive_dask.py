"""Dask distributed engine of archive scoring (needs the ``archive`` extra).

A :class:`BundlePlugin` registered on the cluster loads and verifies the bundle once in each
worker process, at registration or when a worker joins later, so a bad or changed bundle fails
before any partition is scored. Each task then scores a group of partitions with the cached
pipeline: small partitions are grouped (:func:`task_groups`) so that the fixed cost of a Dask
task (scheduling, messages, serialisation: tens of CPU milliseconds) is shared by enough
readings, while every partition is still written, and skipped on resume, on its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from vitalsentry.archive import ArchiveJob, PartitionResult, load_pipeline, score_partition
from vitalsentry.errors import VitalSentryError

try:
    import dask
    from distributed import Client, LocalCluster, WorkerPlugin, as_completed
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise VitalSentryError(
        "--engine dask needs Dask distributed: pip install 'vitalsentry[archive]'"
    ) from exc


Task = tuple[Path, Path, str]
"""(source, destination, name) of one partition."""

TASK_BYTES = 8 << 20
"""Input bytes a task should hold at least, when there are enough partitions for every worker."""


def task_groups(
    todo: Sequence[Task], sizes: Sequence[int], workers: int, min_bytes: int = TASK_BYTES
) -> list[list[Task]]:
    """Consecutive partitions grouped into tasks of at least ``min_bytes`` of input each.

    The bytes a group must reach are capped at 1 / (2 * ``workers``) of the whole input, so that
    many equal partitions still make at least ``workers`` tasks and the last tasks stay short.
    Order is kept; a group closes as soon as it holds the bytes it must reach.

    Parameters
    ----------
    todo : sequence of Task
        Partitions to score.
    sizes : sequence of int
        Input bytes of each partition.
    workers : int
        Worker threads of the cluster.
    min_bytes : int, default TASK_BYTES
        Bytes a task should hold at least.

    Returns
    -------
    list of list of Task
        The groups, in order; together exactly ``todo``.
    """
    target = min(float(min_bytes), sum(sizes) / max(2 * workers, 1))
    groups: list[list[Task]] = []
    held = target
    for task, size in zip(todo, sizes, strict=True):
        if held >= target:
            groups.append([])
            held = 0
        groups[-1].append(task)
        held += size
    return groups


def score_group(job: ArchiveJob, group: Sequence[Task]) -> list[PartitionResult]:
    """Score a group of partitions, one after the other, each written on its own."""
    return [score_partition(job, src, dst, name) for src, dst, name in group]


class BundlePlugin(WorkerPlugin):
    """Load and verify the job's bundle once in each worker process."""

    def __init__(self, job: ArchiveJob) -> None:
        self.job = job
        self.name = f"vitalsentry-bundle-{job.bundle_sha256[:16]}"

    def setup(self, worker: Any) -> None:
        """Set one torch thread and load the bundle (verifying hashes and versions).

        Tasks are the cluster's parallelism, so each scores with one intra-op thread
        whatever ``OMP_NUM_THREADS`` the worker was started with: more would contend with
        the other workers for the cores, and one thread gives the rows of a one-thread
        local run bit for bit (torch sums in another order on several).
        """
        torch.set_num_threads(1)
        load_pipeline(self.job)


LOCAL_CLUSTER_CONFIG: dict[str, object] = {
    "distributed.admin.tick.interval": "1s",
    "distributed.worker.profile.enabled": False,
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    "distributed.admin.system-monitor.interval": "10s",
    "distributed.admin.system-monitor.disk": False,
    "distributed.worker.memory.monitor-interval": "1s",
}
"""Settings of the local cluster, each cutting CPU that scoring would pay for (measured by
``benchmarks/bench_score.py``): the event-loop watchdog ticks every second, not every 20 ms;
no statistical profiler (it samples the scoring thread's stack every 10 ms on the worker's
event loop, for a dashboard this cluster does not have); glibc's own heap trim threshold
instead of Dask's 64 KiB one (with it, each partition's freed arrays go back to the kernel
and fault in again: system CPU in the scoring thread); the system monitor every 10 s
without host disk counters and the memory limits checked every second instead of every
100 ms (psutil calls in each worker, nanny and the scheduler)."""


def local_cluster(workers: int | None) -> LocalCluster:
    """Start a local cluster of ``workers`` processes (default: the CPU count), one thread each.

    No dashboard is served (the scheduler's health and metrics endpoints take a free port);
    see :data:`LOCAL_CLUSTER_CONFIG` for the cluster's settings.
    """
    with dask.config.set(LOCAL_CLUSTER_CONFIG):
        return LocalCluster(
            n_workers=workers or None,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            scheduler_kwargs={"dashboard_address": ":0"},  # health/metrics on a free port
            silence_logs=logging.ERROR,
        )


def run_dask(
    job: ArchiveJob,
    todo: list[Task],
    done: Callable[[PartitionResult], None],
    *,
    address: str | None,
    workers: int | None,
) -> None:
    """Score ``todo`` (source, destination, name) on a Dask cluster, calling ``done`` per result.

    On the first failed partition the remaining tasks are cancelled and its error raised;
    partitions finished by then are kept (a rerun skips them).
    """
    cluster = local_cluster(workers) if address is None else None
    try:
        try:
            client = Client(address or cluster)
        except OSError as exc:
            raise VitalSentryError(f"cannot reach the Dask scheduler at {address}: {exc}") from exc
        with client:
            client.register_plugin(BundlePlugin(job))
            sizes = [src.stat().st_size for src, _, _ in todo]
            groups = task_groups(todo, sizes, max(len(client.nthreads()), 1))
            futures = [client.submit(score_group, job, group, pure=False) for group in groups]
            try:
                for future in as_completed(futures):
                    for result in future.result():
                        done(result)
            finally:
                client.cancel(futures)
    finally:
        if cluster is not None:
            cluster.close()
