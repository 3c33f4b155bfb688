"""The bad-input corpus against every scoring endpoint: clean 4xx, named fields, quiet logs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
from corpus import PATIENT, Case, corpus_cases, monitor_sequences, problems
from fastapi.testclient import TestClient

from service_data import make_readings
from vitalsentry.serve.app import QueryRedactingFilter


def _run_corpus(
    client: TestClient,
    keys: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    cases: list[Case],
    valid: tuple[str, dict[str, Any]],
) -> list[str]:
    """Send every case (and, after each bad reading, the valid request); list the problems.

    Also checks the server's log: no patient id, no key from a query, no traceback.
    """
    failures = []
    with caplog.at_level(logging.DEBUG):
        for case in cases:
            key = keys["both"] if case.key == "valid" else case.key
            headers = case.headers | ({"X-API-Key": key} if key else {})
            r = client.request(case.method, case.path, content=case.body, headers=headers)
            failures += [
                f"{case.name} {case.path[:80]}: {p}" for p in problems(case, r.status_code, r.text)
            ]
            if case.names.startswith("readings["):  # a valid request still gets its answer
                ok = client.post(valid[0], json=valid[1], headers={"X-API-Key": keys["score"]})
                failures += (
                    []
                    if ok.status_code == 200
                    else [f"{case.name}: valid request {ok.status_code}"]
                )
    server = [r for r in caplog.records if r.name.startswith(("vitalsentry", "uvicorn", "fastapi"))]
    logged = "\n".join(record.getMessage() for record in server)
    assert PATIENT not in logged and "secret-key-in-query" not in logged
    assert all(record.exc_info is None for record in server)
    return failures


def test_every_bad_input_gets_a_clean_4xx_naming_the_field(
    make_client: Callable[..., TestClient],
    keys: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    cases = corpus_cases(make_readings())
    valid = ("/v1/score", {"patient_id": "x", "readings": make_readings()})
    failures = _run_corpus(make_client(rate_limit_per_minute=0), keys, caplog, cases, valid)
    assert len(cases) > 100
    assert not failures, "\n".join(failures)


def test_the_monitoring_endpoints_get_the_corpus_too(
    make_client: Callable[..., TestClient],
    keys: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    database_url: str,
) -> None:
    client = make_client(database_url=database_url, purge_every_s=0, rate_limit_per_minute=0)
    cases = corpus_cases(make_readings(), monitor=True)
    valid = ("/v1/patients/x/readings", {"readings": make_readings()})
    failures = _run_corpus(client, keys, caplog, cases, valid)
    assert len(cases) > 50
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("name", sorted(monitor_sequences()))
def test_monitoring_sequences_are_answered_and_keep_scoring(
    make_client: Callable[..., TestClient], keys: dict[str, str], database_url: str, name: str
) -> None:
    client = make_client(database_url=database_url, purge_every_s=0, rate_limit_per_minute=0)
    for i, step in enumerate(monitor_sequences()[name]):
        r = client.post(
            step.path,
            content=step.body,
            headers={"X-API-Key": keys["score"], "content-type": "application/json"},
        )
        assert r.status_code == step.status, f"step {i}: {r.text[:200]}"
        assert len(r.json()["windows_scored"]) >= step.windows, f"step {i}"


def test_failed_keys_are_rate_limited_per_client(make_client: Callable[..., TestClient]) -> None:
    client = make_client(failed_key_limit_per_minute=3)
    answers = [
        client.post("/v1/score", content=b"{", headers={"X-API-Key": "guess"}) for _ in range(5)
    ]
    assert [a.status_code for a in answers] == [401, 401, 401, 429, 429]
    assert int(answers[-1].headers["Retry-After"]) >= 1


@pytest.mark.parametrize(
    ("path", "logged"),
    [
        ("/v1/score?X-API-Key=k&patient_id=MRN-1", "/v1/score"),
        ("/v1/patients/MRN-1/timeline?from=x", "/v1/patients/{patient_id}/timeline"),
        ("/v1/patients/MRN-1", "/v1/patients/{patient_id}"),
        ("/patients/MRN-1/data?start=1", "/patients/{patient_id}/data"),
        ("/v1/patients", "/v1/patients"),
    ],
)
def test_the_access_log_never_shows_query_strings_or_patient_ids(path: str, logged: str) -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "POST", path, "1.1", 422),
        None,
    )
    assert QueryRedactingFilter().filter(record)
    assert record.getMessage() == f'127.0.0.1:5 - "POST {logged} HTTP/1.1" 422'
