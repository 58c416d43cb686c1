"""The store's one retry policy: every owner's calls retry lost connections, then give up."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from driftline.store import AuditEvent, PredictionRecord, Store, StoreUnavailableError, utcnow
from driftline.store.retry import RetryPolicy
from driftline.store.rollouts import ControllerRequest

CALLS: dict[str, Callable[[Store], Any]] = {
    "predictions.count_predictions": lambda s: s.predictions.count_predictions(),
    "predictions.record_predictions": lambda s: s.predictions.record_predictions(
        [PredictionRecord("r1", "m", "1", "v2_infer", [0.1], {"rf": [0.1]}, latency_ms=1.0)]
    ),
    "drift.count_outcomes": lambda s: s.drift.count_outcomes(),
    "drift.alerts": lambda s: s.drift.alerts(model_name="m"),
    "controller.controller_state": lambda s: s.controller.controller_state("m"),
    "controller.add_controller_request": lambda s: s.controller.add_controller_request(
        ControllerRequest(model_name="m", kind="promote", version="2")
    ),
    "controller.record_audit": lambda s: s.controller.record_audit(
        AuditEvent(model_name="m", kind="note", reason="test")
    ),
    "controller.acquire_controller_lease": lambda s: s.controller.acquire_controller_lease(
        "m", "me", ttl_s=5, now=utcnow()
    ),
}


def _lost(statement: str) -> sa.exc.OperationalError:
    return sa.exc.OperationalError(statement, {}, Exception("server closed the connection"))


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_every_owner_retries_lost_connections_with_backoff_and_logs(
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    call: Callable[[Store], Any],
) -> None:
    real_connect = store.engine.connect
    failures = iter([True, True])

    def flaky() -> sa.Connection:
        if next(failures, False):
            raise _lost("SELECT 1")
        return real_connect()

    monkeypatch.setattr(store.engine, "connect", flaky)
    with caplog.at_level(logging.WARNING, logger="driftline.store.retry"):
        call(store)
    retries = [r for r in caplog.records if r.getMessage() == "store connection lost; retrying"]
    assert [r.__dict__["attempt"] for r in retries] == [1, 2]


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_a_store_that_stays_down_is_reported_not_dropped(
    store: Store, monkeypatch: pytest.MonkeyPatch, call: Callable[[Store], Any]
) -> None:
    def down() -> sa.Connection:
        raise sa.exc.OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(store.engine, "connect", down)
    with pytest.raises(
        StoreUnavailableError, match="failed after 3 attempt\\(s\\): connection refused"
    ):
        call(store)


def test_errors_other_than_a_lost_connection_are_not_retried(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts = []

    def broken() -> sa.Connection:
        attempts.append(1)
        raise sa.exc.ProgrammingError("SELECT 1", {}, Exception("syntax error"))

    monkeypatch.setattr(store.engine, "connect", broken)
    with pytest.raises(sa.exc.ProgrammingError):
        store.controller.rollouts("m")
    assert len(attempts) == 1


def test_the_circuit_opens_after_repeated_outages_and_half_opens_on_a_timer() -> None:
    policy = RetryPolicy(retries=0, backoff_s=0.0, breaker_threshold=2, breaker_reset_s=0.2)
    calls = []

    def down() -> None:
        calls.append(1)
        raise _lost("SELECT 1")

    for _ in range(2):
        with pytest.raises(StoreUnavailableError, match="failed after"):
            policy.run(down, "probe")
    assert policy.breaker_open()
    with pytest.raises(StoreUnavailableError, match="circuit open"):
        policy.run(down, "probe")
    assert len(calls) == 2  # the open circuit did not try the store
    time.sleep(0.3)
    assert policy.run(lambda: "up", "probe") == "up"  # the half-open trial succeeds
    assert not policy.breaker_open()


def test_refused_data_never_opens_the_circuit() -> None:
    policy = RetryPolicy(retries=0, breaker_threshold=1)

    def refused() -> None:
        raise ValueError("text fields cannot contain NUL (0x00) bytes")

    for _ in range(3):
        with pytest.raises(ValueError, match="NUL"):
            policy.run(refused, "write")
    assert not policy.breaker_open()
