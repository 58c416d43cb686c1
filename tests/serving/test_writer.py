"""The prediction writer: batched, bounded, degraded while the store is down, catches up."""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from driftline.store import PredictionRecord, Store, new_id, utcnow
from driftline.store.engine import normalise_url
from driftline.store.predictions import record_json
from driftline.store.retry import RetryPolicy
from serving.spool import Spool
from serving.writer import PredictionWriter, WriterStatus


def record(request_id: str | None = None, rows: int = 1, symbol: str = "SPX") -> PredictionRecord:
    return PredictionRecord(
        request_id=request_id or new_id(),
        model_name="m",
        model_version="1",
        endpoint="v2_infer",
        prediction=[0.1] * rows,
        member_outputs={"rf": [0.1] * rows},
        latency_ms=1.0,
        symbol=symbol,
    )


class FlakyStore:
    """Delegates to a real store, or fails as an unreachable database does."""

    def __init__(self, store: Store | None = None) -> None:
        self.store = store
        self.down = False
        self.batches: list[int] = []
        self.written: list[str] = []
        self.quarantined: list[str] = []

    def record_predictions(self, records: Sequence[PredictionRecord]) -> int:
        if self.down:
            raise ConnectionError("connection refused")
        if self.store is not None:
            new = self.store.predictions.record_predictions(records)
        elif any("\x00" in (r.symbol or "") for r in records):
            raise ValueError("text fields cannot contain NUL (0x00) bytes")
        else:
            new = len(records)
        self.batches.append(len(records))
        self.written.extend(r.request_id for r in records)
        return new

    def quarantine(self, records: Sequence[PredictionRecord], error: str) -> None:
        if self.down:
            raise ConnectionError("connection refused")
        if self.store is not None:
            self.store.predictions.quarantine(records, error)
        self.quarantined.extend(r.request_id for r in records)


