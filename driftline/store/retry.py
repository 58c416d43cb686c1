"""The store's one retry policy: a whole transaction again after a lost connection, with backoff."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import sqlalchemy as sa

from driftline.breakers import Breaker, BreakerOpenError

log = logging.getLogger(__name__)
T = TypeVar("T")


class StoreUnavailableError(RuntimeError):
    """The store stayed unreachable through every retry; the message says how long we tried."""


@dataclass(frozen=True)
class RetryPolicy:
    """Retry lost connections `retries` times, waiting `backoff_s`, then twice as long each time.

    Every store write is idempotent (client ids, compare-and-set), so repeating a transaction
    whose commit was lost in flight is safe.
    """

    retries: int = 5
    backoff_s: float = 0.5
    # Open after this many calls ran out of retries; half-open (one trial call) after
    # `breaker_reset_s`. While open, calls fail at once instead of each waiting through retries.
    breaker_threshold: int = 3
    breaker_reset_s: float = 10.0
    _breaker: Breaker = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Only an unreachable store counts against the circuit, never refused data.
        breaker = Breaker("store", self.breaker_threshold, self.breaker_reset_s, store_unreachable)
        object.__setattr__(self, "_breaker", breaker)

    def breaker_open(self) -> bool:
        """Whether the circuit is open (calls fail without trying the store)."""
        return self._breaker.state == "opened"

    def run(self, operation: Callable[[], T], what: str) -> T:
        """Run `operation` (one whole transaction); StoreUnavailableError once retries run out
        or while the circuit is open."""
        try:
            with self._breaker:
                return self._attempts(operation, what)
        except BreakerOpenError as error:
            raise StoreUnavailableError(
                f"store unreachable: {what} not attempted, circuit open "
                f"(next trial in {error.retry_after_s:.1f}s)"
            ) from error

    def _attempts(self, operation: Callable[[], T], what: str) -> T:
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            try:
                return operation()
            except sa.exc.DBAPIError as error:
                if not _connection_lost(error):
                    raise
                if attempt == self.retries:
                    raise StoreUnavailableError(
                        f"store unreachable: {what} failed after {attempt + 1} attempt(s): "
                        f"{_first_line(error)}"
                    ) from error
                log.warning(
                    "store connection lost; retrying",
                    extra={"operation": what, "attempt": attempt + 1, "delay_s": delay},
                )
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover


# SQLite raises OperationalError for a missing schema too: that is no outage, and waiting for it
# would only delay the error (`driftline status` on a fresh home).
_SCHEMA_ERRORS = ("no such table", "no such column", "does not exist")


def store_unreachable(error: BaseException) -> bool:
    """Whether `error` means the store was unreachable (rather than that it refused the data)."""
    if isinstance(error, StoreUnavailableError | ConnectionError | TimeoutError):
        return True
    return isinstance(error, sa.exc.DBAPIError) and _connection_lost(error)


def _connection_lost(error: sa.exc.DBAPIError) -> bool:
    # OperationalError covers refused/dropped connections (and SQLite's "database is locked");
    # InterfaceError a connection that was closed under us.
    if any(text in str(error.orig) for text in _SCHEMA_ERRORS):
        return False
    return bool(error.connection_invalidated) or isinstance(
        error, sa.exc.OperationalError | sa.exc.InterfaceError
    )


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__
