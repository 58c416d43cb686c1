"""HTTP load of one pre-encoded POST body, closed-loop or open-loop.

Closed-loop (`run_load`): wrk when installed (C, a few % of a core), else a lean asyncio client,
keeps `concurrency` connections busy for `duration_s`. Open-loop (`open_loop`, or `run_load`
with `rate`): requests are due at a fixed rate whatever the server does, and each latency runs
from the time the request was due, so a stall delays every request due during it and shows in
the percentiles (no coordinated omission, as in wrk2). Both report requests/s, p50/p99 latency,
errors and the generator's own CPU share of the machine.
"""

from __future__ import annotations

import asyncio
import os
import re
import resource
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open(os.getenv("DRIFTLINE_BENCH_BODY"), "rb")
wrk.body = f:read("*a")
f:close()
local key = os.getenv("DRIFTLINE_BENCH_KEY")
if key and key ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. key
end
"""


@dataclass(frozen=True)
class LoadResult:
    """What one load run measured."""

    generator: str
    concurrency: int
    duration_s: float
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p99_ms: float
    loadgen_cpu_share: float
    # Non-2xx answers by status code (the asyncio generator reads each; wrk only counts them).
    error_statuses: dict[str, int] = field(default_factory=dict)
    # Open-loop only: the rate requests were due at, and how late the generator sent them
    # (all connections busy, or its own CPU short), which the latencies already include.
    target_rps: float | None = None
    send_lag_p99_ms: float | None = None
    # The part of that lag spent with every connection busy (the rest: the generator was slow).
    connection_wait_p99_ms: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return asdict(self)


def run_load(
    url: str,
    body: bytes,
    *,
    concurrency: int,
    duration_s: float,
    key: str = "",
    rate: float | None = None,
) -> LoadResult:
    """Drive `url` with `body` at `concurrency` for `duration_s` and measure it; `key` goes out
    as `Authorization: Bearer` (every inference route needs one). With `rate`, requests are due
    at `rate` per second over at most `concurrency` connections (open-loop)."""
    if rate is not None:
        timeline = open_loop(
            url, body, rate=rate, duration_s=duration_s, key=key, connections=concurrency
        )
        return timeline.between(0.0, duration_s)
    if shutil.which("wrk"):
        return _wrk(url, body, concurrency, duration_s, key)
    return _asyncio(url, body, concurrency, duration_s, key)


def _wrk(url: str, body: bytes, concurrency: int, duration_s: float, key: str) -> LoadResult:
    with tempfile.TemporaryDirectory(prefix="dl-bench-") as tmp:
        body_path = Path(tmp) / "body"
        body_path.write_bytes(body)
        script = Path(tmp) / "post.lua"
        script.write_text(WRK_SCRIPT)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        result = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{concurrency}",
                f"-d{duration_s:g}s",
                "--latency",
                "--timeout",
                "30s",
                "-s",
                str(script),
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "DRIFTLINE_BENCH_BODY": str(body_path), "DRIFTLINE_BENCH_KEY": key},
        )
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = result.stdout
    requests = int(_search(r"(\d+) requests in", out))
    non2xx = int(_search(r"Non-2xx or 3xx responses: (\d+)", out, "0"))
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    socket_errors = sum(int(x) for x in socket.groups()) if socket else 0
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return LoadResult(
        generator="wrk",
        concurrency=concurrency,
        duration_s=duration_s,
        requests=requests,
        errors=non2xx + socket_errors,
        rps=float(_search(r"Requests/sec:\s+([\d.]+)", out)),
        p50_ms=_ms(_search(r"50%\s+([\d.]+\w+)", out)),
        p99_ms=_ms(_search(r"99%\s+([\d.]+\w+)", out)),
        loadgen_cpu_share=cpu / (wall * _cpus()),
    )


def _search(pattern: str, text: str, default: str | None = None) -> str:
    match = re.search(pattern, text)
    if match:
        return match.group(1)
    if default is None:
        raise ValueError(f"wrk output lacks {pattern!r}:\n{text}")
    return default


def _ms(value: str) -> float:
    number = float(re.match(r"[\d.]+", value).group(0))  # type: ignore[union-attr]
    unit = value[len(re.match(r"[\d.]+", value).group(0)) :]  # type: ignore[union-attr]
    return number * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}[unit]


def _asyncio(url: str, body: bytes, concurrency: int, duration_s: float, key: str) -> LoadResult:
    before = time.process_time()
    start = time.perf_counter()
    latencies, statuses = asyncio.run(_drive(url, body, concurrency, duration_s, key))
    wall = time.perf_counter() - start
    cpu = time.process_time() - before
    ordered = np.sort(np.asarray(latencies)) * 1e3
    return LoadResult(
        generator="asyncio",
        concurrency=concurrency,
        duration_s=duration_s,
        requests=len(latencies),
        errors=sum(statuses.values()),
        rps=len(latencies) / wall,
        p50_ms=float(np.percentile(ordered, 50)) if len(ordered) else float("nan"),
        p99_ms=float(np.percentile(ordered, 99)) if len(ordered) else float("nan"),
        loadgen_cpu_share=cpu / (wall * _cpus()),
        error_statuses=dict(statuses),
    )


async def _drive(
    url: str, body: bytes, concurrency: int, duration_s: float, key: str
) -> tuple[list[float], Counter[str]]:
    parts = urlsplit(url)
    request = _request(url, body, key)
    deadline = time.perf_counter() + duration_s
    latencies: list[float] = []
    statuses: Counter[str] = Counter()

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                status = await _exchange(reader, writer, request)
                latencies.append(time.perf_counter() - start)
                if not 200 <= status < 300:
                    statuses[str(status)] += 1
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return latencies, statuses


def _request(url: str, body: bytes, key: str) -> bytes:
    """The whole HTTP/1.1 request, encoded once for every send."""
    parts = urlsplit(url)
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    return (
        f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n{auth}"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    """Send `request` on a kept-alive connection and read the whole answer; its status code."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
    await reader.readexactly(length)
    return int(head[9:12])


