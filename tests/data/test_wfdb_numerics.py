"""WFDB numerics reader: records written with the wfdb package, the real MIMIC-II sample."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb

from vitalsentry.data.sources import detect_source, read_readings
from vitalsentry.data.wfdb_numerics import read_wfdb
from vitalsentry.errors import DataError

MIMIC2 = Path(__file__).resolve().parents[2] / "../shared/datasets/wfdb_mimic2_numerics"
SIGNALS = ["HR", "ABPSys", "ABPDias", "ABPMean", "PULSE", "RESP", "SpO2", "NBPSys", "NBPDias"]
UNITS = ["bpm", "mmHg", "mmHg", "mmHg", "bpm", "pm", "%", "mmHg", "mmHg"]


def _write(
    folder: Path,
    name: str,
    values: np.ndarray,
    *,
    signals: list[str] = SIGNALS,
    units: list[str] = UNITS,
    start: dt.datetime | None = dt.datetime(2896, 10, 9, 1, 56, 25),
    comments: list[str] | None = None,
) -> Path:
    """Write a one-frame-a-minute record like MIMIC's numerics; return its header path."""
    folder.mkdir(parents=True, exist_ok=True)
    n = values.shape[1]
    wfdb.wrsamp(
        name,
        fs=1 / 60,
        units=units,
        sig_name=signals,
        p_signal=values,
        fmt=["16"] * n,
        adc_gain=[10.0] * n,
        baseline=[0] * n,
        base_time=None if start is None else start.time(),
        base_date=None if start is None else start.date(),
        comments=comments if comments is not None else ["<age>: 60 <sex>: F"],
        write_dir=str(folder),
    )
    return folder / f"{name}.hea"


