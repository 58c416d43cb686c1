"""Token buckets: 429 with Retry-After once the burst is spent, per replica and through Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from driftline.auth.ratelimit import LocalLimiter, Rate, RedisLimiter, limiter_for, rates_from
from driftline.auth.scopes import Scope


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_says_when_to_retry() -> None:
    clock = Clock()
    limiter = LocalLimiter({Scope.PREDICT: Rate(per_s=2.0, burst=3)}, clock=clock)
    assert [limiter.take("key:a", Scope.PREDICT).allowed for _ in range(4)] == [
        True,
        True,
        True,
        False,
    ]
    assert limiter.take("key:a", Scope.PREDICT).retry_after_s == pytest.approx(0.5)
    clock.now = 0.5  # one token refilled
    assert limiter.take("key:a", Scope.PREDICT).allowed
    assert not limiter.take("key:a", Scope.PREDICT).allowed
    clock.now = 100.0  # refills stop at the burst
    assert sum(limiter.take("key:a", Scope.PREDICT).allowed for _ in range(10)) == 3


def test_buckets_are_per_principal_and_per_scope() -> None:
    limiter = LocalLimiter({Scope.PREDICT: Rate(1.0, 1), Scope.READ: Rate(1.0, 1)}, clock=Clock())
    assert limiter.take("key:a", Scope.PREDICT).allowed
    assert not limiter.take("key:a", Scope.PREDICT).allowed
    assert limiter.take("key:b", Scope.PREDICT).allowed
    assert limiter.take("key:a", Scope.READ).allowed
    assert limiter.take("key:a", Scope.STREAM).allowed  # a scope without a rate is not limited


def test_the_number_of_buckets_is_bounded() -> None:
    limiter = LocalLimiter({Scope.READ: Rate(1.0, 1)}, max_buckets=10, clock=Clock())
    for i in range(100):
        limiter.take(f"key:{i}", Scope.READ)
    assert len(limiter._buckets) == 10


def test_rates_come_from_the_settings_shape() -> None:
    assert rates_from({"outcomes:write": (5.0, 10)}) == {Scope.OUTCOMES_WRITE: Rate(5.0, 10)}
    with pytest.raises(ValueError, match="unknown scope"):
        rates_from({"predictions": (5.0, 10)})
    with pytest.raises(ValueError, match="per_s > 0"):
        Rate(0.0, 1)
    assert isinstance(limiter_for({}, None), LocalLimiter)


@pytest.fixture
async def redis_limiter(redis_url: str) -> AsyncIterator[RedisLimiter]:
    limiter = RedisLimiter(
        redis_url,
        {Scope.PREDICT: Rate(per_s=1.0, burst=3)},
        prefix=f"driftline:test:{uuid.uuid4().hex}:",
    )
    yield limiter
    await limiter.close()


@pytest.mark.redis
async def test_redis_shares_one_bucket_between_replicas(
    redis_limiter: RedisLimiter, redis_url: str
) -> None:
    # A second limiter is a second replica: same Redis, same prefix.
    other = RedisLimiter(redis_url, redis_limiter.rates, prefix=redis_limiter.prefix)
    try:
        decisions = [
            await limiter.acquire("key:a", Scope.PREDICT)
            for limiter in (redis_limiter, other, redis_limiter, other)
        ]
        assert [d.allowed for d in decisions] == [True, True, True, False]
        assert 0 < decisions[-1].retry_after_s <= 1.0
        assert (await other.acquire("key:b", Scope.PREDICT)).allowed
        await asyncio.sleep(decisions[-1].retry_after_s + 0.05)
        assert (await redis_limiter.acquire("key:a", Scope.PREDICT)).allowed
    finally:
        await other.close()


@pytest.mark.redis
async def test_redis_buckets_are_atomic_under_concurrency(redis_limiter: RedisLimiter) -> None:
    decisions = await asyncio.gather(
        *(redis_limiter.acquire("key:c", Scope.PREDICT) for _ in range(20))
    )
    assert sum(d.allowed for d in decisions) == 3


@pytest.mark.redis
async def test_redis_buckets_expire(redis_limiter: RedisLimiter) -> None:
    await redis_limiter.acquire("key:d", Scope.PREDICT)
    ttl_ms = await redis_limiter._redis.pttl(f"{redis_limiter.prefix}predict:key:d")
    assert 0 < ttl_ms <= 4000  # burst / rate + 1 s: idle principals leave nothing behind


async def test_an_unreachable_redis_falls_back_to_per_replica_limits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limiter = RedisLimiter("redis://127.0.0.1:1/0", {Scope.PREDICT: Rate(1.0, 2)}, timeout_s=0.2)
    try:
        decisions = [await limiter.acquire("key:a", Scope.PREDICT) for _ in range(3)]
    finally:
        await limiter.close()
    assert [d.allowed for d in decisions] == [True, True, False]
    assert sum("Redis unreachable" in r.getMessage() for r in caplog.records) == 1
