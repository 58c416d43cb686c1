"""A crowd of WebSocket clients of the prediction stream, run as its own process by the faults
benchmark: `python -m benchmarks._ws_crowd URL IDLE STALLED` (key in DRIFTLINE_BENCH_KEY).

Idle clients read every message (the `websockets` client, which also answers pings); stalled
ones finish the handshake on a raw socket and never read again. One JSON line of counts is
printed once all have tried to connect, another when stdin closes and the crowd leaves.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import secrets
import sys
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

# Handshakes in flight at once: a crowd arriving together would only measure the accept queue.
_OPENING = 50


async def crowd(url: str, key: str, idle: int, stalled: int) -> None:
    """Connect the crowd, report, hold it until stdin closes, report what the readers got."""
    gate = asyncio.Semaphore(_OPENING)
    received = [0]
    readers = await asyncio.gather(*(_idle(url, key, gate) for _ in range(idle)))
    raw = await asyncio.gather(*(_stalled(url, key, gate) for _ in range(stalled)))
    connected = [r for r in readers if r is not None]
    held = [w for w in raw if w is not None]
    _report(
        idle_connected=len(connected),
        stalled_connected=len(held),
        refused=idle + stalled - len(connected) - len(held),
    )
    tasks = [asyncio.create_task(_read(c, received)) for c in connected]
    await asyncio.to_thread(sys.stdin.read)  # until the benchmark closes our stdin
    still_open = sum(not t.done() for t in tasks)
    for task in tasks:
        task.cancel()
    for connection in connected:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(connection.close(), 2)
    for writer in held:
        writer.close()
    _report(messages_received=received[0], idle_still_open=still_open)


async def _idle(url: str, key: str, gate: asyncio.Semaphore) -> ClientConnection | None:
    async with gate:
        try:
            auth = {"Authorization": f"Bearer {key}"}
            return await connect(url, additional_headers=auth, open_timeout=30)
        except (OSError, WebSocketException, TimeoutError):
            return None


async def _read(connection: ClientConnection, received: list[int]) -> None:
    with contextlib.suppress(WebSocketException):
        async for _message in connection:
            received[0] += 1


async def _stalled(url: str, key: str, gate: asyncio.Semaphore) -> asyncio.StreamWriter | None:
    parts = urlsplit(url)
    handshake = (
        f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Key: {base64.b64encode(secrets.token_bytes(16)).decode()}\r\n"
        f"Authorization: Bearer {key}\r\n\r\n"
    ).encode()
    async with gate:
        try:
            reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
            writer.write(handshake)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            return None
    if not head.startswith(b"HTTP/1.1 101"):
        writer.close()
        return None
    return writer  # never read from again


def _report(**counts: Any) -> None:
    print(json.dumps(counts), flush=True)


if __name__ == "__main__":
    target, n_idle, n_stalled = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    asyncio.run(crowd(target, os.environ["DRIFTLINE_BENCH_KEY"], n_idle, n_stalled))
