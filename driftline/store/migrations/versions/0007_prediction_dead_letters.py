"""Prediction records the store refused, quarantined so the rest of the log goes on.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "prediction_dead_letters",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("quarantined_at", Timestamp, nullable=False),
        sa.Column("request_id", sa.Text, nullable=False),
        sa.Column("slot", sa.Text, nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("record", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_prediction_dead_letters"),
    )
    op.create_index(
        "ix_prediction_dead_letters_quarantined_at",
        "prediction_dead_letters",
        ["quarantined_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_prediction_dead_letters_quarantined_at", "prediction_dead_letters")
    op.drop_table("prediction_dead_letters")
