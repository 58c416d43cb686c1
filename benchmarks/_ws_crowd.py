"""A crowd of WebSocket clients of the prediction stream, run as its own process by the faults
benchmark: `python -m benchmarks._ws_crowd URL IDLE STALLED PACING` (keys, comma-separated, in
DRIFTLINE_BENCH_KEYS; PACING is `Pacing` as JSON).

Clients share a key ten at a time, as a team's clients would, and arrive within the server's
limits: a key's first client verifies it (one credential lookup, paced to the lookup limit),
then its others connect together (the stream limit's burst). Idle clients read every message
(the `websockets` client, which also answers pings); stalled ones finish the handshake on a raw
socket and never call recv again. One JSON line of counts is printed once all have tried to
connect, another when stdin closes: who is still connected, then the crowd leaves.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import json
import os
import secrets
import socket
import struct
import sys
import termios
import time
from dataclasses import asdict, dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException
from websockets.protocol import State

# Handshakes in flight at once: a crowd arriving together would only measure the accept queue.
_OPENING = 50
_TCP_ESTABLISHED = 1  # tcpi_state, the first byte of struct tcp_info (linux/tcp.h)


@dataclass(frozen=True)
class Pacing:
    """The server's limits the crowd keeps within: credential lookups a client address may
    cost (a new key's first use), and stream connections a key may open at once."""

    lookup_rate_per_s: float
    lookup_burst: int
    stream_burst: int

    def key_starts(self, keys: int, margin: float = 0.75) -> list[float]:
        """Seconds after the start at which each key's first client connects: `margin` of the
        lookup burst at once, then the rest at `margin` of the lookup rate."""
        upfront = max(1, int(self.lookup_burst * margin))
        gap = 1.0 / (self.lookup_rate_per_s * margin)
        return [max(0, i - upfront + 1) * gap for i in range(keys)]


@dataclass
class _Stalled:
    sock: socket.socket

    def established(self) -> bool:
        """Whether the kernel still holds the connection open (asked without reading)."""
        info = self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
        return info[0] == _TCP_ESTABLISHED

    def unread_bytes(self) -> int:
        """Bytes the server sent that wait, unread, in this socket's receive buffer."""
        queued = fcntl.ioctl(self.sock.fileno(), termios.FIONREAD, struct.pack("i", 0))
        return int(struct.unpack("i", queued)[0])


async def crowd(url: str, keys: list[str], idle: int, stalled: int, pacing: Pacing) -> None:
    """Connect the crowd, report, hold it until stdin closes, report who stayed connected."""
    gate = asyncio.Semaphore(_OPENING)
    groups = _groups(keys, idle, stalled, pacing.stream_burst)
    started = time.monotonic()
    starts = pacing.key_starts(len(groups))
    opened = await asyncio.gather(
        *(_group(url, group, at, gate) for group, at in zip(groups, starts, strict=True))
    )
    readers = [c for group in opened for c in group if isinstance(c, ClientConnection)]
    held = [c for group in opened for c in group if isinstance(c, _Stalled)]
    _report(
        idle_connected=len(readers),
        stalled_connected=len(held),
        refused=idle + stalled - len(readers) - len(held),
        keys=len(groups),
        connect_s=round(time.monotonic() - started, 1),
    )
    await asyncio.to_thread(sys.stdin.read)  # until the benchmark closes our stdin
    _report(
        idle_still_open=sum(c.state is State.OPEN for c in readers),
        stalled_still_open=sum(s.established() for s in held),
        stalled_unread_bytes=sum(s.unread_bytes() for s in held),
        messages_received=_Reading.received,
    )
    for task in _Reading.tasks:
        task.cancel()
    await asyncio.gather(*(_close(c) for c in readers))
    for stalled_client in held:
        stalled_client.sock.close()


def _groups(keys: list[str], idle: int, stalled: int, per_key: int) -> list[tuple[str, int, str]]:
    """(key, clients, kind) for each key: idle clients first, then stalled, `per_key` a key."""
    plan = [("idle", n) for n in _split(idle, per_key)]
    plan += [("stalled", n) for n in _split(stalled, per_key)]
    if len(plan) > len(keys):
        raise SystemExit(f"{idle + stalled} clients at {per_key} a key need {len(plan)} keys")
    return [(key, n, kind) for key, (kind, n) in zip(keys, plan, strict=False)]


def _split(clients: int, per_key: int) -> list[int]:
    return [min(per_key, clients - i) for i in range(0, clients, per_key)]


async def _group(
    url: str, group: tuple[str, int, str], at: float, gate: asyncio.Semaphore
) -> list[ClientConnection | _Stalled | None]:
    """One key's clients: the first verifies the key, the rest then connect together."""
    key, clients, kind = group
    await asyncio.sleep(at)
    opener = _idle if kind == "idle" else _stalled
    first = await opener(url, key, gate)
    rest = await asyncio.gather(*(opener(url, key, gate) for _ in range(clients - 1)))
    return [first, *rest]


class _Reading:
    """The idle clients' readers and what they received."""

    tasks: ClassVar[list[asyncio.Task[None]]] = []
    received: ClassVar[int] = 0


async def _idle(url: str, key: str, gate: asyncio.Semaphore) -> ClientConnection | None:
    async with gate:
        try:
            auth = {"Authorization": f"Bearer {key}"}
            connection = await connect(url, additional_headers=auth, open_timeout=30)
        except (OSError, WebSocketException, TimeoutError):
            return None
    # Read from the start: unread messages would fill the client's queue, pause its reading
    # and leave the server's keepalive pings unanswered until it closed the connection.
    _Reading.tasks.append(asyncio.create_task(_read(connection)))
    return connection


async def _read(connection: ClientConnection) -> None:
    with contextlib.suppress(WebSocketException):
        async for _message in connection:
            _Reading.received += 1


async def _close(connection: ClientConnection) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(connection.close(), 2)


async def _stalled(url: str, key: str, gate: asyncio.Semaphore) -> _Stalled | None:
    """A client that completes the handshake on a raw socket and never reads again."""
    parts = urlsplit(url)
    handshake = (
        f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Key: {base64.b64encode(secrets.token_bytes(16)).decode()}\r\n"
        f"Authorization: Bearer {key}\r\n\r\n"
    ).encode()
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    async with gate:
        try:
            await loop.sock_connect(sock, (parts.hostname or "127.0.0.1", parts.port or 80))
            await loop.sock_sendall(sock, handshake)
            head = await asyncio.wait_for(_response_head(loop, sock), 30)
        except (OSError, TimeoutError):
            sock.close()
            return None
    if not head.startswith(b"HTTP/1.1 101"):
        sock.close()
        return None
    return _Stalled(sock)  # never read from again


async def _response_head(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> bytes:
    # A byte at a time, so nothing after the handshake's blank line is read.
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = await loop.sock_recv(sock, 1)
        if not byte:
            break
        head += byte
    return head


def _report(**counts: Any) -> None:
    print(json.dumps(counts), flush=True)


def pacing_argument(pacing: Pacing) -> str:
    """`pacing` as this module's command-line argument."""
    return json.dumps(asdict(pacing))


if __name__ == "__main__":
    target, n_idle, n_stalled = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    given = Pacing(**json.loads(sys.argv[4]))
    crowd_keys = os.environ["DRIFTLINE_BENCH_KEYS"].split(",")
    asyncio.run(crowd(target, crowd_keys, n_idle, n_stalled, given))
