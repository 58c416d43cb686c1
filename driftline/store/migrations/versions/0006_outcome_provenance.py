"""Outcome provenance: who recorded each outcome, and conflicting values held until resolved.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outcomes") as batch:
        # Outcomes stored before provenance was kept say so rather than naming someone.
        batch.add_column(
            sa.Column("recorded_by", sa.String(128), nullable=False, server_default="unrecorded")
        )
        batch.add_column(
            sa.Column("conflict", sa.Boolean, nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("conflict_value", sa.Float, nullable=True))
        batch.add_column(sa.Column("conflict_by", sa.String(128), nullable=True))
        batch.add_column(sa.Column("resolved_by", sa.String(128), nullable=True))
        batch.create_index("ix_outcomes_conflict", ["conflict"])


def downgrade() -> None:
    with op.batch_alter_table("outcomes") as batch:
        batch.drop_index("ix_outcomes_conflict")
        for name in ("resolved_by", "conflict_by", "conflict_value", "conflict", "recorded_by"):
            batch.drop_column(name)
