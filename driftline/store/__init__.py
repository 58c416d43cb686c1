"""Driftline's store: SQLAlchemy Core tables, Alembic migrations, idempotent writes."""

from driftline.store.records import AuditEvent, PredictionRecord, new_id, utcnow
from driftline.store.repository import Store

__all__ = ["AuditEvent", "PredictionRecord", "Store", "new_id", "utcnow"]
