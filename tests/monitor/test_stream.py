from __future__ import annotations

import importlib.util
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vitalsentry.monitor.store import US, MonitorStore
from vitalsentry.monitor.stream import Measurement, StreamConflictError, StreamMonitor
from vitalsentry.pipeline import VitalRiskPipeline

T0 = 1_714_550_400  # 2024-05-01T08:00:00Z
PATIENTS, APPENDS, SECONDS = 6, 5, 40  # window 64 s, stride 32 s: most appends complete one


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> VitalRiskPipeline:
    """The service tests' bundle (tests/serve/conftest.py builds it without training)."""
    spec = importlib.util.spec_from_file_location(
        "serve_fixtures", Path(__file__).parents[1] / "serve" / "conftest.py"
    )
    assert spec is not None and spec.loader is not None
    fixtures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fixtures)
    return VitalRiskPipeline.from_bundle(fixtures.build_bundle(tmp_path_factory.mktemp("bundle")))


def chunk(patient: int, k: int) -> list[Measurement]:
    """Append ``k`` of a patient: 1 Hz heart rate and SpO2 every 10 s, drifting up for patient 0."""
    rng = np.random.default_rng(patient * 100 + k)
    out = []
    for s in range(k * SECONDS, (k + 1) * SECONDS):
        t_us = (T0 + s) * US
        drift = 0.4 * s if patient == 0 else 0.0
        out.append(Measurement("heart_rate", t_us, round(72 + drift + rng.normal(0, 3), 1), (), ()))
        if s % 10 == 0:
            out.append(Measurement("spo2", t_us, round(min(100, 97 + rng.normal(0, 1)), 1), (), ()))
    return out


def history(store: MonitorStore, patient: str) -> tuple[list[tuple[Any, ...]], list[float]]:
    """Windows, levels, alarm states and episodes; and the risks (batched calls round apart)."""
    found = store.timeline(patient, 0, 4e9)
    exact = [(s.start_s, s.end_s, s.level, s.alarm_on) for s in found.scores] + [
        (a.started_s, a.last_on_s, a.cleared_s) for a in found.alarms
    ]
    return exact, [s.risk for s in found.scores]


def test_concurrent_appends_are_batched_and_score_as_appends_one_by_one(
    pipeline: VitalRiskPipeline, store: MonitorStore
) -> None:
    calls: list[int] = []
    held = threading.Event()

    def run_model(fn: Callable[[VitalRiskPipeline], Any]) -> Any:
        if not calls:  # hold the first batch until every other patient's append waits
            held.set()
            deadline = time.monotonic() + 10
            while monitor._batches.queued < PATIENTS - 1 and time.monotonic() < deadline:
                time.sleep(0.001)
        found = fn(pipeline)
        calls.append(len(found))
        return found

    monitor = StreamMonitor(store, pipeline, run_model=run_model)
    for p in range(PATIENTS):  # one by one
        for k in range(APPENDS):
            monitor.append(f"one-{p}", chunk(p, k))
    calls.clear()
    for p in range(PATIENTS):
        monitor.append(f"many-{p}", chunk(p, 0))  # no window yet: nothing to hold
    with ThreadPoolExecutor(PATIENTS) as pool:
        first = pool.submit(monitor.append, "many-0", chunk(0, 1))
        assert held.wait(10)
        rest = [
            pool.submit(
                lambda p: [monitor.append(f"many-{p}", chunk(p, k)) for k in (1, 2, 3, 4)], p
            )
            for p in range(1, PATIENTS)
        ]
        first.result()
        for k in (2, 3, 4):
            monitor.append("many-0", chunk(0, k))
        assert all(f.exception() is None for f in rest)
    assert max(calls) >= PATIENTS - 1  # the appends queued behind the first batch: one call
    for p in range(PATIENTS):
        (expected, risks), (found, found_risks) = (
            history(store, f"{how}-{p}") for how in ("one", "many")
        )
        assert len(risks) >= APPENDS - 1 and found == expected
        assert np.allclose(found_risks, risks, rtol=0, atol=1e-6)


def test_a_refused_append_in_a_batch_writes_nothing_and_others_commit(
    pipeline: VitalRiskPipeline, store: MonitorStore
) -> None:
    monitor = StreamMonitor(store, pipeline)
    for k in range(3):
        monitor.append("a", chunk(1, k))
    before = history(store, "a")
    stale = chunk(1, 0)[:1]
    changed = [Measurement(m.channel, m.t_us, m.value + 1, ("readings", 0), ()) for m in stale]
    with pytest.raises(StreamConflictError, match="differs from the stored"):
        monitor.append("a", changed)
    assert history(store, "a") == before
    result = monitor.append("a", chunk(1, 3))
    assert result.accepted == len(chunk(1, 3)) and history(store, "a") != before
