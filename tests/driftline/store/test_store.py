"""The store on PostgreSQL and SQLite: migrations, idempotency, round trips."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import numpy as np
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from driftline.store import AuditEvent, PredictionRecord, Store, migrate, utcnow
from driftline.store.predictions import prediction_row
from driftline.store.tables import metadata, predictions


def _prediction(request_id: str = "req-1", rows: int = 2) -> PredictionRecord:
    return PredictionRecord(
        request_id=request_id,
        model_name="market-ensemble",
        model_version="3",
        colour="blue",
        endpoint="v2.infer",
        symbol="SPX",
        as_of=utcnow(),
        features=np.arange(rows * 4, dtype=float).reshape(rows, 4) / 7,
        prediction=[0.001 * i for i in range(rows)],
        member_outputs={"rf": [0.0] * rows, "xgb": [0.002] * rows},
        latency_ms=1.25,
    )


def test_migrated_schema_matches_table_metadata(store: Store) -> None:
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_name": migrate.include_name})
        diff = compare_metadata(context, metadata)
    assert diff == []


def test_upgrade_reaches_head_and_downgrade_reaches_base(store: Store) -> None:
    assert migrate.current_revision(store.engine) == migrate.head_revision()
    migrate.downgrade(store.url, "base")
    assert migrate.current_revision(store.engine) is None
    assert "predictions" not in sa.inspect(store.engine).get_table_names()
    store.upgrade()
    assert {"predictions", "audit_events"} <= set(sa.inspect(store.engine).get_table_names())


def test_prediction_round_trip_is_exact(store: Store) -> None:
    record = _prediction()
    assert store.predictions.record_predictions([record]) == 1
    (stored,) = store.predictions.predictions()
    assert stored.features is not None
    assert record.features is not None
    assert np.array_equal(stored.features, record.features)
    assert stored.prediction == record.prediction
    assert stored.member_outputs == record.member_outputs
    assert stored.created_at == record.created_at
    assert stored.as_of == record.as_of
    assert stored.n_rows == 2


def test_prediction_writes_are_idempotent_on_request_id(store: Store) -> None:
    first = _prediction("req-a")
    assert store.predictions.record_predictions([first, _prediction("req-b")]) == 2
    assert store.predictions.record_predictions([first, _prediction("req-c")]) == 1
    assert store.predictions.count_predictions() == 3
    shadow = PredictionRecord(**{**_as_kwargs(first), "slot": "shadow"})
    assert store.predictions.record_predictions([shadow]) == 1
    assert store.predictions.count_predictions(["req-a"]) == 2


def test_a_request_answered_again_the_same_day_is_stored_once(store: Store) -> None:
    # A retry carries a later created_at; the same UTC day, the key (request_id, slot, day on
    # PostgreSQL) finds the first answer, which is kept.
    day = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    first = PredictionRecord(**{**_as_kwargs(_prediction("req-r")), "created_at": day})
    again = PredictionRecord(**{**_as_kwargs(first), "created_at": day + timedelta(hours=23)})
    assert store.predictions.record_predictions([first]) == 1
    assert store.predictions.record_predictions([again]) == 0
    assert [r.created_at for r in store.predictions.predictions()] == [first.created_at]


def test_migration_0008_gives_every_stored_prediction_its_utc_day(store: Store) -> None:
    migrate.downgrade(store.url, "0007")
    now = utcnow()
    records = [
        PredictionRecord(
            **{**_as_kwargs(_prediction(f"r{h}")), "created_at": now - timedelta(hours=h)}
        )
        for h in range(0, 72, 5)
    ]
    store_at_0007(store, records)
    store.upgrade()
    query = sa.select(predictions.c.request_id, predictions.c.day)
    with store.engine.connect() as conn:
        assert dict(conn.execute(query).all()) == {
            r.request_id: r.created_at.date() for r in records
        }
    stored = [(r.request_id, r.created_at) for r in store.predictions.predictions()]
    assert stored == sorted(((r.request_id, r.created_at) for r in records), key=lambda k: k[1])


def store_at_0007(store: Store, records: Sequence[PredictionRecord]) -> None:
    """Write `records` as the store did before migration 0008 (no `day` column yet)."""
    with store.engine.begin() as conn:
        old = sa.Table("predictions", sa.MetaData(), autoload_with=conn)
        rows = [{k: v for k, v in prediction_row(r).items() if k != "day"} for r in records]
        conn.execute(sa.insert(old), rows)


def test_audit_events_are_idempotent_and_filtered(store: Store) -> None:
    early = AuditEvent(model_name="m", kind="decision", reason="drift high", rollout_id="r1")
    late = AuditEvent(
        model_name="m",
        kind="gate",
        reason="passed",
        details={"dm_pvalue": 0.01},
        created_at=early.created_at + timedelta(seconds=5),
    )
    assert store.controller.record_audit(early, late, early) == 2
    assert [e.kind for e in store.controller.audit_events(model_name="m")] == ["decision", "gate"]
    assert [e.kind for e in store.controller.audit_events(since=late.created_at)] == ["gate"]
    assert store.controller.audit_events(rollout_id="r1") == [early]
    assert store.controller.audit_events(model_name="other") == []


def test_naive_timestamps_are_refused(store: Store) -> None:
    naive = PredictionRecord(
        **{**_as_kwargs(_prediction()), "created_at": utcnow().replace(tzinfo=None)}
    )
    with pytest.raises(sa.exc.StatementError, match="naive datetime"):
        store.predictions.record_predictions([naive])
    assert store.predictions.count_predictions() == 0


def _as_kwargs(record: PredictionRecord) -> dict[str, object]:
    return {name: getattr(record, name) for name in record.__slots__}
