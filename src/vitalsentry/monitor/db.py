"""Engines for the monitoring database, its migrations, and database-failure errors.

Without ``VITALSENTRY_DATABASE_URL`` the monitor keeps its history in an embedded SQLite
file (:func:`default_url`) in WAL mode with ``synchronous=FULL`` (a committed append
survives a crash of the process or the machine); PostgreSQL is reached with a
``postgresql+psycopg://`` URL. Every engine is built to fail fast rather than hang: a
connection attempt, a wait for a pool connection or a lock waits a few seconds at most,
and :func:`unavailable` turns the failure into :class:`DatabaseUnavailableError` (the
service's 503 with ``Retry-After``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from vitalsentry.errors import VitalSentryError

WAIT_S: Final = 5.0
"""Longest wait for a connection, a pool slot or a lock."""

MIGRATIONS: Final = "vitalsentry.monitor:migrations"
"""Alembic script location, inside the installed package."""

SCHEMA_HEAD: Final = "0001"
"""Latest migration revision."""

_PG_ADVISORY_KEY: Final = 0x76697461  # "vita": one migrator at a time across workers


class DatabaseUnavailableError(VitalSentryError):
    """The database cannot be reached or is too busy; the request may be retried."""


def default_url() -> str:
    """Return the embedded database's URL: ``$XDG_DATA_HOME/vitalsentry/monitor.sqlite3``."""
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return f"sqlite:///{base / 'vitalsentry' / 'monitor.sqlite3'}"


def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
    """WAL, durable commits, a bounded lock wait; transactions begun by SQLAlchemy."""
    dbapi_connection.isolation_level = None  # the "begin" listener emits BEGIN itself
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {int(WAIT_S * 1000)}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = FULL")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    """``BEGIN IMMEDIATE`` for writers (the write lock up front, no snapshot upgrade race)."""
    immediate = connection.get_execution_options().get("immediate", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(url: str | URL) -> Engine:
    """Create an engine for a SQLite or PostgreSQL URL (see the module docstring).

    Raises
    ------
    VitalSentryError
        Another kind of database, or a malformed URL.
    """
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError or ValueError
        raise VitalSentryError(f"database URL: cannot parse it ({type(exc).__name__})") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": WAIT_S, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if backend == "postgresql":
        return create_engine(
            parsed,
            pool_pre_ping=True,
            pool_timeout=WAIT_S,
            pool_size=8,
            connect_args={
                "connect_timeout": int(WAIT_S),
                "options": f"-c lock_timeout={int(WAIT_S * 1000)}",
            },
        )
    raise VitalSentryError(
        f"database URL: {backend} is not supported (use sqlite:///FILE or postgresql+psycopg://…)"
    )


def writer(engine: Engine) -> Engine:
    """Return the engine as writers use it (SQLite: ``BEGIN IMMEDIATE``)."""
    return engine.execution_options(immediate=True)


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """One migrator at a time: an advisory lock (PostgreSQL) or a lock file (SQLite)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_ADVISORY_KEY})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_ADVISORY_KEY})
        return
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrate-lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to ``revision`` with the package's Alembic migrations.

    Raises
    ------
    DatabaseUnavailableError
        The database cannot be reached.
    """
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    with unavailable(), _migration_lock(engine), engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


@contextlib.contextmanager
def unavailable() -> Iterator[None]:
    """Turn connection, pool and lock failures into :class:`DatabaseUnavailableError`."""
    try:
        yield
    except PoolTimeout:
        raise DatabaseUnavailableError("the database is busy: no free connection") from None
    except OperationalError as exc:
        raise DatabaseUnavailableError(f"the database is unavailable ({_reason(exc)})") from None
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise DatabaseUnavailableError("the database connection was lost") from None
        raise


def _reason(exc: DBAPIError) -> str:
    """Return a short reason without SQL or parameters (which could hold patient data)."""
    first = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
    return first[:120]
