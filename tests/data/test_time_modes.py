"""Time features clock / stay / none / auto: never an invented clock, recorded in the config."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vitalsentry.config import DataConfig, WindowConfig
from vitalsentry.data.prepared import prepare, window_frame
from vitalsentry.data.readings import Readings
from vitalsentry.data.sources import SAMPLE_DIR, read_readings
from vitalsentry.data.timefeatures import series_time_features, stay_features
from vitalsentry.errors import DataError, VitalSentryError

WINDOW = WindowConfig(length=32, stride=32)


def heart_rate() -> Readings:
    return read_readings(SAMPLE_DIR / "heart_rate_sample.csv", "heart-rate", step_s=60.0)


@settings(max_examples=40, deadline=None)
@given(
    origin=st.floats(-1e9, 2e9),
    offsets=st.lists(st.floats(0, 1e7), min_size=1, max_size=20),
)
def test_stay_is_monotone_from_zero(origin: float, offsets: list[float]) -> None:
    t = origin + np.sort(np.asarray(offsets))
    got = stay_features(t, origin)
    assert got.shape == (1, t.size) and (got >= 0).all()
    assert (np.diff(got[0]) >= 0).all()
    np.testing.assert_allclose(got[0], np.log1p((t - origin) / 3600), rtol=1e-5, atol=1e-5)


def test_modes_shapes() -> None:
    t = 1.7e9 + np.arange(5.0) * 3600
    assert series_time_features("none", t, t[0]).shape == (0, 5)
    assert series_time_features("clock", t, t[0], day_of_week=True).shape == (4, 5)
    np.testing.assert_allclose(series_time_features("stay", t, t[0])[0, 1], np.log1p(1.0))
    with pytest.raises(DataError, match="unknown time features"):
        series_time_features("lunar", t, t[0])


def test_no_wall_clock_refuses_clock_and_auto_chooses_stay() -> None:
    readings = heart_rate()
    assert not readings.clock
    with pytest.raises(DataError, match="no wall-clock time"):
        prepare(readings, DataConfig(channels=("heart_rate",), step_s=60.0), WINDOW)
    auto = DataConfig(channels=("heart_rate",), step_s=60.0, time_features="auto")
    prepared = prepare(readings, auto, WINDOW)
    assert prepared.data.time_features == "stay"  # saved resolved
    assert prepared.feature_names == ("heart_rate", "stay_log_hours")
    assert any("auto chose stay" in n and "no clock was invented" in n for n in prepared.notes)
    first = prepared.start_s == prepared.start_s.min()
    assert (prepared.windows[first, 1, 0] == 0).all()  # each series starts its stay at 0
    assert prepared.windows[:, 1].max() == pytest.approx(np.log1p(383 / 60), rel=1e-4)  # step 383
    assert (prepared.scaler.mean_[1], prepared.scaler.scale_[1]) == (0.0, 1.0)


def test_auto_with_a_wall_clock_is_clock_and_none_has_no_time_channel() -> None:
    readings = read_readings(SAMPLE_DIR / "vitals2024_sample.csv")
    data = DataConfig(step_s=60.0, time_features="auto", day_of_week=True)
    prepared = prepare(readings, data, WINDOW)
    assert prepared.data.time_features == "clock"
    assert prepared.feature_names[-4:] == ("hour_sin", "hour_cos", "dow_sin", "dow_cos")
    assert any("auto chose clock" in n for n in prepared.notes)
    for encoding in ("per_timestep", "per_window"):
        none = DataConfig(step_s=60.0, time_features="none", time_encoding=encoding)
        assert prepare(readings, none, WINDOW).windows.shape[1] == 2
    with pytest.raises(VitalSentryError, match="day_of_week"):
        DataConfig(time_features="stay", day_of_week=True)


def test_live_window_stay_counts_from_the_series_start() -> None:
    readings = heart_rate()
    data = DataConfig(channels=("heart_rate",), step_s=60.0, time_features="stay")
    cut, _ = window_frame(readings.frame, data, WINDOW, latest_only=True)
    series_start = readings.frame.groupby("patient_id")["timestamp"].min()
    assert series_start.nunique() == 1  # the series start together here
    elapsed = (cut.start_s - series_start.iloc[0].timestamp()) / 3600
    np.testing.assert_allclose(cut.windows[:, 1, 0], np.log1p(elapsed), rtol=1e-5)
    assert (elapsed > 0).any()
