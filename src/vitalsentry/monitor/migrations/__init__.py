"""Alembic migrations of the monitoring database (run by :func:`vitalsentry.monitor.db.migrate`)."""
