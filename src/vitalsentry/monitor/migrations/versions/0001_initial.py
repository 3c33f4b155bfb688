"""Monitoring tables: readings, window scores, alarm episodes, patient state.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
PATIENT = sa.String(128)


def upgrade() -> None:
    """Create the four tables and their indexes."""
    op.create_table(
        "readings",
        sa.Column("patient_id", PATIENT, primary_key=True),
        sa.Column("channel", sa.String(32), primary_key=True),
        sa.Column("t_us", sa.BigInteger(), primary_key=True),
        sa.Column("value", sa.Double(), nullable=False),
    )
    op.create_index("ix_readings_patient_time", "readings", ["patient_id", "t_us"])
    op.create_index("ix_readings_time", "readings", ["t_us"])
    op.create_table(
        "window_scores",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("patient_id", PATIENT, nullable=False),
        sa.Column("start_s", sa.Double(), nullable=False),
        sa.Column("end_s", sa.Double(), nullable=False),
        sa.Column("risk", sa.Double(), nullable=False),
        sa.Column("level", sa.String(8), nullable=False),
        sa.Column("anomaly_score", sa.Double(), nullable=False),
        sa.Column("top_vital", sa.String(32), nullable=False),
        sa.Column("contributions", sa.JSON(), nullable=False),
        sa.Column("news2", sa.Integer()),
        sa.Column("news2_level", sa.String(16)),
        sa.Column("risk_mean", sa.Double()),
        sa.Column("risk_std", sa.Double()),
        sa.Column("alarm_on", sa.Boolean(), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("scored_at_s", sa.Double(), nullable=False),
        sa.UniqueConstraint("patient_id", "start_s", name="uq_window_scores_patient_start"),
    )
    op.create_index("ix_window_scores_end", "window_scores", ["end_s"])
    op.create_table(
        "alarm_episodes",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("patient_id", PATIENT, nullable=False),
        sa.Column("started_s", sa.Double(), nullable=False),
        sa.Column("last_on_s", sa.Double(), nullable=False),
        sa.Column("cleared_s", sa.Double()),
        sa.Column("peak_risk", sa.Double(), nullable=False),
        sa.Column("acked_by", sa.String(64)),
        sa.Column("acked_at_s", sa.Double()),
    )
    op.create_index(
        "ix_alarm_episodes_patient_start", "alarm_episodes", ["patient_id", "started_s"]
    )
    op.create_index("ix_alarm_episodes_last_on", "alarm_episodes", ["last_on_s"])
    op.create_table(
        "patient_state",
        sa.Column("patient_id", PATIENT, primary_key=True),
        sa.Column("origin_us", sa.BigInteger()),
        sa.Column("next_window", sa.Integer(), nullable=False),
        sa.Column("sealed", sa.JSON(), nullable=False),
        sa.Column("latest", sa.JSON(), nullable=False),
        sa.Column("on_oxygen", sa.Boolean(), nullable=False),
        sa.Column("consciousness_alert", sa.Boolean(), nullable=False),
        sa.Column("last_reading_us", sa.BigInteger()),
        sa.Column("score_id", ID),
        sa.Column("alarm_on", sa.Boolean(), nullable=False),
        sa.Column("alarm_quiet", sa.Integer(), nullable=False),
        sa.Column("alarm_recent", sa.String(64), nullable=False),
        sa.Column("alarm_id", ID),
        sa.Column("updated_s", sa.Double(), nullable=False),
    )


def downgrade() -> None:
    """Drop the four tables."""
    for table in ("patient_state", "alarm_episodes", "window_scores", "readings"):
        op.drop_table(table)
