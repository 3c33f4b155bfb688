"""Endpoints, error paths, start-up and safety rules of the service."""

from __future__ import annotations

import gc
import json
import logging
import os
import random
import shutil
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from service_data import LENGTH, make_readings
from vitalsentry.data.sources import read_readings
from vitalsentry.errors import BundleError, VitalSentryError
from vitalsentry.pipeline import VitalRiskPipeline
from vitalsentry.risk.alarms import AlarmState
from vitalsentry.risk.news2 import news2_score
from vitalsentry.serve import app as app_module
from vitalsentry.serve.app import create_app, run
from vitalsentry.serve.service import ScoringService
from vitalsentry.serve.settings import Settings

ALL_CHANNELS = (
    "heart_rate",
    "spo2",
    "respiratory_rate",
    "temperature",
    "systolic_bp",
    "diastolic_bp",
)


def body(
    patient_id: str = "p-001", alarm_state: dict[str, Any] | None = None, **kwargs: Any
) -> dict[str, Any]:
    out = {"patient_id": patient_id, "readings": make_readings(**kwargs)}
    return out if alarm_state is None else out | {"alarm_state": alarm_state}


def messages(response: Any) -> list[str]:
    assert response.status_code == 422, response.text
    return [item["msg"] for item in response.json()["detail"]]


# --- scoring ---------------------------------------------------------------------------


def test_score_returns_risk_level_and_reasons(
    client: TestClient, pipeline: VitalRiskPipeline
) -> None:
    r = client.post("/v1/score", json=body())
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["patient_id"] == "p-001"
    assert out["model_version"] == pipeline.model_version
    assert 0.0 <= out["risk"] <= 1.0
    assert out["level"] in ("low", "medium", "high")
    assert set(out["contributions"]) == set(pipeline.channels)
    assert sum(out["contributions"].values()) == pytest.approx(1.0)
    start, end = (datetime.fromisoformat(out[k]) for k in ("window_start", "window_end"))
    assert (end - start).total_seconds() == LENGTH - 1
    assert out["uncertainty"] is None and out["news2"] is None


def test_score_says_why_there_is_no_fused_risk_and_gives_the_views(client: TestClient) -> None:
    out = client.post("/v1/score", json=body()).json()
    assert out["fused_risk"] is None and "no fusion head" in out["fused_risk_note"]
    assert out["views"] == {} and out["alarm"] is None  # one-view bundle; no alarm_state sent


@pytest.mark.parametrize(
    "before",
    [{"on": False, "recent": [True, True]}, {"on": True, "quiet": 3}, {"on": False}],
)
def test_score_steps_the_alarm_state_it_is_given(
    client: TestClient, pipeline: VitalRiskPipeline, before: dict[str, Any]
) -> None:
    out = client.post("/v1/score", json=body(alarm_state=before)).json()
    state = AlarmState(before["on"], before.get("quiet", 0), tuple(before.get("recent", [])))
    after = state.step(out["level"] == "high", pipeline.alarm_policy)
    assert out["alarm"] == {"on": after.on, "quiet": after.quiet, "recent": list(after.recent)}


def test_a_bad_alarm_state_is_a_422_naming_the_field(client: TestClient) -> None:
    r = client.post("/v1/score", json=body(alarm_state={"on": False, "quiet": -1}))
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"][-2:] == ["alarm_state", "quiet"]


def test_score_equals_the_cli_path(
    client: TestClient, pipeline: VitalRiskPipeline, tmp_path: Path
) -> None:
    """Same readings through a tidy CSV → read_readings → score_frame(latest_only=True)."""
    readings = make_readings(150, step=1.5, seed=7, channels=("heart_rate", "spo2", "temperature"))
    path = tmp_path / "tidy.csv"
    pd.DataFrame([{"patient_id": "p-9", **r} for r in readings]).to_csv(path, index=False)
    cli = pipeline.score_frame(read_readings(path, "tidy").frame, latest_only=True).iloc[0]
    api = client.post("/v1/score", json={"patient_id": "p-9", "readings": readings}).json()
    assert api["risk"] == pytest.approx(cli["risk"], abs=1e-9)
    assert api["anomaly_score"] == pytest.approx(cli["anomaly_score"], abs=1e-9)
    assert api["level"] == cli["level"]
    assert pd.Timestamp(api["window_start"]) == cli["window_start"]
    assert pd.Timestamp(api["window_end"]) == cli["window_end"]
    for name in pipeline.channels:
        assert api["contributions"][name] == pytest.approx(cli[f"contribution_{name}"], abs=1e-9)


