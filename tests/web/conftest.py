"""Fixtures of the web view's tests: keys with the ``view`` scope and app clients.

The bundle builder is the service tests' (``service_data``), so both suites share one source.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from web_seed import log_in

from service_data import build_bundle
from vitalsentry.pipeline import VitalRiskPipeline
from vitalsentry.serve.app import create_app
from vitalsentry.serve.security import new_key, parse_key_entries
from vitalsentry.serve.settings import Settings

ROLES = {"view": ("view",), "score": ("score",), "all": ("score", "admin", "view")}


@pytest.fixture(scope="session")
def web_keys() -> dict[str, tuple[str, str]]:
    """(key, entry) by role: ``view`` only, ``score`` only, ``all`` scopes."""
    return {role: new_key(scopes) for role, scopes in ROLES.items()}


@pytest.fixture(scope="session")
def web_settings(web_keys: dict[str, tuple[str, str]]) -> dict[str, Any]:
    entries = ",".join(entry for _, entry in web_keys.values())
    return {"bundle": None, "api_keys": parse_key_entries(entries), "rate_limit_per_minute": 0}


@pytest.fixture(scope="session")
def web_pipeline(tmp_path_factory: pytest.TempPathFactory) -> VitalRiskPipeline:
    bundle = build_bundle(tmp_path_factory.mktemp("web") / "bundle")
    return VitalRiskPipeline.from_bundle(bundle)


@pytest.fixture
def make_web_client(
    web_pipeline: VitalRiskPipeline, web_settings: dict[str, Any], tmp_path: Path
) -> Iterator[Callable[..., TestClient]]:
    """Factory of started TestClients; keyword args override the settings."""
    clients: list[TestClient] = []

    def factory(**overrides: Any) -> TestClient:
        settings = Settings(**(web_settings | overrides))
        client = TestClient(create_app(settings, pipeline=web_pipeline), follow_redirects=False)
        clients.append(client.__enter__())
        return client

    yield factory
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def web_client(
    make_web_client: Callable[..., TestClient],
    database_url: str,
    web_keys: dict[str, tuple[str, str]],
) -> TestClient:
    """A client logged in with the ``view`` key, its app on the test database (``store``'s)."""
    client = make_web_client(database_url=database_url)
    assert log_in(client, web_keys["view"][0]).status_code == 303
    return client
