from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vitalsentry.config import DataConfig, WindowConfig
from vitalsentry.data.prepared import (
    STREAM_NOTE,
    load_prepared,
    prepare,
    save_prepared,
    window_frame,
)
from vitalsentry.data.readings import Readings, validate_frame
from vitalsentry.errors import DataError

EMPTY_STATIC = pd.DataFrame(index=pd.Index([], name="patient_id"))


def cohort(n_patients: int = 10, seconds: int = 3600, seed: int = 0) -> Readings:
    rng = np.random.default_rng(seed)
    parts = []
    for p in range(n_patients):
        t = pd.date_range("2024-01-01", periods=seconds, freq="s", tz="UTC")
        hr = 70 + 5 * np.sin(np.arange(seconds) / 300) + rng.normal(0, 1, seconds)
        spo2 = np.full(seconds, np.nan)
        spo2[::60] = 97 + rng.normal(0, 0.5, len(spo2[::60]))
        label = (
            (np.arange(seconds) > seconds * 0.8).astype(np.int8)
            if p % 2
            else np.zeros(seconds, np.int8)
        )
        parts.append(
            pd.DataFrame(
                {
                    "patient_id": f"P{p:02d}",
                    "timestamp": t,
                    "heart_rate": hr,
                    "spo2": spo2,
                    "label": label,
                }
            )
        )
    frame = validate_frame(pd.concat(parts, ignore_index=True), "cohort")
    return Readings(frame=frame, static=EMPTY_STATIC, source="tidy", stream=False, path="cohort")


def stream_readings(n: int = 600) -> Readings:
    rng = np.random.default_rng(1)
    ts = pd.Timestamp("2024-07-19 21:53:46", tz="UTC") - pd.to_timedelta(
        np.arange(n) * 60, unit="s"
    )
    hr = rng.integers(60, 100, n).astype(float)
    bmi = rng.uniform(15, 35, n)
    label = ((hr > 90) | (bmi > 30) | (bmi < 18.5)).astype(np.int8)
    ids = [str(i + 1) for i in range(n)]
    frame = pd.DataFrame(
        {
            "patient_id": ids,
            "timestamp": ts,
            "heart_rate": hr,
            "spo2": rng.uniform(95, 100, n),
            "label": label,
        }
    )
    static = pd.DataFrame({"bmi": bmi}, index=pd.Index(ids, name="patient_id"))
    return Readings(
        frame=validate_frame(frame, "vitals"),
        static=static,
        source="vitals2024",
        stream=True,
        path="v",
    )


def test_seed_configuration_shape_and_splits() -> None:
    prepared = prepare(cohort(), DataConfig(), WindowConfig())
    n = len(prepared)
    assert prepared.windows.shape == (n, 4, 256)
    assert prepared.windows.dtype == np.float32
    assert prepared.feature_names == ("heart_rate", "spo2", "hour_sin", "hour_cos")
    assert set(np.unique(prepared.split)) == {0, 1, 2}
    for code in (0, 1, 2):  # no patient in two splits
        others = set(prepared.patient[prepared.split != code])
        assert not others & set(prepared.patient[prepared.split == code])
    assert np.isfinite(prepared.windows).all()


def test_scaler_fitted_on_training_split_only() -> None:
    prepared = prepare(cohort(), DataConfig(), WindowConfig())
    train = prepared.windows[prepared.split == 0]
    np.testing.assert_allclose(prepared.scaler.mean_[0], train[:, 0].mean(), rtol=1e-5)
    assert prepared.scaler.mean_[2] == 0.0 and prepared.scaler.scale_[2] == 1.0  # time never scaled


def test_window_label_is_last_step_label() -> None:
    prepared = prepare(cohort(), DataConfig(), WindowConfig(label_mode="last"))
    end_offset = prepared.end_s - pd.Timestamp("2024-01-01", tz="UTC").timestamp()
    abnormal_patient = np.isin(prepared.patient, [f"P{p:02d}" for p in range(1, 10, 2)])
    expected = (abnormal_patient & (end_offset > 3600 * 0.8)).astype(np.int8)
    np.testing.assert_array_equal(prepared.labels, expected)


