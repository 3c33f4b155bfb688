"""Databases for the monitoring tests (monitor/, serve/): SQLite always, PostgreSQL when configured.

``VITALSENTRY_TEST_DATABASE_URL`` (a ``postgresql+psycopg://`` URL, e.g. from
``.ci/postgres.sh``) adds a PostgreSQL run of every test that takes ``database_url``; its
tables are dropped before each test.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import text

from vitalsentry.monitor.db import make_engine
from vitalsentry.monitor.store import MonitorStore
from vitalsentry.monitor.tables import Base

PG_URL = os.environ.get("VITALSENTRY_TEST_DATABASE_URL")


def reset_postgres(url: str) -> None:
    """Drop the monitoring tables and Alembic's version table."""
    engine = make_engine(url)
    with engine.begin() as conn:
        Base.metadata.drop_all(conn)
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param(
            "postgresql",
            marks=pytest.mark.skipif(
                PG_URL is None, reason="VITALSENTRY_TEST_DATABASE_URL is not set"
            ),
        ),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'monitor.sqlite3'}"
    assert PG_URL is not None
    reset_postgres(PG_URL)
    return PG_URL


@pytest.fixture
def store(database_url: str) -> MonitorStore:
    opened = MonitorStore.open(database_url)
    yield opened  # type: ignore[misc]
    opened.close()
