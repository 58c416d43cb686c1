"""Retention: deleting predictions, drift reports and audit events older than their limits.

Each table keeps rows for its own number of days (audit events longest, as the trail of every
decision); `driftline db prune` and the drift monitor's daily pass call `prune`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

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


def prune(
    engine: sa.Engine, retry: RetryPolicy, policy: RetentionPolicy, now: datetime
) -> dict[str, int]:
    """Delete rows older than the policy's limits at `now`; rows deleted per table."""
    limits = {
        "predictions": now - timedelta(days=policy.predictions_days),
        "drift": now - timedelta(days=policy.drift_days),
        "audit": now - timedelta(days=policy.audit_days),
    }

    def run() -> dict[str, int]:
        with engine.begin() as conn:
            return _delete(conn, limits)

    return retry.run(run, "prune old records")


def _delete(conn: sa.Connection, limits: dict[str, datetime]) -> dict[str, int]:
    old_reports = sa.select(drift_reports.c.report_id).where(
        drift_reports.c.created_at < limits["drift"]
    )
    # SQLite enforces no foreign keys here, so scores go explicitly before their reports.
    scores = conn.execute(sa.delete(drift_scores).where(drift_scores.c.report_id.in_(old_reports)))
    deletes = {
        "predictions": sa.delete(predictions).where(
            predictions.c.created_at < limits["predictions"]
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
