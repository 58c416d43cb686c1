"""The security audit trail: one JSON line per request on `driftline.security`, and a counter
of refused requests by reason. Nothing here ever receives a key or a token."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter

LOGGER = "driftline.security"
REFUSED_METRIC = "driftline_security_refused_requests"
MAX_FIELD = 256

_counters: dict[int, Counter] = {}
_counters_lock = threading.Lock()


def refused_counter(registry: CollectorRegistry = REGISTRY) -> Counter:
    """The refused-requests counter in `registry` (created once per registry)."""
    with _counters_lock:
        counter = _counters.get(id(registry))
        if counter is None:
            counter = Counter(
                REFUSED_METRIC,
                "Requests refused by authentication, authorization or rate limits, by reason.",
                ("reason",),
                registry=registry,
            )
            _counters[id(registry)] = counter
        return counter


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """What one request's audit line says."""

    principal: str
    client: str | None
    user_agent: str | None
    method: str
    route: str
    status: int
    correlation_id: str
    reason: str | None = None


class SecurityAudit:
    """Writes audit lines and counts refusals."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.log = logging.getLogger(LOGGER)
        self.refused = refused_counter(registry)

    def record(self, entry: AuditEntry) -> None:
        """Log `entry` (a warning when refused) and count a refusal by its reason."""
        if entry.reason is not None:
            self.refused.labels(entry.reason).inc()
        level = logging.WARNING if entry.reason is not None else logging.INFO
        if not self.log.isEnabledFor(level):
            return
        message = "request refused" if entry.reason is not None else "request"
        # makeRecord without findCaller: the stack walk would cost more than the rest of the
        # line, on every request, to name a caller that is always this method.
        record = self.log.makeRecord(
            self.log.name,
            level,
            __file__,
            0,
            message,
            (),
            None,
            extra={
                "principal": entry.principal,
                "client": entry.client,
                # A client chooses its user agent: bound it, as a log line must stay a line.
                "user_agent": None if entry.user_agent is None else entry.user_agent[:MAX_FIELD],
                "method": entry.method,
                "route": entry.route[:MAX_FIELD],
                "status": entry.status,
                "correlation_id": entry.correlation_id,
                "reason": entry.reason,
            },
        )
        self.log.handle(record)
