"""Schemathesis against the published OpenAPI schema: no 5xx, no schema violations."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


WITH_INPUT = [("POST", "/v1/score"), ("POST", "/v1/score/batch"), ("POST", "/v1/fhir/score")]
KEYED = [("GET", "/v1/model"), ("GET", "/metrics")]
OPEN = [("GET", "/healthz"), ("GET", "/readyz")]
POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE


@pytest.mark.parametrize(
    ("method", "path", "mode"),
    [(*op, POSITIVE) for op in WITH_INPUT + KEYED + OPEN]
    + [(*op, NEGATIVE) for op in WITH_INPUT + KEYED],
)
def test_api_conforms_to_its_schema(
    make_client: Callable[..., TestClient],
    keys: dict[str, str],
    method: str,
    path: str,
    mode: GenerationMode,
) -> None:
    client = make_client(rate_limit_per_minute=0)  # started: the model is loaded
    operation = schemathesis.openapi.from_asgi("/openapi.json", client.app)[path][method]

    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=25,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(headers={"X-API-Key": keys["both"]}, checks=CHECKS)

    check()


def test_schema_publishes_every_endpoint_and_the_key_header(
    make_client: Callable[..., TestClient],
) -> None:
    spec = make_client().get("/openapi.json").json()
    assert set(spec["paths"]) == {
        "/v1/score",
        "/v1/score/batch",
        "/v1/fhir/score",
        "/v1/model",
        "/healthz",
        "/readyz",
        "/metrics",
        "/v1/patients",
        "/v1/patients/{patient_id}",
        "/v1/patients/{patient_id}/readings",
        "/v1/patients/{patient_id}/timeline",
        "/v1/alarms/{alarm_id}/ack",
    }
    scheme = spec["components"]["securitySchemes"]["APIKeyHeader"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "X-API-Key")
    assert spec["paths"]["/v1/score"]["post"]["security"] == [{"APIKeyHeader": []}]
    assert "security" not in spec["paths"]["/healthz"]["get"]
    reading = spec["components"]["schemas"]["Reading"]["properties"]["heart_rate"]["anyOf"][0]
    assert (reading["minimum"], reading["maximum"]) == (20, 300)


def test_schema_states_that_one_mc_pass_is_refused(
    make_client: Callable[..., TestClient],
) -> None:
    """The service refuses ``mc_passes=1`` (no spread from one pass); the schema says so."""
    spec = make_client().get("/openapi.json").json()
    for path in ("/v1/score", "/v1/score/batch", "/v1/fhir/score"):
        (param,) = [
            p for p in spec["paths"][path]["post"]["parameters"] if p["name"] == "mc_passes"
        ]
        schema = param["schema"]
        assert (schema["minimum"], schema["not"]) == (0, {"const": 1})
