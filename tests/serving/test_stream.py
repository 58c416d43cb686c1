"""The stream hub: a full client queue drops and counts; replay walks real bars in order."""

from __future__ import annotations

import asyncio
from datetime import date

import numpy as np
import orjson
import pandas as pd
import pytest

from serving.stream import BarReplay, StreamHub


async def test_full_queue_drops_and_counts_without_blocking_others() -> None:
    drops: list[int] = []
    hub = StreamHub(
        lambda: asyncio.sleep(0), interval_s=10, queue_size=2, on_drop=lambda: drops.append(1)
    )
    with hub._subscription() as stalled, hub._subscription() as reader:
        for i in range(5):
            hub.publish({"n": i})
            # The reader keeps up; the stalled client never reads.
            assert orjson.loads(await reader.get())["n"] == i
        assert stalled.qsize() == 2
    assert hub.dropped == 3
    assert len(drops) == 3
    await hub.close()


async def test_a_message_is_encoded_once_for_every_client() -> None:
    hub = StreamHub(lambda: asyncio.sleep(0), interval_s=10, queue_size=2)
    with hub._subscription() as a, hub._subscription() as b:
        hub.publish({"prediction": np.float64(0.25), "as_of": "2024-03-01"})
        first, second = a.get_nowait(), b.get_nowait()
    assert first is second
    assert orjson.loads(first) == {"prediction": 0.25, "as_of": "2024-03-01"}
    await hub.close()


def test_replay_yields_consecutive_windows_and_wraps() -> None:
    bars = pd.DataFrame(
        {c: range(1, 8) for c in ("open", "high", "low", "close", "volume")},
        index=pd.date_range("2020-01-01", periods=7, name="date"),
    )
    replay = BarReplay(bars, window=5)
    ends = [replay.next_window().index[-1].day for _ in range(4)]
    assert ends == [5, 6, 7, 5]
    assert len(replay.next_window()) == 5


def test_replay_starts_at_the_configured_bar_and_wraps_back_to_it() -> None:
    bars = pd.DataFrame(
        {c: range(1, 11) for c in ("open", "high", "low", "close", "volume")},
        index=pd.date_range("2020-01-01", periods=10, name="date"),
    )
    replay = BarReplay(bars, window=3, start=date(2020, 1, 8))
    ends = [replay.next_window().index[-1].day for _ in range(4)]
    assert ends == [8, 9, 10, 8]
    # A start inside the first window still sends full windows only.
    assert BarReplay(bars, window=5, start=date(2019, 1, 1)).next_window().index[-1].day == 5
    with pytest.raises(ValueError, match="no bars on or after 2021-01-01"):
        BarReplay(bars, window=3, start=date(2021, 1, 1))
