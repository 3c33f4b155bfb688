"""The monitoring database: SQLAlchemy 2 models of readings, window scores, alarms and state.

Times are stored as numbers, identically on SQLite and PostgreSQL: readings at whole
microseconds since the Unix epoch (``t_us``, exact, so ``(patient, channel, t_us)`` is a
key), windows and alarm times as float epoch seconds (``*_s``, as the pipeline computes
them). The schema is created and changed only by the Alembic migrations shipped in
``vitalsentry/monitor/migrations`` (:func:`vitalsentry.monitor.db.migrate`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Double,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ID = BigInteger().with_variant(Integer, "sqlite")
"""Surrogate keys: BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite."""

PATIENT_ID_LENGTH = 128


class Base(DeclarativeBase):
    """Declarative base of the monitoring tables."""


class ReadingRow(Base):
    """One measured value: a patient's channel at an instant (the key makes appends idempotent)."""

    __tablename__ = "readings"

    patient_id: Mapped[str] = mapped_column(String(PATIENT_ID_LENGTH), primary_key=True)
    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    t_us: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    value: Mapped[float] = mapped_column(Double)

    __table_args__ = (
        Index("ix_readings_patient_time", "patient_id", "t_us"),
        Index("ix_readings_time", "t_us"),
    )


class WindowScoreRow(Base):
    """The pipeline's score of one complete window of a patient."""

    __tablename__ = "window_scores"

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(String(PATIENT_ID_LENGTH))
    start_s: Mapped[float] = mapped_column(Double)
    end_s: Mapped[float] = mapped_column(Double)
    risk: Mapped[float] = mapped_column(Double)
    level: Mapped[str] = mapped_column(String(8))
    anomaly_score: Mapped[float] = mapped_column(Double)
    top_vital: Mapped[str] = mapped_column(String(32))
    contributions: Mapped[dict[str, float]] = mapped_column(JSON)
    news2: Mapped[int | None] = mapped_column(Integer)
    news2_level: Mapped[str | None] = mapped_column(String(16))
    risk_mean: Mapped[float | None] = mapped_column(Double)
    risk_std: Mapped[float | None] = mapped_column(Double)
    alarm_on: Mapped[bool] = mapped_column(Boolean)
    model_version: Mapped[str] = mapped_column(String(32))
    scored_at_s: Mapped[float] = mapped_column(Double)

    __table_args__ = (
        UniqueConstraint("patient_id", "start_s", name="uq_window_scores_patient_start"),
        Index("ix_window_scores_end", "end_s"),
    )


class AlarmEpisodeRow(Base):
    """An alarm episode: from its onset window to the last window with the alarm on."""

    __tablename__ = "alarm_episodes"

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    patient_id: Mapped[str] = mapped_column(String(PATIENT_ID_LENGTH))
    started_s: Mapped[float] = mapped_column(Double)
    last_on_s: Mapped[float] = mapped_column(Double)
    cleared_s: Mapped[float | None] = mapped_column(Double)
    peak_risk: Mapped[float] = mapped_column(Double)
    acked_by: Mapped[str | None] = mapped_column(String(64))
    acked_at_s: Mapped[float | None] = mapped_column(Double)

    __table_args__ = (
        Index("ix_alarm_episodes_patient_start", "patient_id", "started_s"),
        Index("ix_alarm_episodes_last_on", "last_on_s"),
    )


class PatientStateRow(Base):
    """Everything the stream needs to go on for a patient, and its latest result.

    ``origin_us`` is the grid origin (the first reading); windows ``k < next_window`` are
    decided. ``sealed`` maps each model channel to the time up to which a new reading
    would change a decided window. ``latest`` maps channels to ``[t_us, value]`` of their
    newest reading (NEWS2). ``alarm_recent`` holds the k-of-n look-back as ``0``/``1``.
    """

    __tablename__ = "patient_state"

    patient_id: Mapped[str] = mapped_column(String(PATIENT_ID_LENGTH), primary_key=True)
    origin_us: Mapped[int | None] = mapped_column(BigInteger)
    next_window: Mapped[int] = mapped_column(Integer, default=0)
    sealed: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    latest: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    on_oxygen: Mapped[bool] = mapped_column(Boolean, default=False)
    consciousness_alert: Mapped[bool] = mapped_column(Boolean, default=True)
    last_reading_us: Mapped[int | None] = mapped_column(BigInteger)
    score_id: Mapped[int | None] = mapped_column(ID)
    alarm_on: Mapped[bool] = mapped_column(Boolean, default=False)
    alarm_quiet: Mapped[int] = mapped_column(Integer, default=0)
    alarm_recent: Mapped[str] = mapped_column(String(64), default="")
    alarm_id: Mapped[int | None] = mapped_column(ID)
    updated_s: Mapped[float] = mapped_column(Double)
