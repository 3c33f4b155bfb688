"""Bundle, keys and app clients for the service tests (data builders: ``service_data``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service_data import build_bundle
from vitalsentry.pipeline import VitalRiskPipeline
from vitalsentry.serve.app import create_app
from vitalsentry.serve.security import new_key, parse_key_entries
from vitalsentry.serve.settings import Settings


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_bundle(tmp_path_factory.mktemp("serve") / "bundle")


@pytest.fixture(scope="session")
def pipeline(bundle_dir: Path) -> VitalRiskPipeline:
    return VitalRiskPipeline.from_bundle(bundle_dir)


ROLES = {"score": ("score",), "admin": ("admin",), "both": ("score", "admin")}


@pytest.fixture(scope="session")
def key_pairs() -> dict[str, tuple[str, str]]:
    """(key, entry) by role: ``score``, ``admin`` (admin only), ``both``."""
    return {role: new_key(scopes) for role, scopes in ROLES.items()}


@pytest.fixture(scope="session")
def keys(key_pairs: dict[str, tuple[str, str]]) -> dict[str, str]:
    return {role: pair[0] for role, pair in key_pairs.items()}


@pytest.fixture(scope="session")
def key_entries(key_pairs: dict[str, tuple[str, str]]) -> str:
    return ",".join(pair[1] for pair in key_pairs.values())


@pytest.fixture
def make_client(
    pipeline: VitalRiskPipeline, key_entries: str
) -> Iterator[Callable[..., TestClient]]:
    """Factory of started TestClients over the shared pipeline; keyword args override settings."""
    clients: list[TestClient] = []

    def factory(**overrides: Any) -> TestClient:
        values: dict[str, Any] = {
            "bundle": None,
            "api_keys": parse_key_entries(key_entries),
        } | overrides
        client = TestClient(
            create_app(Settings(**values), pipeline=pipeline), raise_server_exceptions=False
        )
        clients.append(client.__enter__())
        return client

    yield factory
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient], keys: dict[str, str]) -> TestClient:
    c = make_client()
    c.headers["X-API-Key"] = keys["both"]
    return c
