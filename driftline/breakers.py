"""Circuit breakers on calls to what Driftline depends on: member replicas, the store, MLflow.

A breaker counts consecutive failed calls (purgatory's state model). At `threshold` it opens and
calls fail at once with BreakerOpenError, so a caller answers 503 or spills to its buffer instead
of waiting on a dead dependency. After `reset_s` trial calls go through: a success closes it, a
failure opens it again. Only failures `counts` accepts are counted (a lost connection, not data
the dependency refused, which proves it reachable); a call its caller cancelled counts neither
way. Observers (the metrics) see every change.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from types import TracebackType
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge
from purgatory import ContextChanged
from purgatory.domain.model import CLOSED, HALF_OPENED, OPENED, Context, OpenedState

from driftline.config import BreakerSettings
from driftline.observability.catalog import by_name

log = logging.getLogger(__name__)

# The state gauge's values; an alert reads 2 as open.
STATE_VALUES: dict[str, int] = {CLOSED: 0, HALF_OPENED: 1, OPENED: 2}


class BreakerOpenError(RuntimeError):
    """The circuit is open: the call was not attempted."""

    def __init__(self, name: str, retry_after_s: float) -> None:
        super().__init__(
            f"circuit {name} open after repeated failures; next trial call in {retry_after_s:.1f}s"
        )
        self.name = name
        self.retry_after_s = retry_after_s


class Observer(Protocol):
    """Told of a breaker's `event`: "state" (changed or created), "opened" or "rejected"."""

    def __call__(self, breaker: Breaker, event: str) -> None: ...


_OBSERVERS: list[Observer] = []
_LIVE: weakref.WeakSet[Breaker] = weakref.WeakSet()


def observe(observer: Observer) -> Callable[[], None]:
    """Tell `observer` of every breaker of this process from now on, and of each live one now;
    returns the function that stops it."""
    _OBSERVERS.append(observer)
    for breaker in list(_LIVE):
        observer(breaker, "state")
    return lambda: _OBSERVERS.remove(observer)


def always(_error: BaseException) -> bool:
    """Count every failure."""
    return True


class Breaker:
    """One circuit: `with breaker: call()` raises BreakerOpenError while it is open.

    Thread-safe: the store's breaker is entered from worker threads.
    """

    def __init__(
        self,
        name: str,
        threshold: int,
        reset_s: float,
        counts: Callable[[BaseException], bool] = always,
    ) -> None:
        self.name = name
        self._context = Context(name, threshold, reset_s)
        self._counts = counts
        self._lock = threading.Lock()
        _LIVE.add(self)
        self._notify("state")

    @classmethod
    def from_settings(
        cls,
        name: str,
        settings: BreakerSettings,
        counts: Callable[[BaseException], bool] = always,
    ) -> Breaker:
        """A breaker with the configured threshold and reset time."""
        return cls(name, settings.threshold, settings.reset_s, counts)

    @property
    def state(self) -> str:
        """purgatory's state name: closed, opened or half-opened."""
        return self._context.state

    @property
    def retry_after_s(self) -> float:
        """Seconds until an open circuit lets a trial call through (0 unless open)."""
        opened_at = self._context.opened_at
        if self.state != OPENED or opened_at is None:
            return 0.0
        return max(0.0, opened_at + self._context.ttl - time.time())

    def __enter__(self) -> Breaker:
        with self._lock:
            try:
                self._context.handle_new_request()
            except OpenedState:
                rejected = True
            else:
                rejected = False
            changed = self._drain()
        self._publish(changed)
        if rejected:
            self._notify("rejected")
            raise BreakerOpenError(self.name, self.retry_after_s)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None and not isinstance(exc, Exception):
            return  # cancelled or interrupted by the caller: says nothing of the dependency
        with self._lock:
            if exc is not None and self._counts(exc):
                self._context.handle_exception(exc)
            else:
                # It answered (refused data included): the dependency is reachable.
                self._context.handle_end_request()
            changed = self._drain()
        self._publish(changed)

    def retire(self) -> None:
        """Report the circuit closed from now on: its dependency is gone from this process."""
        with self._lock:
            self._context = Context(self.name, self._context.threshold, self._context.ttl)
        self._notify("state")

    def _drain(self) -> list[str]:
        # purgatory queues its events on the context; only state changes matter here.
        states: list[str] = [
            m.state for m in self._context.messages if isinstance(m, ContextChanged)
        ]
        self._context.messages.clear()
        return states

    def _publish(self, states: list[str]) -> None:
        for state in states:
            if state == OPENED:
                log.warning(
                    "circuit %s opened: calls fail at once for %gs",
                    self.name,
                    self._context.ttl,
                )
                self._notify("opened")
            elif state == CLOSED:
                log.warning("circuit %s closed: calls go through again", self.name)
        if states:
            self._notify("state")

    def _notify(self, event: str) -> None:
        for observer in _OBSERVERS:
            observer(self, event)


def export_metrics(registry: CollectorRegistry) -> Callable[[], None]:
    """Keep the catalogue's breaker metrics of every breaker in this process in `registry`;
    returns the function that stops it."""
    spec = by_name()
    state = spec["driftline_circuit_breaker_state"]
    opens = spec["driftline_circuit_breaker_opens"]
    rejected = spec["driftline_circuit_breaker_rejected_calls"]
    return observe(
        metrics_observer(
            Gauge(state.name, state.help, state.labels, registry=registry),
            Counter(opens.name, opens.help, opens.labels, registry=registry),
            Counter(rejected.name, rejected.help, rejected.labels, registry=registry),
        )
    )


def metrics_observer(state: Gauge, opens: Counter, rejected: Counter) -> Observer:
    """An observer keeping the catalogue's breaker metrics (each labelled by `breaker`)."""

    def observer(breaker: Breaker, event: str) -> None:
        if event == "state":
            state.labels(breaker.name).set(STATE_VALUES[breaker.state])
            # Touched so that a scrape shows each counter from 0, before the first open.
            opens.labels(breaker.name)
            rejected.labels(breaker.name)
        elif event == "opened":
            opens.labels(breaker.name).inc()
        elif event == "rejected":
            rejected.labels(breaker.name).inc()

    return observer
