"""Alembic environment: migrate the connection that :func:`vitalsentry.monitor.db.migrate` passes."""

from __future__ import annotations

from alembic import context

from vitalsentry.monitor.tables import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run the migrations through vitalsentry.monitor.db.migrate")
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
