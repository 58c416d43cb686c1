"""Driftline's store: SQLAlchemy Core tables, Alembic migrations, idempotent writes by owner.

Predictions are partitioned by UTC day on PostgreSQL (`partitions`), so retention drops days.
"""

from driftline.ids import new_id
from driftline.store.records import AuditEvent, PredictionRecord, utcnow
from driftline.store.repository import Store
from driftline.store.retry import StoreUnavailableError

__all__ = ["AuditEvent", "PredictionRecord", "Store", "StoreUnavailableError", "new_id", "utcnow"]
