from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from service_data import START, make_readings
from vitalsentry.data.simulate import SimulationConfig, simulate_cohort
from vitalsentry.monitor import db
from vitalsentry.monitor.replay import (
    arrival_batches,
    compare,
    offline_reference,
    replay,
    served_reference,
)
from vitalsentry.pipeline import VitalRiskPipeline
from vitalsentry.serve.security import hash_key

LENGTH = 64  # the test bundle's window; stride 32


@pytest.fixture
def monitor(
    make_client: Callable[..., TestClient], keys: dict[str, str], database_url: str
) -> TestClient:
    client = make_client(database_url=database_url, purge_every_s=0)
    client.headers["X-API-Key"] = keys["score"]
    return client


def post(client: TestClient, patient: str, readings: list[dict[str, Any]], **extra: Any) -> Any:
    return client.post(f"/v1/patients/{patient}/readings", json={"readings": readings, **extra})


def test_append_scores_each_window_once_and_is_idempotent(monitor: TestClient) -> None:
    readings = make_readings(LENGTH + 40)  # 104 s: windows at 0 and 32 s complete
    first = post(monitor, "p1", readings[:70])
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["accepted"] == 140 and body["duplicates"] == 0
    assert len(body["windows_scored"]) == 1
    state = body["patient"]
    assert state["latest"]["top_vital"] in ("heart_rate", "spo2")
    assert state["latest"]["window_start"] == "2024-05-01T08:00:00Z"
    again = post(monitor, "p1", readings[:70]).json()
    assert (again["accepted"], again["duplicates"], again["windows_scored"]) == (0, 140, [])
    assert again["patient"] == state
    rest = post(monitor, "p1", readings[60:]).json()
    assert rest["duplicates"] == 20 and len(rest["windows_scored"]) == 1


def test_out_of_order_readings_inside_the_open_window_are_accepted(monitor: TestClient) -> None:
    readings = make_readings(LENGTH + 8)
    assert post(monitor, "late", readings[40:]).status_code == 200
    answer = post(monitor, "late", readings[:40]).json()
    assert answer["accepted"] == 80 and len(answer["windows_scored"]) == 1
    in_order = post(monitor, "ordered", readings).json()
    assert answer["windows_scored"][0]["risk"] == in_order["windows_scored"][0]["risk"]


def test_a_conflicting_or_reopening_reading_is_refused_naming_the_field(
    monitor: TestClient,
) -> None:
    readings = make_readings(LENGTH + 8)
    assert post(monitor, "p", readings).status_code == 200
    changed = [dict(readings[3], heart_rate=readings[3]["heart_rate"] + 1)]
    answer = post(monitor, "p", changed)
    assert answer.status_code == 409
    assert answer.json()["detail"].startswith("readings[0].heart_rate: ")
    inside = [{"timestamp": "2024-05-01T08:00:10.500000Z", "spo2": 97.0}]
    answer = post(monitor, "p", inside)
    assert answer.status_code == 409 and "would reopen a window" in answer.json()["detail"]
    before = [{"timestamp": "2024-05-01T07:59:00Z", "temperature": 36.6}]
    assert post(monitor, "p", before).status_code == 409
    assert post(monitor, "p", make_readings(8, start=START + LENGTH + 8)).status_code == 200


def test_bad_readings_are_422_naming_the_field(monitor: TestClient) -> None:
    future = [{"timestamp": "2190-01-01T00:00:00Z", "heart_rate": 80.0}]
    answer = post(monitor, "p", future)
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["msg"].startswith("readings[0].timestamp: ")
    twice = [
        {"timestamp": "2024-05-01T08:00:00Z", "heart_rate": 80.0},
        {"timestamp": "2024-05-01T08:00:00+00:00", "heart_rate": 81.0},
    ]
    answer = post(monitor, "p", twice)
    assert (
        answer.status_code == 422 and "readings[1].heart_rate" in answer.json()["detail"][0]["msg"]
    )
    implausible = [{"timestamp": "2024-05-01T08:00:00Z", "heart_rate": 900.0}]
    assert post(monitor, "p", implausible).status_code == 422
    assert monitor.get("/v1/patients").json()["patients"] == []


