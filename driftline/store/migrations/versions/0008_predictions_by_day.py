"""Predictions keep their UTC day, and PostgreSQL partitions them by it so retention drops days.

A `day` column (the UTC date of `created_at`, which the store sets as it builds a row) is added
and filled from `created_at`. On PostgreSQL the populated table is copied into a new `PARTITION BY
RANGE (day)` table with one partition per day it holds (plus today, tomorrow and a default),
inside the migration's one transaction; the primary key becomes (request_id, slot, day), as
PostgreSQL requires a partitioned table's key to hold the partition column. SQLite keeps its
plain table and its (request_id, slot) key.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from driftline.store.partitions import DAY, DEFAULT, bound, partition_name

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

OLD = "predictions_unpartitioned"
# Every column but `day`, in the table's order, for copying rows between the two layouts.
COLUMNS = (
    "request_id, slot, created_at, model_name, model_version, colour, endpoint, symbol, as_of, "
    "n_rows, features, prediction, member_outputs, latency_ms"
)
# SQL is built from the constant names above (hence `noqa: S608`), never from input.


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        with op.batch_alter_table("predictions") as batch:
            batch.add_column(sa.Column("day", sa.Date, nullable=True))
        # SQLAlchemy keeps SQLite timestamps as UTC text, 'YYYY-MM-DD HH:MM:SS.ffffff'.
        op.execute("UPDATE predictions SET day = date(created_at)")
        with op.batch_alter_table("predictions") as batch:
            batch.alter_column("day", existing_type=sa.Date, nullable=False)
        return
    # The old table's constraint and index names are taken by the new table's.
    op.execute(f"ALTER TABLE predictions RENAME TO {OLD}")
    op.execute(f"ALTER TABLE {OLD} DROP CONSTRAINT pk_predictions")
    op.drop_index("ix_predictions_created_at", OLD)
    op.drop_index("ix_predictions_symbol_as_of", OLD)
    op.execute(
        f"CREATE TABLE predictions (LIKE {OLD} INCLUDING DEFAULTS, day date NOT NULL) "
        "PARTITION BY RANGE (day)"
    )
    op.execute(f"CREATE TABLE {DEFAULT} PARTITION OF predictions DEFAULT")
    days = op.get_bind().execute(
        sa.text(
            f"SELECT DISTINCT (created_at AT TIME ZONE 'UTC')::date FROM {OLD} "  # noqa: S608
            "UNION SELECT (now() AT TIME ZONE 'UTC')::date "
            "UNION SELECT (now() AT TIME ZONE 'UTC')::date + 1"
        )
    )
    for (day,) in days:
        op.execute(
            f"CREATE TABLE {partition_name(day)} PARTITION OF predictions "
            f"FOR VALUES FROM ({bound(day)}) TO ({bound(day + DAY)})"
        )
    # Rows first, keys after: one index build per partition beats maintaining it per row.
    op.execute(
        f"INSERT INTO predictions ({COLUMNS}, day) "  # noqa: S608
        f"SELECT {COLUMNS}, (created_at AT TIME ZONE 'UTC')::date FROM {OLD}"
    )
    op.execute(f"DROP TABLE {OLD}")
    op.create_primary_key("pk_predictions", "predictions", ["request_id", "slot", "day"])
    op.create_index("ix_predictions_created_at", "predictions", ["created_at"])
    op.create_index("ix_predictions_symbol_as_of", "predictions", ["symbol", "as_of"])


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        with op.batch_alter_table("predictions") as batch:
            batch.drop_column("day")
        return
    partitioned = "predictions_by_day"
    op.execute(f"ALTER TABLE predictions RENAME TO {partitioned}")
    op.execute(f"CREATE TABLE predictions (LIKE {partitioned} INCLUDING DEFAULTS)")
    op.execute("ALTER TABLE predictions DROP COLUMN day")
    # The old key has no day: of one (request_id, slot) stored on two days, the first is kept.
    op.execute(
        f"INSERT INTO predictions ({COLUMNS}) "  # noqa: S608
        f"SELECT DISTINCT ON (request_id, slot) {COLUMNS} FROM {partitioned} "
        "ORDER BY request_id, slot, created_at"
    )
    op.execute(f"DROP TABLE {partitioned}")
    op.create_primary_key("pk_predictions", "predictions", ["request_id", "slot"])
    op.create_index("ix_predictions_created_at", "predictions", ["created_at"])
    op.create_index("ix_predictions_symbol_as_of", "predictions", ["symbol", "as_of"])
