"""Closed-loop HTTP load that keeps every answer's time, status and correlation id, with faults
injected at set times: what a fault scenario needs and `loadgen`'s totals do not give.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from benchmarks.loadgen import Timeline as OpenLoopTimeline

_LENGTH = re.compile(rb"(?i)\r\ncontent-length: *(\d+)")
_CORRELATION = re.compile(rb"(?i)\r\nx-correlation-id: *([^\r]+)")
# Not an HTTP status: the connection failed (refused, reset) before an answer came.
NO_ANSWER = "conn"


@dataclass(frozen=True)
class Answer:
    """One request: when it ended (seconds from the start), its status and correlation id."""

    at_s: float
    status: str
    correlation_id: str | None


@dataclass(frozen=True)
class Timeline:
    """Every request of a run and when each fault was injected (seconds from the start)."""

    answers: list[Answer]
    faults: dict[str, float]
    duration_s: float

    def ok(self) -> list[Answer]:
        """Answers with a 2xx status."""
        return [a for a in self.answers if a.status.startswith("2")]

    def errors(self) -> Counter[str]:
        """Failed requests by status (`conn`: no answer at all)."""
        return Counter(a.status for a in self.answers if not a.status.startswith("2"))

    def per_second(self) -> list[int]:
        """2xx answers in each whole second of the run."""
        counts = np.zeros(int(np.ceil(self.duration_s)), dtype=int)
        for answer in self.ok():
            counts[min(int(answer.at_s), len(counts) - 1)] += 1
        return [int(c) for c in counts]

    def summary(self) -> dict[str, Any]:
        """Totals, failures by status and the per-second series, JSON-ready."""
        errors = self.errors()
        return {
            "requests": len(self.answers),
            "answered": len(self.ok()),
            "failed": sum(errors.values()),
            "failed_by_status": dict(errors),
            "faults_at_s": {k: round(v, 2) for k, v in self.faults.items()},
            "per_second": self.per_second(),
        }


# Seconds of full throughput after which a service has recovered from a fault.
HOLD_S = 5.0


def recovery_s(
    timeline: Timeline, fault: str, share: float = 0.9, hold_s: float = HOLD_S
) -> float | None:
    """Seconds from `fault` until throughput is back: the end of the last one-second window
    (sliding in 0.1 s steps) below `share` of the median per-second rate before it, counting only
    windows that follow the fault or a slow window by at most `hold_s`. Throughput that holds
    for `hold_s` has recovered; a later dip is not the fault's (see `dips_after`). 0 if none
    did, None if the run ended before `hold_s` of full throughput."""
    short, _full = _short_windows(timeline, fault, share)
    if short is None:
        return None
    at = timeline.faults[fault]
    end = at
    for start in short:
        if start > end + hold_s:
            break
        end = start + 1
    return None if end + hold_s > timeline.duration_s - 0.5 else round(float(end - at), 2)


def dips_after(
    timeline: Timeline, fault: str, share: float = 0.9, hold_s: float = HOLD_S
) -> list[float]:
    """When (seconds into the run) each dip below `share` of the rate began after the recovery
    from `fault`: slow seconds that are not the fault's, shown rather than hidden."""
    recovered = recovery_s(timeline, fault, share, hold_s)
    short, _full = _short_windows(timeline, fault, share)
    if recovered is None or short is None:
        return []
    dips: list[float] = []
    for start in short:
        if start < timeline.faults[fault] + recovered:
            continue
        if not dips or start > dips[-1] + 1 + hold_s:
            dips.append(round(float(start), 1))
    return dips


def _short_windows(
    timeline: Timeline, fault: str, share: float
) -> tuple[list[float] | None, float]:
    """Starts of the one-second windows after `fault` below `share` of the median rate before it."""
    at = timeline.faults[fault]
    times = np.sort(np.asarray([a.at_s for a in timeline.ok()]))

    def count(start: float) -> int:
        return int(np.searchsorted(times, start + 1) - np.searchsorted(times, start))

    before = [count(s) for s in np.arange(0, at - 1, 0.5)]
    if not before:
        return None, 0.0
    full = share * float(np.median(before))
    starts = np.arange(at, timeline.duration_s - 1, 0.1)
    return [float(s) for s in starts if count(s) < full], full


Fault = tuple[float, str, Callable[[], Any]]


def run_timeline(
    url: str,
    body: bytes,
    *,
    key: str,
    concurrency: int,
    duration_s: float,
    faults: Sequence[Fault] = (),
) -> Timeline:
    """Drive `url` for `duration_s`; each fault `(at_s, name, action)` runs in a thread at its
    time, so a slow action (a database call) never stalls the clients."""
    return asyncio.run(
        _drive(url, body, key=key, concurrency=concurrency, duration_s=duration_s, faults=faults)
    )


async def _drive(
    url: str,
    body: bytes,
    *,
    key: str,
    concurrency: int,
    duration_s: float,
    faults: Sequence[Fault],
) -> Timeline:
    parts = urlsplit(url)
    request = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    start = time.perf_counter()
    answers: list[Answer] = []
    injected: dict[str, float] = {}

    async def client() -> None:
        while time.perf_counter() - start < duration_s:
            try:
                reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
            except OSError:
                answers.append(Answer(time.perf_counter() - start, NO_ANSWER, None))
                await asyncio.sleep(0.05)
                continue
            try:
                while time.perf_counter() - start < duration_s:
                    answers.append(await _exchange(reader, writer, request, start))
            except (OSError, asyncio.IncompleteReadError):
                answers.append(Answer(time.perf_counter() - start, NO_ANSWER, None))
            finally:
                writer.close()

    async def inject(at_s: float, name: str, action: Callable[[], Any]) -> None:
        await asyncio.sleep(max(0.0, at_s - (time.perf_counter() - start)))
        injected[name] = time.perf_counter() - start
        await asyncio.to_thread(action)

    await asyncio.gather(
        *(client() for _ in range(concurrency)), *(inject(*fault) for fault in faults)
    )
    return Timeline(answers, injected, duration_s)


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes, start: float
) -> Answer:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = _LENGTH.search(head)
    await reader.readexactly(int(length.group(1)) if length else 0)
    correlation = _CORRELATION.search(head)
    return Answer(
        time.perf_counter() - start,
        head[9:12].decode("ascii", "replace"),
        correlation.group(1).decode() if correlation else None,
    )


def from_open_loop(timeline: OpenLoopTimeline, faults: dict[str, float]) -> Timeline:
    """An open-loop run (`loadgen.open_loop`) as answers ending when each did, with `faults`
    (seconds from when its first request was due)."""
    ended = timeline.due_s + np.nan_to_num(timeline.latency_s, nan=0.0)
    answers = [
        Answer(float(at), str(int(code)) if code > 0 else NO_ANSWER, None)
        for at, code in zip(ended, timeline.status, strict=True)
    ]
    duration = float(timeline.due_s[-1]) + 1.0 / timeline.rate if len(timeline.due_s) else 0.0
    return Timeline(answers, faults, duration)
