"""FHIR R4 Bundle input: LOINC codes, UCUM units and conversion, errors naming the entry."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service_data import LENGTH, START
from vitalsentry.serve.fhir import UNITS, FhirBundle, Quantity, _measured, _value, bundle_patients
from vitalsentry.serve.inputs import RequestError

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


def quantity(value: float, code: str) -> dict[str, Any]:
    return {"value": value, "unit": code, "system": UCUM, "code": code}


def observation(
    code: str, value: float | None, unit: str, t: float, *, subject: str = "Patient/1", **extra: Any
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"code": "vital-signs"}]}],  # ignored element
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "subject": {"reference": subject},
        "effectiveDateTime": np.datetime64(int(t), "s").astype(str) + "Z",
    }
    if value is not None:
        resource["valueQuantity"] = quantity(value, unit)
    return {"fullUrl": f"urn:uuid:{code}-{t}", "resource": resource | extra}


def bp_panel(
    systolic: float, diastolic: float, t: float, unit: str = "mm[Hg]", subject: str = "Patient/1"
) -> dict[str, Any]:
    entry = observation("85354-9", None, "", t, subject=subject)
    entry["resource"]["component"] = [
        {
            "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
            "valueQuantity": quantity(systolic, unit),
        },
        {
            "code": {"coding": [{"system": LOINC, "code": "8462-4"}]},
            "valueQuantity": quantity(diastolic, unit),
        },
        {
            "code": {"coding": [{"system": LOINC, "code": "8478-0"}]},
            "valueQuantity": quantity(90, unit),
        },
    ]
    return entry


def vitals_bundle(
    n: int = LENGTH + 8, subject: str = "Patient/1", spo2_code: str = "2708-6"
) -> dict[str, Any]:
    entries = []
    for k in range(n):
        t = START + k
        entries.append(observation("8867-4", 72 + k % 5, "/min", t, subject=subject))
        entries.append(observation(spo2_code, 97.0, "%", t, subject=subject))
    last = START + n - 1
    entries += [
        observation("9279-1", 16, "{breaths}/min", last, subject=subject),
        observation("8310-5", 98.6, "[degF]", last, subject=subject),
        bp_panel(120, 80, last, subject=subject),
    ]
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def parse(data: dict[str, Any]) -> Any:
    return bundle_patients(FhirBundle.model_validate(data))


def test_bundle_becomes_readings_with_units_converted() -> None:
    (patient,) = parse(vitals_bundle(n=3))
    assert patient.patient_id == "Patient/1"
    assert list(patient.values) == [
        "heart_rate",
        "spo2",
        "respiratory_rate",
        "temperature",
        "systolic_bp",
        "diastolic_bp",
    ]
    assert patient.values["temperature"][-1] == pytest.approx(37.0)
    assert patient.values["systolic_bp"][-1] == 120 and patient.values["diastolic_bp"][-1] == 80
    assert np.isnan(patient.values["temperature"][0])
    assert patient.times.is_monotonic_increasing and len(patient) == 3


@pytest.mark.parametrize(
    ("code", "unit", "value", "expected"),
    [
        ("8310-5", "K", 310.15, 37.0),
        ("8310-5", "Cel", 36.6, 36.6),
        ("8480-6", "kPa", 16.0, 120.01),
        ("8867-4", "{beats}/min", 61.0, 61.0),
    ],
)
def test_trivial_unit_conversions(code: str, unit: str, value: float, expected: float) -> None:
    (patient,) = parse({"resourceType": "Bundle", "entry": [observation(code, value, unit, START)]})
    (values,) = patient.values.values()
    assert values[0] == pytest.approx(expected, abs=0.01)


def test_fhir_scores_like_the_json_endpoint(client: TestClient) -> None:
    r = client.post("/v1/fhir/score", json=vitals_bundle())
    assert r.status_code == 200, r.text
    (result,) = r.json()["results"]
    assert result["patient_id"] == "Patient/1"
    assert result["news2"]["components"]["temperature"] == 0  # 98.6 °F = 37 °C
    assert result["news2"]["score"] == 0
    readings = [
        {
            "timestamp": np.datetime64(START + k, "s").astype(str) + "Z",
            "heart_rate": 72 + k % 5,
            "spo2": 97.0,
        }
        for k in range(LENGTH + 8)
    ]
    plain = client.post("/v1/score", json={"patient_id": "x", "readings": readings}).json()
    assert result["risk"] == pytest.approx(plain["risk"], abs=1e-9)
    assert result["window_end"] == plain["window_end"]


def test_several_patients_and_alternative_spo2_code(client: TestClient) -> None:
    data = vitals_bundle(subject="Patient/a")
    data["entry"] += vitals_bundle(subject="Patient/b", spo2_code="59408-5")["entry"]
    data["entry"] += vitals_bundle(n=5, subject="Patient/c")["entry"]
    out = client.post("/v1/fhir/score", json=data).json()
    assert [r["patient_id"] for r in out["results"]] == ["Patient/a", "Patient/b"]
    assert [(e["index"], e["patient_id"]) for e in out["errors"]] == [(2, "Patient/c")]


def test_cancelled_and_entered_in_error_are_skipped() -> None:
    data = vitals_bundle(n=2)
    data["entry"][0]["resource"]["status"] = "entered-in-error"
    data["entry"].append(observation("8867-4", 250, "/min", START + 5))
    data["entry"][-1]["resource"]["status"] = "cancelled"
    (patient,) = parse(data)
    assert len(patient) == 2 and np.isnan(patient.values["heart_rate"][0])


def error_of(data: dict[str, Any]) -> str:
    with pytest.raises(RequestError) as info:
        parse(data)
    return str(info.value)


def test_unknown_unit_names_the_entry(client: TestClient) -> None:
    data = vitals_bundle()
    data["entry"][2]["resource"]["valueQuantity"] = quantity(72, "bpm")
    r = client.post("/v1/fhir/score", json=data)
    assert r.status_code == 422
    assert r.json()["detail"][0]["msg"] == (
        "entry[2].resource.valueQuantity.code: unit 'bpm' is not accepted for heart rate "
        "(UCUM: /min, {beats}/min, {Beats}/min)"
    )
    assert r.json()["detail"][0]["loc"] == ["body", "entry", 2, "resource", "valueQuantity", "code"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda e: e["resource"]["valueQuantity"].update(value=900),
            "entry[0].resource.valueQuantity.value: 900 is outside 20–300 /min",
        ),
        (
            lambda e: e["resource"].update(
                valueQuantity=quantity(120, "[degF]"),
                code={"coding": [{"system": LOINC, "code": "8310-5"}]},
            ),
            "entry[0].resource.valueQuantity.value: 120 [degF] = 48.89 Cel is outside 30–45 Cel",
        ),
        (
            lambda e: e["resource"].update(code={"coding": [{"system": LOINC, "code": "29463-7"}]}),
            "entry[0].resource.code: no supported LOINC code",
        ),
        (
            lambda e: e["resource"].update(
                code={"coding": [{"system": "http://snomed.info/sct", "code": "8867-4"}]}
            ),
            "entry[0].resource.code: no supported LOINC code",
        ),
        (
            lambda e: e["resource"].pop("valueQuantity"),
            "entry[0].resource.valueQuantity: missing value",
        ),
        (
            lambda e: e["resource"]["valueQuantity"].update(unit=None, code=None),
            "entry[0].resource.valueQuantity.unit: unit None is not accepted",
        ),
        (
            lambda e: e["resource"]["valueQuantity"].update(system="http://example.org/units"),
            "entry[0].resource.valueQuantity.system: unit system must be http://unitsofmeasure.org",
        ),
        (
            lambda e: e["resource"].pop("subject"),
            "entry[0].resource.subject: missing subject reference",
        ),
        (
            lambda e: e["resource"].pop("effectiveDateTime"),
            "entry[0].resource.effectiveDateTime: missing effectiveDateTime or effectiveInstant",
        ),
    ],
)
def test_bad_entries_are_named(change: Any, expected: str) -> None:
    data = vitals_bundle(n=2)
    change(data["entry"][0])
    assert error_of(data).startswith(expected)


def test_panel_without_pressures_and_duplicates_are_refused() -> None:
    data = {"resourceType": "Bundle", "entry": [bp_panel(120, 80, START)]}
    data["entry"][0]["resource"]["component"] = data["entry"][0]["resource"]["component"][2:]
    assert error_of(data).startswith("entry[0].resource.component: blood-pressure panel without")
    twice = vitals_bundle(n=2)
    twice["entry"].append(observation("8867-4", 70, "/min", START + 1))
    assert error_of(twice).startswith(
        "entry[7].resource: a second heart rate at 2024-05-01T08:00:01+00:00"
    )
    assert "(also entry[2])" in error_of(twice)


def test_effective_instant_and_bp_in_kpa_are_used() -> None:
    entry = bp_panel(16, 10.7, START, unit="kPa")
    entry["resource"]["effectiveInstant"] = entry["resource"].pop("effectiveDateTime")
    (patient,) = parse({"resourceType": "Bundle", "entry": [entry]})
    assert patient.values["systolic_bp"][0] == pytest.approx(120.0, abs=0.01)
    assert patient.values["diastolic_bp"][0] == pytest.approx(80.26, abs=0.01)


def test_bundle_with_only_skipped_entries_is_refused() -> None:
    data = vitals_bundle(n=1)
    for e in data["entry"]:
        e["resource"]["status"] = "cancelled"
    assert error_of(data) == "entry: no usable Observation (all cancelled or entered-in-error)"


def test_schema_errors_are_422(client: TestClient) -> None:
    data = vitals_bundle(n=2)
    data["entry"][1]["resource"]["resourceType"] = "Patient"
    data["entry"][2]["resource"]["valueQuantity"]["value"] = "97"
    r = client.post("/v1/fhir/score", json=data)
    msgs = [d["msg"] for d in r.json()["detail"]]
    assert r.status_code == 422
    assert "entry[1].resource.resourceType: Input should be 'Observation'" in msgs
    assert "entry[2].resource.valueQuantity.value: Input should be a valid number" in msgs
    assert (
        client.post("/v1/fhir/score", json={"resourceType": "Bundle", "entry": []}).status_code
        == 422
    )


@pytest.mark.parametrize(("name", "unit"), [(n, u) for n, units in UNITS.items() for u in units])
def test_the_schema_states_exactly_the_values_the_service_takes(name: str, unit: str) -> None:
    options = _measured(name)["properties"]["valueQuantity"]["anyOf"]
    stated = next(o for o in options if o["properties"].get("code") == {"const": unit})
    low, high = (stated["properties"]["value"][k] for k in ("minimum", "maximum"))
    for value in (low, high):
        _value(Quantity(value=value, code=unit, system=UCUM), name, ())
    for value in (np.nextafter(low, -np.inf), np.nextafter(high, np.inf)):
        with pytest.raises(RequestError, match="is outside"):
            _value(Quantity(value=float(value), code=unit, system=UCUM), name, ())
