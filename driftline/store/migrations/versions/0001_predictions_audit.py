"""Predictions and audit events: what serving and the controller write first.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "predictions",
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("slot", sa.String(8), server_default="live", nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("colour", sa.String(8), nullable=True),
        sa.Column("endpoint", sa.String(64), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=True),
        sa.Column("as_of", Timestamp, nullable=True),
        sa.Column("n_rows", sa.Integer, nullable=False),
        sa.Column("features", sa.LargeBinary, nullable=True),
        sa.Column("prediction", JSONType, nullable=False),
        sa.Column("member_outputs", JSONType, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("request_id", "slot", name="pk_predictions"),
    )
    op.create_index("ix_predictions_created_at", "predictions", ["created_at"])
    op.create_index("ix_predictions_symbol_as_of", "predictions", ["symbol", "as_of"])

    op.create_table(
        "audit_events",
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("rollout_id", sa.String(64), nullable=True),
        sa.Column("state_from", sa.String(32), nullable=True),
        sa.Column("state_to", sa.String(32), nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("details", JSONType, nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_audit_events"),
    )
    op.create_index("ix_audit_events_created_at", "audit_events", ["created_at"])
    op.create_index("ix_audit_events_model_name", "audit_events", ["model_name"])
    op.create_index("ix_audit_events_rollout_id", "audit_events", ["rollout_id"])


def downgrade() -> None:
    op.drop_table("audit_events")
    op.drop_table("predictions")
