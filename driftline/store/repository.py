"""The only place Driftline writes SQL: idempotent inserts and typed queries."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from driftline.config import Settings
from driftline.store import migrate
from driftline.store.engine import create_engine
from driftline.store.records import AuditEvent, PredictionRecord
from driftline.store.rollouts import (
    ControllerRequest,
    ControllerStateRecord,
    GateRecord,
    RolloutRecord,
    StaleStateError,
)
from driftline.store.tables import (
    audit_events,
    controller_requests,
    controller_state,
    gate_results,
    predictions,
    rollouts,
)


class Store:
    """Reads and writes Driftline's records; writes are idempotent on client-generated ids."""

    def __init__(self, url: str, *, pool_size: int = 5) -> None:
        self.url = url
        self.engine = create_engine(url, pool_size=pool_size)

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        """A store for the configured URL (SQLite under `home` by default)."""
        if settings.database_url is None:
            settings.ensure_home()
        return cls(settings.store_url, pool_size=settings.db_pool_size)

    def upgrade(self, revision: str = "head") -> None:
        """Apply migrations up to `revision`."""
        migrate.upgrade(self.url, revision)

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()

    # --- predictions ----------------------------------------------------------------------
    def record_predictions(self, records: Sequence[PredictionRecord]) -> int:
        """Insert `records`, skipping request ids already stored; returns how many were new."""
        if not records:
            return 0
        return self._insert_ignoring_duplicates(
            predictions, [_prediction_row(r) for r in records], ("request_id", "slot")
        )

    def predictions(
        self,
        *,
        since: datetime | None = None,
        model_version: str | None = None,
        slot: str | None = "live",
        limit: int | None = None,
    ) -> list[PredictionRecord]:
        """Stored predictions, oldest first, filtered by time, version and slot."""
        query = sa.select(predictions).order_by(predictions.c.created_at)
        if since is not None:
            query = query.where(predictions.c.created_at >= since)
        if model_version is not None:
            query = query.where(predictions.c.model_version == model_version)
        if slot is not None:
            query = query.where(predictions.c.slot == slot)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [_prediction_record(row._mapping) for row in conn.execute(query)]

    def count_predictions(self, request_ids: Iterable[str] | None = None) -> int:
        """How many predictions are stored, optionally among `request_ids`."""
        query = sa.select(sa.func.count()).select_from(predictions)
        if request_ids is not None:
            query = query.where(predictions.c.request_id.in_(list(request_ids)))
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    # --- audit events ---------------------------------------------------------------------
    def record_audit(self, *events: AuditEvent) -> int:
        """Append audit events; an event id already stored is not written twice."""
        rows = [
            {
                "event_id": e.event_id,
                "created_at": e.created_at,
                "model_name": e.model_name,
                "kind": e.kind,
                "actor": e.actor,
                "rollout_id": e.rollout_id,
                "state_from": e.state_from,
                "state_to": e.state_to,
                "reason": e.reason,
                "details": e.details,
            }
            for e in events
        ]
        return self._insert_ignoring_duplicates(audit_events, rows, ("event_id",))

    def audit_events(
        self,
        *,
        model_name: str | None = None,
        since: datetime | None = None,
        rollout_id: str | None = None,
        kind: str | None = None,
        limit: int | None = None,
    ) -> list[AuditEvent]:
        """The audit trail, oldest first, filtered by model, time, rollout and kind."""
        query = sa.select(audit_events).order_by(audit_events.c.created_at)
        for column, value in (
            (audit_events.c.model_name, model_name),
            (audit_events.c.rollout_id, rollout_id),
            (audit_events.c.kind, kind),
        ):
            if value is not None:
                query = query.where(column == value)
        if since is not None:
            query = query.where(audit_events.c.created_at >= since)
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [AuditEvent(**dict(row._mapping)) for row in conn.execute(query)]

    # --- controller (operators/): state, lease, rollouts, gates, operator requests --------
    def controller_state(self, model_name: str) -> ControllerStateRecord | None:
        """The stored controller state of `model_name`, or None before its first round."""
        query = sa.select(controller_state).where(controller_state.c.model_name == model_name)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else ControllerStateRecord(**dict(row._mapping))

    def acquire_controller_lease(
        self, model_name: str, holder: str, *, ttl_s: float, now: datetime
    ) -> ControllerStateRecord | None:
        """Take or renew the lease on `model_name`; the record if `holder` holds it, else None."""
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        create = (
            dialect.insert(controller_state)
            .values(model_name=model_name, revision=0, phase="stable", updated_at=now)
            .on_conflict_do_nothing(index_elements=["model_name"])
        )
        c = controller_state.c
        take = (
            sa.update(controller_state)
            .where(c.model_name == model_name)
            .where(
                sa.or_(c.lease_holder.is_(None), c.lease_holder == holder, c.lease_expires < now)
            )
            .values(lease_holder=holder, lease_expires=now + timedelta(seconds=ttl_s))
        )
        with self.engine.begin() as conn:
            conn.execute(create)
            taken = conn.execute(take).rowcount == 1
        return self.controller_state(model_name) if taken else None

    def release_controller_lease(self, model_name: str, holder: str) -> None:
        """Give up the lease if `holder` has it, so a successor need not wait it out."""
        c = controller_state.c
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(controller_state)
                .where(c.model_name == model_name, c.lease_holder == holder)
                .values(lease_holder=None, lease_expires=None)
            )

    def save_controller_state(
        self,
        model_name: str,
        state: dict[str, Any],
        *,
        phase: str,
        revision: int,
        holder: str,
        now: datetime,
    ) -> int:
        """Write `state` over `revision` while `holder` holds the lease; returns the new revision.

        Raises StaleStateError when another writer got there first or the lease moved on.
        """
        c = controller_state.c
        statement = (
            sa.update(controller_state)
            .where(c.model_name == model_name, c.revision == revision, c.lease_holder == holder)
            .values(state=state, phase=phase, revision=revision + 1, updated_at=now)
        )
        with self.engine.begin() as conn:
            if conn.execute(statement).rowcount != 1:
                raise StaleStateError(
                    f"controller state of {model_name} moved past revision {revision} "
                    f"or the lease left {holder}"
                )
        return revision + 1

    def upsert_rollout(self, record: RolloutRecord) -> None:
        """Insert or update one rollout's summary."""
        row = {f: getattr(record, f) for f in RolloutRecord.__dataclass_fields__}
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        statement = dialect.insert(rollouts).values(row)
        statement = statement.on_conflict_do_update(
            index_elements=["rollout_id"],
            set_={k: statement.excluded[k] for k in row if k != "rollout_id"},
        )
        with self.engine.begin() as conn:
            conn.execute(statement)

    def rollouts(self, model_name: str, *, limit: int = 20) -> list[RolloutRecord]:
        """The newest rollouts of `model_name`, newest first."""
        query = (
            sa.select(rollouts)
            .where(rollouts.c.model_name == model_name)
            .order_by(rollouts.c.started_at.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [RolloutRecord(**dict(row._mapping)) for row in conn.execute(query)]

    def record_gate_results(self, results: Sequence[GateRecord]) -> int:
        """Store gate verdicts; a gate already decided for a rollout is never overwritten."""
        rows = [{f: getattr(r, f) for f in GateRecord.__dataclass_fields__} for r in results]
        if not rows:
            return 0
        return self._insert_ignoring_duplicates(gate_results, rows, ("rollout_id", "name"))

    def gate_results(self, rollout_id: str) -> list[GateRecord]:
        """Every gate verdict recorded for `rollout_id`, in the order they were written."""
        query = (
            sa.select(gate_results)
            .where(gate_results.c.rollout_id == rollout_id)
            .order_by(gate_results.c.created_at, gate_results.c.name)
        )
        with self.engine.connect() as conn:
            return [GateRecord(**dict(row._mapping)) for row in conn.execute(query)]

    def add_controller_request(self, request: ControllerRequest) -> None:
        """Queue an operator request for the controller."""
        row = {f: getattr(request, f) for f in ControllerRequest.__dataclass_fields__}
        self._insert_ignoring_duplicates(controller_requests, [row], ("request_id",))

    def controller_requests(
        self, model_name: str, *, pending: bool = True, limit: int = 50
    ) -> list[ControllerRequest]:
        """Operator requests for `model_name`, oldest first (only unhandled ones by default)."""
        c = controller_requests.c
        query = sa.select(controller_requests).where(c.model_name == model_name)
        if pending:
            query = query.where(c.consumed_at.is_(None))
        query = query.order_by(c.created_at, c.request_id).limit(limit)
        with self.engine.connect() as conn:
            return [ControllerRequest(**dict(row._mapping)) for row in conn.execute(query)]

    def consume_controller_request(self, request_id: str, outcome: str, *, now: datetime) -> None:
        """Mark a request handled with what came of it (idempotent)."""
        c = controller_requests.c
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(controller_requests)
                .where(c.request_id == request_id, c.consumed_at.is_(None))
                .values(consumed_at=now, outcome=outcome)
            )

    # --- helpers --------------------------------------------------------------------------
    def _insert_ignoring_duplicates(
        self, table: sa.Table, rows: list[dict[str, Any]], keys: tuple[str, ...]
    ) -> int:
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        statement = (
            dialect.insert(table)
            .on_conflict_do_nothing(index_elements=list(keys))
            .returning(*(table.c[k] for k in keys))
        )
        with self.engine.begin() as conn:
            return len(conn.execute(statement, rows).all())


def _prediction_row(record: PredictionRecord) -> dict[str, Any]:
    features = None
    if record.features is not None:
        features = np.ascontiguousarray(record.features, dtype="<f8").tobytes()
    return {
        "request_id": record.request_id,
        "slot": record.slot,
        "created_at": record.created_at,
        "model_name": record.model_name,
        "model_version": record.model_version,
        "colour": record.colour,
        "endpoint": record.endpoint,
        "symbol": record.symbol,
        "as_of": record.as_of,
        "n_rows": record.n_rows,
        "features": features,
        "prediction": record.prediction,
        "member_outputs": record.member_outputs,
        "latency_ms": record.latency_ms,
    }


def _prediction_record(row: Any) -> PredictionRecord:
    features = None
    if row["features"] is not None:
        flat = np.frombuffer(row["features"], dtype="<f8")
        features = flat.reshape(row["n_rows"], -1) if row["n_rows"] else flat.reshape(0, 0)
    return PredictionRecord(
        request_id=row["request_id"],
        slot=row["slot"],
        created_at=row["created_at"],
        model_name=row["model_name"],
        model_version=row["model_version"],
        colour=row["colour"],
        endpoint=row["endpoint"],
        symbol=row["symbol"],
        as_of=row["as_of"],
        features=features,
        prediction=list(row["prediction"]),
        member_outputs=dict(row["member_outputs"]),
        latency_ms=row["latency_ms"],
    )
