import hashlib
import hmac

import numpy as np
import pandas as pd
import pytest

from service_data import START, make_readings
from vitalsentry.config import DataConfig
from vitalsentry.data.grid import grid_frame
from vitalsentry.serve.inputs import (
    PatientReadings,
    RequestError,
    coverage_problem,
    format_loc,
    from_request,
    news2_of,
    patient_grid,
    patient_tag,
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


def test_patient_tag_is_a_keyed_short_hash() -> None:
    tag = patient_tag("MRN-1", b"secret")
    assert tag == hmac.new(b"secret", b"MRN-1", hashlib.sha256).hexdigest()[:12]
    assert tag != patient_tag("MRN-2", b"secret")
    assert tag != patient_tag("MRN-1", b"other")
    assert tag != hashlib.sha256(b"MRN-1").hexdigest()[:12]  # not reversible without the key


def test_from_request_keeps_only_measured_channels() -> None:
    patient = from_request(request(n=5, channels=("heart_rate", "temperature")))
    assert list(patient.values) == ["heart_rate", "temperature"]
    assert patient.times.dtype == "datetime64[ns, UTC]" and len(patient) == 5


def test_from_request_reads_unmeasured_values_as_nan() -> None:
    data = request(n=4, channels=("heart_rate", "spo2"))
    data.readings[1].spo2 = None
    data.readings[2].heart_rate = None
    patient = from_request(data)
    expected = {name: [getattr(r, name) for r in data.readings] for name in ("heart_rate", "spo2")}
    for name, column in expected.items():
        got = patient.values[name]
        assert got.dtype == np.float64 and got.flags.c_contiguous
        np.testing.assert_array_equal(got, np.array(column, dtype=np.float64))
    assert np.isnan(patient.values["spo2"][1]) and np.isnan(patient.values["heart_rate"][2])


def test_from_request_refuses_a_repeated_instant() -> None:
    data = request(n=5)
    data.readings[3].timestamp = data.readings[1].timestamp
    with pytest.raises(RequestError) as info:
        from_request(data, ("patients", 2))
    assert info.value.loc == ("patients", 2, "readings", 3, "timestamp")
    assert "(also readings[1])" in info.value.message


def test_patient_grid_is_the_grid_of_the_readings_frame() -> None:
    data = request("a", n=40, step=1.7, channels=("heart_rate", "temperature"))
    data.readings.reverse()  # request order does not matter
    patient = from_request(data)
    frame = pd.DataFrame(
        {
            "patient_id": "a",
            "timestamp": patient.times,
            "spo2": np.nan,
            **{name: values for name, values in patient.values.items()},
        }
    ).sort_values("timestamp")
    channels = ["heart_rate", "spo2"]  # spo2 not measured: all masked
    want = grid_frame(frame, channels, step_s=1.0, max_gap_s=5.0)[0]
    data = DataConfig(channels=tuple(channels), max_gap_s=5.0, gap_carry_s=(0.0,) * len(channels))
    got = patient_grid(patient, channels, "a", data=data)
    assert got.key == "a" and got.start_s == want.start_s
    np.testing.assert_array_equal(got.values, want.values)
    np.testing.assert_array_equal(got.mask, want.mask)
    assert not got.mask[1].any()


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
