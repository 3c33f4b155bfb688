"""Gap policy per channel: defaults by measurement, CLI parsing, the multi-rate export."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vitalsentry.config import DataConfig, WindowConfig
from vitalsentry.data.gaps import default_limits, parse_gap_options, resolve_limits
from vitalsentry.data.prepared import prepare
from vitalsentry.data.readings import Readings, validate_frame
from vitalsentry.errors import DataError, VitalSentryError

ALL = ("heart_rate", "spo2", "respiratory_rate", "temperature", "systolic_bp", "diastolic_bp")
EVERY_S = {  # the monitor export of issue 12
    "heart_rate": 1,
    "spo2": 60,
    "respiratory_rate": 60,
    "temperature": 900,
    "systolic_bp": 1800,
    "diastolic_bp": 1800,
}


def multi_rate_export(patients: int = 3, hours: float = 3.0) -> Readings:
    """HR each second, SpO2 and RR each minute, temperature each 15 min, BP each 30 min."""
    rng = np.random.default_rng(0)
    n = int(hours * 3600)
    parts = []
    for p in range(patients):
        t = np.arange(n) + rng.integers(0, 60)  # the devices are not in phase
        part = {"patient_id": f"P{p}", "timestamp": pd.to_datetime(1.7e9 + t, unit="s", utc=True)}
        level = {"heart_rate": 80, "spo2": 97, "respiratory_rate": 16, "temperature": 37.0}
        level |= {"systolic_bp": 120, "diastolic_bp": 75}
        for name, every in EVERY_S.items():
            values = level[name] + rng.normal(0, 0.5, n)
            values[(np.arange(n) + 7 * p) % every != 0] = np.nan
            part[name] = values
        parts.append(pd.DataFrame(part))
    frame = validate_frame(pd.concat(parts, ignore_index=True), "export.csv")
    static = pd.DataFrame(index=pd.Index([], name="patient_id"))
    return Readings(frame, static, "tidy", False, "export.csv")


def test_multi_rate_export_gives_windows_with_the_defaults() -> None:
    readings = multi_rate_export()
    window = WindowConfig(length=256, stride=256)
    prepared = prepare(readings, DataConfig(channels=ALL), window)
    per_patient = 3 * 3600 // 256
    assert len(prepared) >= 0.8 * 3 * per_patient  # BP interpolated across its 30-min cycle
    assert np.isfinite(prepared.windows).all()
    old = DataConfig(channels=ALL, gap_carry_s=(0.0,) * 6, gap_interpolate_s=(300.0,) * 6)
    with pytest.raises(DataError, match="no complete window"):  # one 300 s limit for all
        prepare(readings, old, window)


def test_observed_mask_and_time_since_are_unscaled_inputs() -> None:
    data = DataConfig(channels=ALL, observed_mask=True, time_since=True)
    prepared = prepare(multi_rate_export(), data, WindowConfig(length=256, stride=256))
    names = prepared.feature_names
    assert names[6:18] == tuple(f"{c}_observed" for c in ALL) + tuple(f"{c}_since" for c in ALL)
    observed = prepared.windows[:, 6:12]
    assert set(np.unique(observed)) <= {0.0, 1.0}
    share = observed.mean(axis=(0, 2))
    for name, got in zip(ALL, share, strict=True):
        assert got == pytest.approx(1 / EVERY_S[name], rel=0.35)
    since = prepared.windows[:, 12:18]
    assert since.min() >= 0 and since.max() <= 1 and since[:, 4].max() > 0.2
    scaler = prepared.scaler
    assert (scaler.mean_[6:] == 0).all() and (scaler.scale_[6:] == 1).all()


def test_defaults_follow_the_measurement_and_the_step() -> None:
    assert default_limits("heart_rate", 300.0, 1.0).interpolate_s == 300.0
    assert default_limits("systolic_bp", 300.0, 1.0).interpolate_s > 3600
    assert default_limits("temperature", 300.0, 1.0).carry_s >= 4 * 3600
    hourly = default_limits("heart_rate", 3600.0, 3600.0)
    assert hourly.interpolate_s == 7200.0  # one missed hourly sample is bridged
    data = DataConfig(channels=("heart_rate", "systolic_bp"))
    assert DataConfig.from_dict(data.to_dict()) == data
    saved = data.to_dict()
    del saved["gap_interpolate_s"], saved["gap_carry_s"]  # a bundle from before the policy
    assert DataConfig.from_dict(saved) == data


def test_gap_options() -> None:
    channels = ("heart_rate", "systolic_bp")
    found = parse_gap_options(["all=10min", "systolic_bp=2h:1h"], channels)
    assert found == {"heart_rate": (600.0, None), "systolic_bp": (7200.0, 3600.0)}
    interp, carry = resolve_limits(channels, found, 300.0, 1.0)
    assert interp == (600.0, 7200.0) and carry == (0.0, 3600.0)
    for bad, words in (
        ("spo2=1h", "not a prepared channel"),
        ("heart_rate", "CHANNEL=INTERPOLATE"),
        ("heart_rate=soon", "not a duration"),
        ("heart_rate=-5", "≥ 0"),
    ):
        with pytest.raises(VitalSentryError, match=words):
            parse_gap_options([bad], channels)
    with pytest.raises(VitalSentryError, match="one value per channel"):
        DataConfig(channels=channels, gap_carry_s=(1.0,))