async def wait_for(predicate: object, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_writes_in_batches_and_flushes_on_close() -> None:
    sink = FlakyStore()
    writer = PredictionWriter(sink, batch_size=50, interval_s=0.05, max_buffer=1000)
    writer.start()
    for _ in range(120):
        writer.submit(record())
    await writer.close()
    assert sum(sink.batches) == 120
    assert max(sink.batches) <= 50
    assert writer.status().backlog == 0


async def test_store_outage_degrades_buffers_and_catches_up() -> None:
    sink = FlakyStore()
    statuses: list[WriterStatus] = []
    writer = PredictionWriter(
        sink,
        batch_size=10,
        interval_s=0.01,
        max_buffer=1000,
        on_change=statuses.append,
        max_backoff_s=0.05,
    )
    writer.start()
    sink.down = True
    for _ in range(30):
        writer.submit(record())
    await wait_for(lambda: writer.status().degraded)
    assert writer.status().backlog == 30
    sink.down = False
    await wait_for(lambda: writer.status().backlog == 0)
    assert not writer.status().degraded
    assert any(s.degraded for s in statuses)
    await writer.close()
    assert sum(sink.batches) == 30


async def test_full_buffer_drops_oldest_and_counts() -> None:
    sink = FlakyStore()
    sink.down = True
    writer = PredictionWriter(sink, batch_size=5, interval_s=0.01, max_buffer=10)
    for _ in range(25):
        writer.submit(record())
    status = writer.status()
    assert status.backlog == 10
    assert status.dropped == 15


async def test_batches_and_the_bound_count_rows_not_requests() -> None:
    sink = FlakyStore()
    sink.down = True
    writer = PredictionWriter(sink, batch_size=1024, interval_s=0.01, max_buffer=3000)
    for _ in range(5):
        writer.submit(record(rows=1024))
    # 5,120 rows against a bound of 3,000: the oldest three requests went, two remain.
    assert (writer.status().backlog, writer.status().dropped) == (2, 3)
    sink.down = False
    writer.start()
    writer.submit(record(rows=1))
    await writer.close()
    # A 1,024-row request fills a batch by itself; the one-row request rides alone after it.
    assert sink.batches == [1, 1, 1]


async def test_a_request_larger_than_the_bound_is_still_kept() -> None:
    writer = PredictionWriter(FlakyStore(), batch_size=10, interval_s=0.01, max_buffer=100)
    writer.submit(record(rows=500))
    assert (writer.status().backlog, writer.status().dropped) == (1, 0)


@pytest.mark.postgres
async def test_outage_against_postgres_is_idempotent(
    postgres_url: str, request: pytest.FixtureRequest
) -> None:
    store = Store(postgres_url)
    # Closed even when an assertion fails: a pool left to the garbage collector warns later,
    # in whichever test is running then.
    request.addfinalizer(store.close)
    store.upgrade()
    sink = FlakyStore(store)
    writer = PredictionWriter(
        sink, batch_size=20, interval_s=0.01, max_buffer=1000, max_backoff_s=0.05
    )
    writer.start()
    ids = [new_id() for _ in range(40)]
    # Answered at 01:00 UTC, the retry at 23:00: the key (request_id, slot, day) holds one day.
    today = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    sink.down = True
    for request_id in ids:
        writer.submit(replace(record(request_id), created_at=today + timedelta(hours=1)))
    await wait_for(lambda: writer.status().degraded)
    sink.down = False
    # A retried request (same id, answered again later the same UTC day) is stored once.
    writer.submit(replace(record(ids[0]), created_at=today + timedelta(hours=23)))
    await writer.close()
    assert store.predictions.count_predictions(ids) == 40


async def test_a_refused_record_is_quarantined_and_the_rest_written(store: Store) -> None:
    writer = PredictionWriter(store.predictions, batch_size=64, interval_s=0.01, max_buffer=1000)
    writer.start()
    good = [record() for _ in range(30)]
    # A lone surrogate no backend can encode; a NUL PostgreSQL text refuses (SQLite keeps it).
    bad = [record(symbol="a\ud800b"), record(symbol="nul\x00")]
    for item in good[:10] + bad[:1] + good[10:20] + bad[1:] + good[20:]:
        writer.submit(item)
    await writer.close()
    refused = 2 if store.engine.dialect.name == "postgresql" else 1
    assert store.predictions.count_predictions([r.request_id for r in good]) == 30
    letters = store.predictions.dead_letters()
    assert [r.symbol for r, _error in letters] == [b.symbol for b in bad][:refused]
    assert all(error for _record, error in letters)
    assert writer.status().quarantined == refused
    assert writer.status().backlog == 0


async def test_a_full_buffer_spills_to_the_spool_and_drains_in_order(tmp_path: Path) -> None:
    sink = FlakyStore()
    sink.down = True
    spool = Spool(tmp_path / "spool", max_bytes=1024 * 1024)
    writer = PredictionWriter(
        sink, batch_size=7, interval_s=0.01, max_buffer=10, max_backoff_s=0.05, spool=spool
    )
    writer.start()
    ids = []
    for _ in range(200):
        item = record()
        ids.append(item.request_id)
        writer.submit(item)
        await asyncio.sleep(0.001)
    await wait_for(lambda: writer.status().spooled >= 180)
    assert writer.status().dropped == 0
    sink.down = False
    await wait_for(lambda: writer.status().backlog == 0 and writer.status().spooled == 0)
    await writer.close()
    assert sink.written == ids
    assert not spool.path.exists()


class GatedStore:
    """Holds each write until the test lets it through, then writes it or fails it."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.fail = False
        self.written: list[str] = []

    def record_predictions(self, records: Sequence[PredictionRecord]) -> int:
        self.entered.set()
        self.release.wait(10)
        if self.fail:
            raise sa.exc.OperationalError("INSERT", {}, Exception("connection refused"))
        self.written.extend(r.request_id for r in records)
        return len(records)


@pytest.mark.parametrize("write_fails", [False, True])
async def test_a_spill_during_a_write_writes_each_record_once_in_order(
    tmp_path: Path, write_fails: bool
) -> None:
    # The bound is passed while a batch from memory is being written: a spill then must not
    # take that batch (written, then spooled and written again), and what it leaves in memory
    # goes before the spool.
    sink = GatedStore()
    sink.fail = write_fails
    writer = PredictionWriter(
        sink,
        batch_size=5,
        interval_s=0.01,
        max_buffer=10,
        max_backoff_s=0.05,
        spool=Spool(tmp_path / "spool", max_bytes=1 << 20),
    )
    writer.start()
    ids: list[str] = []

    async def submit(n: int) -> None:
        for _ in range(n):
            item = record()
            ids.append(item.request_id)
            writer.submit(item)
            await asyncio.sleep(0.001)  # requests arrive apart: the spill keeps up

    await submit(5)
    await wait_for(sink.entered.is_set)  # the first five are being written
    await submit(30)
    await wait_for(lambda: writer.status().spooled > 0)
    sink.fail = False
    sink.release.set()
    await wait_for(lambda: writer.status().backlog == 0 and writer.status().spooled == 0)
    await writer.close()
    assert sink.written == ids


async def test_a_full_spool_drops_the_oldest_and_counts(tmp_path: Path) -> None:
    sink = FlakyStore()
    sink.down = True
    # Room for about ten records.
    spool = Spool(tmp_path, max_bytes=len(record_line()) * 10 + 5)
    writer = PredictionWriter(sink, batch_size=5, interval_s=0.01, max_buffer=5, spool=spool)
    writer.start()
    for _ in range(40):
        writer.submit(record())
        await asyncio.sleep(0.001)
    await wait_for(
        lambda: writer.status().dropped + writer.status().spooled + writer.status().backlog == 40
    )
    assert writer.status().spooled == 10
    assert writer.status().dropped > 0
    # The store stays down: stop the drain task without the shutdown spill.
    assert writer._task is not None
    writer._task.cancel()
    spool.close()


def record_line() -> bytes:
    return record_json(record()).encode() + b"\n"


def test_a_dead_process_spool_is_adopted(tmp_path: Path) -> None:
    first = Spool(tmp_path, max_bytes=1 << 20)
    records = [record() for _ in range(5)]
    assert first.append(records) == 5
    first.close()
    first.path.rename(tmp_path / "predictions-1.spool")  # as a crashed process leaves it
    second = Spool(tmp_path, max_bytes=1 << 20)
    assert second.adopt_orphans() == 5
    read, position = second.peek(100)
    assert [r.request_id for r in read] == [r.request_id for r in records]
    second.commit(position, len(read))
    assert len(second) == 0
    assert not (tmp_path / "predictions-1.spool").exists()
    second.close()


@pytest.fixture
def own_postgres() -> Iterator[tuple[sa.Engine, str, str]]:
    """A database of this test's own, whose connections it may refuse (an outage of its own)."""
    admin_url = os.environ.get("DRIFTLINE_TEST_DATABASE_URL")
    if not admin_url:
        pytest.skip("PostgreSQL tests need DRIFTLINE_TEST_DATABASE_URL")
    admin = sa.create_engine(normalise_url(admin_url), isolation_level="AUTOCOMMIT")
    name = f"driftline_outage_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(normalise_url(admin_url)).set(database=name)
    yield admin, name, url.render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def set_database_up(admin: sa.Engine, name: str, up: bool) -> None:
    """Refuse (and cut) or allow connections to `name`: an outage that shares no server."""
    with admin.connect() as conn:
        conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(up).lower()}'))
        if not up:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"
                ),
                {"name": name},
            )


