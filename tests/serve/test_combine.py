"""Concurrent requests folded into one pipeline call, with unchanged per-patient scores."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from service_data import make_readings
from vitalsentry.pipeline import VitalRiskPipeline
from vitalsentry.serve.combine import Combiner, Rows, Scored, score_latest
from vitalsentry.serve.inputs import PatientReadings, from_request
from vitalsentry.serve.metrics import ServiceMetrics
from vitalsentry.serve.schemas import ScoreRequest


def patient(i: int, n: int = 90) -> PatientReadings:
    data = {"patient_id": f"p{i}", "readings": make_readings(n, seed=i, step=1.0 + i / 10)}
    return from_request(ScoreRequest.model_validate(data))


def value(scored: Scored | None, name: str) -> Any:
    """One field of a scored window."""
    assert scored is not None
    return getattr(scored.scores, name)[scored.index]


class Gate:
    """Wraps ``pipeline.score_windows``: records each call and holds the first one until opened."""

    def __init__(self, pipeline: VitalRiskPipeline, fail_after_first: bool = False) -> None:
        self.real = pipeline.score_windows
        self.calls: list[tuple[int, int]] = []
        self.open = threading.Event()
        self.fail_after_first = fail_after_first

    def __call__(self, windows: Any, **kwargs: Any) -> Any:
        self.calls.append((len(windows), kwargs["mc_passes"]))
        if len(self.calls) == 1:
            assert self.open.wait(10)
        elif self.fail_after_first:
            raise RuntimeError("model failure")
        return self.real(windows, **kwargs)


@pytest.fixture
def gate(pipeline: VitalRiskPipeline, monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    g = Gate(pipeline)
    monkeypatch.setattr(pipeline, "score_windows", g)
    yield g
    g.open.set()


@pytest.fixture
def combiner(pipeline: VitalRiskPipeline) -> Iterator[Combiner]:
    made = Combiner(pipeline, ServiceMetrics())
    yield made
    made.close()


def rows(combiner: Combiner, patients: Sequence[PatientReadings], passes: int = 0) -> Rows:
    """Score on the combiner's model thread from a fresh event loop."""
    return asyncio.run(combiner.rows(patients, passes))


def run_while_held(
    combiner: Combiner, gate: Gate, jobs: list[tuple[list[PatientReadings], int]]
) -> list[Any]:
    """Start the first job (held inside the pipeline), queue the rest, then release."""

    async def run() -> list[Any]:
        first = asyncio.ensure_future(combiner.rows(*jobs[0]))
        while not gate.calls:
            await asyncio.sleep(0.001)
        rest = [asyncio.ensure_future(combiner.rows(*job)) for job in jobs[1:]]
        await asyncio.sleep(0)  # each coroutine queues its job before awaiting the answer
        gate.open.set()
        return await asyncio.gather(first, *rest, return_exceptions=True)

    return asyncio.run(run())


def test_queued_requests_are_scored_in_one_call(combiner: Combiner, gate: Gate) -> None:
    patients = [patient(i) for i in range(8)]
    gate.open.set()
    alone = [rows(combiner, [p])[0] for p in patients]
    gate.calls.clear()
    gate.open.clear()
    metrics = combiner.metrics = ServiceMetrics()
    results = run_while_held(combiner, gate, [([p], 0) for p in patients])
    assert gate.calls == [(1, 0), (7, 0)]
    for (got,), want in zip(results, alone, strict=True):
        assert got is not None and want is not None
        assert value(got, "risk") == pytest.approx(value(want, "risk"), abs=1e-6)
        assert value(got, "anomaly_score") == pytest.approx(value(want, "anomaly_score"), abs=1e-6)
        assert value(got, "level") == value(want, "level") and got.end_s == want.end_s
    exposition = metrics.exposition().decode()
    assert "vitalsentry_batch_patients_count 2.0" in exposition
    assert "vitalsentry_batch_patients_sum 8.0" in exposition


def test_mc_dropout_requests_run_alone(combiner: Combiner, gate: Gate) -> None:
    jobs = [
        ([patient(0)], 0),
        ([patient(1)], 3),
        ([patient(2)], 0),
        ([patient(3)], 3),
        ([patient(4)], 0),
    ]
    results = run_while_held(combiner, gate, jobs)
    assert sorted(gate.calls[1:]) == [(1, 3), (1, 3), (2, 0)]
    assert all(
        value(rows[0], "risk_std") >= 0
        for rows, (_, passes) in zip(results, jobs, strict=True)
        if passes
    )


