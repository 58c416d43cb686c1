"""The open-loop load generator: its schedule, its windows, latency counted from the due time."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from benchmarks.loadgen import CONNECTION_FAILED, UNANSWERED, Timeline, due_times, open_loop


def test_requests_are_due_at_the_fixed_rate() -> None:
    due = due_times(200.0, 1.5)
    assert len(due) == 300
    assert due[0] == 0.0
    assert np.allclose(np.diff(due), 0.005)


def _timeline(latency_s: list[float], status: list[int]) -> Timeline:
    n = len(status)
    return Timeline(
        rate=10.0,
        connections=4,
        started=0.0,
        due_s=due_times(10.0, n / 10.0),
        wait_s=np.zeros(n),
        lag_s=np.zeros(n),
        latency_s=np.asarray(latency_s),
        status=np.asarray(status, dtype=np.int16),
        cpu_share=0.01,
    )


def test_a_window_counts_answers_where_they_arrive_and_errors_by_status() -> None:
    # Ten requests due at 0.0, 0.1, ... 0.9 s; the one due at 0.4 s takes 0.7 s.
    latency = [0.01] * 10
    latency[4] = 0.7
    status = [200] * 10
    status[2], status[7], status[8] = 503, CONNECTION_FAILED, UNANSWERED
    timeline = _timeline(latency, status)
    first, second = timeline.between(0.0, 0.5), timeline.between(0.5, 1.0)
    assert (first.requests, second.requests) == (5, 5)
    # The 503 is an answer too; the slow request, due in the first window, arrives at 1.1 s.
    assert first.rps == pytest.approx(4 / 0.5)
    assert second.rps == pytest.approx(3 / 0.5)
    assert first.p99_ms > 600
    assert first.error_statuses == {"503": 1}
    assert second.errors == 2
    assert second.error_statuses == {"connection": 1, "timeout": 1}
    assert second.p50_ms == pytest.approx(10.0)
    assert second.target_rps == 10.0


class _StallingServer:
    """An HTTP/1.1 server on a thread of its own that answers 200 at once, except that it
    holds every answer while `stall` (perf_counter start, end) lasts."""

    def __init__(self) -> None:
        self.stall = (0.0, 0.0)
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(started,), daemon=True)
        self.thread.start()
        started.wait(5)

    def _serve(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._connection, "127.0.0.1", 0)
        )
        self.port = self.server.sockets[0].getsockname()[1]
        started.set()
        self.loop.run_forever()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = re.search(rb"(?i)content-length: (\d+)", head)
                await reader.readexactly(int(length.group(1)) if length else 0)
                start, end = self.stall
                if start <= time.perf_counter() < end:
                    await asyncio.sleep(end - time.perf_counter())
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    def stop(self) -> None:
        async def close() -> None:
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def server() -> Iterator[_StallingServer]:
    running = _StallingServer()
    yield running
    running.stop()


def test_a_stall_delays_every_request_due_during_it(server: _StallingServer) -> None:
    start_at = time.perf_counter() + 0.3
    server.stall = (start_at + 0.4, start_at + 0.8)
    timeline = open_loop(
        f"http://127.0.0.1:{server.port}/infer",
        b"{}",
        rate=200.0,
        duration_s=1.2,
        connections=4,
        start_at=start_at,
    )
    assert timeline.started == start_at
    assert np.all(timeline.status == 200)
    # 80 requests were due in the 0.4 s stall; only 4 were in flight. A closed-loop client
    # would time those 4 alone as slow; measured from the due time, each one waited.
    slow = timeline.latency_s > 0.1
    assert slow.sum() >= 50
    stalled = timeline.between(0.4, 0.8)
    assert stalled.p50_ms > 100
    # They waited for a free connection: the server was behind, not the generator.
    assert stalled.connection_wait_p99_ms is not None
    assert stalled.connection_wait_p99_ms > 100
    assert timeline.between(0.0, 0.4).p99_ms < 100
