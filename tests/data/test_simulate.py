from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from vitalsentry.data import simulate
from vitalsentry.data.readings import validate_frame
from vitalsentry.data.schema import CHANNELS, STATIC_FIELDS
from vitalsentry.data.simulate import (
    EVENT_COLUMNS,
    EVENT_TYPES,
    SIMULATED_CHANNELS,
    SimulationConfig,
    simulate_cohort,
)
from vitalsentry.errors import DataError

SMALL = SimulationConfig(patients=4, hours=2.0, seed=7)


@pytest.fixture(scope="module")
def cohort() -> tuple[pd.DataFrame, pd.DataFrame]:
    return simulate_cohort(SMALL)


@pytest.fixture(scope="module")
def long_cohort() -> tuple[pd.DataFrame, pd.DataFrame]:
    return simulate_cohort(SimulationConfig(patients=8, hours=12.0, seed=3, event_fraction=1.0))


def _inside_events(readings: pd.DataFrame, events: pd.DataFrame) -> np.ndarray:
    inside = np.zeros(len(readings), dtype=bool)
    for event in events.itertuples():
        inside |= (
            (readings["patient_id"] == event.patient_id)
            & (readings["timestamp"] >= event.onset)
            & (readings["timestamp"] < event.end)
        ).to_numpy()
    return inside


def _lag1(values: np.ndarray) -> float:
    return float(np.corrcoef(values[:-1], values[1:])[0, 1])


# --- cohort -------------------------------------------------------------------------------