def fhir_bundle(subject: str, readings: list[dict[str, Any]]) -> dict[str, Any]:
    codes = {"heart_rate": ("8867-4", "/min"), "spo2": ("59408-5", "%")}
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": codes[name][0]}]},
                    "subject": {"reference": subject},
                    "effectiveDateTime": r["timestamp"],
                    "valueQuantity": {
                        "value": r[name],
                        "system": "http://unitsofmeasure.org",
                        "code": codes[name][1],
                    },
                }
            }
            for r in readings
            for name in codes
        ],
    }


def test_fhir_bundles_append_like_json(monitor: TestClient) -> None:
    readings = make_readings(LENGTH + 8)
    answer = monitor.post("/v1/patients/f1/readings", json=fhir_bundle("Patient/f1", readings))
    assert answer.status_code == 200, answer.text
    as_json = post(monitor, "j1", readings).json()
    assert answer.json()["windows_scored"][0]["risk"] == as_json["windows_scored"][0]["risk"]
    other = monitor.post("/v1/patients/f1/readings", json=fhir_bundle("Patient/f2", readings))
    assert other.status_code == 422
    assert other.json()["detail"][0]["msg"].startswith("entry[0].resource.subject: ")


def test_ward_timeline_ack_and_delete(
    monitor: TestClient, keys: dict[str, str], cohort: pd.DataFrame
) -> None:
    replay(monitor, arrival_batches(cohort, 300.0))
    ward = monitor.get("/v1/patients").json()["patients"]
    assert {p["patient_id"] for p in ward} == {"P0001", "P0002"}
    alarmed = [p for p in ward if p["alarm"] is not None]
    assert ward[: len(alarmed)] == alarmed
    risks = [p["latest"]["risk"] for p in ward[len(alarmed) :]]
    assert risks == sorted(risks, reverse=True)
    timeline = monitor.get("/v1/patients/P0001/timeline", params={"max_points": 100}).json()
    channels = {s["channel"]: s for s in timeline["readings"]}
    assert (
        channels["heart_rate"]["bucket_s"] is not None and len(channels["heart_rate"]["t_s"]) <= 100
    )
    assert channels["temperature"]["bucket_s"] is None  # sparse channels are kept as points
    assert timeline["scores"] and all(
        s["level"] in ("low", "medium", "high") for s in timeline["scores"]
    )
    episodes = [
        a
        for p in ("P0001", "P0002")
        for a in monitor.get(f"/v1/patients/{p}/timeline").json()["alarms"]
    ]
    assert episodes, "the untrained bundle raises alarms on the simulated events"
    acked = monitor.post(f"/v1/alarms/{episodes[0]['alarm_id']}/ack").json()
    assert acked["acked_by"] == hash_key(keys["score"]).hex()[:12] and acked["acked_at"]
    assert monitor.post("/v1/alarms/999999/ack").status_code == 404
    assert monitor.get("/v1/patients/nobody/timeline").status_code == 404
    assert monitor.delete("/v1/patients/P0001").status_code == 403
    monitor.headers["X-API-Key"] = keys["admin"]
    deleted = monitor.delete("/v1/patients/P0001")
    assert deleted.status_code == 200 and deleted.json()["rows"]["readings"] > 0
    assert monitor.delete("/v1/patients/P0001").status_code == 404
    assert [p["patient_id"] for p in monitor.get("/v1/patients").json()["patients"]] == ["P0002"]


def test_routes_need_a_key(monitor: TestClient) -> None:
    monitor.headers.pop("X-API-Key")
    assert monitor.get("/v1/patients").status_code == 401
    assert post(monitor, "p", make_readings(2)).status_code == 401


@pytest.fixture(scope="module")
def cohort() -> pd.DataFrame:
    """Two simulated patients, 30 min each, both with an event (the bundle alarms on them)."""
    frame, _ = simulate_cohort(
        SimulationConfig(patients=2, hours=0.5, seed=3, event_fraction=1.0, start_spread_h=0.1)
    )
    return frame.drop(columns=["label", "age", "sex", "bmi"])


