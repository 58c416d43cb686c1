"""Token buckets per principal and bucket (a scope, or `LOOKUPS`): in memory or through Redis.

The Redis bucket is one atomic Lua script that reads Redis's own clock, so replicas with
skewed clocks still share one refill rate. When Redis is unreachable the limiter falls back
to its in-memory buckets (and logs it): a Redis outage must not turn into a serving outage.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from driftline.auth.scopes import parse_scopes

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Rate:
    """`per_s` tokens refill each second, up to `burst`; a request takes one."""

    per_s: float
    burst: int

    def __post_init__(self) -> None:
        if not (self.per_s > 0 and math.isfinite(self.per_s) and self.burst >= 1):
            raise ValueError(f"a rate needs per_s > 0 and burst >= 1, not {self}")


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a request may proceed, and if not how long until a token refills."""

    allowed: bool
    retry_after_s: float = 0.0


ALLOW = Decision(allowed=True)


# Credential checks that miss the caches (a store query or a JWKS fetch), per client address.
LOOKUPS = "lookups"


def rates_from(
    config: Mapping[str, tuple[float, int]], lookups: tuple[float, int] | None = None
) -> dict[str, Rate]:
    """`{"predict": (per_s, burst)}` (the settings' shape) as rates; unknown scopes raise."""
    rates: dict[str, Rate] = {
        next(iter(parse_scopes([name]))): Rate(*pair) for name, pair in config.items()
    }
    if lookups is not None:
        rates[LOOKUPS] = Rate(*lookups)
    return rates


class Limiter(Protocol):
    """Takes one token from a principal's bucket (a scope's name, or `LOOKUPS`)."""

    async def acquire(self, principal: str, bucket: str) -> Decision: ...

    async def close(self) -> None: ...


class LocalLimiter:
    """Buckets in this process's memory (a bounded number, least recently used dropped)."""

    def __init__(
        self,
        rates: Mapping[str, Rate],
        *,
        max_buckets: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rates = dict(rates)
        self._max_buckets = max_buckets
        self._clock = clock
        self._buckets: OrderedDict[tuple[str, str], tuple[float, float]] = OrderedDict()
        # Threaded servers (the controller's http.server) take tokens from several threads.
        self._lock = threading.Lock()

    async def acquire(self, principal: str, bucket: str) -> Decision:
        return self.take(principal, bucket)

    def take(self, principal: str, bucket: str) -> Decision:
        """`acquire` without the coroutine (no I/O happens here)."""
        rate = self.rates.get(bucket)
        if rate is None:
            return ALLOW
        with self._lock:
            return self._take(rate, (principal, str(bucket)))

    def _take(self, rate: Rate, key: tuple[str, str]) -> Decision:
        now = self._clock()
        tokens, then = self._buckets.get(key, (float(rate.burst), now))
        tokens = min(float(rate.burst), tokens + (now - then) * rate.per_s)
        if tokens >= 1.0:
            decision, tokens = ALLOW, tokens - 1.0
        else:
            decision = Decision(allowed=False, retry_after_s=(1.0 - tokens) / rate.per_s)
        self._buckets[key] = (tokens, now)
        self._buckets.move_to_end(key)
        if len(self._buckets) > self._max_buckets:
            self._buckets.popitem(last=False)
        return decision

    async def close(self) -> None:
        return None


# KEYS[1] bucket; ARGV rate per second, burst. Returns {allowed, seconds to wait as a string}
# (Lua numbers come back from Redis as integers, so the fraction travels as text).
BUCKET_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(bucket[1])
local ts = tonumber(bucket[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed = 0
local wait = 0
if tokens >= 1 then
  allowed = 1
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, tostring(wait)}
"""


class RedisLimiter:
    """Buckets shared by every replica through Redis; the local buckets stand in on errors."""

    def __init__(
        self,
        url: str,
        rates: Mapping[str, Rate],
        *,
        prefix: str = "driftline:ratelimit:",
        timeout_s: float = 0.25,
    ) -> None:
        import redis.asyncio as redis  # noqa: PLC0415  (only replicas configured for it)

        self.rates = dict(rates)
        self.prefix = prefix
        self._redis: Any = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self._script = self._redis.register_script(BUCKET_LUA)
        self._fallback = LocalLimiter(rates)
        self._failing = False

    async def acquire(self, principal: str, bucket: str) -> Decision:
        rate = self.rates.get(bucket)
        if rate is None:
            return ALLOW
        key = f"{self.prefix}{bucket}:{principal}"
        try:
            allowed, wait = await self._script(keys=[key], args=[rate.per_s, rate.burst])
        except (TimeoutError, OSError, self._errors()) as error:
            if not self._failing:
                log.warning("rate limiter: Redis unreachable, limiting per replica: %s", error)
            self._failing = True
            return self._fallback.take(principal, bucket)
        if self._failing:
            log.info("rate limiter: Redis reachable again")
            self._failing = False
        return ALLOW if int(allowed) == 1 else Decision(False, float(wait))

    async def close(self) -> None:
        await self._redis.aclose()

    @staticmethod
    def _errors() -> type[Exception]:
        from redis.exceptions import RedisError  # noqa: PLC0415

        return RedisError


def limiter_for(rates: Mapping[str, Rate], redis_url: str | None) -> LocalLimiter | RedisLimiter:
    """The shared limiter when `redis_url` is set, else the per-replica one."""
    return RedisLimiter(redis_url, rates) if redis_url else LocalLimiter(rates)
