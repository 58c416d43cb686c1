"""Retention: removing predictions, drift reports and audit events older than their limits.

Each table keeps rows for its own number of days (audit events longest, as the trail of every
decision); `driftline db prune` and the drift monitor's daily pass call `prune`. On PostgreSQL the
predictions table is partitioned by day (`driftline.store.partitions`): a day that ended before
the limit is dropped whole, and only the day that straddles the limit and the default partition
lose rows one by one. SQLite deletes rows. Drift reports and audit events stay plain tables
everywhere: they grow with monitor rounds and decisions, not with traffic, and drift reports are
the target of foreign keys that a partitioned table could only take with its day in them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from driftline.store.partitions import DAY, drop_before, ensure_days, partitioned, utc_day
from driftline.store.retry import RetryPolicy
from driftline.store.tables import (
    audit_events,
    drift_reports,
    drift_scores,
    prediction_dead_letters,
    predictions,
)


@dataclass(frozen=True)
class RetentionPolicy:
    """Days each kind of record is kept."""

    predictions_days: int
    drift_days: int
    audit_days: int


@dataclass(frozen=True)
class Pruned:
    """What a prune removed: rows per table (those of dropped partitions included), and the
    predictions partitions dropped whole."""

    deleted: dict[str, int]
    partitions_dropped: tuple[str, ...] = ()


def prune(engine: sa.Engine, retry: RetryPolicy, policy: RetentionPolicy, now: datetime) -> Pruned:
    """Remove rows older than the policy's limits at `now`."""
    limits = {
        "predictions": now - timedelta(days=policy.predictions_days),
        "drift": now - timedelta(days=policy.drift_days),
        "audit": now - timedelta(days=policy.audit_days),
    }

    def drop() -> tuple[int, list[str]]:
        # Short transactions of their own: dropping a partition locks the whole table, and
        # holding the default partition's lock from `ensure_days` meanwhile could deadlock with
        # a writer; the row deletes below may take a while.
        with engine.begin() as conn:
            if not partitioned(conn):
                return 0, []
            today = utc_day(now)
            ensure_days(conn, (today, today + DAY))
        with engine.begin() as conn:
            return drop_before(conn, limits["predictions"])

    def delete() -> dict[str, int]:
        with engine.begin() as conn:
            return _delete(conn, limits)

    rows, dropped = retry.run(drop, "drop old prediction partitions")
    deleted = retry.run(delete, "prune old records")
    deleted["predictions"] += rows
    return Pruned(deleted, tuple(dropped))


def _delete(conn: sa.Connection, limits: dict[str, datetime]) -> dict[str, int]:
    old_reports = sa.select(drift_reports.c.report_id).where(
        drift_reports.c.created_at < limits["drift"]
    )
    # SQLite enforces no foreign keys here, so scores go explicitly before their reports.
    scores = conn.execute(sa.delete(drift_scores).where(drift_scores.c.report_id.in_(old_reports)))
    deletes = {
        # `day` too, so PostgreSQL scans only the limit's day and the default partition.
        "predictions": sa.delete(predictions).where(
            predictions.c.created_at < limits["predictions"],
            predictions.c.day <= utc_day(limits["predictions"]),
        ),
        "prediction_dead_letters": sa.delete(prediction_dead_letters).where(
            prediction_dead_letters.c.quarantined_at < limits["predictions"]
        ),
        "drift_reports": sa.delete(drift_reports).where(
            drift_reports.c.created_at < limits["drift"]
        ),
        "audit_events": sa.delete(audit_events).where(audit_events.c.created_at < limits["audit"]),
    }
    counts = {name: conn.execute(statement).rowcount for name, statement in deletes.items()}
    return {**counts, "drift_scores": scores.rowcount}
