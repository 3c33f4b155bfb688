"""Schemathesis with a fixed seed and a bounded number of examples over every operation.

Schema-valid requests (positive mode) must be accepted, or refused only for a rule the
schema cannot state (:data:`DOMAIN_RULES`: the model's window, a duplicate instant, the
span of the readings; FHIR codes, units, values and panels are in the schema);
schema-invalid ones (negative mode) must be refused; nothing may be a 5xx.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, seed, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import negative_data_rejection

EXAMPLES = 20
DOMAIN_RULES = (
    # what the served model needs of a patient's readings: not in the static schema
    "the model needs",  # a channel missing, or covering less than one window
    "no complete window",  # every window broken by a gap longer than the gap policy
    # relations between readings, which JSON Schema cannot state
    "duplicate timestamp",  # two readings at one instant (uniqueItems compares whole items)
    "a second ",  # the same channel twice at one instant for one subject (FHIR)
    "readings may span at most",  # a bound on max - min of the readings' timestamps
)
OPERATIONS = [
    ("POST", "/v1/score"),
    ("POST", "/v1/score/batch"),
    ("POST", "/v1/fhir/score"),
    ("GET", "/v1/model"),
    ("GET", "/metrics"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
]


def _refusals(response: Any) -> list[str]:
    detail = response.json().get("detail")
    return [item["msg"] for item in detail] if isinstance(detail, list) else [str(detail)]


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_schemathesis_finds_no_rejected_valid_request_and_no_5xx(
    make_client: Callable[..., TestClient], keys: dict[str, str], method: str, path: str
) -> None:
    client = make_client(rate_limit_per_minute=0)
    operation = schemathesis.openapi.from_asgi("/openapi.json", client.app)[path][method]
    rejected: list[str] = []

    @given(case=operation.as_strategy(GenerationMode.POSITIVE))
    @seed(11)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def positive(case: schemathesis.Case) -> None:
        response = case.call_and_validate(
            headers={"X-API-Key": keys["both"]}, checks=[not_a_server_error]
        )
        if response.status_code >= 400:
            messages = _refusals(response)
            if not all(any(rule in m for rule in DOMAIN_RULES) for m in messages):
                rejected.append(f"{response.status_code}: {messages[:2]}")

    positive()
    assert rejected == []
    if method == "POST":

        @given(case=operation.as_strategy(GenerationMode.NEGATIVE))
        @seed(11)
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def negative(case: schemathesis.Case) -> None:
            case.call_and_validate(
                headers={"X-API-Key": keys["both"]},
                checks=[not_a_server_error, negative_data_rejection],
            )

        negative()
