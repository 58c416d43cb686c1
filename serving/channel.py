"""The data plane to member replicas on the caller's node: one Unix socket per replica.

A Serve handle call costs about 2 ms on a 2-core host (router, pickled metadata, gRPC, the
replica's request wrapper): more than KServe's whole request. So each member replica also
listens on a Unix socket, and callers on its node (the ingress, the combiner) send it feature
rows there: float32 rows in, float64 outputs back, many calls in flight on one connection.
Serve still owns the replicas (placement, health checks, scaling, rolling updates); a member
with no socket on the caller's node, or one that fails, is called through its Serve handle.
Each member has a circuit breaker over both: after repeated calls that reached no replica, its
calls fail at once (503) until a trial call after the reset time.

Frames (little-endian): a call is `<QII` (call id, rows, columns) then rows x columns float32;
an answer is `<QBI` (call id, status, length) then `length` bytes: float64 outputs when the
status is OK, else a UTF-8 error message.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import os
import socket
import stat
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from opentelemetry.trace import SpanKind
from ray.exceptions import RayActorError

from driftline.breakers import Breaker, BreakerOpenError
from driftline.config import BreakerSettings, Settings
from driftline.observability import tracing
from serving.errors import ReplicaUnavailableError

log = logging.getLogger(__name__)

CALL = struct.Struct("<QII")
ANSWER = struct.Struct("<QBI")
OK, FAILED = 0, 1
# How often a caller looks for member replicas that started or stopped on its node.
REFRESH_S = 2.0
Rows = npt.NDArray[np.float32]
Outputs = npt.NDArray[np.float64]
Predict = Callable[[npt.NDArray[Any]], Outputs]


class ChannelError(ConnectionError):
    """The replica behind a socket failed or went away; its Serve handle is used instead."""


_BACKGROUND: set[asyncio.Task[Any]] = set()


def in_background(coroutine: Coroutine[Any, Any, Any]) -> None:
    """Run `coroutine` as a task the loop keeps alive until it ends (the loop holds weak refs)."""
    task = asyncio.get_running_loop().create_task(coroutine)
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)


def socket_dir(settings: Settings) -> Path | None:
    """The node's member sockets for this home, or None when members are reached via Serve.

    Short and under the temp dir, as a socket path holds at most 107 bytes.
    """
    if settings.serving.member_transport != "socket":
        return None
    digest = hashlib.sha256(str(settings.home.resolve()).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"driftline-{digest}"


def socket_path(directory: Path, app: str, deployment: str, replica: str) -> Path:
    """Where one replica of `deployment` in application `app` listens."""
    return directory / f"{app}.{deployment}.{replica}.sock"


def replica_sockets(directory: Path, app: str, deployment: str) -> list[Path]:
    """The sockets of every replica of `deployment` on this node; none in an unsafe directory."""
    if not directory.exists():
        return []
    problem = unsafe(directory)
    if problem:
        _warn_once(f"member sockets not used, calls go through Serve: {problem}")
        return []
    return sorted(directory.glob(f"{app}.{deployment}.*.sock"))


@functools.cache
def _warn_once(message: str) -> None:
    # Endpoints look for sockets every few seconds; the reason need not repeat each time.
    log.warning(message)


def unsafe(directory: Path) -> str | None:
    """Why `directory` could hold sockets planted by another user, or None if it cannot.

    Its name is predictable and under the shared temp dir: it must be ours alone.
    """
    info = directory.lstat()
    if not stat.S_ISDIR(info.st_mode):
        return f"{directory} is not a directory"
    if info.st_uid != os.getuid():
        return f"{directory} is owned by uid {info.st_uid}, not this user ({os.getuid()})"
    if info.st_mode & 0o077:
        return f"{directory} is open to other users (mode {stat.S_IMODE(info.st_mode):o})"
    return None


class MemberServer:
    """Answers calls on a Unix socket with `predict`, one thread per connected caller.

    Threads, not the replica's event loop: a frame costs a blocking read, the predict and a
    send, with no loop wake-up between, and the predict (ONNX Runtime, native trees) releases
    the interpreter lock. A member's turn is what a request waits for at one client at a time.
    """

    def __init__(self, path: Path, predict: Predict) -> None:
        self.path = path
        self._predict = predict
        self._listener: socket.socket | None = None

    def start(self) -> None:
        """Listen, replacing a stale socket file a dead replica left behind."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        problem = unsafe(self.path.parent)
        if problem:
            raise PermissionError(f"member socket directory refused: {problem}")
        self.path.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.path))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, name="member-socket", daemon=True).start()

    def close(self) -> None:
        """Remove the socket so no caller finds it again, and stop listening."""
        self.path.unlink(missing_ok=True)
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return  # closed
            threading.Thread(
                target=self._serve, args=(connection,), name="member-call", daemon=True
            ).start()

    def _serve(self, connection: socket.socket) -> None:
        with connection:
            try:
                while True:
                    call, rows, columns = CALL.unpack(_receive(connection, CALL.size))
                    payload = _receive(connection, rows * columns * 4)
                    connection.sendall(self.answer(call, payload, rows, columns))
            except (ConnectionError, OSError):
                pass  # the caller went away; it retries through Serve if it still needs us

    def answer(self, call: int, payload: bytes | bytearray, rows: int, columns: int) -> bytes:
        """The answer frame for one call frame's payload."""
        try:
            x = np.frombuffer(payload, dtype=np.float32).reshape(rows, columns)
            out = np.ascontiguousarray(self._predict(x), dtype=np.float64).tobytes()
        except Exception as error:  # sent to the caller, which logs it and falls back
            message = f"{type(error).__name__}: {error}".encode()
            return ANSWER.pack(call, FAILED, len(message)) + message
        return ANSWER.pack(call, OK, len(out)) + out


