"""The member socket data plane: framing, concurrency, errors, discovery and the Serve fallback."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from driftline.config import Settings
from serving.channel import (
    ChannelError,
    MemberClient,
    MemberEndpoint,
    MemberServer,
    endpoints,
    replica_sockets,
    score,
    socket_dir,
    socket_path,
)


def doubled(rows: Any) -> Any:
    return rows.sum(axis=1).astype(np.float64) * 2


class FakeHandle:
    """A Serve handle stand-in: `handle.predict.remote(rows)` awaits to the same answer."""

    def __init__(self, predict: Any = doubled) -> None:
        self.calls = 0
        self.predict = self
        self._predict = predict

    async def remote(self, rows: Any) -> Any:
        self.calls += 1
        return self._predict(rows)


@pytest.fixture
def directory(tmp_path: Path) -> Iterator[Path]:
    """This test's socket directory (short, under the temp dir), removed afterwards."""
    path = socket_dir(Settings(home=tmp_path))
    assert path is not None
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def server(directory: Path) -> AsyncIterator[MemberServer]:
    server = MemberServer(socket_path(directory, "blue", "member_rf", "r1"), doubled)
    server.start()
    yield server
    server.close()


async def test_a_call_returns_the_members_float64_outputs(server: MemberServer) -> None:
    client = MemberClient(server.path)
    rows = np.arange(12, dtype=np.float32).reshape(3, 4)
    out = await client.predict(rows)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, doubled(rows))
    await client.close()


async def test_concurrent_calls_on_one_connection_get_their_own_answers(
    server: MemberServer,
) -> None:
    client = MemberClient(server.path)
    batches = [np.full((n, 3), n, dtype=np.float32) for n in range(1, 40)]
    answers = await asyncio.gather(*(client.predict(b) for b in batches))
    for batch, answer in zip(batches, answers, strict=True):
        np.testing.assert_array_equal(answer, doubled(batch))
    assert client.inflight == 0
    await client.close()


async def test_a_member_error_reaches_the_caller_as_channel_error(directory: Path) -> None:
    def broken(_rows: Any) -> Any:
        raise ValueError("bad model")

    server = MemberServer(socket_path(directory, "blue", "member_rf", "bad"), broken)
    server.start()
    client = MemberClient(server.path)
    with pytest.raises(ChannelError, match="ValueError: bad model"):
        await client.predict(np.zeros((1, 2), dtype=np.float32))
    # The connection survives a failed call.
    server._predict = doubled
    assert (await client.predict(np.ones((1, 2), dtype=np.float32))).tolist() == [4.0]
    await client.close()
    server.close()


async def test_a_replica_that_goes_away_fails_waiting_calls(directory: Path) -> None:
    gate = asyncio.Event()

    async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await gate.wait()  # reads the call, never answers, then hangs up
        writer.close()

    path = socket_path(directory, "blue", "member_rf", "gone")
    path.parent.mkdir(parents=True, exist_ok=True)
    listener = await asyncio.start_unix_server(never, path=str(path))
    client = MemberClient(path)
    call = asyncio.create_task(client.predict(np.zeros((1, 2), dtype=np.float32)))
    await asyncio.sleep(0.05)
    gate.set()
    with pytest.raises(ChannelError, match="connection lost"):
        await call
    listener.close()
    with pytest.raises(ChannelError):
        await client.predict(np.zeros((1, 2), dtype=np.float32))


async def test_the_endpoint_prefers_the_socket_and_falls_back_to_serve(
    server: MemberServer, directory: Path
) -> None:
    handle = FakeHandle()
    endpoint = endpoints({"rf": handle}, directory, "blue")["rf"]
    rows = np.ones((2, 3), dtype=np.float32)
    np.testing.assert_array_equal(await endpoint.predict(rows), [6.0, 6.0])
    assert (handle.calls, endpoint.local_replicas) == (0, 1)
    # The replica stops: its socket is gone, the endpoint notices and uses Serve.
    server.close()
    endpoint.refresh()
    np.testing.assert_array_equal(await endpoint.predict(rows), [6.0, 6.0])
    assert (handle.calls, endpoint.local_replicas) == (1, 0)


async def test_a_dead_socket_file_is_dropped_after_one_failed_call(directory: Path) -> None:
    path = socket_path(directory, "blue", "member_rf", "stale")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()  # a crashed replica's leftover: not a listening socket
    handle = FakeHandle()
    endpoint = MemberEndpoint("rf", handle, lambda: replica_sockets(directory, "blue", "member_rf"))
    rows = np.ones((1, 3), dtype=np.float32)
    assert (await endpoint.predict(rows)).tolist() == [6.0]
    assert (handle.calls, endpoint.local_replicas) == (1, 0)


async def test_serve_transport_never_looks_for_sockets(server: MemberServer) -> None:
    settings = Settings(home=Path("/tmp/unused"), serving={"member_transport": "serve"})
    assert socket_dir(settings) is None
    handle = FakeHandle()
    members = endpoints({"rf": handle, "xgb": FakeHandle()}, None, "blue")
    out = await score(members, np.ones((1, 2), dtype=np.float32))
    assert out["rf"].tolist() == [4.0]
    assert handle.calls == 1


def test_sockets_are_found_per_application_and_deployment(directory: Path) -> None:
    directory.mkdir(mode=0o700)
    for app, deployment, replica in [
        ("blue", "member_rf", "a"),
        ("blue", "member_rf", "b"),
        ("blue", "member_xgb", "c"),
        ("green", "member_rf", "d"),
    ]:
        socket_path(directory, app, deployment, replica).touch()
    found = replica_sockets(directory, "blue", "member_rf")
    assert [p.name for p in found] == ["blue.member_rf.a.sock", "blue.member_rf.b.sock"]
    assert len(str(socket_path(directory, "green", "member_xgb", "x" * 8))) < 107


def test_a_socket_directory_open_to_other_users_is_refused(directory: Path) -> None:
    directory.mkdir()
    directory.chmod(0o777)
    planted = socket_path(directory, "blue", "member_rf", "x")
    planted.touch()
    with pytest.raises(PermissionError, match="open to other users"):
        MemberServer(socket_path(directory, "blue", "member_rf", "r1"), doubled).start()
    assert replica_sockets(directory, "blue", "member_rf") == []


@pytest.mark.skipif(os.getuid() != 0, reason="handing a directory to another user needs root")
def test_a_socket_directory_another_user_owns_is_refused(directory: Path) -> None:
    directory.mkdir(mode=0o700)
    planted = socket_path(directory, "blue", "member_rf", "x")
    planted.touch()
    os.chown(directory, 65534, 65534)
    with pytest.raises(PermissionError, match="owned by uid 65534"):
        MemberServer(socket_path(directory, "blue", "member_rf", "r1"), doubled).start()
    assert replica_sockets(directory, "blue", "member_rf") == []