def test_a_failure_reaches_every_request_of_the_call(
    pipeline: VitalRiskPipeline, combiner: Combiner, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate(pipeline, fail_after_first=True)
    monkeypatch.setattr(pipeline, "score_windows", gate)
    results = run_while_held(combiner, gate, [([patient(i)], 0) for i in range(4)])
    assert isinstance(results[0], list)
    assert all(isinstance(r, RuntimeError) for r in results[1:])
    gate.open.set()
    with pytest.raises(RuntimeError):
        rows(combiner, [patient(9)])  # the model thread goes on serving


def test_patients_without_a_window_get_none(combiner: Combiner) -> None:
    gap = patient(1, n=40)
    gapped = PatientReadings(
        "g",
        gap.times.append(gap.times + pd.Timedelta(seconds=1000)),
        {k: np.concatenate([v, v]) for k, v in gap.values.items()},
    )
    both = rows(combiner, [patient(0), gapped])
    assert both[0] is not None and both[1] is None
    assert rows(combiner, [gapped]) == [None]


def test_close_answers_queued_jobs_then_stops_the_thread(combiner: Combiner, gate: Gate) -> None:
    async def run() -> Rows:
        job = asyncio.ensure_future(combiner.rows([patient(0)], 0))
        while not gate.calls:
            await asyncio.sleep(0.001)
        closing = threading.Thread(target=combiner.close)
        closing.start()
        gate.open.set()
        got = await job
        closing.join(10)
        return got

    assert asyncio.run(run())[0] is not None
    assert not combiner._thread.is_alive()


def test_a_cancelled_request_leaves_the_thread_serving(combiner: Combiner, gate: Gate) -> None:
    async def run() -> Rows:
        job = asyncio.ensure_future(combiner.rows([patient(0)], 0))
        while not gate.calls:
            await asyncio.sleep(0.001)
        job.cancel()  # the client went away while its window was being scored
        gate.open.set()
        return await combiner.rows([patient(1)], 0)

    assert asyncio.run(run())[0] is not None


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Torch with one intra-op thread (the case where ``run`` may use the calling thread)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def scored_where(pipe: VitalRiskPipeline) -> tuple[str, list[np.ndarray]]:
    """The thread that scores two patients, and their window scores."""
    ((a, b),) = score_latest(pipe, [[patient(0), patient(1)]], 0)
    assert a is not None and b is not None
    fields = ("risk", "anomaly_score", "contributions", "embedding")
    return threading.current_thread().name, [getattr(a.scores, name) for name in fields]


@pytest.mark.usefixtures("one_thread")
def test_run_uses_the_caller_when_the_model_is_idle_with_the_same_scores(
    combiner: Combiner,
) -> None:
    here, inline = combiner.run(scored_where)
    assert here == threading.current_thread().name
    with ThreadPoolExecutor(1) as pool:
        with combiner._model:  # the model is busy: the call goes to the model thread
            queued = pool.submit(combiner.run, scored_where)
            time.sleep(0.05)
            assert not queued.done()
        there, handed = queued.result()
    assert there == combiner._thread.name
    for a, b in zip(inline, handed, strict=True):
        np.testing.assert_array_equal(a, b)  # bit for bit


def test_run_goes_to_the_model_thread_when_torch_uses_several_threads(
    combiner: Combiner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert combiner.run(lambda _: threading.current_thread().name) == combiner._thread.name


@pytest.mark.usefixtures("one_thread")
def test_the_pipeline_runs_on_one_thread_at_a_time(
    pipeline: VitalRiskPipeline, combiner: Combiner, monkeypatch: pytest.MonkeyPatch
) -> None:
    real, lock = pipeline.score_windows, threading.Lock()
    active, most, threads = [0], [0], set()

    def tracked(*args: Any, **kwargs: Any) -> Any:
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
            threads.add(threading.current_thread().name)
        time.sleep(0.002)  # widen any overlap
        try:
            return real(*args, **kwargs)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(pipeline, "score_windows", tracked)

    async def requests() -> None:
        await asyncio.gather(*(combiner.rows([patient(i)], 0) for i in range(8)))

    with ThreadPoolExecutor(4) as pool:
        calls = [pool.submit(combiner.run, scored_where) for _ in range(12)]
        for _ in range(3):
            asyncio.run(requests())
        assert all(c.result()[1] for c in calls)
    assert most[0] == 1 and combiner._thread.name in threads and len(threads) > 1