@pytest.mark.parametrize("every_s", [60.0, 150.0])
def test_replay_gives_exactly_the_offline_scores_and_alarms(
    monitor: TestClient, pipeline: VitalRiskPipeline, cohort: pd.DataFrame, every_s: float
) -> None:
    frame = cohort
    expected = offline_reference(pipeline, frame)
    assert len(expected.scores) > 40 and any(expected.episodes.values())
    stats = replay(monitor, arrival_batches(frame, every_s))
    assert stats.errors == [] and stats.windows == len(expected.scores)
    served = served_reference(monitor, ["P0001", "P0002"])
    assert compare(expected, served) == []


def test_database_locked_is_503_with_retry_after_then_recovers(
    make_client: Callable[..., TestClient],
    keys: dict[str, str],
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(db, "WAIT_S", 0.2)
    path = tmp_path / "locked.sqlite3"
    client = make_client(database_url=f"sqlite:///{path}", purge_every_s=0)
    client.headers["X-API-Key"] = keys["score"]
    assert post(client, "p", make_readings(4)).status_code == 200
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    answer = post(client, "p", make_readings(4, start=START + 10))
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"
    assert client.get("/v1/patients").status_code == 200  # WAL: readers are not blocked
    blocker.execute("ROLLBACK")
    blocker.close()
    assert post(client, "p", make_readings(4, start=START + 10)).json()["accepted"] == 8


def test_unreachable_postgres_is_503_not_a_hang(
    make_client: Callable[..., TestClient], keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "WAIT_S", 1.0)
    client = make_client(
        database_url="postgresql+psycopg://nobody@127.0.0.1:9/none", purge_every_s=0
    )
    client.headers["X-API-Key"] = keys["score"]
    answer = post(client, "p", make_readings(4))
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"
    assert "unavailable" in answer.json()["detail"]


MONITOR_OPS = [
    ("POST", "/v1/patients/{patient_id}/readings"),
    ("GET", "/v1/patients"),
    ("GET", "/v1/patients/{patient_id}/timeline"),
    ("POST", "/v1/alarms/{alarm_id}/ack"),
    ("DELETE", "/v1/patients/{patient_id}"),
]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize(("method", "path"), MONITOR_OPS)
def test_monitoring_routes_conform_to_their_schema(
    make_client: Callable[..., TestClient],
    keys: dict[str, str],
    tmp_path: Any,
    method: str,
    path: str,
    mode: GenerationMode,
) -> None:
    client = make_client(
        rate_limit_per_minute=0, database_url=f"sqlite:///{tmp_path / 'm.db'}", purge_every_s=0
    )
    client.post(
        "/v1/patients/p/readings",
        json={"readings": make_readings(LENGTH + 8)},
        headers={"X-API-Key": keys["both"]},
    )
    operation = schemathesis.openapi.from_asgi("/openapi.json", client.app)[path][method]

    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=12,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(
            headers={"X-API-Key": keys["both"]},
            checks=[
                not_a_server_error,
                status_code_conformance,
                response_schema_conformance,
                negative_data_rejection,
            ],
        )

    check()


def test_two_workers_behind_one_database_answer_as_one(
    make_client: Callable[..., TestClient],
    keys: dict[str, str],
    database_url: str,
    pipeline: VitalRiskPipeline,
    cohort: pd.DataFrame,
) -> None:
    workers = [make_client(database_url=database_url, purge_every_s=0) for _ in range(2)]
    for worker in workers:
        worker.headers["X-API-Key"] = keys["both"]
    batches = arrival_batches(cohort, 300.0)
    for i, batch in enumerate(batches):  # alternate: each worker sees half of every stream
        assert replay(workers[i % 2], [batch]).errors == []
    expected = offline_reference(pipeline, cohort)
    for worker in workers:
        assert compare(expected, served_reference(worker, ["P0001", "P0002"])) == []
    assert workers[0].get("/v1/patients").json() == workers[1].get("/v1/patients").json()
    metrics = workers[0].get("/metrics").text
    for name in (
        "vitalsentry_monitor_readings_total",
        "vitalsentry_monitor_scoring_lag_seconds_bucket",
        "vitalsentry_monitor_active_alarms",
        "vitalsentry_monitor_db_seconds_bucket",
    ):
        assert name in metrics
