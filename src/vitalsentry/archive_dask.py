"""Dask distributed engine of archive scoring (needs the ``archive`` extra).

A :class:`BundlePlugin` registered on the cluster loads and verifies the bundle once in each
worker process, at registration or when a worker joins later, so a bad or changed bundle fails
before any partition is scored. Each task then scores one partition with the cached pipeline.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vitalsentry.archive import ArchiveJob, PartitionResult, load_pipeline, score_partition
from vitalsentry.errors import VitalSentryError

try:
    from distributed import Client, LocalCluster, WorkerPlugin, as_completed
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise VitalSentryError(
        "--engine dask needs Dask distributed: pip install 'vitalsentry[archive]'"
    ) from exc


class BundlePlugin(WorkerPlugin):
    """Load and verify the job's bundle once in each worker process."""

    def __init__(self, job: ArchiveJob) -> None:
        self.job = job
        self.name = f"vitalsentry-bundle-{job.bundle_sha256[:16]}"

    def setup(self, worker: Any) -> None:
        """Load the bundle into the worker's process cache (verifying hashes and versions)."""
        load_pipeline(self.job)


def run_dask(
    job: ArchiveJob,
    todo: list[tuple[Path, Path, str]],
    done: Callable[[PartitionResult], None],
    *,
    address: str | None,
    workers: int | None,
) -> None:
    """Score ``todo`` (source, destination, name) on a Dask cluster, calling ``done`` per result.

    On the first failed partition the remaining tasks are cancelled and its error raised;
    partitions finished by then are kept (a rerun skips them).
    """
    cluster = None
    if address is None:
        cluster = LocalCluster(
            n_workers=workers or None,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        )
    try:
        try:
            client = Client(address or cluster)
        except OSError as exc:
            raise VitalSentryError(f"cannot reach the Dask scheduler at {address}: {exc}") from exc
        with client:
            client.register_plugin(BundlePlugin(job))
            futures = [
                client.submit(score_partition, job, src, dst, name, pure=False)
                for src, dst, name in todo
            ]
            try:
                for future in as_completed(futures):
                    done(future.result())
            finally:
                client.cancel(futures)
    finally:
        if cluster is not None:
            cluster.close()