def test_save_load_round_trip_and_tamper(tmp_path: Path) -> None:
    prepared = prepare(cohort(n_patients=6, seconds=1200), DataConfig(), WindowConfig())
    save_prepared(prepared, tmp_path / "p")
    loaded = load_prepared(tmp_path / "p")
    np.testing.assert_array_equal(loaded.windows, prepared.windows)
    np.testing.assert_array_equal(loaded.patient, prepared.patient)
    assert loaded.fingerprint == prepared.fingerprint
    np.testing.assert_array_equal(loaded.scaled_windows(), prepared.scaled_windows())
    with open(tmp_path / "p" / "labels.npy", "ab") as fh:
        fh.write(b"x")
    with pytest.raises(DataError, match="sha256"):
        load_prepared(tmp_path / "p")


def test_load_refuses_unlisted_files_as_bundles_do(tmp_path: Path) -> None:
    prepared = prepare(cohort(n_patients=6, seconds=1200), DataConfig(), WindowConfig())
    save_prepared(prepared, tmp_path / "p")
    (tmp_path / "p" / "extra.npy").write_bytes(b"x")
    with pytest.raises(DataError, match=r"'extra\.npy' is not listed in manifest\.json"):
        load_prepared(tmp_path / "p")


def test_load_refuses_non_prepared_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a prepared data folder"):
        load_prepared(tmp_path)


def test_failed_save_leaves_nothing(tmp_path: Path) -> None:
    prepared = prepare(
        cohort(n_patients=4, seconds=900), DataConfig(split=(0.5, 0.5)), WindowConfig()
    )
    broken = prepared.select(np.ones(len(prepared), bool))
    object.__setattr__(broken, "static", None)  # to_parquet fails mid-write
    with pytest.raises(AttributeError):
        save_prepared(broken, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_missing_channel_and_short_series_errors() -> None:
    with pytest.raises(DataError, match="respiratory_rate not in the data"):
        prepare(
            cohort(2, 600), DataConfig(channels=("heart_rate", "respiratory_rate")), WindowConfig()
        )
    with pytest.raises(DataError, match="no complete window"):
        prepare(cohort(4, 200), DataConfig(split=(0.5, 0.5)), WindowConfig())


def test_stream_mode_feeds_and_reading_patient() -> None:
    readings = stream_readings()
    prepared = prepare(readings, DataConfig(), WindowConfig())
    assert set(prepared.patient) <= {"stream-train", "stream-val", "stream-test"}
    assert STREAM_NOTE in prepared.notes
    assert prepared.reading_patient is not None
    # the window label is the label of the latest reading's patient
    lab = readings.frame.set_index("patient_id")["label"]
    np.testing.assert_array_equal(prepared.labels, lab.loc[prepared.reading_patient].to_numpy())


def test_latest_only_window_ends_at_last_complete_step() -> None:
    readings = cohort(3, 1000)
    cut, _ = window_frame(
        readings.frame, DataConfig(), WindowConfig(), max_gap_s=300, latest_only=True
    )
    assert cut.windows.shape == (3, 4, 256)
    last_spo2 = readings.frame.dropna(subset=["spo2"]).groupby("patient_id")["timestamp"].max()
    ends = cut.start_s + 255
    np.testing.assert_allclose(ends, [t.timestamp() for t in last_spo2])


def test_split_by_time_splits_one_long_recording() -> None:
    one = cohort(n_patients=1, seconds=7200)
    with pytest.raises(DataError, match="at least 3 patients"):
        prepare(one, DataConfig(), WindowConfig(length=64, stride=32))
    data = DataConfig(split_by="time")
    prepared = prepare(one, data, WindowConfig(length=64, stride=32))
    assert set(np.unique(prepared.split)) == {0, 1, 2}
    ends = prepared.end_s
    for a, b in ((0, 1), (1, 2)):
        gap = prepared.start_s[prepared.split == b].min() - ends[prepared.split == a].max()
        assert gap >= 64 * data.step_s  # no window straddles, blocks a window apart
    train_share = (prepared.split == 0).mean()
    assert 0.6 < train_share < 0.75
    assert DataConfig.from_dict(data.to_dict()).split_by == "time"


def test_split_by_time_in_stream_mode_is_one_feed() -> None:
    prepared = prepare(
        stream_readings(), DataConfig(step_s=60.0, split_by="time"), WindowConfig(16, 8)
    )
    assert set(prepared.patient) == {"stream"}
    assert set(np.unique(prepared.split)) == {0, 1, 2}
    assert prepared.reading_patient is not None and len(set(prepared.reading_patient)) > 1