# Open-loop status codes for requests that got no HTTP answer.
CONNECTION_FAILED = 0
UNANSWERED = -1
_NO_ANSWER = {CONNECTION_FAILED: "connection", UNANSWERED: "timeout"}


def due_times(rate: float, duration_s: float) -> np.ndarray[Any, Any]:
    """When each request of an open-loop run is due, in seconds from its start."""
    return np.arange(int(rate * duration_s)) / rate


@dataclass(frozen=True)
class Timeline:
    """Every request of one open-loop run: when it was due, how late a free connection took it
    and how late it went out, how long it took from when it was due, and its status
    (`CONNECTION_FAILED`, `UNANSWERED` or HTTP)."""

    rate: float
    connections: int
    started: float  # time.perf_counter() when request 0 was due (CLOCK_MONOTONIC on Linux)
    due_s: np.ndarray[Any, Any]
    wait_s: np.ndarray[Any, Any]
    lag_s: np.ndarray[Any, Any]
    latency_s: np.ndarray[Any, Any]
    status: np.ndarray[Any, Any]
    cpu_share: float  # the generator's CPU seconds over the run's wall time and the machine

    def between(self, start_s: float, end_s: float) -> LoadResult:
        """The requests due in [start_s, end_s) as a LoadResult; requests/s counts the answers
        that arrived in that window, so a stall shows as a dip there."""
        due = (self.due_s >= start_s) & (self.due_s < end_s)
        answered = self.status > 0
        done_at = self.due_s + self.latency_s
        arrived = answered & (done_at >= start_s) & (done_at < end_s)
        latency_ms = np.sort(self.latency_s[due & answered]) * 1e3
        failed = self.status[due & ((self.status < 200) | (self.status >= 300))]
        codes, counts = np.unique(failed, return_counts=True)
        return LoadResult(
            generator="asyncio open-loop",
            concurrency=self.connections,
            duration_s=end_s - start_s,
            requests=int(due.sum()),
            errors=len(failed),
            rps=float(arrived.sum()) / (end_s - start_s),
            p50_ms=_percentile(latency_ms, 50),
            p99_ms=_percentile(latency_ms, 99),
            loadgen_cpu_share=self.cpu_share,
            error_statuses={
                _NO_ANSWER.get(int(c), str(int(c))): int(n)
                for c, n in zip(codes, counts, strict=True)
            },
            target_rps=self.rate,
            send_lag_p99_ms=_percentile(np.sort(self.lag_s[due]) * 1e3, 99),
            connection_wait_p99_ms=_percentile(np.sort(self.wait_s[due]) * 1e3, 99),
        )


