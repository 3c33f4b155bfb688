import pytest
from pydantic import ValidationError

from vitalsentry.data.schema import CHANNELS
from vitalsentry.serve.schemas import AlarmStateBody, Reading, ScoreRequest


def test_reading_fields_are_the_canonical_channels() -> None:
    assert tuple(Reading.model_fields) == ("timestamp", *CHANNELS)
    schema = Reading.model_json_schema()["properties"]
    for name, spec in CHANNELS.items():
        bounds = schema[name]["anyOf"][0]
        assert (bounds["minimum"], bounds["maximum"]) == (spec.low, spec.high)


def test_timestamps_are_converted_to_utc() -> None:
    reading = Reading.model_validate({"timestamp": "2024-05-01T10:00:00+02:00", "heart_rate": 70})
    assert reading.timestamp.isoformat() == "2024-05-01T08:00:00+00:00"


@pytest.mark.parametrize("when", ["1969-12-31T23:59:59Z", "2200-01-01T00:00:00Z"])
def test_timestamps_outside_1970_2200_are_refused(when: str) -> None:
    with pytest.raises(ValidationError, match="is outside 1970–2200"):
        Reading.model_validate({"timestamp": when})


def test_channels_are_optional_and_null_allowed() -> None:
    request = ScoreRequest.model_validate(
        {"patient_id": "p", "readings": [{"timestamp": "2024-05-01T08:00:00Z", "spo2": None}]}
    )
    assert request.readings[0].spo2 is None and request.on_oxygen is False


def test_alarm_state_quiet_takes_an_integral_json_number_and_refuses_a_fraction() -> None:
    assert AlarmStateBody.model_validate_json('{"on": true, "quiet": 2.0}').quiet == 2
    with pytest.raises(ValidationError):
        AlarmStateBody.model_validate_json('{"on": true, "quiet": 2.5}')
