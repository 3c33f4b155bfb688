from __future__ import annotations

import csv
import gzip
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vitalsentry.data.schema import VITAL_CHANNELS
from vitalsentry.data.sources import (
    ELAPSED_NOTE,
    IOT_COLUMNS,
    SAMPLE_DIR,
    SERIES_START,
    SOURCES,
    SPO2_PROXY_NOTE,
    detect_source,
    load_frame,
    read_readings,
    spo2_proxy,
)
from vitalsentry.errors import DataError

VITALS = SAMPLE_DIR / "vitals2024_sample.csv"
IOT = SAMPLE_DIR / "iot_sample.csv"
HEART = SAMPLE_DIR / "heart_rate_sample.csv"
SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets"
IOT_HEADER = ",".join(IOT_COLUMNS)


def _write(tmp_path: Path, text: str, name: str = "f.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _vitals_rows(n: int = 10) -> tuple[list[str], list[list[str]]]:
    with VITALS.open(newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], [list(r) for r in rows[1 : n + 1]]


def _vitals_variant(tmp_path: Path, row: int, column: str, value: str) -> Path:
    """Sample's first 10 rows with data row ``row`` (1-based) of ``column`` set to ``value``."""
    header, rows = _vitals_rows()
    rows[row - 1][header.index(column)] = value
    lines = [",".join(header), *(",".join(r) for r in rows)]
    return _write(tmp_path, "\n".join(lines) + "\n")


def _raises(path: Path, **kwargs: object) -> DataError:
    """The error reading ``path`` gives; implausible readings are refused (``strict``)."""
    kwargs.setdefault("strict", True)
    with pytest.raises(DataError) as info:
        read_readings(path, **kwargs)  # type: ignore[arg-type]
    return info.value


def _iot(tmp_path: Path, *rows: str) -> Path:
    return _write(tmp_path, "\n".join([IOT_HEADER, *rows]) + "\n")


# --- public constants and detection -------------------------------------------------------


def test_sources_are_the_documented_tuple() -> None:
    assert SOURCES == ("auto", "vitals2024", "iot", "heart-rate", "tidy", "physionet2019", "wfdb")


@pytest.mark.parametrize(
    ("path", "expected"), [(VITALS, "vitals2024"), (IOT, "iot"), (HEART, "heart-rate")]
)
def test_detect_source_on_samples(path: Path, expected: str) -> None:
    assert detect_source(path) == expected


def test_detect_source_tidy_needs_timestamp_or_step(tmp_path: Path) -> None:
    with_ts = _write(tmp_path, "Patient_Id,Timestamp,hr\na,2024-01-01T00:00:00Z,70\n", "a.csv")
    without = _write(tmp_path, "patient_id,hr\na,70\n", "b.csv")
    assert detect_source(with_ts) == "tidy"
    assert detect_source(without, step_s=1.0) == "tidy"
    with pytest.raises(DataError, match="tidy") as info:
        detect_source(without)
    assert "vitals2024" in info.value.reason and "heart-rate" in info.value.reason


@pytest.mark.parametrize("header", ["T1,T2", "HR", "heart_rate,pulse_2", "bpm"])
def test_auto_takes_series_named_like_heart_rate(tmp_path: Path, header: str) -> None:
    row = ",".join("70" for _ in header.split(","))
    assert detect_source(_write(tmp_path, f"{header}\n{row}\n")) == "heart-rate"


def test_auto_refuses_a_numeric_header_it_does_not_know(tmp_path: Path) -> None:
    path = _write(tmp_path, "foo,bar,baz\n70,71,72\n")
    with pytest.raises(DataError, match="cannot tell the source"):
        detect_source(path)
    assert read_readings(path, "heart-rate", step_s=1.0).source == "heart-rate"  # when asked


def test_detect_source_rejects_text_columns_without_keys(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot tell the source"):
        detect_source(_write(tmp_path, "name,value\nx,1\n"))


def test_unknown_source_lists_valid_ones() -> None:
    err = _raises(VITALS, source="fhir")
    assert "fhir" in err.reason and all(s in err.reason for s in SOURCES)


def test_column_map_only_for_tidy() -> None:
    assert "tidy" in _raises(VITALS, column_map={"Heart Rate": "heart_rate"}).reason


# --- vitals2024 --------------------------------------------------------------------------


def test_vitals_sample_reads_as_stream() -> None:
    readings = read_readings(VITALS)
    with VITALS.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    frame = readings.frame
    assert readings.source == "vitals2024"
    assert readings.stream
    assert len(frame) == 300 and frame["patient_id"].nunique() == 300
    assert readings.channels == VITAL_CHANNELS[:6]  # all but map and etco2
    assert str(frame["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert frame["label"].dtype == np.int8
    risk = Counter(r["Risk Category"] for r in rows)
    assert (frame["label"] == 1).sum() == risk["High Risk"]
    assert (frame["label"] == 0).sum() == risk["Low Risk"]
    first = frame.set_index("patient_id").loc["1"]
    assert first["heart_rate"] == float(rows[0]["Heart Rate"])
    assert first["spo2"] == pytest.approx(float(rows[0]["Oxygen Saturation"]))
    assert first["timestamp"] == pd.Timestamp(rows[0]["Timestamp"], tz="UTC")
    assert list(readings.static.columns) == ["age", "sex", "bmi"]
    for row in rows[:2]:
        static = readings.static.loc[row["Patient ID"]]
        assert static["sex"] == (1.0 if row["Gender"] == "Male" else 0.0)
        assert static["bmi"] == pytest.approx(float(row["Derived_BMI"]))
        assert static["age"] == float(row["Age"])


def test_vitals_same_timestamp_for_two_patients_is_fine(tmp_path: Path) -> None:
    _, rows = _vitals_rows()
    path = _vitals_variant(tmp_path, 2, "Timestamp", rows[0][3])
    assert len(read_readings(path).frame) == 10


def test_vitals_misspelt_column_suggests_expected_name(tmp_path: Path) -> None:
    text = VITALS.read_text().replace("Heart Rate", "Heart Rte", 1)
    err = _raises(_write(tmp_path, text))  # still detected: most of the header matches
    assert err.column == "Heart Rate"
    assert "'Heart Rte'" in err.reason and "did you mean 'Heart Rate'" in err.reason


@pytest.mark.parametrize(
    ("column", "value", "words"),
    [
        ("Heart Rate", "abc", "'abc' is not a number"),
        ("Heart Rate", "", "missing value"),
        ("Oxygen Saturation", "inf", "infinite"),
        ("Heart Rate", "900", "900 is outside the plausible range"),
        ("Oxygen Saturation", "140", "outside the plausible range"),
        ("Systolic Blood Pressure", "-5", "-5 is outside"),
        ("Age", "-3", "outside the plausible range"),
        ("Risk Category", "Medium Risk", "'Medium Risk' is not a valid label"),
        ("Gender", "X", "'X' is not a valid gender"),
        ("Timestamp", "yesterday", "not an ISO-8601 timestamp"),
        ("Patient ID", "", "missing patient id"),
    ],
)
def test_vitals_bad_cell_names_file_column_and_row(
    tmp_path: Path, column: str, value: str, words: str
) -> None:
    # Patient IDs sort "1", "10", "2", ...: row 7 lands elsewhere after sorting.
    err = _raises(_vitals_variant(tmp_path, 7, column, value))
    assert (err.column, err.row) == (column, 7)
    assert words in err.reason
    assert err.file is not None and err.file.endswith("f.csv")


def test_vitals_inconsistent_static_for_repeated_patient(tmp_path: Path) -> None:
    path = _vitals_variant(tmp_path, 2, "Patient ID", "1")
    err = _raises(path)
    assert err.row == 2 and err.column in ("Age", "Gender", "Derived_BMI")
    assert "constant per patient" in err.reason


# --- iot ---------------------------------------------------------------------------------


def test_iot_sample_pivot_and_proxy() -> None:
    readings = read_readings(IOT)
    raw = pd.read_csv(IOT, dtype={"Patient_ID": str})
    frame = readings.frame.set_index("patient_id")
    assert readings.source == "iot" and readings.stream
    assert len(frame) == 7  # the 2 Battery rows carry no vital sign
    assert set(frame.index) == set(raw.loc[raw["Sensor_Type"] != "Battery", "Patient_ID"])
    assert readings.channels == (
        "heart_rate",
        "spo2",
        "temperature",
        "systolic_bp",
        "diastolic_bp",
    )
    for _, row in raw[raw["Sensor_Type"] != "Battery"].iterrows():
        got = frame.loc[row["Patient_ID"]]
        kind = row["Sensor_Type"]
        assert np.isnan(got["temperature"]) == (kind != "Temperature")
        assert np.isnan(got["heart_rate"]) == (kind != "Heart Rate")
        assert np.isnan(got["systolic_bp"]) == (kind != "Blood Pressure")
        assert got["label"] == (row["Target_Health_Status"] == "Unhealthy")
        if kind == "Temperature":
            assert got["temperature"] == row["Temperature (°C)"]
            expected = min(100.0, max(90.0, 98.0 - 2.5 * (row["Temperature (°C)"] - 37.0)))
            assert got["spo2"] == pytest.approx(expected)
        else:
            assert np.isnan(got["spo2"])
    assert SPO2_PROXY_NOTE in readings.notes
    assert any("Battery" in note for note in readings.notes)
    assert readings.static.empty and len(readings.static.index) == 7


def test_iot_without_proxy_has_no_spo2() -> None:
    readings = read_readings(IOT, "iot", spo2_proxy=False)
    assert "spo2" not in readings.frame.columns
    assert SPO2_PROXY_NOTE not in readings.notes


def test_spo2_proxy_is_monotone_and_clipped() -> None:
    temps = np.array([35.0, 36.0, 37.0, 38.0, 39.0, 41.0, np.nan])
    proxy = spo2_proxy(temps)
    assert proxy[2] == 98.0 and proxy[0] == 100.0 and proxy[5] == 90.0
    assert np.all(np.diff(proxy[:-1]) <= 0) and np.isnan(proxy[-1])


def test_iot_rows_of_one_instant_merge_and_battery_adds_nothing(tmp_path: Path) -> None:
    path = _iot(
        tmp_path,
        "1,2024-01-01 10:00:00,1,Temperature,37.4,150,95,99,90,120,80,Unhealthy,90",
        "1,2024-01-01 10:00:00,2,Blood Pressure,36.6,131,82,99,90,120,80,Unhealthy,90",
        "1,2024-01-01 10:00:00,3,Heart Rate,36.6,150,95,71,90,120,80,Unhealthy,90",
        "1,2024-01-01 10:00:00,4,Battery,36.6,150,95,250,90,120,80,Unhealthy,90",
        "1,2024-01-01 11:00:00,1,Temperature,37.0,150,95,99,90,120,80,Unhealthy,90",
        "2,2024-01-01 10:00:00,3,Heart Rate,36.6,150,95,64,90,120,80,Healthy,90",
        "2,2024-01-01 12:00:00,3,Heart Rate,36.6,150,95,66,90,120,80,Healthy,90",
    )
    readings = read_readings(path)
    frame = readings.frame
    assert not readings.stream  # two readings per patient
    assert len(frame) == 4
    first = frame.iloc[0]
    assert (first["temperature"], first["systolic_bp"], first["diastolic_bp"]) == (37.4, 131, 82)
    assert first["heart_rate"] == 71 and first["label"] == 1
    assert first["spo2"] == pytest.approx(97.0)
    second = frame.iloc[1]
    assert second["temperature"] == 37.0 and np.isnan(second["heart_rate"])
    assert list(frame["patient_id"]) == ["1", "1", "2", "2"]
    assert not any("Battery" in note for note in readings.notes)


@pytest.mark.parametrize(
    ("rows", "column", "row", "words"),
    [
        (
            [
                "1,2024-01-01 10:00:00,3,Heart Rate,36.6,150,95,71,90,120,80,Healthy,90",
                "1,2024-01-01 10:00:00,3,Heart Rate,36.6,150,95,72,90,120,80,Healthy,90",
            ],
            "Timestamp",
            2,
            "duplicate timestamp",
        ),
        (
            [
                "1,2024-01-01 10:00:00,3,Heart Rate,36.6,150,95,71,90,120,80,Healthy,90",
                "1,2024-01-01 10:00:00,1,Temperature,36.6,150,95,71,90,120,80,Unhealthy,90",
            ],
            "Target_Health_Status",
            1,
            "differs",
        ),
        (
            ["1,2024-01-01 10:00:00,3,Glucose,36.6,150,95,71,90,120,80,Healthy,90"],
            "Sensor_Type",
            1,
            "not a valid sensor type",
        ),
        (
            [
                "2,2024-01-01 10:00:00,3,Heart Rate,36.6,150,95,71,90,120,80,Healthy,90",
                "1,2024-01-01 10:00:00,1,Temperature,60,150,95,71,90,120,80,Healthy,90",
            ],
            "Temperature (°C)",
            2,
            "outside the plausible range",
        ),
        (
            ["1,2024-01-01 10:00:00,3,Heart Rate,36.6,150,95,,90,120,80,Healthy,90"],
            "Heart_Rate (bpm)",
            1,
            "missing value",
        ),
        (
            ["1,2024-01-01 10:00:00,3,Heart Rate,36.6,150,95,71,90,120,80,Sick,90"],
            "Target_Health_Status",
            1,
            "not a valid label",
        ),
    ],
)
def test_iot_bad_rows(tmp_path: Path, rows: list[str], column: str, row: int, words: str) -> None:
    err = _raises(_iot(tmp_path, *rows))
    assert (err.column, err.row) == (column, row)
    assert words in err.reason


def test_iot_only_battery_rows(tmp_path: Path) -> None:
    path = _iot(tmp_path, "1,2024-01-01 10:00:00,4,Battery,36.6,150,95,71,90,120,80,Healthy,90")
    assert "only Battery" in _raises(path).reason


def test_iot_missing_column(tmp_path: Path) -> None:
    text = IOT.read_text(encoding="utf-8").replace("Sensor_Type", "SensorType", 1)
    err = _raises(_write(tmp_path, text))
    assert err.column == "Sensor_Type" and "'SensorType'" in err.reason


def test_iot_latin1_header(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes(IOT.read_text(encoding="utf-8").encode("latin-1"))
    assert "temperature" in read_readings(path).frame.columns


# --- heart-rate --------------------------------------------------------------------------


def test_heart_rate_needs_step() -> None:
    assert "--step is needed" in _raises(HEART).reason
    assert "positive" in _raises(HEART, step_s=0.0).reason


def test_heart_rate_sample_columns_become_patients() -> None:
    readings = read_readings(HEART, step_s=2.0)
    raw = pd.read_csv(HEART)
    frame = readings.frame
    assert readings.source == "heart-rate" and not readings.stream and not readings.has_labels
    assert readings.channels == ("heart_rate",)
    assert sorted(frame["patient_id"].unique()) == ["T1", "T2", "T3", "T4"]
    t3 = frame[frame["patient_id"] == "T3"]
    np.testing.assert_array_equal(t3["heart_rate"].to_numpy(), raw["T3"].to_numpy())
    assert t3["timestamp"].iloc[0] == SERIES_START
    assert (t3["timestamp"].diff().dropna() == pd.Timedelta(seconds=2)).all()


def test_heart_rate_ragged_and_interior_gaps(tmp_path: Path) -> None:
    path = _write(tmp_path, "A,B\n70,80\n71,\n72,82\n73,\n74,\n")
    frame = read_readings(path, "heart-rate", step_s=0.5).frame
    a = frame[frame["patient_id"] == "A"]
    b = frame[frame["patient_id"] == "B"]
    assert list(a["heart_rate"]) == [70, 71, 72, 73, 74]
    assert list(b["heart_rate"]) == [80, 82]  # interior gap: not measured; tail: series ended
    assert list(b["timestamp"] - SERIES_START) == [pd.Timedelta(0), pd.Timedelta(seconds=1)]


@pytest.mark.parametrize(
    ("text", "column", "row", "words"),
    [
        ("T1,T2\n70,80\n71,abc\n", "T2", 2, "'abc' is not a number"),
        ("T1,T2\n70,80\n71,81\n72,900\n", "T2", 3, "900 is outside"),
        ("T1,T2\n70,-1\n", "T2", 1, "outside"),
        ("T1,T2\n70,\n71,\n", "T2", None, "no values"),
    ],
)
def test_heart_rate_bad_values(
    tmp_path: Path, text: str, column: str, row: int | None, words: str
) -> None:
    err = _raises(_write(tmp_path, text), source="heart-rate", step_s=1.0)
    assert (err.column, err.row) == (column, row)
    assert words in err.reason


# --- tidy --------------------------------------------------------------------------------


def test_tidy_timestamps_aliases_multirate_and_static(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "patient_id,timestamp,HR,SpO2,label,Age,sex,bmi\n"
        "b,2024-01-01T00:00:02+01:00,70,,normal,50,M,22\n"
        "a,2024-01-01T00:00:01Z,71,97,Abnormal,,female,\n"
        "a,2024-01-01 00:00:00,72,,0,40,F,31.5\n",
    )
    readings = read_readings(path)
    frame = readings.frame
    assert readings.source == "tidy" and not readings.stream
    assert list(frame["patient_id"]) == ["a", "a", "b"]
    assert list(frame["timestamp"]) == [
        pd.Timestamp("2024-01-01T00:00:00Z"),
        pd.Timestamp("2024-01-01T00:00:01Z"),
        pd.Timestamp("2023-12-31T23:00:02Z"),
    ]
    assert list(frame["heart_rate"]) == [72, 71, 70]
    assert np.isnan(frame["spo2"].iloc[0]) and frame["spo2"].iloc[1] == 97
    assert list(frame["label"]) == [0, 1, 0]
    assert readings.static.loc["a"].to_dict() == {"age": 40.0, "sex": 0.0, "bmi": 31.5}
    assert readings.static.loc["b"].to_dict() == {"age": 50.0, "sex": 1.0, "bmi": 22.0}


def test_tidy_epoch_seconds_and_column_map(tmp_path: Path) -> None:
    path = _write(tmp_path, "Bed,t,pulse_rate,Resp\n7,1704067200,70,14\n7,1704067260.5,71,15\n")
    readings = read_readings(
        path,
        "tidy",
        column_map={"pulse_rate": "heart_rate", "Resp": "respiratory_rate"},
        patient_column="bed",
        timestamp_column="T",
    )
    frame = readings.frame
    assert readings.channels == ("heart_rate", "respiratory_rate")
    assert list(frame["patient_id"]) == ["7", "7"]
    assert frame["timestamp"].iloc[1] == pd.Timestamp("2024-01-01T00:01:00.5Z")


def test_tidy_step_numbers_rows_per_patient(tmp_path: Path) -> None:
    path = _write(tmp_path, "patient_id,hr\na,70\nb,80\na,71\nb,81\na,72\n")
    frame = read_readings(path, step_s=10.0).frame
    a = frame[frame["patient_id"] == "a"]
    assert list(a["heart_rate"]) == [70, 71, 72]
    assert list((a["timestamp"] - SERIES_START).dt.total_seconds()) == [0.0, 10.0, 20.0]
    assert "--step is needed" in _raises(path, source="tidy").reason


def test_tidy_parquet_and_gzip(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "patient_id": [1, 1, 2],
            "timestamp": pd.to_datetime(
                ["2024-01-01 00:00", "2024-01-01 00:01", "2024-01-01 00:00"]
            ),
            "heart_rate": [70.0, 71.0, np.nan],
            "temp": [np.nan, np.nan, 37.0],
        }
    )
    frame.to_parquet(tmp_path / "r.parquet")
    with gzip.open(tmp_path / "r.csv.gz", "wt") as fh:
        frame.to_csv(fh, index=False)
    for name in ("r.parquet", "r.csv.gz"):
        readings = read_readings(tmp_path / name)
        assert list(readings.frame["patient_id"]) == ["1", "1", "2"]
        assert str(readings.frame["timestamp"].dtype) == "datetime64[ns, UTC]"
        assert readings.channels == ("heart_rate", "temperature")


def test_tidy_out_of_range_reports_file_row_and_column(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "patient_id,timestamp,hr\n"
        "z,2024-01-01T00:00:00Z,70\n"
        "a,2024-01-01T00:00:09Z,71\n"
        "a,2024-01-01T00:00:01Z,900\n",
    )
    err = _raises(path)
    assert (err.column, err.row) == ("hr", 3)


@pytest.mark.parametrize(
    ("text", "kwargs", "column", "row", "words"),
    [
        (
            "patient_id,timestamp,hr\na,2024-01-01T00:00:01Z,70\nb,2024-01-01T00:00:01Z,70\n"
            "a,2024-01-01T00:00:01Z,71\n",
            {},
            "timestamp",
            3,
            "duplicate timestamp",
        ),
        (
            "patient_id,timestamp,heart_rat\na,2024-01-01T00:00:00Z,70\n",
            {},
            "heart_rat",
            None,
            "did you mean 'heart_rate'",
        ),
        (
            "patient,timestamp,hr\na,2024-01-01T00:00:00Z,70\n",
            {"source": "tidy"},
            "patient_id",
            None,
            "the file has 'patient'",
        ),
        (
            "patient_id,timestamp,hr,pulse\na,2024-01-01T00:00:00Z,70,70\n",
            {},
            "pulse",
            None,
            "would be 'heart_rate'",
        ),
        (
            "patient_id,timestamp,hr,age\na,2024-01-01T00:00:00Z,70,40\na,2024-01-01T00:00:01Z,70,41\n",
            {},
            "age",
            2,
            "constant per patient",
        ),
        (
            "patient_id,timestamp,hr,label\na,2024-01-01T00:00:00Z,70,maybe\n",
            {},
            "label",
            1,
            "not a valid label",
        ),
        (
            "patient_id,timestamp,hr,label\na,2024-01-01T00:00:00Z,70,\n",
            {},
            "label",
            1,
            "missing label",
        ),
        (
            "patient_id,timestamp,hr,sex\na,2024-01-01T00:00:00Z,70,2\n",
            {},
            "sex",
            1,
            "not a valid sex",
        ),
        (
            "patient_id,timestamp,hr\na,2024-01-01T00:00:00Z,70\na,01/02/2024,70\n",
            {},
            "timestamp",
            2,
            "not an ISO-8601 timestamp",
        ),
        (
            "patient_id,timestamp,hr\na,2024-01-01T00:00:00Z,70\na,2024-01-01T00:00:01Z,7O\n",
            {},
            "hr",
            2,
            "'7O' is not a number",
        ),
        (
            "patient_id,timestamp,hr\na,2024-01-01T00:00:00Z,70\n",
            {"column_map": {"HR2": "heart_rate"}},
            "HR2",
            None,
            "lacks",
        ),
        (
            "patient_id,timestamp,hr\na,2024-01-01T00:00:00Z,70\n",
            {"column_map": {"hr": "glucose"}},
            "hr",
            None,
            "expected one of",
        ),
        (
            "patient_id,timestamp,hr\na,1704067200000,70\n",
            {},
            "timestamp",
            None,
            "must be epoch seconds",
        ),
        (
            "patient_id,timestamp,ward\na,2024-01-01T00:00:00Z,3\n",
            {},
            None,
            None,
            "no vital-sign channel column",
        ),
    ],
)
def test_tidy_bad_input(
    tmp_path: Path,
    text: str,
    kwargs: dict[str, object],
    column: str | None,
    row: int | None,
    words: str,
) -> None:
    err = _raises(_write(tmp_path, text), **kwargs)
    assert (err.column, err.row) == (column, row)
    assert words in err.reason


# --- load_frame --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("empty.csv", b"", "empty"),
        ("blank.csv", b" \n\n", "empty"),
        ("header.csv", b"patient_id,timestamp,hr\n", "no data rows"),
        ("data.xlsx", b"x", "unsupported file type"),
        ("broken.parquet", b"not parquet", "cannot read"),
    ],
)
def test_load_frame_bad_files(tmp_path: Path, name: str, content: bytes, words: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError, match=words) as info:
        load_frame(path)
    assert info.value.file == str(path)
    with pytest.raises(DataError, match=words):
        read_readings(path)


def test_load_frame_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        load_frame(tmp_path / "absent.csv")


# --- real data (../shared/datasets) ------------------------------------------------------


def _shared(name: str) -> Path:
    path = SHARED / name
    if not path.exists():
        pytest.skip(f"../shared/datasets absent: {name} not found")
    return path


def test_real_vitals_subset_counts() -> None:
    readings = read_readings(_shared("raw/human_vital_signs_dataset_2024__mlh_subset.csv"))
    frame = readings.frame
    assert readings.source == "vitals2024"
    assert len(frame) == 10_649 and frame["patient_id"].nunique() == 10_649
    assert (frame["label"] == 1).sum() == 5_597 and (frame["label"] == 0).sum() == 5_052
    assert len(readings.static) == 10_649


def test_real_heart_rate_series_lengths() -> None:
    readings = read_readings(_shared("raw/heart_rate.csv"), step_s=1.0)
    sizes = readings.frame.groupby("patient_id").size().to_dict()
    assert sizes == {"T1": 1800, "T2": 1800, "T3": 950, "T4": 891}


def test_real_iot_schema_sample() -> None:
    assert read_readings(_shared("iot_schema_sample.csv")).source == "iot"


@pytest.mark.slow
def test_vitals_200k_rows_read(tmp_path: Path) -> None:
    raw = pd.read_csv(VITALS)
    n = 200_020
    big = raw.iloc[np.arange(n) % len(raw)].reset_index(drop=True)
    big["Patient ID"] = np.arange(1, n + 1)
    start = pd.Timestamp("2024-07-19 21:53:46")
    big["Timestamp"] = (start - pd.to_timedelta(np.arange(n) * 60, unit="s")).strftime(
        "%Y-%m-%d %H:%M:%S"
    )
    path = tmp_path / "big.csv"
    big.to_csv(path, index=False)
    readings = read_readings(path)
    assert len(readings.frame) == n


def test_vitals_variant_without_ids_and_timestamps_audits_but_does_not_prepare(
    tmp_path: Path,
) -> None:
    from vitalsentry.config import DataConfig, WindowConfig
    from vitalsentry.data.audit import audit_readings
    from vitalsentry.data.prepared import prepare
    from vitalsentry.data.sources import VITALS2024_UNTIMED_NOTE

    raw = pd.read_csv(VITALS).drop(columns=["Patient ID", "Timestamp"])
    assert raw.shape[1] == 15
    path = tmp_path / "variant.csv"
    raw.to_csv(path, index=False)
    readings = read_readings(path)  # detected from the 15 remaining columns
    assert readings.source == "vitals2024" and readings.stream and not readings.clock
    assert VITALS2024_UNTIMED_NOTE in readings.notes
    assert set(readings.frame["patient_id"]) == {str(i) for i in range(1, 301)}  # file rows
    report = audit_readings(readings)
    assert report.rows == 300 and report.label_check is not None
    with pytest.raises(DataError, match="prepare needs a 'Timestamp' column") as info:
        prepare(readings, DataConfig(), WindowConfig(length=16, stride=8))
    assert info.value.file == str(path)
    missing_one = tmp_path / "one.csv"
    pd.read_csv(VITALS).drop(columns=["Timestamp"]).to_csv(missing_one, index=False)
    assert _raises(missing_one).column == "Timestamp"  # only one missing: still an error


def test_tidy_map_names_keys_and_leaves_columns_out(tmp_path: Path) -> None:
    """A BIDMC-style export: record and elapsed-seconds columns, HR and PULSE both present."""
    path = _write(
        tmp_path,
        "record_id,time_s,HR,PULSE,RESP,SpO2,age\n"
        "r1,0,80,81,16,97,90+\nr1,1,82,80,17,98,90+\nr2,0,70,70,12,99,40\n",
    )
    with pytest.raises(DataError, match="both 'HR' and 'PULSE' would be 'heart_rate'"):
        read_readings(path, column_map={"record_id": "patient_id", "time_s": "timestamp"})
    column_map = {
        "record_id": "patient_id",
        "time_s": "timestamp",
        "RESP": "respiratory_rate",
        "PULSE": "",
        "age": "",
    }
    readings = read_readings(path, column_map=column_map)
    assert readings.source == "tidy"
    assert readings.channels == ("heart_rate", "spo2", "respiratory_rate")
    assert readings.frame["heart_rate"].tolist() == [80.0, 82.0, 70.0]
    elapsed = readings.frame["timestamp"] - pd.Timestamp("1970-01-01", tz="UTC")
    assert elapsed.dt.total_seconds().tolist() == [0.0, 1.0, 0.0]
    assert not readings.clock and ELAPSED_NOTE in readings.notes
    assert list(readings.static.columns) == []
    with pytest.raises(DataError, match="a column map applies to the tidy source only"):
        read_readings(path, "vitals2024", column_map={"record_id": "patient_id"})
