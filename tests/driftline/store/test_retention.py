"""Retention deletes only what is older than each table's limit, on both backends."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from click.testing import CliRunner

from driftline.cli.db import db
from driftline.store import AuditEvent, PredictionRecord, Store, utcnow
from driftline.store.retention import RetentionPolicy
from driftline.store.tables import drift_reports, drift_scores

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
    deleted = store.prune(POLICY, now)
    assert [r.request_id for r in store.predictions.predictions()] == ["young"]
    assert ids(store, drift_reports.c.report_id) == {"young"}
    assert ids(store, drift_scores.c.report_id) == {"young"}
    assert [e.event_id for e in store.controller.audit_events(model_name="m")] == ["young"]
    assert deleted["predictions"] == deleted["drift_reports"] == deleted["audit_events"] == 1
    # A second pass at the same instant finds nothing more to delete.
    assert set(store.prune(POLICY, now).values()) == {0}


def test_db_prune_applies_the_configured_limits(store: Store, monkeypatch) -> None:
    monkeypatch.setenv("DRIFTLINE_DATABASE_URL", store.url)
    monkeypatch.setenv("DRIFTLINE_PREDICTIONS_RETENTION_DAYS", "2")
    now = utcnow()
    store.predictions.record_predictions(
        [prediction("young", now - timedelta(days=1)), prediction("old", now - timedelta(days=3))]
    )
    result = CliRunner().invoke(db, ["prune"])
    assert result.exit_code == 0, result.output
    assert "predictions: 1 deleted" in result.output
    assert [r.request_id for r in store.predictions.predictions()] == ["young"]
