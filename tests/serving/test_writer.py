"""The prediction writer: batched, bounded, degraded while the store is down, catches up."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from driftline.store import PredictionRecord, Store, new_id
from serving.writer import PredictionWriter, WriterStatus


def record(request_id: str | None = None, rows: int = 1) -> PredictionRecord:
    return PredictionRecord(
        request_id=request_id or new_id(),
        model_name="m",
        model_version="1",
        endpoint="v2_infer",
        prediction=[0.1] * rows,
        member_outputs={"rf": [0.1] * rows},
        latency_ms=1.0,
    )


class FlakyStore:
    """Delegates to a real store, or fails as an unreachable database does."""

    def __init__(self, store: Store | None = None) -> None:
        self.store = store
        self.down = False
        self.batches: list[int] = []

    def record_predictions(self, records: Sequence[PredictionRecord]) -> int:
        if self.down:
            raise ConnectionError("connection refused")
        self.batches.append(len(records))
        return self.store.predictions.record_predictions(records) if self.store else len(records)


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
async def test_outage_against_postgres_is_idempotent(postgres_url: str) -> None:
    store = Store(postgres_url)
    store.upgrade()
    sink = FlakyStore(store)
    writer = PredictionWriter(
        sink, batch_size=20, interval_s=0.01, max_buffer=1000, max_backoff_s=0.05
    )
    writer.start()
    ids = [new_id() for _ in range(40)]
    sink.down = True
    for request_id in ids:
        writer.submit(record(request_id))
    await wait_for(lambda: writer.status().degraded)
    sink.down = False
    # A retried request (same id) is stored once.
    writer.submit(record(ids[0]))
    await writer.close()
    assert store.predictions.count_predictions(ids) == 40
    store.close()