def test_irregular_unordered_readings_score_like_ordered_ones(client: TestClient) -> None:
    rng = np.random.default_rng(3)
    times = 1_714_550_400 + np.cumsum(rng.uniform(0.5, 3.0, 120))
    readings = [
        {
            "timestamp": pd.Timestamp(t, unit="s", tz="UTC").isoformat(),
            "heart_rate": 70 + k % 7,
            "spo2": 97.0,
        }
        for k, t in enumerate(times)
    ]
    shuffled = random.Random(0).sample(readings, len(readings))
    first = client.post("/v1/score", json={"patient_id": "a", "readings": readings}).json()
    second = client.post("/v1/score", json={"patient_id": "a", "readings": shuffled}).json()
    assert first == second


def test_mc_dropout_uncertainty_is_capped(
    make_client: Callable[..., TestClient], keys: dict[str, str]
) -> None:
    client = make_client(max_mc_passes=3)
    client.headers["X-API-Key"] = keys["score"]
    out = client.post("/v1/score", params={"mc_passes": 50}, json=body()).json()
    assert out["uncertainty"]["passes"] == 3
    assert 0 <= out["uncertainty"]["mean"] <= 1 and out["uncertainty"]["std"] >= 0
    assert (
        client.post("/v1/score", params={"mc_passes": 2}, json=body()).json()["uncertainty"][
            "passes"
        ]
        == 2
    )
    assert (
        "at least 2" in messages(client.post("/v1/score", params={"mc_passes": 1}, json=body()))[0]
    )
    assert client.post("/v1/score", params={"mc_passes": -1}, json=body()).status_code == 422


def test_news2_uses_the_latest_value_of_each_parameter(client: TestClient) -> None:
    readings = make_readings(channels=ALL_CHANNELS)
    readings[-1] |= {"respiratory_rate": 26.0, "heart_rate": 135.0}  # latest: both score 3
    readings[0] |= {"respiratory_rate": 12.0}
    out = client.post("/v1/score", json={"patient_id": "n", "readings": readings[::-1]}).json()
    last = {name: next(r[name] for r in reversed(readings) if name in r) for name in ALL_CHANNELS}
    expected = news2_score(
        last["respiratory_rate"],
        last["spo2"],
        last["systolic_bp"],
        last["heart_rate"],
        last["temperature"],
    )
    assert out["news2"]["score"] == int(expected)
    assert out["news2"]["components"]["respiratory_rate"] == 3
    assert out["news2"]["components"]["heart_rate"] == 3
    oxygen = client.post(
        "/v1/score", json={"patient_id": "n", "readings": readings, "on_oxygen": True}
    ).json()
    assert oxygen["news2"]["components"]["air_or_oxygen"] == 2
    assert oxygen["news2"]["score"] == out["news2"]["score"] + 2


def test_news2_absent_when_a_parameter_is_missing(client: TestClient) -> None:
    readings = make_readings(channels=ALL_CHANNELS[:4])
    assert (
        client.post("/v1/score", json={"patient_id": "n", "readings": readings}).json()["news2"]
        is None
    )


# --- batch -----------------------------------------------------------------------------


def test_batch_scores_each_patient_like_the_single_endpoint(client: TestClient) -> None:
    patients = [body("a", seed=1), body("b", n=20, seed=2), body("c", seed=3, step=2.0)]
    r = client.post("/v1/score/batch", json={"patients": patients})
    assert r.status_code == 200, r.text
    out = r.json()
    assert [x["patient_id"] for x in out["results"]] == ["a", "c"]
    assert [(e["index"], e["patient_id"]) for e in out["errors"]] == [(1, "b")]
    assert "heart_rate readings cover 19 s" in out["errors"][0]["detail"]
    for result, patient in zip(out["results"], (patients[0], patients[2]), strict=True):
        single = client.post("/v1/score", json=patient).json()
        assert result["risk"] == pytest.approx(single["risk"], abs=1e-6)
        assert result["level"] == single["level"]


def test_batch_gives_alarm_state_only_to_patients_that_sent_one(client: TestClient) -> None:
    given = {"on": True, "quiet": 1}
    patients = [body("a", seed=1), body("b", seed=2, alarm_state=given)]
    out = client.post("/v1/score/batch", json={"patients": patients}).json()["results"]
    assert out[0]["alarm"] is None
    assert out[1]["alarm"]["on"] is True  # the default policy clears after 4 quiet windows
    assert out[1]["alarm"]["quiet"] == (0 if out[1]["level"] == "high" else 2)