@pytest.mark.postgres
async def test_postgres_outage_under_load_loses_nothing_and_duplicates_nothing(
    own_postgres: tuple[sa.Engine, str, str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    admin, name, url = own_postgres
    store = Store(url, retries=1, backoff_s=0.01, breaker_reset_s=0.2)
    request.addfinalizer(store.close)
    store.upgrade()
    sink = FlakyStore(store)
    writer = PredictionWriter(
        sink,
        batch_size=50,
        interval_s=0.01,
        max_buffer=100,
        max_backoff_s=0.2,
        spool=Spool(tmp_path / "spool", max_bytes=64 << 20),
    )
    writer.start()
    ids: list[str] = []

    async def load(seconds: float) -> None:
        end = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < end:
            item = record()
            ids.append(item.request_id)
            writer.submit(item)
            await asyncio.sleep(0.001)

    await load(0.5)
    set_database_up(admin, name, False)
    try:
        await load(OUTAGE_S)
        assert writer.status().degraded
        assert writer.status().spooled > 0
    finally:
        set_database_up(admin, name, True)
    await load(0.5)
    await wait_for(lambda: writer.status().backlog == 0 and writer.status().spooled == 0, 60)
    await writer.close()
    assert writer.status().dropped == 0
    with store.engine.connect() as conn:
        total, distinct = conn.execute(
            sa.text("SELECT count(*), count(DISTINCT request_id) FROM predictions")
        ).one()
    assert total == distinct == len(ids)
    assert store.predictions.count_predictions(ids) == len(ids)
    # In order: the first successful write of every id follows the order they were answered.
    assert list(dict.fromkeys(sink.written)) == ids


# The issue asks for two minutes; DRIFTLINE_OUTAGE_S stretches the test to that (benchmarks).
OUTAGE_S = float(os.environ.get("DRIFTLINE_OUTAGE_S", "3"))


class BreakerStore:
    """Writes through the store's retry policy and circuit breaker; `down` fails as a lost
    connection does."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.down = False
        self.tried_while_down = 0
        self.written: list[str] = []

    def record_predictions(self, records: Sequence[PredictionRecord]) -> int:
        return self.policy.run(lambda: self._insert(records), "record predictions")

    def _insert(self, records: Sequence[PredictionRecord]) -> int:
        if self.down:
            self.tried_while_down += 1
            raise sa.exc.OperationalError("INSERT", {}, Exception("connection refused"))
        self.written.extend(r.request_id for r in records)
        return len(records)

    def quarantine(self, records: Sequence[PredictionRecord], error: str) -> None:
        raise AssertionError(f"nothing is refused here: {error}")


async def test_a_store_outage_opens_the_breaker_and_the_writer_spills_losing_nothing(
    tmp_path: Path,
) -> None:
    # Short intervals only: the threshold is the product's default.
    policy = RetryPolicy(retries=0, backoff_s=0.0, breaker_reset_s=0.2)
    sink = BreakerStore(policy)
    writer = PredictionWriter(
        sink,
        batch_size=20,
        interval_s=0.01,
        max_buffer=50,
        max_backoff_s=0.05,
        spool=Spool(tmp_path / "spool", max_bytes=16 << 20),
    )
    writer.start()
    ids: list[str] = []

    async def load(n: int) -> None:
        for _ in range(n):
            item = record()
            ids.append(item.request_id)
            writer.submit(item)
            await asyncio.sleep(0.002)

    await load(50)
    sink.down = True
    await load(200)  # about half a second
    await wait_for(policy.breaker_open)
    # Open: the writer's flushes stop reaching the database but for a trial each reset time.
    assert sink.tried_while_down <= policy.breaker_threshold + 5
    assert writer.status().degraded
    assert writer.status().spooled > 0
    sink.down = False
    await load(50)
    await wait_for(lambda: writer.status().backlog == 0 and writer.status().spooled == 0)
    assert not policy.breaker_open()
    await writer.close()
    assert writer.status().dropped == 0
    assert sink.written == ids  # every record, once, in the order answered