def _receive(connection: socket.socket, size: int) -> bytearray:
    """Exactly `size` bytes, or ConnectionError when the peer hangs up first."""
    buffer = bytearray(size)
    view, got = memoryview(buffer), 0
    while got < size:
        n = connection.recv_into(view[got:])
        if n == 0:
            raise ConnectionError("peer closed the connection")
        got += n
    return buffer


class MemberClient:
    """One connection to a replica's socket, shared by every concurrent call of the process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: asyncio.StreamWriter | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[Outputs]] = {}
        self._calls = 0
        self._lock = asyncio.Lock()

    @property
    def inflight(self) -> int:
        """Calls sent and not yet answered."""
        return len(self._pending)

    async def predict(self, rows: Rows) -> Outputs:
        """The member's outputs for `rows`; ChannelError when the replica cannot answer."""
        writer = await self._connect()
        self._calls += 1
        call = self._calls
        future: asyncio.Future[Outputs] = asyncio.get_running_loop().create_future()
        self._pending[call] = future
        data = np.ascontiguousarray(rows, dtype=np.float32)
        writer.write(CALL.pack(call, data.shape[0], data.shape[1]) + data.tobytes())
        try:
            return await future
        finally:
            self._pending.pop(call, None)

    async def _connect(self) -> asyncio.StreamWriter:
        async with self._lock:
            if self._writer is None or self._writer.is_closing():
                try:
                    reader, self._writer = await asyncio.open_unix_connection(str(self.path))
                except OSError as error:
                    raise ChannelError(f"{self.path.name}: {error}") from None
                self._reader = asyncio.get_running_loop().create_task(self._read(reader))
            return self._writer

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                call, status, length = ANSWER.unpack(await reader.readexactly(ANSWER.size))
                body = await reader.readexactly(length)
                future = self._pending.get(call)
                if future is None or future.done():
                    continue  # the caller gave up (deadline) before the answer came
                if status == OK:
                    future.set_result(np.frombuffer(body, dtype=np.float64))
                else:
                    future.set_exception(ChannelError(body.decode(errors="replace")))
        except (asyncio.IncompleteReadError, OSError) as error:
            self._fail(ChannelError(f"{self.path.name}: connection lost ({error!r})"))

    def _fail(self, error: ChannelError) -> None:
        if self._writer is not None:
            self._writer.close()
        self._writer = None
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)

    async def close(self) -> None:
        """Close the connection; calls still waiting fail with ChannelError."""
        self._fail(ChannelError(f"{self.path.name}: closed"))
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


