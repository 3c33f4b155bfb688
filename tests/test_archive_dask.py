"""Grouping of small archive partitions into Dask tasks; the workers' bundle plugin."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("distributed")

import torch

from vitalsentry import archive_dask
from vitalsentry.archive import ArchiveJob
from vitalsentry.archive_dask import BundlePlugin, Task, task_groups


def _tasks(n: int) -> list[Task]:
    return [(Path(f"in/{i}.parquet"), Path(f"out/{i}.parquet"), f"{i}.parquet") for i in range(n)]


@given(
    sizes=st.lists(st.integers(0, 10_000), max_size=60),
    workers=st.integers(1, 8),
    min_bytes=st.integers(1, 50_000),
)
def test_groups_keep_every_partition_in_order_and_close_at_the_target(
    sizes: list[int], workers: int, min_bytes: int
) -> None:
    todo = _tasks(len(sizes))
    groups = task_groups(todo, sizes, workers, min_bytes)
    assert [t for g in groups for t in g] == todo
    assert all(groups)
    size_of = dict(zip((t[2] for t in todo), sizes, strict=True))
    target = min(min_bytes, sum(sizes) / (2 * workers))
    for group in groups:  # a group closes as soon as it reaches the target
        assert sum(size_of[t[2]] for t in group[:-1]) < target or len(group) == 1
    for group in groups[:-1]:
        assert sum(size_of[t[2]] for t in group) >= target


@given(n=st.integers(1, 80), workers=st.integers(1, 8), size=st.integers(1, 10_000))
def test_equal_partitions_make_at_least_one_task_per_worker(
    n: int, workers: int, size: int
) -> None:
    groups = task_groups(_tasks(n), [size] * n, workers, min_bytes=10**12)
    assert len(groups) >= min(n, workers)


def test_big_partitions_stay_one_per_task() -> None:
    groups = task_groups(_tasks(5), [10**9] * 5, workers=2, min_bytes=1 << 20)
    assert [len(g) for g in groups] == [1] * 5


def test_the_bundle_plugin_loads_with_one_torch_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    threads_at_load: list[int] = []
    monkeypatch.setattr(
        archive_dask, "load_pipeline", lambda job: threads_at_load.append(torch.get_num_threads())
    )
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # as a worker started with OMP_NUM_THREADS=2 would have
    try:
        BundlePlugin(ArchiveJob("bundle", "0" * 64)).setup(worker=None)
        assert threads_at_load == [1] and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
