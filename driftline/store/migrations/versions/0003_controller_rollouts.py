"""Controller state, rollouts, gate results and operator requests: what a restarted controller
resumes from.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "controller_state",
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("phase", sa.String(32), nullable=False),
        sa.Column("state", JSONType, nullable=True),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.Column("lease_holder", sa.String(128), nullable=True),
        sa.Column("lease_expires", Timestamp, nullable=True),
        sa.PrimaryKeyConstraint("model_name", name="pk_controller_state"),
    )
    op.create_table(
        "rollouts",
        sa.Column("rollout_id", sa.String(64), nullable=False),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("trigger", sa.String(128), nullable=False),
        sa.Column("started_at", Timestamp, nullable=False),
        sa.Column("finished_at", Timestamp, nullable=True),
        sa.Column("phase", sa.String(32), nullable=False),
        sa.Column("result", sa.String(16), nullable=True),
        sa.Column("champion_version", sa.String(32), nullable=False),
        sa.Column("candidate_version", sa.String(32), nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("rollout_id", name="pk_rollouts"),
    )
    op.create_index("ix_rollouts_model_name", "rollouts", ["model_name"])
    op.create_index("ix_rollouts_started_at", "rollouts", ["started_at"])
    op.create_table(
        "gate_results",
        sa.Column("rollout_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("figures", JSONType, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("rollout_id", "name", name="pk_gate_results"),
    )
    op.create_table(
        "controller_requests",
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("version", sa.String(32), nullable=True),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("consumed_at", Timestamp, nullable=True),
        sa.Column("outcome", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("request_id", name="pk_controller_requests"),
    )
    op.create_index("ix_controller_requests_model_name", "controller_requests", ["model_name"])


def downgrade() -> None:
    op.drop_table("controller_requests")
    op.drop_table("gate_results")
    op.drop_table("rollouts")
    op.drop_table("controller_state")
