"""Writes prediction records to the store off the request path: batched, bounded, idempotent.

Requests only append to an in-memory buffer. One task drains it in batches on a worker thread
(serialising there too, off the event loop). When the store is unreachable, records stay
buffered; past the memory bound the oldest spill, in order, to a bounded local spool file
(serving.spool), and only past that are the oldest dropped and counted. The writer reports
itself degraded and retries with backoff; on recovery the spool drains first, then memory, so
records reach the table in the order they were answered. A batch the store refuses (rather
than cannot take) is split until the refused records are found; those are quarantined in the
dead-letter table and the rest written, so one bad row never stops the log.
Batches and the bounds count rows, since a record holds its request's feature rows.
Writes are idempotent on (request_id, slot), so a batch retried after a partial failure is safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from driftline.observability import tracing
from driftline.store import PredictionRecord
from driftline.store.retry import store_unreachable
from serving.spool import Spool

log = logging.getLogger(__name__)


class PredictionSink(Protocol):
    """The store methods the writer needs."""

    def record_predictions(self, records: Sequence[PredictionRecord]) -> int: ...

    def quarantine(self, records: Sequence[PredictionRecord], error: str) -> None: ...


@dataclass
class WriterStatus:
    """What readiness and metrics report about the writer."""

    backlog: int
    degraded: bool
    dropped: int
    written: int
    last_error: str | None
    quarantined: int = 0
    spooled: int = 0


class PredictionWriter:
    """An asynchronous, bounded, batching writer of prediction records.

    `batch_size` and `max_buffer` count rows: a 1,024-row request weighs 1,024 one-row ones.
    With a `spool`, records past `max_buffer` spill to it; without one they are dropped.
    """

    def __init__(
        self,
        sink: PredictionSink,
        *,
        batch_size: int,
        interval_s: float,
        max_buffer: int,
        on_change: Callable[[WriterStatus], None] | None = None,
        max_backoff_s: float = 5.0,
        spool: Spool | None = None,
    ) -> None:
        self._sink = sink
        self._spool = spool
        self._batch_size = batch_size
        self._interval_s = interval_s
        self._max_backoff_s = max_backoff_s
        self._buffer: deque[PredictionRecord] = deque()
        self._max_rows = max_buffer
        self._rows = 0
        self._on_change = on_change or (lambda _status: None)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._spilling: asyncio.Task[None] | None = None
        # Records at the buffer's front being written now, and those a spill left in memory
        # because they are older than everything it spooled: a spill never takes either.
        self._inflight = 0
        self._held = 0
        self._closing = False
        self._degraded = False
        self._dropped = 0
        self._written = 0
        self._quarantined = 0
        self._last_error: str | None = None

    # --- request path ---------------------------------------------------------------------
    def submit(self, record: PredictionRecord) -> None:
        """Queue `record` for writing; never blocks, drops the oldest records when full."""
        self._buffer.append(record)
        self._rows += record.n_rows
        # With a spool the drain task spills the excess off the event loop; memory may hold
        # up to twice the bound while a spill is under way.
        limit = self._max_rows * 2 if self._spool is not None else self._max_rows
        while self._rows > limit and len(self._buffer) > 1:
            self._rows -= self._buffer.popleft().n_rows
            self._dropped += 1
            self._held = max(0, self._held - 1)
        if self._rows > self._max_rows and self._spool is not None and self._spilling is None:
            # Spill while the drain task may be stuck in a write to a dead store.
            self._spilling = asyncio.get_running_loop().create_task(self._spill())
        if self._rows >= self._batch_size:
            self._wake.set()

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Start the background drain task on the running loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self, timeout_s: float = 30.0) -> None:
        """Stop accepting new work and write everything buffered (within `timeout_s`)."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout_s)
            except TimeoutError:
                self._task.cancel()
                log.error("prediction writer: %d records unwritten at shutdown", len(self._buffer))
        if self._spilling is not None:
            await self._spilling
        if self._spool is not None:
            if self._buffer:
                # Still unwritten (the store down at shutdown): keep them for the next writer.
                await asyncio.to_thread(self._spool.append, list(self._buffer))
            self._spool.close()

    def status(self) -> WriterStatus:
        """Backlog, degradation and counters right now."""
        return WriterStatus(
            backlog=len(self._buffer),
            degraded=self._degraded,
            dropped=self._dropped,
            written=self._written,
            last_error=self._last_error,
            quarantined=self._quarantined,
            spooled=len(self._spool) if self._spool is not None else 0,
        )

    # --- drain loop -----------------------------------------------------------------------
    async def _run(self) -> None:
        if self._spool is not None:
            adopted = await asyncio.to_thread(self._spool.adopt_orphans)
            if adopted:
                log.warning("prediction writer: adopted %d spooled records", adopted)
        backoff = self._interval_s
        while True:
            spooled, position, batch = await self._oldest_batch()
            if not batch:
                if self._closing:
                    return
                await self._sleep(self._interval_s)
                continue
            self._inflight = 0 if spooled else len(batch)
            try:
                with write_span(batch):
                    await asyncio.to_thread(self._write, batch)
            except Exception as error:
                self._inflight = 0
                self._set_degraded(str(error).splitlines()[0] if str(error) else repr(error))
                if self._closing and backoff >= self._max_backoff_s:
                    log.error("prediction writer: store unavailable during shutdown: %s", error)
                    return
                await self._sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff_s)
                continue
            self._inflight = 0
            backoff = self._interval_s
            if spooled:
                assert self._spool is not None
                self._spool.commit(position, len(spooled))
                self._written += len(spooled)
                self._on_change(self.status())
            else:
                self._pop_written(batch)
            self._set_degraded(None)
            if self._rows < self._batch_size and not self._closing and not self._spool_pending():
                await self._sleep(self._interval_s)

    async def _oldest_batch(
        self,
    ) -> tuple[list[PredictionRecord], int, list[PredictionRecord]]:
        """The next batch to write, spool first: (spooled records, spool position, batch)."""
        spilling = self._spilling
        if spilling is not None:
            # Records on their way to the spool are older than any left in memory: writing
            # memory first would put newer records in the table before them.
            await asyncio.wait({spilling})
        if self._held:
            return [], 0, self._next_batch(self._held)
        if self._spool is not None and len(self._spool):
            spooled, position = await asyncio.to_thread(self._spool.peek, self._batch_size)
            return spooled, position, spooled
        return [], 0, self._next_batch()

    def _write(self, batch: Sequence[PredictionRecord]) -> None:
        # Runs on a worker thread. A refusal (bad data, not a lost connection) is narrowed down
        # by halving until the refused records are alone; the others are written.
        try:
            self._sink.record_predictions(batch)
        except Exception as error:
            if store_unreachable(error):
                raise
            if len(batch) > 1:
                middle = len(batch) // 2
                self._write(batch[:middle])
                self._write(batch[middle:])
                return
            reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
            self._sink.quarantine(batch, reason)
            self._quarantined += 1
            log.error(
                "prediction quarantined: the store refused it",
                extra={"request_id": ascii(batch[0].request_id), "error": ascii(reason)},
            )

    async def _spill(self) -> None:
        assert self._spool is not None
        try:
            while spill := self._take_spill():
                written = await asyncio.to_thread(self._spool.append, spill)
                self._dropped += len(spill) - written
                self._on_change(self.status())
        finally:
            self._spilling = None

    def _take_spill(self) -> list[PredictionRecord]:
        """The oldest records past the bound, off the buffer, but for those being written or
        held: a record spilled while its write succeeds would be written twice."""
        keep = min(max(self._inflight, self._held), len(self._buffer))
        kept = [self._buffer.popleft() for _ in range(keep)]
        spill: list[PredictionRecord] = []
        while self._rows > self._max_rows and len(self._buffer) > 1:
            record = self._buffer.popleft()
            self._rows -= record.n_rows
            spill.append(record)
        self._buffer.extendleft(reversed(kept))
        if spill:
            # What stayed is older than what the spool now holds: it is written first.
            self._held = keep
        return spill

    def _spool_pending(self) -> bool:
        return self._spool is not None and len(self._spool) > 0

    def _next_batch(self, limit: int | None = None) -> list[PredictionRecord]:
        batch: list[PredictionRecord] = []
        rows = 0
        for record in self._buffer:
            if batch and (rows + record.n_rows > self._batch_size or len(batch) == limit):
                break
            batch.append(record)
            rows += record.n_rows
        return batch

    def _pop_written(self, batch: list[PredictionRecord]) -> None:
        # Records dropped while the batch was in flight shifted the deque: pop only what is
        # still at the front and belongs to the batch.
        written = {id(r) for r in batch}
        while self._buffer and id(self._buffer[0]) in written:
            self._rows -= self._buffer.popleft().n_rows
            self._written += 1
            self._held = max(0, self._held - 1)
        self._on_change(self.status())

    def _set_degraded(self, error: str | None) -> None:
        degraded = error is not None
        if degraded != self._degraded:
            log.warning("prediction store %s", f"unavailable: {error}" if degraded else "recovered")
        self._degraded = degraded
        self._last_error = error
        self._on_change(self.status())

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        deadline = time.monotonic() + seconds
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), max(0.0, deadline - time.monotonic()))


def write_span(batch: Sequence[PredictionRecord]) -> contextlib.AbstractContextManager[Any]:
    """The batch write's span: a child of its oldest traced request, linked to the others."""
    contexts = [r.trace for r in batch]
    return tracing.batch_span("prediction_log.write", contexts, {"driftline.records": len(batch)})
