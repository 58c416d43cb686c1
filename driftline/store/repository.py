"""The store: one engine and one retry policy behind the repositories of each owner."""

from __future__ import annotations

from datetime import datetime

from driftline.config import Settings
from driftline.store.controller import ControllerStore
from driftline.store.drift import DriftStore
from driftline.store.engine import create_engine
from driftline.store.leases import LeaseStore
from driftline.store.migrate import upgrade
from driftline.store.predictions import PredictionStore
from driftline.store.records import utcnow
from driftline.store.retention import Pruned, RetentionPolicy, prune
from driftline.store.retry import RetryPolicy


class Store:
    """Driftline's records by owner: `predictions` (serving), `drift`, `controller` (operators),
    and named `leases` (the drift monitor's leader lock).

    Writes are idempotent on client-generated ids; every call retries lost connections.
    """

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 5,
        retries: int = 5,
        backoff_s: float = 0.5,
        breaker_threshold: int = 3,
        breaker_reset_s: float = 10.0,
    ) -> None:
        self.url = url
        self.engine = create_engine(url, pool_size=pool_size)
        retry = RetryPolicy(
            retries=retries,
            backoff_s=backoff_s,
            breaker_threshold=breaker_threshold,
            breaker_reset_s=breaker_reset_s,
        )
        self.retry = retry
        self.predictions = PredictionStore(self.engine, retry)
        self.drift = DriftStore(self.engine, retry)
        self.controller = ControllerStore(self.engine, retry)
        self.leases = LeaseStore(self.engine, retry)

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        """A store for the configured URL (SQLite under `home` by default)."""
        if settings.store.database_url is None:
            settings.ensure_home()
        # The retry settings keep their drift names from when only the drift calls retried.
        return cls(
            settings.store_url,
            pool_size=settings.store.pool_size,
            retries=settings.drift.store_retries,
            backoff_s=settings.drift.store_backoff_s,
            breaker_threshold=settings.store.store_breaker_threshold,
            breaker_reset_s=settings.store.store_breaker_reset_s,
        )

    def prune(self, policy: RetentionPolicy, now: datetime | None = None) -> Pruned:
        """Remove records older than `policy` allows (whole day partitions on PostgreSQL)."""
        return prune(self.engine, self.retry, policy, now or utcnow())

    def upgrade(self, revision: str = "head") -> None:
        """Apply migrations up to `revision`."""
        upgrade(self.url, revision)

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()


def retention_policy(settings: Settings) -> RetentionPolicy:
    """The retention limits `settings` configure."""
    return RetentionPolicy(
        predictions_days=settings.store.predictions_retention_days,
        drift_days=settings.store.drift_retention_days,
        audit_days=settings.store.audit_retention_days,
    )