def test_batch_with_no_scorable_patient_reports_every_one(client: TestClient) -> None:
    gap = make_readings(40) + make_readings(40, start=1_714_550_400 + 1000)
    out = client.post(
        "/v1/score/batch", json={"patients": [{"patient_id": "g", "readings": gap}, body("s", n=5)]}
    ).json()
    assert out["results"] == []
    assert [e["index"] for e in out["errors"]] == [0, 1]
    assert out["errors"][0]["detail"].startswith("no complete window")


def test_batch_refuses_duplicate_patients(client: TestClient) -> None:
    msg = messages(
        client.post("/v1/score/batch", json={"patients": [body("x"), body("y"), body("x")]})
    )
    assert msg == ["patients[2].patient_id: duplicate patient_id (also patients[0])"]


def test_batch_limits(make_client: Callable[..., TestClient], keys: dict[str, str]) -> None:
    client = make_client(max_patients=2, max_readings=200)
    client.headers["X-API-Key"] = keys["score"]
    three = {"patients": [body(str(i), n=70) for i in range(3)]}
    assert "3 patients; at most 2" in messages(client.post("/v1/score/batch", json=three))[0]
    big = {"patients": [body(str(i), n=150) for i in range(2)]}
    assert "300 readings; at most 200" in messages(client.post("/v1/score/batch", json=big))[0]
    assert "250 readings" in messages(client.post("/v1/score", json=body(n=250)))[0]


# --- validation: 422 -------------------------------------------------------------------


def test_out_of_range_vital_names_the_field(client: TestClient) -> None:
    data = body()
    data["readings"][12]["heart_rate"] = 900
    data["readings"][3]["spo2"] = 140.5
    assert sorted(messages(client.post("/v1/score", json=data))) == [
        "readings[12].heart_rate: 900 is outside 20–300 /min",
        "readings[3].spo2: 140.5 is outside 50–100 %",
    ]


def post_raw(client: TestClient, text: str) -> Any:
    return client.post("/v1/score", content=text, headers={"content-type": "application/json"})


def with_literal(data: dict[str, Any], literal: str) -> str:
    """JSON text of ``data`` with readings[0].heart_rate replaced by a raw literal."""
    data["readings"][0]["heart_rate"] = 12345.678
    return json.dumps(data).replace("12345.678", literal)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused(client: TestClient, literal: str) -> None:
    msg = messages(post_raw(client, with_literal(body(), literal)))
    assert msg == ["readings[0].heart_rate: Input should be a finite number"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"heart_rate": "72"}, "readings[5].heart_rate: Input should be a valid number"),
        ({"heart_rate": True}, "readings[5].heart_rate: Input should be a valid number"),
        (
            {"timestamp": "2024-05-01T08:00:05"},
            "readings[5].timestamp: expected an ISO-8601 date-time string with a UTC offset",
        ),
        ({"timestamp": 1714550405}, "readings[5].timestamp: expected an ISO-8601 date-time string"),
        (
            {"timestamp": "1900-05-01T08:00:05Z"},
            "readings[5].timestamp: year 1900 is outside 1970–2200",
        ),
        ({"timestamp": "yesterday"}, "readings[5].timestamp: expected an ISO-8601 date-time"),
        ({"timestamp": "2024-02-30T08:00:05Z"}, "readings[5].timestamp: Input should be a valid"),
        ({"pulse": 70}, "readings[5].pulse: Extra inputs are not permitted"),
    ],
)
def test_wrong_types_and_fields_are_refused(
    client: TestClient, change: dict[str, Any], expected: str
) -> None:
    data = body()
    data["readings"][5] |= change
    msg = messages(client.post("/v1/score", json=data))
    assert len(msg) == 1 and msg[0].startswith(expected)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"readings": make_readings(5)}, "patient_id: Field required"),
        (
            {"patient_id": "", "readings": make_readings(5)},
            "patient_id: String should have at least 1 character",
        ),
        ({"patient_id": "a", "readings": []}, "readings: List should have at least 1 item"),
        (
            {"patient_id": 7, "readings": make_readings(5)},
            "patient_id: Input should be a valid string",
        ),
        ([1, 2], "body: Input should be a valid dictionary"),
    ],
)
def test_malformed_bodies_are_refused(client: TestClient, data: Any, expected: str) -> None:
    assert messages(client.post("/v1/score", json=data))[0].startswith(expected)


