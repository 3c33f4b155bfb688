from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service_data import build_bundle
from vitalsentry.data.schema import PATIENT_COLUMN, TIMESTAMP_COLUMN
from vitalsentry.monitor import stream
from vitalsentry.monitor.store import US, MonitorStore
from vitalsentry.monitor.stream import (
    Measurement,
    StreamConfig,
    StreamConflictError,
    StreamMonitor,
    StreamSlice,
)
from vitalsentry.pipeline import VitalRiskPipeline
from vitalsentry.risk.multiview import ViewInputs, ViewSettings

T0 = 1_714_550_400  # 2024-05-01T08:00:00Z
PATIENTS, APPENDS, SECONDS = 6, 5, 40  # window 64 s, stride 32 s: most appends complete one
PATIENT_IDS = itertools.count()  # one patient per hypothesis example


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> VitalRiskPipeline:
    """The service tests' bundle (``service_data`` builds it without training)."""
    return VitalRiskPipeline.from_bundle(build_bundle(tmp_path_factory.mktemp("bundle")))


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


def test_appends_queued_while_a_batch_stores_join_it_in_patient_order(
    pipeline: VitalRiskPipeline, store: MonitorStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    monitor = StreamMonitor(store, pipeline, run_model=lambda fn: calls.append(1) or fn(pipeline))
    for p in range(3):
        for how in ("join", "solo"):
            monitor.append(f"{how}-{p}", chunk(p, 0))  # no window yet
    calls.clear()
    opened: list[str] = []
    open_one = monitor._open

    def held_open(transaction: Any, request: Any) -> Any:
        opened.append(request.patient_id)
        deadline = time.monotonic() + 10
        while len(opened) == 1 and monitor._batches.queued < 2 and time.monotonic() < deadline:
            time.sleep(0.001)  # the first batch stores its first append once two more wait
        return open_one(transaction, request)

    monkeypatch.setattr(monitor, "_open", held_open)
    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(monitor.append, "join-1", chunk(1, 1))
        deadline = time.monotonic() + 10
        while not opened and time.monotonic() < deadline:
            time.sleep(0.001)
        later = [pool.submit(monitor.append, f"join-{p}", chunk(p, 1)) for p in (2, 0)]
        results = [first.result()] + [f.result() for f in later]
    if store.row_locks:  # join-2 sorts after the locked join-1: it joins; join-0 waits
        assert opened == ["join-1", "join-2", "join-0"] and len(calls) == 2
    else:  # SQLite's writer holds the database: both join, in patient order
        assert opened == ["join-1", "join-0", "join-2"] and len(calls) == 1
    assert all(r.scored and r.accepted == len(chunk(0, 1)) for r in results)
    monkeypatch.undo()
    for p in range(3):
        monitor.append(f"solo-{p}", chunk(p, 1))
        assert history(store, f"join-{p}")[0] == history(store, f"solo-{p}")[0]


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


T1971 = 36_633_600  # 1971-03-01T00:00:00Z
STRIDE_S = 32  # the test bundle: 64-step windows of 1 s, stride 32
T2024 = T1971 + STRIDE_S * 52_487_550  # 2024-05-01 on the 1971 reading's window grid
CHANNELS = ("heart_rate", "spo2")


def series(start_s: int, n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` seconds of plausible heart rate and SpO2 from ``start_s``, one reading a second."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            PATIENT_COLUMN: "p",
            TIMESTAMP_COLUMN: pd.to_datetime((start_s + np.arange(n)) * US, unit="us", utc=True),
            "heart_rate": np.round(78 + rng.normal(0, 4, n), 2),
            "spo2": np.round(np.clip(96.5 + rng.normal(0, 0.8, n), 90, 100), 2),
        }
    )


def measurements(frame: pd.DataFrame) -> list[Measurement]:
    t_us = frame[TIMESTAMP_COLUMN].array.as_unit("us").asi8
    return [
        Measurement(c, int(t), float(v), ("readings", i, c), ("readings", i, "timestamp"))
        for c in CHANNELS
        for i, (t, v) in enumerate(zip(t_us, frame[c], strict=True))
    ]


@pytest.fixture
def slices(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Seconds spanned by each slice the stream scores (its grid has that many steps + 1)."""
    spans: list[float] = []
    score_slices = stream.score_slices

    def spy(
        pipe: VitalRiskPipeline, pieces: Sequence[StreamSlice], mc_passes: int
    ) -> list[list[stream.ScoredWindow]]:
        spans.extend(float(p.t_us.max() - p.t_us.min()) / US for p in pieces)
        return score_slices(pipe, pieces, mc_passes)

    monkeypatch.setattr(stream, "score_slices", spy)
    return spans


def test_readings_decades_apart_grid_only_the_windows_they_can_make(
    store: MonitorStore, pipeline: VitalRiskPipeline, slices: list[float]
) -> None:
    config = StreamConfig(max_future_s=1e10, chunk_windows=16)
    monitor = StreamMonitor(store, pipeline, config)
    assert monitor.append("p", measurements(series(T1971, 3))).scored == ()
    later = monitor.append("p", measurements(series(T2024, 104)))
    assert [s.start_s for s in later.scored] == [T2024, T2024 + STRIDE_S]
    reach_s = max(monitor.reach_us.values()) / US
    bound = (config.chunk_windows + monitor.back_strides) * STRIDE_S + 63 + reach_s
    assert len(slices) <= 2 and max(slices) <= bound  # not 53 years of 1 s steps
    normal = monitor.append("p", measurements(series(T2024 + 104, 64, seed=1)))
    assert [s.start_s for s in normal.scored] == [T2024 + 2 * STRIDE_S, T2024 + 3 * STRIDE_S]
    assert len(slices) == 3 and max(slices) <= bound
    whole = pd.concat([series(T2024, 104), series(T2024 + 104, 64, seed=1)], ignore_index=True)
    offline = pipeline.score_frame(whole)
    streamed = [*later.scored, *normal.scored]
    assert np.allclose(offline["risk"], [s.risk for s in streamed], rtol=0, atol=1e-6)


@dataclass
class BaselineOnly:
    """A detector stage scoring the ``baseline_shift`` view alone (its largest |shift|)."""

    settings: ViewSettings = field(default_factory=lambda: ViewSettings(lookback=8))

    def score(self, inputs: ViewInputs) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        shift = np.abs(inputs.baseline).max(axis=1)
        return np.nan_to_num(shift, nan=-1.0), {"baseline_shift": shift}


@pytest.mark.parametrize("chunk", [4, 256])
def test_streamed_windows_equal_offline_ones_across_a_gap_with_the_baseline_view(
    store: MonitorStore,
    pipeline: VitalRiskPipeline,
    monkeypatch: pytest.MonkeyPatch,
    slices: list[float],
    chunk: int,
) -> None:
    monkeypatch.setattr(pipeline, "views", BaselineOnly())
    gap_s = 3 * 86_400
    frame = pd.concat(
        [series(T2024, 1200), series(T2024 + 1200 + gap_s, 900, seed=1)], ignore_index=True
    )
    monitor = StreamMonitor(store, pipeline, StreamConfig(max_future_s=1e10, chunk_windows=chunk))
    streamed = []
    for _, batch in frame.groupby(frame[TIMESTAMP_COLUMN].array.as_unit("s").asi8 // 60):
        streamed += monitor.append("p", measurements(batch)).scored
    assert max(slices) < gap_s  # the gap is never gridded
    offline = pipeline.score_frame(frame)
    assert offline["anomaly_score"].gt(0).sum() > 20  # the baseline view is at work
    starts = offline["window_start"].array.as_unit("us").asi8 / US
    assert [s.start_s for s in streamed] == list(starts)
    got = [s.anomaly_score for s in streamed]
    assert np.allclose(offline["anomaly_score"], got, rtol=0, atol=1e-9)


def test_stay_time_features_count_from_the_first_reading_in_every_slice(
    store: MonitorStore, tmp_path: Path
) -> None:
    """Slices after the first grid from a later reading; their hours in ICU must not."""
    pipe = VitalRiskPipeline.from_bundle(build_bundle(tmp_path / "b", time_features="stay"))
    frame = series(T2024, 1500)
    monitor = StreamMonitor(store, pipe, StreamConfig(max_future_s=1e10, chunk_windows=4))
    streamed = []
    for _, batch in frame.groupby(frame[TIMESTAMP_COLUMN].array.as_unit("s").asi8 // 300):
        streamed += monitor.append("p", measurements(batch)).scored
    offline = pipe.score_frame(frame)
    assert len(streamed) == len(offline) > 20
    got = [s.anomaly_score for s in streamed]
    assert np.allclose(offline["anomaly_score"], got, rtol=0, atol=1e-9)


SPAN_US = 3_000 * US
sparse_channel = st.dictionaries(st.integers(0, SPAN_US), st.integers(600, 1000), max_size=40)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    readings=st.tuples(sparse_channel, sparse_channel),
    decide=st.tuples(st.integers(0, SPAN_US), st.integers(0, SPAN_US)).map(sorted),
)
def test_a_slice_reads_only_the_readings_that_decide_its_steps(
    store: MonitorStore,
    pipeline: VitalRiskPipeline,
    readings: tuple[dict[int, int], ...],
    decide: list[int],
) -> None:
    """Gaps shorter and longer than the channels' reach (300 s), readings at any µs."""
    pid = f"p{next(PATIENT_IDS)}"
    t0 = T0 * US
    with store.patient_transaction(pid) as tx:
        tx.insert(
            [
                (c, t0 + t, v / 10)
                for c, found in zip(CHANNELS, readings, strict=True)
                for t, v in found.items()
            ]
        )
    first, last = (t0 + t for t in decide)
    with store.patient_transaction(pid) as tx:
        every, few = (
            stream._bounded(*tx.series(t0, t0 + SPAN_US, CHANNELS, span), t0, t0 + SPAN_US)
            for span in ((t0, t0 + SPAN_US), (first, last))
        )
    assert len(few[0]) <= len(every[0])
    grids = [stream._grid(StreamSlice(0, 0, 1, 0, *got, t0), "p", pipeline) for got in (every, few)]
    if grids[0] is None:  # nothing to grid (no reading at all)
        assert grids[1] is None
        return
    assert grids[1] is not None
    steps = (grids[0].epoch_s >= first / US - 1e-6) & (grids[0].epoch_s <= last / US + 1e-6)
    for name in ("values", "mask"):
        a, b = (getattr(g, name)[:, steps] for g in grids)
        np.testing.assert_array_equal(a, b)


@given(
    st.lists(
        st.floats(min_value=-2e9, max_value=4e9, allow_nan=False) | st.integers(-2e9, 4e9),
        min_size=1,
        max_size=20,
    ),
    st.sampled_from([0.0, 0.5, 255.0, 1e-9, 2.675]),
)
def test_window_times_are_pandas_nanosecond_timestamps(starts: list[float], span: float) -> None:
    epoch_s = np.array(starts, dtype=float) + span
    expected = pd.to_datetime(epoch_s, unit="s", utc=True).as_unit("ns").asi8 / 1e9
    assert stream._ns_seconds(epoch_s) == expected.tolist()
