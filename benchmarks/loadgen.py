"""Closed-loop HTTP load: wrk when installed (C, a few % of a core), else a lean asyncio client.

Both keep `concurrency` connections busy for `duration_s` with one pre-encoded POST body and
report requests/s, p50/p99 latency, errors and the generator's own CPU share of the machine.
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
from dataclasses import asdict, dataclass, field
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

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return asdict(self)


def run_load(
    url: str, body: bytes, *, concurrency: int, duration_s: float, key: str = ""
) -> LoadResult:
    """Drive `url` with `body` at `concurrency` for `duration_s` and measure it; `key` goes out
    as `Authorization: Bearer` (every inference route needs one)."""
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
        loadgen_cpu_share=cpu / (wall * (os.cpu_count() or 1)),
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
        loadgen_cpu_share=cpu / (wall * (os.cpu_count() or 1)),
        error_statuses=dict(statuses),
    )


async def _drive(
    url: str, body: bytes, concurrency: int, duration_s: float, key: str
) -> tuple[list[float], Counter[str]]:
    parts = urlsplit(url)
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    request = (
        f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n{auth}"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    deadline = time.perf_counter() + duration_s
    latencies: list[float] = []
    statuses: Counter[str] = Counter()

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        try:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - start)
                if not head.startswith(b"HTTP/1.1 2"):
                    statuses[head[9:12].decode("ascii", "replace")] += 1
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return latencies, statuses
