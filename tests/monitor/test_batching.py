from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from vitalsentry.monitor.batching import GroupCommit, Join, _Ticket


class DownError(Exception):
    pass


def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the callers did not queue"
        time.sleep(0.001)


def test_a_lone_caller_runs_its_item_at_once() -> None:
    batches: list[list[int]] = []
    commit = GroupCommit(
        lambda items, join: batches.append(items) or [i * 10 for i in items], key=str
    )
    assert commit.submit(3) == 30
    assert batches == [[3]] and commit.queued == 0


def test_items_queued_during_a_batch_run_together_one_per_key_in_order() -> None:
    release = threading.Event()
    batches: list[list[tuple[str, int]]] = []

    def run(items: list[tuple[str, int]], join: Join[tuple[str, int]]) -> list[int]:
        batches.append(items)
        if len(batches) == 1:
            release.wait(10)
        return [n for _, n in items]

    commit: GroupCommit[tuple[str, int], int] = GroupCommit(run, key=lambda item: item[0])
    items = [("a", 1), ("b", 2), ("a", 3), ("c", 4), ("b", 5)]
    with ThreadPoolExecutor(len(items) + 1) as pool:
        first = pool.submit(commit.submit, ("z", 0))
        wait_until(lambda: len(batches) == 1)
        futures = []
        for n, item in enumerate(items, 1):  # queued in this order while the first batch runs
            futures.append(pool.submit(commit.submit, item))
            wait_until(lambda n=n: commit.queued == n)
        release.set()
        assert first.result() == 0 and [f.result() for f in futures] == [1, 2, 3, 4, 5]
    assert batches[1] == [("a", 1), ("b", 2), ("c", 4)]
    assert batches[2] == [("a", 3), ("b", 5)]


def test_an_item_error_is_that_callers_only() -> None:
    def run(items: list[int], join: Join[int]) -> list[int | Exception]:
        return [ValueError(f"bad {i}") if i < 0 else i for i in items]

    commit = GroupCommit(run, key=str)
    assert commit.submit(2) == 2
    with pytest.raises(ValueError, match="bad -1"):
        commit.submit(-1)


def test_a_failed_batch_runs_each_item_alone_and_shared_errors_reach_everyone() -> None:
    calls: list[list[int]] = []

    def run(items: list[int], join: Join[int]) -> list[int]:
        calls.append(items)
        if 0 in items:
            raise DownError("database down")
        if -1 in items:
            raise RuntimeError("a bug with item -1")
        return items

    commit = GroupCommit(run, key=str, shared_errors=(DownError,))
    outcomes = commit._outcomes([_Ticket(i) for i in (1, -1, 2)])  # as the leader runs it
    assert outcomes[0] == 1 and outcomes[2] == 2 and isinstance(outcomes[1], RuntimeError)
    assert calls == [[1, -1, 2], [1], [-1], [2]]
    calls.clear()
    shared = commit._outcomes([_Ticket(i) for i in (1, 0, 2)])
    assert calls == [[1, 0, 2]] and all(isinstance(o, DownError) for o in shared)


def test_an_interrupted_batch_leaves_the_group_usable() -> None:
    def run(items: list[int], join: Join[int]) -> list[int]:
        if 1 in items:
            raise KeyboardInterrupt
        return items

    commit = GroupCommit(run, key=str)
    with pytest.raises(KeyboardInterrupt):
        commit.submit(1)
    assert commit.submit(2) == 2  # no batch is left marked as running


def test_items_queued_while_a_batch_runs_join_it_when_admitted_in_key_order() -> None:
    queued = threading.Event()
    batches: list[list[tuple[str, int]]] = []
    joined: list[list[tuple[str, int]]] = []

    def run(items: list[tuple[str, int]], join: Join[tuple[str, int]]) -> list[int]:
        batches.append(items)
        if len(batches) == 1:
            queued.wait(10)
            joined.append(join(lambda item: item != ("a", 2)))  # ("a", 5) waits behind it
            joined.append(join(lambda item: True))
            items = items + [item for part in joined for item in part]
        return [n for _, n in items]

    commit: GroupCommit[tuple[str, int], int] = GroupCommit(run, key=lambda item: item[0])
    items = [("c", 1), ("a", 2), ("c", 3), ("d", 4), ("a", 5), ("b", 6)]
    with ThreadPoolExecutor(len(items) + 1) as pool:
        first = pool.submit(commit.submit, ("b", 0))
        wait_until(lambda: len(batches) == 1)
        futures = []
        for n, item in enumerate(items, 1):
            futures.append(pool.submit(commit.submit, item))
            wait_until(lambda n=n: commit.queued == n)
        queued.set()
        assert first.result() == 0 and [f.result() for f in futures] == [1, 2, 3, 4, 5, 6]
    assert joined == [[("c", 1), ("d", 4)], [("a", 2)]]  # one per key, never a key twice
    assert batches[1:] == [[("c", 3), ("a", 5), ("b", 6)]]