def test_cohort_is_deterministic_under_seed(cohort: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    readings, events = simulate_cohort(SMALL)
    pd.testing.assert_frame_equal(readings, cohort[0])
    pd.testing.assert_frame_equal(events, cohort[1])
    other, _ = simulate_cohort(SimulationConfig(patients=4, hours=2.0, seed=8))
    assert len(other) != len(readings) or not np.allclose(
        other["heart_rate"].to_numpy(), readings["heart_rate"].to_numpy()
    )


def test_readings_schema_ranges_and_static(cohort: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    readings, events = cohort
    assert list(readings.columns) == [
        "patient_id",
        "timestamp",
        *SIMULATED_CHANNELS,
        "label",
        *STATIC_FIELDS,
    ]
    assert str(readings["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert readings["label"].dtype == np.int8
    assert sorted(readings["patient_id"].unique()) == ["P0001", "P0002", "P0003", "P0004"]
    for name in SIMULATED_CHANNELS:
        assert readings[name].dtype == np.float64
        values = readings[name].dropna()
        assert values.between(CHANNELS[name].low, CHANNELS[name].high).all(), name
    for name, (low, high) in simulate._LIMITS.items():
        assert CHANNELS[name].low <= low < high <= CHANNELS[name].high
    assert (readings.groupby("patient_id")[list(STATIC_FIELDS)].nunique() == 1).all().all()
    assert set(readings["sex"].unique()) <= {0, 1}
    assert list(events.columns) == list(EVENT_COLUMNS)
    assert str(events["onset"].dtype) == "datetime64[ns, UTC]"
    pd.testing.assert_frame_equal(validate_frame(readings, "sim"), readings)


def test_multirate_sampling_pattern(cohort: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    readings, _ = cohort
    seconds = readings["timestamp"].dt.second.to_numpy()
    assert readings["heart_rate"].notna().all()
    np.testing.assert_array_equal(readings["spo2"].notna().to_numpy(), seconds == 0)
    np.testing.assert_array_equal(readings["respiratory_rate"].notna().to_numpy(), seconds == 0)
    for patient, rows in readings.groupby("patient_id"):
        gaps = rows["timestamp"].diff().dt.total_seconds().dropna()
        assert (gaps >= 1).all()
        for column, period in (("temperature", 300), ("systolic_bp", 1800)):
            measured = rows["timestamp"][rows[column].notna()]
            assert len(measured) >= 3, (patient, column)
            assert (measured.diff().dropna().dt.total_seconds() % period == 0).all()
        bp = rows["systolic_bp"].notna().to_numpy()
        np.testing.assert_array_equal(bp, rows["diastolic_bp"].notna().to_numpy())
        assert np.all(rows["systolic_bp"][bp] > rows["diastolic_bp"][bp])


def test_other_periods_are_honoured() -> None:
    config = SimulationConfig(
        patients=1, hours=1.0, event_fraction=0.0, hr_every_s=2, spo2_every_s=30, dropouts_per_h=0
    )
    readings, events = simulate_cohort(config)
    elapsed = (readings["timestamp"] - readings["timestamp"].iloc[0]).dt.total_seconds()
    assert events.empty
    assert (elapsed[readings["heart_rate"].notna()] % 2 == 0).all()
    assert (elapsed[readings["spo2"].notna()] % 30 == 0).all()
    assert readings["spo2"].notna().sum() == 120
    assert readings[list(SIMULATED_CHANNELS)].notna().any(axis=1).all()


def test_labels_are_exactly_inside_events(cohort: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    for readings, events in (cohort, simulate_cohort(SimulationConfig(patients=3, seed=5))):
        assert not events.empty
        assert set(events["event_type"]) <= set(EVENT_TYPES)
        assert (events["onset"] < events["end"]).all()
        np.testing.assert_array_equal(
            readings["label"].to_numpy() == 1, _inside_events(readings, events)
        )


def test_event_patients_and_time_share() -> None:
    config = SimulationConfig(patients=10, hours=2.0, seed=11, event_fraction=0.4)
    readings, events = simulate_cohort(config)
    assert events["patient_id"].nunique() == 4
    share = readings.groupby("patient_id")["label"].mean()
    assert (share > 0).sum() == 4
    assert share[share > 0].between(0.05, 0.30).all()
    for _, group in events.groupby("patient_id"):
        assert (group["onset"].iloc[1:].to_numpy() >= group["end"].iloc[:-1].to_numpy()).all()


def test_short_record_still_gets_an_event() -> None:
    readings, events = simulate_cohort(SimulationConfig(patients=2, hours=0.5, event_fraction=1.0))
    assert events["patient_id"].nunique() == 2
    assert set(events["event_type"]) <= {"hypoxaemia", "tachyarrhythmia", "bradyarrhythmia"}
    assert 0 < readings["label"].mean() < 0.6


def test_event_signatures(long_cohort: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    readings, events = long_cohort
    assert set(events["event_type"]) == set(EVENT_TYPES)
    share = readings.groupby("patient_id")["label"].mean()
    assert share.between(0.05, 0.30).all()
    for event in events.itertuples():
        rows = readings[readings["patient_id"] == event.patient_id]
        inside = ((rows["timestamp"] >= event.onset) & (rows["timestamp"] < event.end)).to_numpy()
        normal = rows["label"].to_numpy() == 0
        hr_in, hr_ref = rows["heart_rate"][inside], rows["heart_rate"][normal]
        if event.event_type == "sepsis_drift":
            assert hr_in.median() - hr_ref.median() > 6
            temp = rows["temperature"]
            assert temp[inside].median() - temp[normal].median() > 0.5
            assert (
                rows["respiratory_rate"][inside].median()
                > rows["respiratory_rate"][normal].median()
            )
        elif event.event_type == "hypoxaemia":
            assert rows["spo2"][inside].median() <= 90
            assert hr_in.median() > hr_ref.median()
        elif event.event_type == "tachyarrhythmia":
            assert hr_in.median() >= 120
            assert np.diff(hr_in.to_numpy()).std() > 3 * np.diff(hr_ref.to_numpy()).std()
        else:
            assert hr_in.median() <= 52


def test_hr_is_smooth_on_normal_patients(cohort: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    readings, events = cohort
    normal = set(readings["patient_id"]) - set(events["patient_id"])
    assert len(normal) == 2
    for patient in normal:
        hr = readings.loc[readings["patient_id"] == patient, "heart_rate"].to_numpy()
        assert _lag1(hr) > 0.9


def test_circadian_rhythm_lower_at_night() -> None:
    config = SimulationConfig(patients=3, hours=24.0, event_fraction=0.0, start_spread_h=0.0)
    readings, _ = simulate_cohort(config)
    assert (readings["label"] == 0).all()
    hour = readings["timestamp"].dt.hour
    night = (hour >= 1) & (hour < 6)
    day = (hour >= 12) & (hour < 20)
    for _, rows in readings.groupby("patient_id"):
        for name in ("heart_rate", "temperature", "systolic_bp"):
            assert rows[name][night].mean() < rows[name][day].mean(), name


def test_nuisances_are_visible_and_unlabelled() -> None:
    config = SimulationConfig(
        hours=4.0,
        activity_per_h=2.0,
        hr_artefacts_per_h=4.0,
        spo2_artefacts_per_h=3.0,
        dropouts_per_h=2.0,
    )
    record = simulate._simulate_patient(config, "P0001", np.random.default_rng(1), True)
    kinds = {n.kind for n in record.nuisances}
    assert kinds == {"activity", "hr_artefact", "spo2_artefact", "dropout"}
    assert record.events and record.label.any()
    hr, spo2 = record.values["heart_rate"], record.values["spo2"]
    spo2_median = np.nanmedian(spo2[record.label == 0])
    dips, rises = [], []
    for nuisance in record.nuisances:
        for event in record.events:
            assert nuisance.stop <= event.start or nuisance.start >= event.stop
        rows = (record.seconds >= nuisance.start) & (record.seconds < nuisance.stop)
        assert not record.label[rows].any()
        # the 30 s before a nuisance are free of other nuisances and of events
        before = (record.seconds >= nuisance.start - 30) & (record.seconds < nuisance.start)
        if nuisance.kind == "dropout":
            assert not rows.any()
        elif nuisance.kind == "hr_artefact":
            assert np.all(np.abs(hr[rows] - np.median(hr[before])) > 12)
        elif nuisance.kind == "spo2_artefact":
            assert 1 <= np.count_nonzero(~np.isnan(spo2[rows])) <= 3
            dips.extend(spo2_median - spo2[rows][~np.isnan(spo2[rows])])
        else:
            plateau = (record.seconds >= nuisance.start + nuisance.rise) & (
                record.seconds < nuisance.stop - nuisance.fall
            )
            rises.append(hr[plateau].mean() - hr[before].mean())
            assert abs(np.nanmean(spo2[plateau]) - spo2_median) < 2.5
    assert min(dips) > 0 and np.mean(dips) > 4
    assert min(rises) > 0 and np.mean(rises) > 10


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("patients", 0),
        ("hours", 0.0),
        ("hours", float("nan")),
        ("event_fraction", 1.5),
        ("hours", 0.2),
        ("spo2_every_s", 0),
        ("event_time_share", (0.3, 0.1)),
        ("max_events", 0),
        ("dropouts_per_h", -1.0),
        ("start", "not a time"),
        ("noise_scale", 0.0),
        ("patient_spread", float("inf")),
        ("event_duration_scale", -1.0),
        ("event_types", ()),
        ("event_types", ("sepsis_drift", "stroke")),
    ],
)
def test_config_rejects_bad_settings(field: str, value: object) -> None:
    with pytest.raises(DataError, match=field):
        SimulationConfig(**{field: value})  # type: ignore[arg-type]


def test_config_start_without_zone_is_utc() -> None:
    config = SimulationConfig(start="2024-03-01 08:00", start_spread_h=0.0)
    assert config.start_timestamp == pd.Timestamp("2024-03-01T08:00Z")
    config = dataclasses.replace(config, hours=0.1, event_fraction=0.0, dropouts_per_h=0.0)
    readings, _ = simulate_cohort(config)
    assert readings["timestamp"].iloc[0] == pd.Timestamp("2024-03-01T08:00Z")
    assert readings["timestamp"].iloc[-1] == pd.Timestamp("2024-03-01T08:05:59Z")


def _hr_stats(**knobs: object) -> tuple[float, float, pd.DataFrame]:
    """Median step-to-step HR change, spread of patient HR means, and the events."""
    settings: dict[str, object] = {"patients": 6, "hours": 1.0, "seed": 5, **knobs}
    config = SimulationConfig(**settings)  # type: ignore[arg-type]
    frame, events = simulate_cohort(config)
    hr = frame.dropna(subset=["heart_rate"])
    steps = hr.groupby("patient_id")["heart_rate"].diff().abs().median()
    spread = hr.groupby("patient_id")["heart_rate"].mean().std()
    return float(steps), float(spread), events


def test_stress_knobs_change_what_they_name() -> None:
    base_steps, base_spread, _ = _hr_stats(event_fraction=0.0)
    noisy_steps, _, _ = _hr_stats(event_fraction=0.0, noise_scale=4.0)
    _, wide_spread, _ = _hr_stats(event_fraction=0.0, patient_spread=3.0)
    assert noisy_steps > 1.5 * base_steps
    assert wide_spread > 1.5 * base_spread
    _, _, slow = _hr_stats(event_types=("sepsis_drift",), hours=6.0)
    assert set(slow["event_type"]) == {"sepsis_drift"}
    _, _, sudden = _hr_stats(event_types=("tachyarrhythmia",), event_duration_scale=0.5)
    assert set(sudden["event_type"]) == {"tachyarrhythmia"}
    minutes = (sudden["end"] - sudden["onset"]).dt.total_seconds() / 60
    assert minutes.max() <= 20.5  # plateau 10–40 min halved


def test_event_scale_shrinks_event_levels_towards_normal() -> None:
    config = SimulationConfig(patients=4, hours=1.0, seed=2, event_fraction=1.0)
    half = dataclasses.replace(config, event_scale=0.5)
    _, full_events = simulate_cohort(config)
    _, half_events = simulate_cohort(half)
    pd.testing.assert_series_equal(full_events["event_type"], half_events["event_type"])
    assert not full_events["description"].equals(half_events["description"])


def test_inject_event_changes_only_the_labelled_span() -> None:
    from vitalsentry.data.simulate import inject_event

    hr = np.full(4000, 70.0)
    label = inject_event({"heart_rate": hr}, "tachyarrhythmia", 1000, np.random.default_rng(0))
    assert label.any() and not label[:1000].any()
    assert hr[label].mean() > 120  # level 130–170 /min
    assert (hr[:1000] == 70.0).all()
    with pytest.raises(DataError, match="start"):
        inject_event({"heart_rate": np.zeros(100)}, "hypoxaemia", 50, np.random.default_rng(0))
    with pytest.raises(DataError, match="kind"):
        inject_event({"heart_rate": np.zeros(100)}, "stroke", 0, np.random.default_rng(0))
