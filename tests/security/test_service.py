"""One request never takes the service down: bounded spans, isolated failures, clean 500s."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from service_data import make_readings
from vitalsentry.pipeline import VitalRiskPipeline
from vitalsentry.serve.combine import Combiner, _Job
from vitalsentry.serve.inputs import PatientReadings
from vitalsentry.serve.metrics import ServiceMetrics

PROBE = [  # the probe's two readings: the whole 1970–2200 range in one body
    {"timestamp": "1970-01-01T00:00:00Z", "heart_rate": 70.0, "spo2": 97.0},
    {"timestamp": "2199-12-31T00:00:00Z", "heart_rate": 70.0, "spo2": 97.0},
]
LIMIT_TIMES = (
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00+14:00",
    "0001-01-01T00:00:00+00:07",
)


def fhir_entry(when: str, value: float = 70.0) -> dict[str, Any]:
    return {
        "resource": {
            "resourceType": "Observation",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": "Patient/1"},
            "effectiveDateTime": when,
            "valueQuantity": {
                "value": value,
                "system": "http://unitsofmeasure.org",
                "code": "/min",
            },
        }
    }


def test_the_probe_span_is_a_422_and_valid_requests_sent_with_it_are_answered(
    client: TestClient,
) -> None:
    valid = [{"patient_id": f"p{i}", "readings": make_readings(seed=i)} for i in range(12)]
    bodies = [{"patient_id": "probe", "readings": PROBE}, *valid]
    with ThreadPoolExecutor(len(bodies)) as pool:
        answers = list(pool.map(lambda b: client.post("/v1/score", json=b), bodies))
    assert answers[0].status_code == 422
    message = answers[0].json()["detail"][0]["msg"]
    assert message.startswith("readings[0].timestamp:") and "at most 6300 s" in message
    assert [a.status_code for a in answers[1:]] == [200] * 12
    alone = client.post("/v1/score", json=valid[3]).json()
    assert answers[4].json()["risk"] == pytest.approx(alone["risk"], abs=1e-6)


def test_the_probe_span_is_refused_by_batch_and_fhir(client: TestClient) -> None:
    batch = {"patients": [{"patient_id": "a", "readings": make_readings()}]}
    batch["patients"].append({"patient_id": "b", "readings": PROBE})
    r = client.post("/v1/score/batch", json=batch)
    assert r.status_code == 422
    assert r.json()["detail"][0]["msg"].startswith("patients[1].readings[0].timestamp:")
    fhir = {"resourceType": "Bundle", "entry": [fhir_entry(p["timestamp"]) for p in PROBE]}
    r = client.post("/v1/fhir/score", json=fhir)
    assert r.status_code == 422
    assert r.json()["detail"][0]["msg"].startswith("entry[0].resource.effectiveDateTime:")


def test_the_span_limit_is_a_setting(
    make_client: Callable[..., TestClient], keys: dict[str, str]
) -> None:
    readings = make_readings(200, step=60.0)  # 3.3 h
    client = make_client(max_span_windows=1000)
    client.headers["X-API-Key"] = keys["score"]
    assert (
        client.post("/v1/score", json={"patient_id": "a", "readings": readings}).status_code == 200
    )
    client = make_client(max_span_windows=2)
    client.headers["X-API-Key"] = keys["score"]
    r = client.post("/v1/score", json={"patient_id": "a", "readings": readings})
    assert r.status_code == 422 and "2 windows of 63 s" in r.json()["detail"][0]["msg"]


def test_a_failing_combined_call_is_rerun_per_request(pipeline: VitalRiskPipeline) -> None:
    readings = make_readings()
    times = pd.DatetimeIndex(pd.to_datetime([r["timestamp"] for r in readings])).as_unit("ns")
    good = PatientReadings(
        "good",
        times,
        {c: np.array([r[c] for r in readings]) for c in ("heart_rate", "spo2")},
    )
    broken = PatientReadings("bad", times, {"heart_rate": np.ones(3), "spo2": np.ones(3)})
    combiner = Combiner(pipeline, ServiceMetrics())

    async def run() -> tuple[Any, BaseException | None]:
        loop = asyncio.get_running_loop()
        jobs = [_Job([p], 0, loop, loop.create_future()) for p in (good, broken)]
        combiner._run(jobs)  # one combined call that fails because of the second job
        rows = await jobs[0].answer
        return rows, jobs[1].answer.exception()

    try:
        rows, error = asyncio.run(run())
    finally:
        combiner.close()
    assert rows[0] is not None and 0 <= rows[0].scores.risk[rows[0].index] <= 1
    assert error is not None


@pytest.mark.parametrize("when", LIMIT_TIMES)
def test_timestamps_at_the_datetime_limits_are_422(client: TestClient, when: str) -> None:
    readings = make_readings()
    readings[5]["timestamp"] = when
    r = client.post("/v1/score", json={"patient_id": "a", "readings": readings})
    assert r.status_code == 422 and r.json()["detail"][0]["msg"].startswith("readings[5].timestamp")
    r = client.post(
        "/v1/score/batch", json={"patients": [{"patient_id": "a", "readings": readings}]}
    )
    assert r.status_code == 422
    assert r.json()["detail"][0]["msg"].startswith("patients[0].readings[5].timestamp")
    r = client.post("/v1/fhir/score", json={"resourceType": "Bundle", "entry": [fhir_entry(when)]})
    assert r.status_code == 422
    assert r.json()["detail"][0]["msg"].startswith("entry[0].resource.effectiveDateTime")


def test_an_unexpected_error_is_a_bare_500_logged_as_type_and_frames(
    make_client: Callable[..., TestClient],
    keys: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = make_client().app
    secret = "MRN-123456 heart_rate=71"

    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(secret)

    with TestClient(app, raise_server_exceptions=True) as strict:  # nothing escapes the app
        strict.headers["X-API-Key"] = keys["score"]
        monkeypatch.setattr(VitalRiskPipeline, "score_windows", explode)  # after the self-check
        with caplog.at_level(logging.DEBUG):
            r = strict.post(
                "/v1/score", json={"patient_id": "MRN-123456", "readings": make_readings()}
            )
    assert r.status_code == 500 and r.json() == {"detail": "internal server error"}
    assert r.headers["connection"] == "close"
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert secret not in logged and "MRN-123456" not in logged
    (line,) = [rec.getMessage() for rec in caplog.records if rec.levelno >= logging.ERROR]
    head, *frames = line.splitlines()
    assert head == "unhandled POST /v1/score: RuntimeError"
    assert frames and all(f.startswith("  ") and ".py:" in f and " in " in f for f in frames)
    assert "raise RuntimeError" not in line  # no source lines
    assert all(rec.exc_info is None for rec in caplog.records)  # no formatted traceback


def test_ready_only_after_the_scoring_self_check(
    make_client: Callable[..., TestClient],
    pipeline: VitalRiskPipeline,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert make_client().get("/readyz").status_code == 200
    real = VitalRiskPipeline.score_windows

    def nan_risk(self: VitalRiskPipeline, *args: Any, **kwargs: Any) -> Any:
        scores = real(self, *args, **kwargs)
        scores.risk[:] = np.nan
        return scores

    monkeypatch.setattr(VitalRiskPipeline, "score_windows", nan_risk)
    with pytest.raises(Exception, match="the scoring self-check failed"):
        make_client()
