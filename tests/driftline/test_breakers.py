"""Circuit breakers: open after repeated failures, half-open on a timer, close on success, and
show their state in metrics."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from driftline import breakers
from driftline.breakers import Breaker, BreakerOpenError
from driftline.config import BreakerSettings

# A short reset time: the interval is shortened, the behaviour is the product's.
RESET_S = 0.2


class DownError(ConnectionError):
    """The dependency could not be reached."""


def fail(breaker: Breaker, error: Exception) -> None:
    with pytest.raises(type(error)), breaker:
        raise error


def succeed(breaker: Breaker) -> None:
    with breaker:
        pass


def counted(error: BaseException) -> bool:
    return isinstance(error, ConnectionError)


def test_it_opens_after_threshold_failures_in_a_row_and_then_fails_at_once() -> None:
    breaker = Breaker("t-open", threshold=3, reset_s=30.0, counts=counted)
    fail(breaker, DownError())
    fail(breaker, DownError())
    succeed(breaker)  # a success in between starts the count again
    fail(breaker, DownError())
    fail(breaker, DownError())
    assert breaker.state == "closed"
    fail(breaker, DownError())
    assert breaker.state == "opened"
    calls = 0
    with pytest.raises(BreakerOpenError, match="t-open open") as raised, breaker:
        calls += 1
    assert calls == 0
    assert 29.0 < raised.value.retry_after_s <= 30.0


def test_it_half_opens_after_the_reset_time_and_a_success_closes_it() -> None:
    breaker = Breaker("t-close", threshold=1, reset_s=RESET_S, counts=counted)
    fail(breaker, DownError())
    with pytest.raises(BreakerOpenError), breaker:
        pass
    time.sleep(RESET_S * 1.5)
    assert breaker.retry_after_s == 0.0
    with breaker:
        assert breaker.state == "half-opened"  # the trial call is under way
    assert breaker.state == "closed"
    succeed(breaker)


def test_a_failed_trial_call_opens_it_again() -> None:
    breaker = Breaker("t-reopen", threshold=2, reset_s=RESET_S, counts=counted)
    fail(breaker, DownError())
    fail(breaker, DownError())
    time.sleep(RESET_S * 1.5)
    fail(breaker, DownError())  # one failure is enough in half-open
    assert breaker.state == "opened"
    with pytest.raises(BreakerOpenError), breaker:
        pass


def test_refusals_and_cancellations_do_not_count() -> None:
    breaker = Breaker("t-refused", threshold=1, reset_s=30.0, counts=counted)
    for _ in range(5):
        fail(breaker, ValueError("bad row"))  # it answered: refused data proves it reachable
    assert breaker.state == "closed"

    async def cancelled() -> None:
        with breaker:
            await asyncio.sleep(10)

    async def cancel_one() -> None:
        task = asyncio.create_task(cancelled())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_one())
    assert breaker.state == "closed"


def test_settings_give_threshold_and_reset_time() -> None:
    settings = BreakerSettings(threshold=2, reset_s=RESET_S)
    breaker = Breaker.from_settings("t-settings", settings)
    fail(breaker, RuntimeError("any error counts by default"))
    assert breaker.state == "closed"
    fail(breaker, RuntimeError("again"))
    assert breaker.state == "opened"
    assert 0 < breaker.retry_after_s <= RESET_S


def test_state_opens_and_refusals_show_in_metrics() -> None:
    registry = CollectorRegistry()
    state = Gauge("driftline_circuit_breaker_state", "s", ["breaker"], registry=registry)
    opens = Counter("driftline_circuit_breaker_opens", "o", ["breaker"], registry=registry)
    rejected = Counter(
        "driftline_circuit_breaker_rejected_calls", "r", ["breaker"], registry=registry
    )
    breaker = Breaker("t-metrics", threshold=1, reset_s=RESET_S, counts=counted)
    stop = breakers.observe(breakers.metrics_observer(state, opens, rejected))
    try:
        _exercise(breaker, registry)
    finally:
        stop()


def _exercise(breaker: Breaker, registry: CollectorRegistry) -> None:
    def sample(name: str) -> float | None:
        return registry.get_sample_value(name, {"breaker": "t-metrics"})

    # A breaker made before the observer shows too, closed, its counters at zero.
    assert sample("driftline_circuit_breaker_state") == 0
    assert sample("driftline_circuit_breaker_rejected_calls_total") == 0
    fail(breaker, DownError())
    assert sample("driftline_circuit_breaker_state") == 2
    assert sample("driftline_circuit_breaker_opens_total") == 1
    for _ in range(3):
        with pytest.raises(BreakerOpenError), breaker:
            pass
    assert sample("driftline_circuit_breaker_rejected_calls_total") == 3
    time.sleep(RESET_S * 1.5)
    succeed(breaker)
    assert sample("driftline_circuit_breaker_state") == 0
    assert 'driftline_circuit_breaker_state{breaker="t-metrics"} 0.0' in (
        generate_latest(registry).decode()
    )
