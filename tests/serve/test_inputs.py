import hashlib

import numpy as np
import pandas as pd
import pytest
from conftest import START, make_readings

from vitalsentry.data.readings import validate_frame
from vitalsentry.serve.inputs import (
    PatientReadings,
    RequestError,
    coverage_problem,
    format_loc,
    from_request,
    news2_of,
    patient_tag,
    readings_frame,
)
from vitalsentry.serve.schemas import ScoreRequest


def request(patient_id: str = "p", **kwargs: object) -> ScoreRequest:
    return ScoreRequest.model_validate(
        {"patient_id": patient_id, "readings": make_readings(**kwargs)}
    )


@pytest.mark.parametrize(
    ("loc", "text"),
    [
        (("readings", 12, "heart_rate"), "readings[12].heart_rate"),
        (("patients", 0, "readings", 3, "timestamp"), "patients[0].readings[3].timestamp"),
        (("entry",), "entry"),
        ((), ""),
    ],
)
def test_format_loc(loc: tuple[str | int, ...], text: str) -> None:
    assert format_loc(loc) == text


def test_patient_tag_is_a_short_hash() -> None:
    tag = patient_tag("MRN-1")
    assert tag == hashlib.sha256(b"MRN-1").hexdigest()[:12]
    assert tag != patient_tag("MRN-2")


def test_from_request_keeps_only_measured_channels() -> None:
    patient = from_request(request(n=5, channels=("heart_rate", "temperature")))
    assert list(patient.values) == ["heart_rate", "temperature"]
    assert patient.times.dtype == "datetime64[ns, UTC]" and len(patient) == 5


def test_from_request_refuses_a_repeated_instant() -> None:
    data = request(n=5)
    data.readings[3].timestamp = data.readings[1].timestamp
    with pytest.raises(RequestError) as info:
        from_request(data, ("patients", 2))
    assert info.value.loc == ("patients", 2, "readings", 3, "timestamp")
    assert "(also readings[1])" in info.value.message


def test_readings_frame_of_several_patients_is_a_valid_readings_frame() -> None:
    a = from_request(request("a", n=4, channels=("heart_rate",)))
    b = from_request(request("b", n=3, channels=("spo2", "temperature")))
    frame = readings_frame([a, b])
    assert list(frame.columns) == ["patient_id", "timestamp", "heart_rate", "spo2", "temperature"]
    assert frame["heart_rate"].isna().sum() == 3 and frame["spo2"].isna().sum() == 4
    assert frame["timestamp"].dtype == "datetime64[ns, UTC]"
    assert validate_frame(frame, "x")["patient_id"].tolist() == ["a"] * 4 + ["b"] * 3


def test_coverage_problem() -> None:
    patient = from_request(request(n=64, step=2.0))
    assert coverage_problem(patient, ("heart_rate", "spo2"), 126.0, 64, 2.0) is None
    assert coverage_problem(patient, ("heart_rate", "spo2"), 127.0, 64, 2.0) == (
        "heart_rate readings cover 126 s; the model needs 127 s (64 steps of 2 s) of heart_rate, spo2"
    )
    assert coverage_problem(patient, ("spo2", "temperature"), 10.0, 64, 2.0).startswith(
        "no temperature reading"
    )


def test_news2_of_uses_the_latest_instant_not_the_last_row() -> None:
    times = pd.DatetimeIndex(pd.to_datetime([START + 60, START], unit="s", utc=True)).as_unit("ns")
    values = {
        "heart_rate": np.array([135.0, 70.0]),  # the first row is the latest: scores 3
        "spo2": np.array([np.nan, 97.0]),
        "respiratory_rate": np.array([16.0, np.nan]),
        "temperature": np.array([37.0, 37.0]),
        "systolic_bp": np.array([np.nan, 120.0]),
    }
    result = news2_of(PatientReadings("p", times, values))
    assert result is not None
    assert (
        result.components["heart_rate"] == 3 and result.score == 3 and result.level == "low-medium"
    )
    del values["systolic_bp"]
    assert news2_of(PatientReadings("p", times, values)) is None