def test_invalid_json_is_refused(client: TestClient) -> None:
    assert messages(post_raw(client, '{"patient_id": "a", "readings": ['))[0].startswith(
        "invalid JSON"
    )


def test_duplicate_timestamps_name_both_readings(client: TestClient) -> None:
    data = body()
    data["readings"][9]["timestamp"] = data["readings"][4]["timestamp"]
    assert messages(client.post("/v1/score", json=data)) == [
        "readings[9].timestamp: duplicate timestamp 2024-05-01T08:00:04+00:00 (also readings[4])"
    ]


def test_window_coverage_errors_say_what_is_needed(client: TestClient) -> None:
    short = messages(client.post("/v1/score", json=body(n=30)))[0]
    assert short == (
        "readings: heart_rate readings cover 29 s; the model needs 63 s (64 steps of 1 s) of heart_rate, spo2"
    )
    only_hr = messages(client.post("/v1/score", json=body(channels=("heart_rate",))))[0]
    assert only_hr.startswith("readings: no spo2 reading; the model needs 63 s")
    gap = make_readings(40) + make_readings(40, start=1_714_550_400 + 1000)
    gapped = messages(client.post("/v1/score", json={"patient_id": "g", "readings": gap}))[0]
    assert (
        gapped == "readings: no complete window: heart_rate, spo2 need 63 s together without a gap "
        "beyond the gap policy (heart_rate: gaps ≤ 300 s interpolated; spo2: gaps ≤ 300 s "
        "interpolated)"
    )


def test_long_validation_error_lists_are_truncated(client: TestClient) -> None:
    data = {"patient_id": "a", "readings": [{"timestamp": "x"}] * 500}
    detail = client.post("/v1/score", json=data).json()["detail"]
    assert len(detail) == 21 and detail[-1]["msg"] == "… and 480 more errors"
    assert all("input" not in item for item in detail)


# --- body size, auth, rate limit ------------------------------------------------------


