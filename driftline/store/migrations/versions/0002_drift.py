"""Outcomes, drift reports with per-feature scores, alerts and cached null models.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "outcomes",
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("as_of", Timestamp, nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("received_at", Timestamp, nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("late", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("symbol", "as_of", name="pk_outcomes"),
    )
    op.create_index("ix_outcomes_received_at", "outcomes", ["received_at"])

    op.create_table(
        "drift_reports",
        sa.Column("report_id", sa.String(64), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("severity_level", sa.Integer, nullable=False),
        sa.Column("recommendation", sa.String(32), nullable=False),
        sa.Column("n_rows", sa.Integer, nullable=False),
        sa.Column("window_start", Timestamp, nullable=True),
        sa.Column("window_end", Timestamp, nullable=True),
        sa.Column("payload", JSONType, nullable=False),
        sa.PrimaryKeyConstraint("report_id", name="pk_drift_reports"),
    )
    op.create_index(
        "ix_drift_reports_model_name_created_at", "drift_reports", ["model_name", "created_at"]
    )

    op.create_table(
        "drift_scores",
        sa.Column("report_id", sa.String(64), nullable=False),
        sa.Column("detector", sa.String(32), nullable=False),
        sa.Column("feature", sa.String(128), nullable=False),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("pvalue", sa.Float, nullable=True),
        sa.Column("threshold", sa.Float, nullable=True),
        sa.Column("drifted", sa.Boolean, nullable=False),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["drift_reports.report_id"],
            name="fk_drift_scores_report_id_drift_reports",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "report_id", "detector", "feature", "method", name="pk_drift_scores"
        ),
    )
    op.create_index(
        "ix_drift_scores_model_name_feature_created_at",
        "drift_scores",
        ["model_name", "feature", "created_at"],
    )

    op.create_table(
        "alerts",
        sa.Column("alert_id", sa.String(64), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("severity_level", sa.Integer, nullable=False),
        sa.Column("recommendation", sa.String(32), nullable=False),
        sa.Column("report_id", sa.String(64), nullable=True),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("acknowledged_at", Timestamp, nullable=True),
        sa.Column("acknowledged_by", sa.String(128), nullable=True),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["drift_reports.report_id"],
            name="fk_alerts_report_id_drift_reports",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("alert_id", name="pk_alerts"),
    )
    op.create_index("ix_alerts_model_name_created_at", "alerts", ["model_name", "created_at"])

    op.create_table(
        "drift_baselines",
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("window", sa.Integer, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("payload", JSONType, nullable=False),
        sa.PrimaryKeyConstraint("model_name", "model_version", "window", name="pk_drift_baselines"),
    )


def downgrade() -> None:
    op.drop_table("drift_baselines")
    op.drop_table("alerts")
    op.drop_table("drift_scores")
    op.drop_table("drift_reports")
    op.drop_index("ix_outcomes_received_at", table_name="outcomes")
    op.drop_table("outcomes")