def _values(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 9) plausible values in SIGNALS order, NBP only every 10th minute."""
    out = np.column_stack(
        [
            rng.uniform(60, 100, n),
            rng.uniform(100, 140, n),
            rng.uniform(50, 80, n),
            rng.uniform(70, 95, n),
            rng.uniform(60, 100, n),
            rng.uniform(10, 25, n),
            rng.uniform(92, 100, n),
            rng.uniform(100, 140, n),
            rng.uniform(50, 80, n),
        ]
    ).round(1)
    out[np.arange(n) % 10 != 0, 7:] = np.nan
    return out


@pytest.fixture
def record(tmp_path: Path) -> tuple[Path, np.ndarray]:
    values = _values(np.random.default_rng(3), 30)
    return _write(tmp_path / "s00001", "s00001-2896-10-09-01-56n", values), values


def test_one_record_maps_channels_per_minute(record: tuple[Path, np.ndarray]) -> None:
    header, values = record
    for path in (header, header.with_suffix("")):
        assert detect_source(path) == "wfdb"
        readings = read_readings(path)
        assert readings.source == "wfdb" and readings.step_s == 60.0 and readings.has_clock
        frame = readings.frame
        assert set(frame["patient_id"]) == {"s00001"}
        steps = frame["timestamp"].diff().dropna().dt.total_seconds()
        assert (steps == 60.0).all()
        first = frame["timestamp"].iloc[0]
        assert (first.hour, first.minute, first.second) == (1, 56, 25)
        assert first.day_of_week == pd.Timestamp("2896-10-09").day_of_week  # 400-year cycles
        assert any("400-year" in note for note in readings.notes)
        np.testing.assert_allclose(frame["heart_rate"], values[:, 0], atol=0.051)
        np.testing.assert_allclose(frame["map"], values[:, 3], atol=0.051)
        np.testing.assert_allclose(frame["spo2"], values[:, 6], atol=0.051)
        assert readings.static.loc["s00001", "age"] == 60.0
        assert readings.static.loc["s00001", "sex"] == 0.0


def test_second_signal_fills_gaps_and_artefacts(tmp_path: Path) -> None:
    values = _values(np.random.default_rng(4), 20)
    values[:5, 0] = np.nan  # HR missing → PULSE
    values[5, 0] = 0.0  # HR 0 (no signal) → PULSE
    values[:, 1] = 0.0  # ABP disconnected → NBP where measured, else quarantined
    readings = read_wfdb(_write(tmp_path, "s00002-2000-01-01-00-00n", values))
    frame = readings.frame
    np.testing.assert_allclose(frame["heart_rate"][:6], values[:6, 4], atol=0.051)
    nbp = ~np.isnan(values[:, 7])
    np.testing.assert_allclose(frame["systolic_bp"][nbp], values[nbp, 7], atol=0.051)
    assert frame["systolic_bp"][~nbp].isna().all()
    (entry,) = [e for e in readings.quarantine.entries if e.channel == "systolic_bp"]
    assert (entry.reason, entry.count, entry.first_row) == ("below range", int((~nbp).sum()), 2)
    assert entry.first_file == str(tmp_path / "s00002-2000-01-01-00-00n.hea")


def test_directory_joins_records_of_a_patient_and_skips_waveforms(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    _write(
        tmp_path / "a", "s00001-2000-01-01-00-00n", _values(rng, 10), start=dt.datetime(2000, 1, 1)
    )
    _write(
        tmp_path / "a", "s00001-2000-01-02-00-00n", _values(rng, 10), start=dt.datetime(2000, 1, 2)
    )
    day = dt.datetime(2000, 1, 1)
    _write(tmp_path / "b", "s00003-2000-01-01-00-00n", _values(rng, 5), start=day, comments=[])
    wave = rng.uniform(-1, 1, (50, 2))
    _write(tmp_path / "b", "3000003_0001", wave, signals=["II", "V"], units=["mV", "mV"])
    readings = read_wfdb(tmp_path)
    counts = readings.frame.groupby("patient_id").size().to_dict()
    assert counts == {"s00001": 20, "s00003": 5}
    assert any("1 header(s) without vital-sign signals skipped" in n for n in readings.notes)
    assert np.isnan(readings.static.loc["s00003", "age"])
    assert not any("400-year" in note for note in readings.notes)


def test_no_base_time_means_no_clock(tmp_path: Path) -> None:
    header = _write(tmp_path, "rec", _values(np.random.default_rng(6), 4), start=None)
    readings = read_wfdb(header)
    assert not readings.has_clock
    elapsed = readings.frame["timestamp"] - pd.Timestamp("1970-01-01", tz="UTC")
    assert (elapsed.dt.total_seconds() == [0, 60, 120, 180]).all()


# --- bad input ------------------------------------------------------------------------------


def test_header_without_its_signal_file(record: tuple[Path, np.ndarray]) -> None:
    header, _ = record
    (header.parent / "s00001-2896-10-09-01-56n.dat").unlink()
    with pytest.raises(DataError) as info:
        read_wfdb(header)
    err = info.value
    assert (err.file, err.column, err.row) == (str(header), "HR", 2)
    assert "signal file 's00001-2896-10-09-01-56n.dat' named on line 2" in err.reason


def test_truncated_signal_file(record: tuple[Path, np.ndarray]) -> None:
    header, _ = record
    data = header.with_suffix(".dat")
    data.write_bytes(data.read_bytes()[: 2 * len(SIGNALS) * 12 + 5])
    with pytest.raises(DataError) as info:
        read_wfdb(header)
    assert (info.value.file, info.value.row) == (str(data), 13)
    assert "truncated: 12 of 30 frames" in info.value.reason


def test_wrong_unit_and_bad_header(tmp_path: Path) -> None:
    units = ["bpm", "kPa", *UNITS[2:]]
    header = _write(tmp_path, "u", _values(np.random.default_rng(8), 3), units=units)
    with pytest.raises(DataError, match="unit 'kpa' is not accepted for systolic") as info:
        read_wfdb(header)
    assert (info.value.column, info.value.row) == ("ABPSys", 3)
    bad = tmp_path / "bad.hea"
    bad.write_text("bad x y\n")
    with pytest.raises(DataError, match="cannot read the header"):
        read_wfdb(bad)
    with pytest.raises(DataError, match="no such WFDB header"):
        read_wfdb(tmp_path / "absent.hea")


def test_strict_refuses_the_first_implausible_frame(tmp_path: Path) -> None:
    values = _values(np.random.default_rng(9), 6)
    values[3, 6] = 20.0
    header = _write(tmp_path, "s9-x", values)
    with pytest.raises(DataError) as info:
        read_wfdb(header, strict=True)
    assert (info.value.file, info.value.column, info.value.row) == (str(header), "SPO2", 4)


@pytest.mark.skipif(not MIMIC2.is_dir(), reason="../shared/datasets/wfdb_mimic2_numerics is absent")
def test_real_mimic2_numerics() -> None:
    readings = read_readings(MIMIC2)
    assert readings.source == "wfdb" and readings.step_s == 60.0
    assert readings.frame.groupby("patient_id").size().to_dict() == {"s00001": 1937, "s25047": 72}
    assert {"heart_rate", "spo2", "respiratory_rate", "systolic_bp", "map"} <= set(
        readings.channels
    )
    assert readings.quarantine.total > 0  # the monitor writes 0 for "no value"
