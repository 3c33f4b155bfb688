from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vitalsentry.data.schema import IOT_COLUMNS, VITALS2024_COLUMNS
from vitalsentry.data.simulate_kaggle import IOT_SENSOR_TYPES, simulate_iot, simulate_vitals2024
from vitalsentry.errors import DataError

DATASETS = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets"
VITALS_SUBSET = DATASETS / "raw" / "human_vital_signs_dataset_2024__mlh_subset.csv"
IOT_SAMPLE = DATASETS / "iot_schema_sample.csv"


def test_vitals2024_schema_rule_and_timestamps() -> None:
    frame = simulate_vitals2024(5000, seed=1)
    assert tuple(frame.columns) == VITALS2024_COLUMNS
    np.testing.assert_array_equal(frame["Patient ID"], np.arange(1, 5001))
    stamps = pd.to_datetime(frame["Timestamp"], format="%Y-%m-%d %H:%M:%S")
    assert frame["Timestamp"].iloc[0] == "2024-07-19 21:53:46"
    assert (stamps.diff().dropna() == pd.Timedelta(seconds=-60)).all()
    ranges = {
        "Heart Rate": (60, 99),
        "Respiratory Rate": (12, 19),
        "Body Temperature": (36.0, 37.5),
        "Oxygen Saturation": (95.0, 100.0),
        "Systolic Blood Pressure": (110, 139),
        "Diastolic Blood Pressure": (70, 89),
        "Age": (18, 89),
        "Weight (kg)": (50.0, 100.0),
        "Height (m)": (1.5, 2.0),
        "Derived_HRV": (0.05, 0.15),
    }
    for column, (low, high) in ranges.items():
        assert frame[column].between(low, high).all(), column
    for column in ("Heart Rate", "Age", "Systolic Blood Pressure", "Derived_Pulse_Pressure"):
        assert frame[column].dtype == np.int64
    assert set(frame["Gender"]) == {"Male", "Female"}
    pp = frame["Systolic Blood Pressure"] - frame["Diastolic Blood Pressure"]
    assert (frame["Derived_Pulse_Pressure"] == pp).all()
    bmi = frame["Weight (kg)"] / frame["Height (m)"] ** 2
    np.testing.assert_allclose(frame["Derived_BMI"], bmi, rtol=1e-9)
    np.testing.assert_allclose(
        frame["Derived_MAP"], frame["Diastolic Blood Pressure"] + pp / 3, rtol=1e-9
    )
    rule = (frame["Heart Rate"] > 90) | (frame["Derived_BMI"] > 30) | (frame["Derived_BMI"] < 18.5)
    assert (frame["Risk Category"] == np.where(rule, "High Risk", "Low Risk")).all()
    assert 0.50 < rule.mean() < 0.56
    pd.testing.assert_frame_equal(frame, simulate_vitals2024(5000, seed=1))
    assert not frame.equals(simulate_vitals2024(5000, seed=2))


def test_vitals2024_matches_real_subset() -> None:
    if not VITALS_SUBSET.exists():
        pytest.skip("../shared/datasets absent: no Human Vital Signs 2024 subset to compare with")
    real = pd.read_csv(VITALS_SUBSET)
    fake = simulate_vitals2024(len(real), seed=0)
    assert list(fake.columns) == list(real.columns)
    assert fake["Timestamp"].iloc[0] == real["Timestamp"].iloc[0]
    assert fake["Timestamp"].iloc[-1] == real["Timestamp"].iloc[-1]
    for column in real.columns:
        assert fake[column].dtype == real[column].dtype, column
        if pd.api.types.is_numeric_dtype(real[column]):
            span = real[column].max() - real[column].min()
            assert abs(fake[column].min() - real[column].min()) <= 0.02 * span, column
            assert abs(fake[column].max() - real[column].max()) <= 0.02 * span, column
            assert abs(fake[column].mean() - real[column].mean()) <= 0.02 * span, column
    real_high = (real["Risk Category"] == "High Risk").mean()
    fake_high = (fake["Risk Category"] == "High Risk").mean()
    assert abs(real_high - 0.526) < 0.001
    assert abs(fake_high - real_high) < 0.02
    hr = fake["Heart Rate"].to_numpy(dtype=float)
    assert abs(np.corrcoef(hr[:-1], hr[1:])[0, 1]) < 0.05