def test_body_size_limit_checks_length_and_stream(
    make_client: Callable[..., TestClient], keys: dict[str, str]
) -> None:
    client = make_client(max_body_bytes=4096)
    client.headers["X-API-Key"] = keys["score"]
    big = json.dumps(body(n=200)).encode()
    r = client.post("/v1/score", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json() == {"detail": "Content Too Large"}

    def chunks() -> Any:
        for i in range(0, len(big), 1000):
            yield big[i : i + 1000]

    r = client.post("/v1/score", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json() == {"detail": "Content Too Large"}
    assert "content-length" not in r.request.headers  # really streamed
    assert client.post("/v1/score", json=body(n=20)).status_code == 422  # small bodies still served


def test_api_key_is_required(make_client: Callable[..., TestClient], keys: dict[str, str]) -> None:
    client = make_client()
    r = client.post("/v1/score", json=body())
    assert r.status_code == 401 and "missing API key" in r.json()["detail"]
    r = client.post("/v1/score", json=body(), headers={"X-API-Key": "guess"})
    assert r.status_code == 401 and r.json() == {"detail": "unknown API key"}
    assert client.get("/v1/model").status_code == 401
    assert client.get("/metrics").status_code == 401
    assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200


def test_scopes_are_enforced(make_client: Callable[..., TestClient], keys: dict[str, str]) -> None:
    client = make_client()
    admin, score = {"X-API-Key": keys["admin"]}, {"X-API-Key": keys["score"]}
    r = client.post("/v1/score", json=body(), headers=admin)
    assert r.status_code == 403 and "'score' scope" in r.json()["detail"]
    assert client.post("/v1/fhir/score", json={}, headers=admin).status_code == 403
    assert client.get("/metrics", headers=score).status_code == 403
    assert client.get("/metrics", headers=admin).status_code == 200
    assert client.get("/v1/model", headers=admin).status_code == 200
    assert client.post("/v1/score", json=body(), headers=score).status_code == 200


def test_keys_can_be_switched_off(make_client: Callable[..., TestClient]) -> None:
    client = make_client(require_api_key=False, api_keys=())
    assert client.post("/v1/score", json=body()).status_code == 200
    assert client.get("/metrics").status_code == 200


def test_no_key_configured_refuses_to_start(pipeline: VitalRiskPipeline) -> None:
    with pytest.raises(VitalSentryError, match="no API key configured"):
        create_app(Settings(api_keys=()), pipeline=pipeline)


def test_rate_limit_per_key(make_client: Callable[..., TestClient], keys: dict[str, str]) -> None:
    client = make_client(rate_limit_per_minute=2)
    headers = {"X-API-Key": keys["score"]}
    assert [client.get("/v1/model", headers=headers).status_code for _ in range(2)] == [200, 200]
    r = client.get("/v1/model", headers=headers)
    assert r.status_code == 429 and r.headers["Retry-After"] == "30"
    assert client.get("/v1/model", headers={"X-API-Key": keys["both"]}).status_code == 200


# --- model card, health, metrics -------------------------------------------------------


def test_model_card(client: TestClient, pipeline: VitalRiskPipeline) -> None:
    card = client.get("/v1/model").json()
    assert card["model_version"] == pipeline.model_version
    assert card["data_fingerprint"] == "test-fingerprint"
    assert card["channels"] == ["heart_rate", "spo2"]
    assert card["feature_names"] == ["heart_rate", "spo2", "hour_sin", "hour_cos"]
    assert card["window"] == {
        "length": 64,
        "stride": 32,
        "step_s": 1.0,
        "seconds": 63.0,
        "max_gap_s": 300.0,
    }
    assert card["metrics"]["detector"]["val_fpr"] == pipeline.calibration.val_fpr
    assert card["risk_thresholds"]["high"] == pipeline.calibration.risk_high


def test_readyz_is_503_until_started(pipeline: VitalRiskPipeline) -> None:
    not_started = TestClient(create_app(Settings(require_api_key=False), pipeline=pipeline))
    assert not_started.get("/healthz").json() == {"status": "ok"}
    assert not_started.get("/readyz").status_code == 503
    with not_started as started:
        assert started.get("/readyz").json() == {
            "status": "ready",
            "model_version": pipeline.model_version,
        }
        assert gc.get_freeze_count() > 0  # the loaded model is out of the collector's passes
    assert gc.get_freeze_count() == 0


def test_metrics_count_requests_and_levels_per_app(
    make_client: Callable[..., TestClient], keys: dict[str, str]
) -> None:
    first, second = make_client(), make_client()
    headers = {"X-API-Key": keys["both"]}
    level = first.post("/v1/score", json=body(), headers=headers).json()["level"]
    first.post("/v1/score", json=body(n=10), headers=headers)
    text = first.get("/metrics", headers=headers).text
    assert 'vitalsentry_requests_total{method="POST",route="/v1/score",status="200"} 1.0' in text
    assert 'vitalsentry_requests_total{method="POST",route="/v1/score",status="422"} 1.0' in text
    assert f'vitalsentry_scores_total{{level="{level}"}} 1.0' in text
    assert 'vitalsentry_request_seconds_count{route="/v1/score"} 2.0' in text
    assert "vitalsentry_batch_patients_count 1.0" in text
    assert "/v1/score" not in second.get("/metrics", headers=headers).text


# --- safety ----------------------------------------------------------------------------


def test_unexpected_errors_answer_500_without_details(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def boom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("secret value 123")

    monkeypatch.setattr(ScoringService, "score", boom)
    with caplog.at_level(logging.ERROR, logger="vitalsentry"):
        r = client.post("/v1/score", json=body())
    assert r.status_code == 500 and r.json() == {"detail": "internal server error"}
    assert "RuntimeError" in caplog.text and "secret" not in caplog.text
    assert client.get("/healthz").status_code == 200


def test_domain_errors_answer_422(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise VitalSentryError("MC dropout needs dropout in the encoder")

    monkeypatch.setattr(ScoringService, "score", refuse)
    assert messages(client.post("/v1/score", json=body())) == [
        "MC dropout needs dropout in the encoder"
    ]


def test_logs_hold_no_patient_id_or_vital_value(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    data = body("MRN-4711-Doe", channels=ALL_CHANNELS)
    data["readings"][0]["heart_rate"] = 123.45
    bad = body("MRN-4711-Doe", n=10)
    with caplog.at_level(logging.DEBUG):
        assert client.post("/v1/score", json=data).status_code == 200
        assert client.post("/v1/score", json=bad).status_code == 422
        data["readings"][1]["heart_rate"] = 999.5
        assert client.post("/v1/score", json=data).status_code == 422
    assert "scored patient=" in caplog.text and "not scored patient=" in caplog.text
    for secret in ("MRN-4711", "123.45", "999.5"):
        assert secret not in caplog.text


def test_cors_is_off_unless_configured(make_client: Callable[..., TestClient]) -> None:
    preflight = {"Origin": "https://a.example", "Access-Control-Request-Method": "POST"}
    closed = make_client(require_api_key=False)
    assert (
        "access-control-allow-origin" not in closed.options("/v1/score", headers=preflight).headers
    )
    opened = make_client(require_api_key=False, cors_origins=("https://a.example",))
    r = opened.options("/v1/score", headers=preflight)
    assert r.headers["access-control-allow-origin"] == "https://a.example"


def test_bad_requests_never_stop_the_server(
    make_client: Callable[..., TestClient], keys: dict[str, str]
) -> None:
    client = make_client(max_body_bytes=64 * 1024)
    client.headers["X-API-Key"] = keys["score"]
    bad = [
        post_raw(client, with_literal(body(), "NaN")),
        post_raw(client, json.dumps(body(n=5000))),  # huge array: over the body limit
        client.post("/v1/score", json={"patient_id": ["a"], "readings": "many"}),  # wrong types
        client.post("/v1/score", json=body(n=LENGTH - 1)),  # one step short of a window
        post_raw(client, "\x00\xff not json"),
        client.post("/v1/score/batch", json={"patients": [{}] * 3}),
    ]
    assert [r.status_code for r in bad] == [422, 413, 422, 422, 422, 422]
    assert client.post("/v1/score", json=body(n=LENGTH)).status_code == 200
    assert client.get("/healthz").status_code == 200


# --- start-up ------------------------------------------------------------------------


def tampered(bundle_dir: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "tampered"
    shutil.copytree(bundle_dir, copy)
    scaler = copy / "scaler.json"
    scaler.write_text(scaler.read_text().replace("1", "2", 1))
    return copy


def test_tampered_or_missing_bundle_stops_start_up(
    bundle_dir: Path, tmp_path: Path, key_entries: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(bundle=tampered(bundle_dir, tmp_path), api_keys=key_entries)
    with (
        caplog.at_level(logging.ERROR),
        pytest.raises(BundleError, match=r"scaler\.json' does not match"),
    ):
        TestClient(create_app(settings)).__enter__()
    assert "cannot start:" in caplog.text
    with pytest.raises(BundleError, match="not a model bundle"):
        TestClient(
            create_app(Settings(bundle=tmp_path / "nowhere", api_keys=key_entries))
        ).__enter__()
    with pytest.raises(VitalSentryError, match="no model bundle"):
        create_app(Settings(bundle=None, api_keys=key_entries))


def test_app_loads_its_bundle_at_start_up(
    bundle_dir: Path, key_entries: str, keys: dict[str, str]
) -> None:
    with TestClient(create_app(Settings(bundle=bundle_dir, api_keys=key_entries))) as client:
        assert client.get("/readyz").status_code == 200
        assert (
            client.post("/v1/score", json=body(), headers={"X-API-Key": keys["score"]}).status_code
            == 200
        )


def test_run_verifies_then_hands_over_to_uvicorn(
    bundle_dir: Path, tmp_path: Path, key_entries: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[Any, dict[str, Any]]] = []
    threads: list[int] = []
    monkeypatch.setattr(app_module.uvicorn, "run", lambda target, **kw: calls.append((target, kw)))
    monkeypatch.setattr(app_module.torch, "set_num_threads", threads.append)
    monkeypatch.setenv("VITALSENTRY_API_KEYS", key_entries)
    monkeypatch.setenv("VITALSENTRY_BUNDLE", "restored after the test")
    monkeypatch.setenv("VITALSENTRY_TORCH_THREADS", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "restored after the test")
    run(bundle_dir)
    target, kwargs = calls[-1]
    assert target.state.settings.bundle == bundle_dir.resolve()
    assert kwargs["host"] == "127.0.0.1" and kwargs["port"] == 8000 and not kwargs["factory"]
    assert threads == [1] and os.environ["OMP_NUM_THREADS"] == "1"
    run(bundle_dir, host="0.0.0.0", port=9000, workers=2)
    assert calls[-1][0] == "vitalsentry.serve.app:create_app" and calls[-1][1]["factory"]
    with pytest.raises(BundleError):
        run(tampered(bundle_dir, tmp_path))
    assert len(calls) == 2


def test_repeated_mc_passes_is_refused(client: TestClient) -> None:
    for query in ("mc_passes=2&mc_passes=3", "mc_passes=0.0", "mc_passes=%202"):
        response = client.post(f"/v1/score?{query}", json=body())
        assert response.status_code == 422, query
        assert "mc_passes" in response.text