def _percentile(ordered: np.ndarray[Any, Any], q: float) -> float:
    return float(np.percentile(ordered, q)) if len(ordered) else float("nan")


def open_loop(
    url: str,
    body: bytes,
    *,
    rate: float,
    duration_s: float,
    key: str = "",
    connections: int = 64,
    timeout_s: float = 30.0,
    start_at: float | None = None,
) -> Timeline:
    """POST `body` to `url` at `rate` requests/s for `duration_s` over up to `connections`
    kept-alive connections; `start_at` (a `time.perf_counter()` value, here or in another
    process on Linux) fixes when the first request is due, so samplers elsewhere can align."""
    before = time.process_time()
    schedule = _Schedule(rate, due_times(rate, duration_s), connections, timeout_s, start_at)
    timeline = asyncio.run(_open_loop(url, _request(url, body, key), schedule))
    wall = time.perf_counter() - timeline.started
    return replace(timeline, cpu_share=(time.process_time() - before) / (wall * _cpus()))


@dataclass(frozen=True)
class _Schedule:
    rate: float
    due_s: np.ndarray[Any, Any]
    connections: int
    timeout_s: float
    start_at: float | None


async def _open_loop(url: str, request: bytes, schedule: _Schedule) -> Timeline:
    parts = urlsplit(url)
    due, timeout_s = schedule.due_s, schedule.timeout_s
    wait, lag = np.zeros(len(due)), np.zeros(len(due))
    latency = np.full(len(due), np.nan)
    status = np.full(len(due), UNANSWERED, dtype=np.int16)
    slots = iter(range(len(due)))  # shared: each free connection takes the next due request
    # Connected before the first request is due, so connecting is not timed.
    opened = [
        await asyncio.open_connection(parts.hostname, parts.port)
        for _ in range(schedule.connections)
    ]
    started = max(schedule.start_at or 0.0, time.perf_counter())

    async def connection(stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None) -> None:
        for i in slots:
            early = started + due[i] - time.perf_counter()
            wait[i] = max(0.0, -early)
            if early > 0:
                await asyncio.sleep(early)
            lag[i] = max(0.0, time.perf_counter() - started - due[i])
            try:
                async with asyncio.timeout(timeout_s):
                    if stream is None:
                        stream = await asyncio.open_connection(parts.hostname, parts.port)
                    status[i] = await _exchange(*stream, request)
            except (OSError, asyncio.IncompleteReadError, TimeoutError) as error:
                status[i] = UNANSWERED if isinstance(error, TimeoutError) else CONNECTION_FAILED
                if stream is not None:
                    stream[1].close()
                stream = None  # a broken or stalled connection is not reused
            latency[i] = time.perf_counter() - started - due[i]
        if stream is not None:
            stream[1].close()

    await asyncio.gather(*(connection(stream) for stream in opened))
    return Timeline(
        rate=schedule.rate,
        connections=schedule.connections,
        started=started,
        due_s=due,
        wait_s=wait,
        lag_s=lag,
        latency_s=latency,
        status=status,
        cpu_share=0.0,
    )


def _cpus() -> int:
    return os.cpu_count() or 1