def test_vitals2024_full_size() -> None:  # its speed: benchmarks/bench_data.py
    frame = simulate_vitals2024(200_020)
    assert frame.shape == (200_020, 17)
    assert frame["Timestamp"].iloc[-1] == "2024-03-03 00:14:46"


def test_iot_schema_formats_and_ranges() -> None:
    frame = simulate_iot(20_000, seed=3)
    assert tuple(frame.columns) == IOT_COLUMNS
    ranges = {
        "Patient_ID": (1189, 9958),
        "Sensor_ID": (1, 4),
        "Temperature (°C)": (36.5, 37.5),
        "Systolic_BP (mmHg)": (90, 150),
        "Diastolic_BP (mmHg)": (60, 95),
        "Heart_Rate (bpm)": (60, 99),
        "Device_Battery_Level (%)": (80, 99),
        "Target_Heart_Rate": (70, 90),
        "Battery_Level (%)": (80, 100),
    }
    for column, (low, high) in ranges.items():
        assert frame[column].between(low, high).all(), column
        assert frame[column].min() == low and frame[column].max() == high, column
    for column in IOT_COLUMNS:
        if column not in ("Timestamp", "Sensor_Type", "Temperature (°C)", "Target_Health_Status"):
            assert frame[column].dtype == np.int64, column
    assert (frame["Temperature (°C)"] == frame["Temperature (°C)"].round(1)).all()
    assert set(frame["Sensor_Type"]) == set(IOT_SENSOR_TYPES)
    assert set(frame["Target_Blood_Pressure"]) == {120, 130, 140, 150}
    stamps = pd.to_datetime(frame["Timestamp"], format="%Y-%m-%d %H:%M:%S")
    assert stamps.min() == pd.Timestamp("2024-01-01 00:00") == stamps.min().floor("h")
    assert stamps.max() == pd.Timestamp("2024-01-09 07:00")
    assert (stamps == stamps.dt.floor("h")).all()
    healthy = (frame["Target_Health_Status"] == "Healthy").mean()
    assert 0.62 < healthy < 0.75
    rule = (frame["Heart_Rate (bpm)"] > frame["Target_Heart_Rate"] + 10) | (
        frame["Systolic_BP (mmHg)"] > frame["Target_Blood_Pressure"] + 10
    )
    agreement = ((frame["Target_Health_Status"] == "Unhealthy") == rule).mean()
    assert 0.93 < agreement < 0.97
    small = simulate_iot(202, seed=0)
    assert small["Patient_ID"].value_counts().max() <= 3
    assert small["Patient_ID"].nunique() > 190
    pd.testing.assert_frame_equal(small, simulate_iot(202, seed=0))


def test_iot_matches_schema_sample() -> None:
    if not IOT_SAMPLE.exists():
        pytest.skip("../shared/datasets absent: no IoT schema sample to compare with")
    sample = pd.read_csv(IOT_SAMPLE)
    fake = simulate_iot(len(sample))
    assert list(fake.columns) == list(sample.columns)
    for column in sample.columns:
        assert fake[column].dtype == sample[column].dtype, column
    assert set(sample["Sensor_Type"]) <= set(fake["Sensor_Type"]) | set(IOT_SENSOR_TYPES)


@pytest.mark.parametrize("rows", [0, -5, 2.5, True])
def test_schema_generators_reject_bad_rows(rows: object) -> None:
    for generator in (simulate_vitals2024, simulate_iot):
        with pytest.raises(DataError, match="rows"):
            generator(rows)  # type: ignore[arg-type]
