"""Writes prediction records to the store off the request path: batched, bounded, idempotent.

Requests only append to an in-memory buffer. One task drains it in batches on a worker thread;
when the store fails, records stay buffered (up to the bound, then the oldest are dropped and
counted), the writer reports itself degraded and retries with backoff until the store returns.
Batches and the bound count rows, since a record holds its request's feature rows.
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
from typing import Protocol

from driftline.store import PredictionRecord

log = logging.getLogger(__name__)


class PredictionSink(Protocol):
    """The store method the writer needs."""

    def record_predictions(self, records: Sequence[PredictionRecord]) -> int: ...


@dataclass
class WriterStatus:
    """What readiness and metrics report about the writer."""

    backlog: int
    degraded: bool
    dropped: int
    written: int
    last_error: str | None


class PredictionWriter:
    """An asynchronous, bounded, batching writer of prediction records.

    `batch_size` and `max_buffer` count rows: a 1,024-row request weighs 1,024 one-row ones.
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
    ) -> None:
        self._sink = sink
        self._batch_size = batch_size
        self._interval_s = interval_s
        self._max_backoff_s = max_backoff_s
        self._buffer: deque[PredictionRecord] = deque()
        self._max_rows = max_buffer
        self._rows = 0
        self._on_change = on_change or (lambda _status: None)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._degraded = False
        self._dropped = 0
        self._written = 0
        self._last_error: str | None = None

    # --- request path ---------------------------------------------------------------------
    def submit(self, record: PredictionRecord) -> None:
        """Queue `record` for writing; never blocks, drops the oldest records when full."""
        self._buffer.append(record)
        self._rows += record.n_rows
        while self._rows > self._max_rows and len(self._buffer) > 1:
            self._rows -= self._buffer.popleft().n_rows
            self._dropped += 1
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
                log.error("prediction writer: %d records unwritten at shutdown", len(self._buffer))

    def status(self) -> WriterStatus:
        """Backlog, degradation and counters right now."""
        return WriterStatus(
            backlog=len(self._buffer),
            degraded=self._degraded,
            dropped=self._dropped,
            written=self._written,
            last_error=self._last_error,
        )

    # --- drain loop -----------------------------------------------------------------------
    async def _run(self) -> None:
        backoff = self._interval_s
        while True:
            if not self._buffer:
                if self._closing:
                    return
                await self._sleep(self._interval_s)
                continue
            batch = self._next_batch()
            try:
                await asyncio.to_thread(self._sink.record_predictions, batch)
            except Exception as error:
                self._set_degraded(str(error).splitlines()[0] if str(error) else repr(error))
                if self._closing and backoff >= self._max_backoff_s:
                    log.error("prediction writer: store unavailable during shutdown: %s", error)
                    return
                await self._sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff_s)
                continue
            backoff = self._interval_s
            self._pop_written(batch)
            self._set_degraded(None)
            if self._rows < self._batch_size and not self._closing:
                await self._sleep(self._interval_s)

    def _next_batch(self) -> list[PredictionRecord]:
        batch: list[PredictionRecord] = []
        rows = 0
        for record in self._buffer:
            if batch and rows + record.n_rows > self._batch_size:
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
