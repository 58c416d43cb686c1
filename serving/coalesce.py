"""Concurrent callers share one downstream call: batching that adds no wait when idle.

A caller that finds nothing in flight makes its call at once, alone. Callers that arrive while
a call is in flight queue up and go together as the next call, as soon as it returns. Under
load, batches grow with concurrency (one downstream round per batch instead of per request);
at one client at a time a request costs no more than an unbatched call. It behaves like
`serve.batch` with no wait and one batch in flight, without its per-call bookkeeping, which
showed in the ingress's profile.

Background calls carry a deadline, so a hung member cannot hold its batch's callers forever,
and a failed batch is split until the failure is pinned on the callers whose items cause it:
one failing member call fails only its own requests. An error that says nothing of the items
(no replica reachable, an open circuit) fails its batch at once, unsplit; later batches go on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from serving.channel import in_background

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    """Calls `call(items) -> results` (one result per item, in order) for concurrent callers."""

    def __init__(
        self,
        call: Callable[[list[T]], Awaitable[list[R]]],
        max_size: int,
        deadline_s: float | None = None,
        whole: tuple[type[BaseException], ...] = (),
    ) -> None:
        self._call = call
        self._max_size = max_size
        self._deadline_s = deadline_s
        # Errors of the call, not of an item: splitting would repeat the failing call.
        self._whole = whole
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._busy = False

    async def __call__(self, item: T) -> R:
        """The result for `item`, alone if nothing is in flight, else with the next batch."""
        if self._busy:
            future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
            self._waiting.append((item, future))
            return await future
        self._busy = True
        try:
            (result,) = await self._call([item])
        finally:
            self._hand_over()
        return result

    def _hand_over(self) -> None:
        if self._waiting:
            in_background(self._drain())
        else:
            self._busy = False

    async def _drain(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self._max_size]
                del self._waiting[: self._max_size]
                # A caller that gave up (its deadline passed) is not scored.
                batch = [(item, future) for item, future in batch if not future.done()]
                if batch:
                    await self._run(batch)
        finally:
            self._busy = False
            # Cancelled mid-drain (shutdown): nobody may be left waiting on a future.
            for _, future in self._waiting:
                if not future.done():
                    future.set_exception(asyncio.CancelledError())
            self._waiting.clear()

    async def _run(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            async with asyncio.timeout(self._deadline_s):
                results = await self._call([item for item, _ in batch])
        except TimeoutError as error:  # out of time: no second try for anyone
            self._fail(batch, error)
            return
        except Exception as error:
            if len(batch) == 1 or isinstance(error, self._whole):
                self._fail(batch, error)
                return
            # Halve until the failing items are alone; the others still get answers.
            middle = len(batch) // 2
            await self._run(batch[:middle])
            await self._run(batch[middle:])
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    @staticmethod
    def _fail(batch: list[tuple[T, asyncio.Future[R]]], error: BaseException) -> None:
        for _, future in batch:
            if not future.done():
                future.set_exception(error)