def unreachable(error: BaseException) -> bool:
    """Whether a member call failed for want of a live replica (not because of its rows)."""
    return isinstance(error, RayActorError | ConnectionError | TimeoutError)


class MemberEndpoint:
    """One member as a caller reaches it: a socket of its node's replicas, else Serve."""

    def __init__(
        self,
        name: str,
        handle: Any,
        sockets: Callable[[], list[Path]],
        breaker: Breaker | None = None,
    ) -> None:
        self.name = name
        self.handle = handle
        self._sockets = sockets
        self._clients: dict[Path, MemberClient] = {}
        self._refreshed = float("-inf")
        self.breaker = breaker or Breaker.from_settings(
            f"member_{name}", BreakerSettings(), unreachable
        )

    @property
    def local_replicas(self) -> int:
        """Replicas reachable over a socket right now."""
        return len(self._clients)

    def refresh(self) -> None:
        """Pick up replicas that started or stopped on this node since the last look."""
        self._refreshed = time.monotonic()
        found = set(self._sockets())
        for path in set(self._clients) - found:
            self._drop(path)
        for path in found - set(self._clients):
            self._clients[path] = MemberClient(path)

    def _drop(self, path: Path) -> None:
        client = self._clients.pop(path, None)
        if client is not None:
            in_background(client.close())

    async def predict(self, rows: Rows) -> Outputs:
        """Outputs from the least busy replica on this node, or through the Serve handle;
        ReplicaUnavailableError at once while the member's circuit is open."""
        try:
            # Counted once per call, after the socket's fallback to Serve: only a call that
            # reached no replica at all is a failure of the member.
            with self.breaker:
                return await self._predict(rows)
        except BreakerOpenError as error:
            raise ReplicaUnavailableError(f"member {self.name}: {error}") from None

    async def _predict(self, rows: Rows) -> Outputs:
        if time.monotonic() - self._refreshed > REFRESH_S:
            self.refresh()
        if self._clients:
            client = min(self._clients.values(), key=lambda c: c.inflight)
            try:
                return await client.predict(rows)
            except ChannelError as error:
                log.warning("member %s: socket failed, using Serve: %s", self.name, error)
                self._drop(client.path)
        result: Outputs = await self.handle.predict.remote(rows)
        return result

    async def close(self) -> None:
        """Close every connection; the member's circuit no longer shows in metrics as open."""
        for path in list(self._clients):
            client = self._clients.pop(path)
            await client.close()
        self.breaker.retire()


def endpoints(
    handles: Mapping[str, Any],
    directory: Path | None,
    app: str,
    breakers: BreakerSettings | None = None,
) -> dict[str, MemberEndpoint]:
    """An endpoint per member handle (deployment `member_<name>` of `app`); no sockets if None.

    Each has its own breaker, `<app>.member_<name>`, as each colour's members are their own
    replicas.
    """
    settings = breakers or BreakerSettings()

    def finder(deployment: str) -> Callable[[], list[Path]]:
        if directory is None:
            return list
        return lambda: replica_sockets(directory, app, deployment)

    return {
        name: MemberEndpoint(
            name,
            handle,
            finder(f"member_{name}"),
            Breaker.from_settings(f"{app}.member_{name}", settings, unreachable),
        )
        for name, handle in handles.items()
    }


async def score(members: Mapping[str, MemberEndpoint], rows: Rows) -> dict[str, Outputs]:
    """Every member's outputs for `rows`, asked at once."""
    ask = _traced if tracing.recording() else MemberEndpoint.predict
    outputs = await asyncio.gather(*(ask(m, rows) for m in members.values()))
    return dict(zip(members, outputs, strict=True))


async def _traced(member: MemberEndpoint, rows: Rows) -> Outputs:
    attributes = {"driftline.member": member.name, "driftline.rows": len(rows)}
    with tracing.span(f"member {member.name}", kind=SpanKind.CLIENT, attributes=attributes):
        return await member.predict(rows)
