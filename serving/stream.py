"""The WebSocket prediction stream: one producer, many clients, each with a bounded queue.

A producer coroutine makes one message per interval (replayed market bars scored by the active
model) and offers it to every client's queue without waiting; a full queue drops the message
and counts it, so a slow or stalled client never delays the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

import numpy as np
import orjson
import pandas as pd
from starlette.websockets import WebSocket, WebSocketDisconnect

log = logging.getLogger(__name__)

Message = dict[str, Any]
# The stream's message format, offered by browsers beside their `bearer.<key>` credential.
SUBPROTOCOL = "driftline.v1"


class OutcomeHook(Protocol):
    """Called with every replayed bar as it arrives; the drift monitor records outcomes here."""

    def __call__(self, symbol: str, bars: pd.DataFrame) -> Awaitable[None] | None: ...


@dataclass
class BarReplay:
    """Replays real bars in order: each step yields the window ending at the next bar.

    The first window ends at the first bar on or after `start` (or the first full window), and
    the replay wraps around to that same bar at the end of the history.
    """

    bars: pd.DataFrame
    window: int
    start: date | None = None
    position: int = field(default=0, init=False)
    first: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if len(self.bars) < self.window:
            raise ValueError(f"{len(self.bars)} bars cannot fill a window of {self.window}")
        # `position` is one past the window's last bar.
        at = 0 if self.start is None else self._index_of(self.start)
        if at >= len(self.bars):
            raise ValueError(f"no bars on or after {self.start} to replay")
        self.first = self.position = max(at + 1, self.window)

    def _index_of(self, day: date) -> int:
        return int(self.bars.index.searchsorted(pd.Timestamp(day)))

    def next_window(self) -> pd.DataFrame:
        """The next window of bars, wrapping around at the end of the history."""
        if self.position > len(self.bars):
            self.position = self.first
        window = self.bars.iloc[self.position - self.window : self.position]
        self.position += 1
        return window

    @staticmethod
    def columns(window: pd.DataFrame) -> dict[str, np.ndarray[Any, np.dtype[np.float64]]]:
        """The window's OHLCV columns as float64 arrays."""
        return {
            c: window[c].to_numpy(dtype=np.float64)
            for c in ("open", "high", "low", "close", "volume")
        }


class StreamHub:
    """Fans one producer's messages out to every connected client."""

    def __init__(
        self,
        produce: Callable[[], Awaitable[Message | None]],
        *,
        interval_s: float,
        queue_size: int,
        on_clients: Callable[[int], None] = lambda _n: None,
        on_drop: Callable[[], None] = lambda: None,
    ) -> None:
        self._produce = produce
        self._interval_s = interval_s
        self._queue_size = queue_size
        self._clients: set[asyncio.Queue[str]] = set()
        self._on_clients = on_clients
        self._on_drop = on_drop
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0

    @property
    def clients(self) -> int:
        """Connected clients."""
        return len(self._clients)

    async def serve(self, websocket: WebSocket) -> None:
        """Accept `websocket` and send it every message until it disconnects."""
        # A browser that offers subprotocols drops a handshake that selects none of them.
        offered = websocket.scope.get("subprotocols") or []
        await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
        with self._subscription() as queue:
            # Two tasks for the connection's life, not one per message: a crowd of clients
            # makes every message that many sends.
            sender = asyncio.create_task(_send_all(websocket, queue))
            receiver = asyncio.create_task(_until_closed(websocket))
            try:
                await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (sender, receiver):
                    task.cancel()
                await asyncio.gather(sender, receiver, return_exceptions=True)

    def publish(self, message: Message) -> None:
        """Offer `message` to every client, encoded once; full queues drop it."""
        text = orjson.dumps(message, option=orjson.OPT_SERIALIZE_NUMPY).decode()
        for queue in self._clients:
            try:
                queue.put_nowait(text)
            except asyncio.QueueFull:
                self.dropped += 1
                self._on_drop()

    async def close(self) -> None:
        """Stop producing."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @contextlib.contextmanager
    def _subscription(self) -> Iterator[asyncio.Queue[str]]:
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=self._queue_size)
        self._clients.add(queue)
        self._on_clients(len(self._clients))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        try:
            yield queue
        finally:
            self._clients.discard(queue)
            self._on_clients(len(self._clients))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while self._clients:
            try:
                message = await self._produce()
            except Exception:
                log.exception("prediction stream: producing a message failed")
                message = None
            if message is not None:
                self.publish(message)
            # Keep a steady cadence (the next tick is scheduled from the last, not from now),
            # but after a stall skip the missed ticks rather than send them in a burst.
            next_at = max(next_at + self._interval_s, loop.time())
            await asyncio.sleep(max(0.0, next_at - loop.time()))
        self._task = None


async def _send_all(websocket: WebSocket, queue: asyncio.Queue[str]) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, ConnectionError):
        while True:
            await websocket.send_text(await queue.get())


async def _until_closed(websocket: WebSocket) -> None:
    # Clients send nothing we need; reading is how a disconnect becomes visible.
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
