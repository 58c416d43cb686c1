"""The predictions table by day on PostgreSQL: the migration keeps every row, partitions exist
before rows arrive, and a row whose day has none waits in the default partition."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from driftline.store import PredictionRecord, Store, migrate, utcnow
from driftline.store import partitions as parts
from driftline.store.tables import predictions
from tests.driftline.store.test_store import store_at_0007

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_store(postgres_url: str) -> Iterator[Store]:
    """A PostgreSQL store at the revision before partitioning, emptied afterwards."""
    store = Store(postgres_url, retries=2, backoff_s=0.01)
    store.upgrade("0007")
    yield store
    migrate.downgrade(postgres_url, "base")
    store.close()


def prediction(
    request_id: str, age: timedelta, slot: str = "live", at: datetime | None = None
) -> PredictionRecord:
    created_at = (at or utcnow()) - age
    return PredictionRecord(
        request_id=request_id,
        model_name="m",
        model_version="1",
        endpoint="v2_infer",
        prediction=[0.25, -1.5],
        member_outputs={"rf": [0.5, 0.1]},
        latency_ms=2.5,
        symbol="SPX",
        as_of=created_at,
        slot=slot,
        created_at=created_at,
    )


def rows(store: Store) -> dict[tuple[str, str], dict[str, Any]]:
    """Every column but `day` (0007 has none) of every stored prediction, by (request id, slot)."""
    with store.engine.connect() as conn:
        found = conn.execute(sa.text("SELECT * FROM predictions")).mappings()
        return {
            (r["request_id"], r["slot"]): {k: v for k, v in r.items() if k != "day"} for r in found
        }


def days(store: Store) -> dict[tuple[str, str], date]:
    """The `day` of every stored prediction, by (request id, slot)."""
    with store.engine.connect() as conn:
        found = conn.execute(
            sa.select(predictions.c.request_id, predictions.c.slot, predictions.c.day)
        )
        return {(r.request_id, r.slot): r.day for r in found}


def where(store: Store) -> dict[str, str]:
    """The partition each stored prediction is in, by request id."""
    query = "SELECT request_id, tableoid::regclass::text FROM predictions WHERE slot = 'live'"
    with store.engine.connect() as conn:
        return dict(conn.execute(sa.text(query)).all())


def test_migration_partitions_a_populated_table_keeping_every_row(pg_store: Store) -> None:
    records = [prediction(f"r{h}", timedelta(hours=h)) for h in range(0, 24 * 5, 7)]
    records.append(prediction("r0", timedelta(0), slot="shadow"))
    store_at_0007(pg_store, records)
    before = rows(pg_store)

    pg_store.upgrade()

    assert rows(pg_store) == before
    assert days(pg_store) == {(r.request_id, r.slot): r.created_at.date() for r in records}
    with pg_store.engine.connect() as conn:
        assert parts.partitioned(conn)
        made = parts.day_partitions(conn)
    today = utcnow().date()
    assert {r.created_at.date() for r in records} | {today, today + parts.DAY} == made.keys()
    assert where(pg_store) == {
        r.request_id: made[r.created_at.date()] for r in records if r.slot == "live"
    }
    # Still idempotent: the same records again add nothing.
    assert pg_store.predictions.record_predictions(records) == 0
    migrate.downgrade(pg_store.url, "0007")
    assert rows(pg_store) == before


def test_a_row_without_its_day_waits_in_default_until_the_day_is_made(pg_store: Store) -> None:
    pg_store.upgrade()
    record = prediction("lost-day", timedelta(days=40))
    day = record.created_at.date()
    pg_store.predictions.record_predictions([record])
    assert where(pg_store) == {"lost-day": parts.DEFAULT}
    before = rows(pg_store)
    with pg_store.engine.begin() as conn:
        assert parts.ensure_days(conn, [day]) == [parts.partition_name(day)]
    with pg_store.engine.begin() as conn:
        assert parts.ensure_days(conn, [day]) == []  # made once
    assert where(pg_store) == {"lost-day": parts.partition_name(day)}
    assert rows(pg_store) == before


def test_writes_make_the_days_partitions_ahead(pg_store: Store) -> None:
    pg_store.upgrade()
    later = utcnow() + timedelta(days=30)
    ahead = parts.PartitionsAhead()
    ahead.ensure(pg_store.engine, later)
    with pg_store.engine.connect() as conn:
        made = parts.day_partitions(conn).keys()
    assert {later.date(), later.date() + parts.DAY} <= made
    # The store does the same before each day's first write: today's rows never go to default.
    with pg_store.engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE {parts.partition_name(utcnow().date())}"))
    fresh = Store(pg_store.url, retries=2, backoff_s=0.01)
    try:
        fresh.predictions.record_predictions([prediction("today", timedelta(0))])
    finally:
        fresh.close()
    assert where(pg_store) == {"today": parts.partition_name(utcnow().date())}


def test_a_retried_request_is_stored_once_a_day(pg_store: Store) -> None:
    # The key is (request_id, slot, day): the same request answered again later that UTC day is
    # found by it; answered again after midnight, it is stored a second time (documented).
    pg_store.upgrade()
    today = parts.day_start(utcnow().date())
    at = {hour: today + timedelta(hours=hour) for hour in (1, 12)}
    first = prediction("retried", timedelta(0), at=at[1])
    again = prediction("retried", timedelta(0), at=at[12])
    twice = [
        prediction("twice", timedelta(minutes=2), at=at[12]),
        prediction("twice", timedelta(0), at=at[12]),
    ]
    before_midnight = prediction("midnight", timedelta(minutes=1), at=today)
    after_midnight = prediction("midnight", timedelta(minutes=-1), at=today)
    assert pg_store.predictions.record_predictions([first, before_midnight]) == 2
    assert pg_store.predictions.record_predictions([again, *twice, after_midnight]) == 2
    query = sa.select(predictions.c.request_id, predictions.c.created_at).order_by(
        predictions.c.request_id, predictions.c.created_at
    )
    with pg_store.engine.connect() as conn:
        stored = [tuple(row) for row in conn.execute(query)]
    assert stored == [
        ("midnight", before_midnight.created_at),
        ("midnight", after_midnight.created_at),
        ("retried", first.created_at),
        ("twice", twice[0].created_at),
    ]


def test_partition_names_round_trip() -> None:
    day = date(2026, 12, 31)
    assert parts.partition_name(day) == "predictions_p20261231"
    assert parts.is_partition("predictions_p20261231")
    assert parts.is_partition(parts.DEFAULT)
    assert not parts.is_partition("predictions")
    assert not parts.is_partition("predictions_p2026123")
