"""StreamMonitor on its own: slices bounded across long gaps, and still equal to offline scoring."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from vitalsentry.data.schema import PATIENT_COLUMN, TIMESTAMP_COLUMN
from vitalsentry.monitor.store import US, MonitorStore
from vitalsentry.monitor.stream import Measurement, StreamConfig, StreamMonitor
from vitalsentry.pipeline import VitalRiskPipeline
from vitalsentry.risk.multiview import ViewInputs, ViewSettings

_spec = importlib.util.spec_from_file_location(  # no conftest here: it would shadow serve's
    "serve_fixtures", Path(__file__).parents[1] / "serve" / "conftest.py"
)
assert _spec is not None and _spec.loader is not None
serve_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(serve_fixtures)
bundle_dir = serve_fixtures.bundle_dir  # the service tests' untrained bundle
pipeline = serve_fixtures.pipeline

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
def slices(pipeline: VitalRiskPipeline, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Seconds spanned by each frame the pipeline scores (its grid has that many steps + 1)."""
    spans: list[float] = []
    score_frame: Callable[..., pd.DataFrame] = pipeline.score_frame

    def spy(frame: pd.DataFrame, **kwargs: Any) -> pd.DataFrame:
        times = frame[TIMESTAMP_COLUMN]
        spans.append((times.max() - times.min()).total_seconds())
        return score_frame(frame, **kwargs)

    monkeypatch.setattr(pipeline, "score_frame", spy)
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
