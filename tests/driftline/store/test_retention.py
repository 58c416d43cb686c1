"""Retention removes only what is older than each table's limit, on both backends; on PostgreSQL
the predictions days older than the limit go as whole partitions."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from driftline.store import AuditEvent, PredictionRecord, Store, utcnow
from driftline.store import partitions as parts
from driftline.store.retention import RetentionPolicy
from driftline.store.tables import drift_reports, drift_scores, predictions

POLICY = RetentionPolicy(predictions_days=7, drift_days=30, audit_days=365)
MINUTE = timedelta(minutes=1)


def prediction(request_id: str, created_at: datetime) -> PredictionRecord:
    return PredictionRecord(
        request_id=request_id,
        model_name="m",
        model_version="1",
        endpoint="v2_infer",
        prediction=[0.1],
        member_outputs={"rf": [0.1]},
        latency_ms=1.0,
        created_at=created_at,
    )


def add_report(store: Store, report_id: str, created_at: datetime) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            sa.insert(drift_reports).values(
                report_id=report_id,
                created_at=created_at,
                model_name="m",
                model_version="1",
                severity="none",
                severity_level=0,
                recommendation="none",
                n_rows=1,
                payload={},
            )
        )
        conn.execute(
            sa.insert(drift_scores).values(
                report_id=report_id,
                detector="feature",
                feature="f",
                method="ks",
                created_at=created_at,
                model_name="m",
                drifted=False,
            )
        )


def ids(store: Store, column: sa.Column[str]) -> set[str]:
    with store.engine.connect() as conn:
        return set(conn.execute(sa.select(column)).scalars())


def stored_rows(store: Store) -> dict[str, sa.Row[Any]]:
    """Every column of every stored prediction, by request id."""
    with store.engine.connect() as conn:
        return {row.request_id: row for row in conn.execute(sa.select(predictions))}


def test_prune_keeps_everything_younger_than_each_limit(store: Store) -> None:
    now = utcnow()
    limit = {"p": timedelta(days=7), "d": timedelta(days=30), "a": timedelta(days=365)}
    store.predictions.record_predictions(
        [
            prediction("young", now - limit["p"] + MINUTE),
            prediction("old", now - limit["p"] - MINUTE),
        ]
    )
    add_report(store, "young", now - limit["d"] + MINUTE)
    add_report(store, "old", now - limit["d"] - MINUTE)
    for name, age in (("young", limit["a"] - MINUTE), ("old", limit["a"] + MINUTE)):
        store.controller.record_audit(
            AuditEvent(model_name="m", kind="k", reason=name, event_id=name, created_at=now - age)
        )
    deleted = store.prune(POLICY, now).deleted
    assert [r.request_id for r in store.predictions.predictions()] == ["young"]
    assert ids(store, drift_reports.c.report_id) == {"young"}
    assert ids(store, drift_scores.c.report_id) == {"young"}
    assert [e.event_id for e in store.controller.audit_events(model_name="m")] == ["young"]
    assert deleted["predictions"] == deleted["drift_reports"] == deleted["audit_events"] == 1
    # A second pass at the same instant finds nothing more to delete.
    assert set(store.prune(POLICY, now).deleted.values()) == {0}


def test_prune_over_ten_days_touches_no_row_younger_than_the_limit(store: Store) -> None:
    # Noon UTC, so the limit falls inside a day: that day's partition loses only its older rows.
    now = parts.day_start(utcnow().date()) + timedelta(hours=12)
    days = 4
    limit = now - timedelta(days=days)
    postgres = store.engine.dialect.name == "postgresql"
    # Days 8 and 1 back have no partition (made ahead on a day the writer did not run): their
    # rows go to the default partition, old and young alike.
    unpartitioned = {(now - timedelta(days=8)).date(), (now - timedelta(days=1)).date()}
    if postgres:
        with store.engine.begin() as conn:
            parts.ensure_days(
                conn, {(now - timedelta(days=n)).date() for n in range(11)} - unpartitioned
            )
    ages = [timedelta(hours=h) for h in range(0, 10 * 24, 5)]
    ages += [timedelta(days=days) - MINUTE, timedelta(days=days), timedelta(days=days) + MINUTE]
    store.predictions.record_predictions(
        [prediction(f"r{i:03d}", now - age) for i, age in enumerate(ages)]
    )
    before = stored_rows(store)
    young = {k: row for k, row in before.items() if row.created_at >= limit}
    assert len(young) < len(before) == len(ages)

    pruned = store.prune(RetentionPolicy(days, 30, 365), now)

    assert stored_rows(store) == young
    assert pruned.deleted["predictions"] == len(before) - len(young)
    if not postgres:
        assert pruned.partitions_dropped == ()
        return
    old_days = {(now - timedelta(days=n)).date() for n in range(days + 1, 11)} - unpartitioned
    assert set(pruned.partitions_dropped) == {parts.partition_name(d) for d in old_days}
    with store.engine.connect() as conn:
        remaining = parts.day_partitions(conn)
        for name in pruned.partitions_dropped:
            assert conn.execute(sa.text("SELECT to_regclass(:n)"), {"n": name}).scalar() is None
        boundary = remaining[limit.date()]
        kept = conn.execute(sa.text(f"SELECT request_id FROM {boundary}")).scalars().all()
        in_default = conn.execute(sa.text(f"SELECT request_id FROM {parts.DEFAULT}")).scalars()
        default_rows = set(in_default)
    assert not old_days & remaining.keys()
    assert {limit.date(), now.date(), (now + parts.DAY).date()} <= remaining.keys()
    boundary_young = {k for k, row in young.items() if row.created_at.date() == limit.date()}
    assert set(kept) == boundary_young
    assert len(boundary_young) > 1
    assert default_rows == {k for k, row in young.items() if row.created_at.date() in unpartitioned}
    assert default_rows  # the young day without a partition kept its rows
