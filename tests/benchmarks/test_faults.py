"""The faults benchmark's measures: recovery after a fault, and SIGKILLed commands' Ray heads."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve

from benchmarks import synthetic
from benchmarks._timeline import Answer, Timeline, dips_after, recovery_s
from benchmarks._ws_crowd import Pacing, _groups, _stalled
from benchmarks.faults import sigkilled
from driftline.auth.ratelimit import LOOKUPS, LocalLimiter, Rate
from driftline.config import Settings


def steady(rate: int, seconds: int, dips: dict[int, int]) -> list[Answer]:
    """`rate` answers a second, `dips[s]` instead in second s."""
    return [
        Answer(second + i / dips.get(second, rate), "200", None)
        for second in range(seconds)
        for i in range(dips.get(second, rate))
    ]


def test_recovery_runs_to_the_end_of_the_last_slow_second() -> None:
    # The kill at 6 s costs nothing at once; the replacement's start slows seconds 9 and 10:
    # the last window below 90% starts at 10.7 s (40% of second 10, 70% of second 11).
    timeline = Timeline(steady(100, 20, {9: 50, 10: 60}), {"kill": 6.0}, 20.0)
    assert recovery_s(timeline, "kill") == pytest.approx(5.7, abs=0.15)


def test_no_dip_is_an_immediate_recovery_and_a_run_ending_slow_is_none() -> None:
    assert recovery_s(Timeline(steady(100, 12, {}), {"kill": 6.0}, 12.0), "kill") == 0.0
    slow_end = Timeline(steady(100, 12, {10: 10, 11: 10}), {"kill": 6.0}, 12.0)
    assert recovery_s(slow_end, "kill") is None


def test_a_dip_after_the_rate_held_is_listed_not_counted_as_the_recovery() -> None:
    # The kill's dip in second 9; the rate holds from 10 s, then dips again in second 30.
    timeline = Timeline(steady(100, 40, {9: 50, 30: 50}), {"kill": 6.0}, 40.0)
    assert recovery_s(timeline, "kill") == pytest.approx(4.7, abs=0.15)
    (dip,) = dips_after(timeline, "kill")
    assert 29.0 <= dip <= 30.0
    # Held for less than the hold period between them, both dips are the kill's.
    close = Timeline(steady(100, 40, {9: 50, 13: 50}), {"kill": 6.0}, 40.0)
    assert recovery_s(close, "kill") == pytest.approx(8.7, abs=0.15)
    assert dips_after(close, "kill") == []


@pytest.mark.slow
@pytest.mark.ray
def test_a_sigkilled_driftline_serve_leaves_no_ray_process(tmp_path: Path) -> None:
    source = Settings(home=tmp_path / "source")
    synthetic.make_bundle(source, "1", trees=(10, 10), depths=(3, 3), rows=300)
    found = sigkilled("driftline_serve", source)
    assert found["processes_before"] > 5, found  # the head, its GCS, raylet, Serve's actors
    assert found["survivors"] == 0, found


def test_the_crowd_keys_arrive_within_the_servers_limits() -> None:
    # The server's own bucket for credential lookups, fed each key's first connection.
    auth = Settings().auth
    pacing = Pacing(*auth.lookup_rate, stream_burst=auth.rate_limits["stream"][1])
    clock = [0.0]
    limiter = LocalLimiter({LOOKUPS: Rate(*auth.lookup_rate)}, clock=lambda: clock[0])
    starts = pacing.key_starts(55)
    for at in starts:
        clock[0] = at
        assert limiter.take("client:127.0.0.1", LOOKUPS).allowed, at
    assert starts[-1] < 40  # the ramp stays short enough for the measurement
    groups = _groups([f"k{i}" for i in range(55)], 500, 50, pacing.stream_burst)
    assert [n for _key, n, _kind in groups] == [10] * 55
    assert sum(kind == "stalled" for _key, _n, kind in groups) == 5


async def test_a_stalled_client_never_reads_what_the_server_sends() -> None:
    sent = asyncio.Event()

    async def handler(connection: ServerConnection) -> None:
        for _ in range(20):
            await connection.send("x" * 1000)
        sent.set()
        await connection.wait_closed()

    async with serve(handler, "127.0.0.1", 0, ping_interval=None) as server:
        port = server.sockets[0].getsockname()[1]
        client = await _stalled(f"ws://127.0.0.1:{port}/ws", "k", asyncio.Semaphore(1))
        assert client is not None
        await asyncio.wait_for(sent.wait(), 5)
        await asyncio.sleep(0.2)
        assert client.established()
        assert client.unread_bytes() >= 20 * 1000  # every frame waits in the kernel, unread
        client.sock.close()
