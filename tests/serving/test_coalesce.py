"""The ingress's coalescer: alone when idle, batched while a call is in flight, failures shared."""

from __future__ import annotations

import asyncio

import pytest

from serving.coalesce import Coalescer


class Downstream:
    """Records each batch; answers item * 10 after a gate opens."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.fail = False
        self.poison: set[int] = set()
        self.hang: set[int] = set()

    async def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        await self.gate.wait()
        if self.hang & set(items):
            await asyncio.Event().wait()
        if self.fail or self.poison & set(items):
            raise RuntimeError("member down")
        return [i * 10 for i in items]


async def _behind_one(
    coalesce: Coalescer[int, int], items: tuple[int, ...]
) -> tuple[asyncio.Task[int], list[asyncio.Task[int]]]:
    """A call in flight (item 0), then `items` arriving while it runs."""
    first = asyncio.create_task(coalesce(0))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(coalesce(i)) for i in items]
    await asyncio.sleep(0)
    return first, rest


async def test_an_idle_call_goes_alone_and_at_once() -> None:
    downstream = Downstream()
    downstream.gate.set()
    coalesce = Coalescer(downstream, max_size=8)
    assert await coalesce(3) == 30
    assert await coalesce(4) == 40
    assert downstream.batches == [[3], [4]]


async def test_callers_during_a_call_share_the_next_one_up_to_the_size() -> None:
    downstream = Downstream()
    coalesce = Coalescer(downstream, max_size=3)
    first, rest = await _behind_one(coalesce, (1, 2, 3, 4, 5))
    downstream.gate.set()
    assert await first == 0
    assert await asyncio.gather(*rest) == [10, 20, 30, 40, 50]
    assert downstream.batches == [[0], [1, 2, 3], [4, 5]]
    # Idle again: the next caller goes alone.
    assert await coalesce(9) == 90
    assert downstream.batches[-1] == [9]


async def test_a_failed_batch_fails_each_of_its_callers() -> None:
    downstream = Downstream()
    coalesce = Coalescer(downstream, max_size=8)
    first, rest = await _behind_one(coalesce, (1, 2))
    downstream.fail = True
    downstream.gate.set()
    for task in (first, *rest):
        with pytest.raises(RuntimeError, match="member down"):
            await task
    downstream.fail = False
    assert await coalesce(5) == 50


async def test_a_caller_that_gave_up_is_not_scored() -> None:
    downstream = Downstream()
    coalesce = Coalescer(downstream, max_size=8)
    first, (late, kept) = await _behind_one(coalesce, (1, 2))
    late.cancel()
    await asyncio.sleep(0)
    downstream.gate.set()
    assert (await first, await kept) == (0, 20)
    assert downstream.batches == [[0], [2]]


async def test_the_first_caller_timing_out_still_hands_over() -> None:
    downstream = Downstream()
    coalesce = Coalescer(downstream, max_size=8)
    first, (waiting,) = await _behind_one(coalesce, (1,))
    first.cancel()
    await asyncio.sleep(0)
    downstream.gate.set()
    assert await waiting == 10


async def test_a_failing_item_fails_only_its_own_caller() -> None:
    downstream = Downstream()
    coalesce = Coalescer(downstream, max_size=8)
    first, rest = await _behind_one(coalesce, (1, 2, 3, 4))
    downstream.poison = {3}
    downstream.gate.set()
    assert await first == 0
    results = await asyncio.gather(*rest, return_exceptions=True)
    assert results[:2] == [10, 20]
    assert results[3] == 40
    assert isinstance(results[2], RuntimeError)


async def test_a_hung_background_call_fails_its_callers_at_the_deadline() -> None:
    downstream = Downstream()
    downstream.hang = {1}
    coalesce = Coalescer(downstream, max_size=8, deadline_s=0.05)
    first, (waiting,) = await _behind_one(coalesce, (1,))
    downstream.gate.set()
    assert await first == 0
    await asyncio.wait({waiting}, timeout=2.0)
    assert waiting.done()
    assert isinstance(waiting.exception(), TimeoutError)
    assert await coalesce(5) == 50


class UnreachableError(ConnectionError):
    """No replica answered: an error of the call, not of any item."""


async def test_an_unreachable_member_fails_only_its_batch_unsplit() -> None:
    downstream = Downstream()

    async def flaky(items: list[int]) -> list[int]:
        if 1 in items:  # the batch holding item 1 meets a dead member
            downstream.batches.append(list(items))
            raise UnreachableError("member rf: no replica")
        return await downstream(items)

    coalesce = Coalescer(flaky, max_size=2, whole=(UnreachableError,))
    first, rest = await _behind_one(coalesce, (1, 2, 3, 4))
    downstream.gate.set()
    assert await first == 0
    results = await asyncio.gather(*rest, return_exceptions=True)
    # Items 1 and 2 shared the failed call; the next batch went on and was answered.
    assert [type(r) for r in results[:2]] == [UnreachableError, UnreachableError]
    assert results[2:] == [30, 40]
    # Not split: one call for the failed batch, no retries of halves against a dead member.
    assert downstream.batches == [[0], [1, 2], [3, 4]]
