"""The controller's tables (owner: operators): state and lease, rollouts, gate verdicts,
operator requests, the audit trail, and the shadow pairs its gate compares."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from driftline.store.engine import insert_ignoring_duplicates, upsert
from driftline.store.records import AuditEvent
from driftline.store.retry import RetryPolicy
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
    outcomes,
    predictions,
    rollouts,
)


class ControllerStore:
    """Reads and writes the controller's records; every call retries lost connections."""

    def __init__(self, engine: sa.Engine, retry: RetryPolicy) -> None:
        self.engine = engine
        self.retry = retry

    def controller_state(self, model_name: str) -> ControllerStateRecord | None:
        """The stored controller state of `model_name`, or None before its first round."""
        query = sa.select(controller_state).where(controller_state.c.model_name == model_name)
        rows = self._rows(query, "read controller state")
        return ControllerStateRecord(**rows[0]) if rows else None

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
        taken = self._write("take the controller lease", create, take)[-1] == 1
        return self.controller_state(model_name) if taken else None

    def release_controller_lease(self, model_name: str, holder: str) -> None:
        """Give up the lease if `holder` has it, so a successor need not wait it out."""
        c = controller_state.c
        release = (
            sa.update(controller_state)
            .where(c.model_name == model_name, c.lease_holder == holder)
            .values(lease_holder=None, lease_expires=None)
        )
        self._write("release the controller lease", release)

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
        # A commit lost in flight and retried finds its own revision gone: stale, and safe.
        if self._write("save controller state", statement) != [1]:
            raise StaleStateError(
                f"controller state of {model_name} moved past revision {revision} "
                f"or the lease left {holder}"
            )
        return revision + 1

    def upsert_rollout(self, record: RolloutRecord) -> None:
        """Insert or update one rollout's summary."""
        row = {f: getattr(record, f) for f in RolloutRecord.__dataclass_fields__}
        self._write(
            "record a rollout", upsert(rollouts, row, "rollout_id", self.engine.dialect.name)
        )

    def rollouts(self, model_name: str, *, limit: int = 20) -> list[RolloutRecord]:
        """The newest rollouts of `model_name`, newest first."""
        query = (
            sa.select(rollouts)
            .where(rollouts.c.model_name == model_name)
            .order_by(rollouts.c.started_at.desc())
            .limit(limit)
        )
        return [RolloutRecord(**row) for row in self._rows(query, "read rollouts")]

    def record_gate_results(self, results: Sequence[GateRecord]) -> int:
        """Store gate verdicts; a gate already decided for a rollout is never overwritten."""
        rows = [{f: getattr(r, f) for f in GateRecord.__dataclass_fields__} for r in results]
        if not rows:
            return 0
        return self._insert(gate_results, rows, ("rollout_id", "name"), "record gate results")

    def gate_results(self, rollout_id: str) -> list[GateRecord]:
        """Every gate verdict recorded for `rollout_id`, in the order they were written."""
        query = (
            sa.select(gate_results)
            .where(gate_results.c.rollout_id == rollout_id)
            .order_by(gate_results.c.created_at, gate_results.c.name)
        )
        return [GateRecord(**row) for row in self._rows(query, "read gate results")]

    def add_controller_request(self, request: ControllerRequest) -> None:
        """Queue an operator request for the controller."""
        row = {f: getattr(request, f) for f in ControllerRequest.__dataclass_fields__}
        self._insert(controller_requests, [row], ("request_id",), "queue a controller request")

    def controller_requests(
        self, model_name: str, *, pending: bool = True, limit: int = 50
    ) -> list[ControllerRequest]:
        """Operator requests for `model_name`, oldest first (only unhandled ones by default)."""
        c = controller_requests.c
        query = sa.select(controller_requests).where(c.model_name == model_name)
        if pending:
            query = query.where(c.consumed_at.is_(None))
        query = query.order_by(c.created_at, c.request_id).limit(limit)
        return [ControllerRequest(**row) for row in self._rows(query, "read controller requests")]

    def consume_controller_request(self, request_id: str, outcome: str, *, now: datetime) -> None:
        """Mark a request handled with what came of it (idempotent)."""
        c = controller_requests.c
        consume = (
            sa.update(controller_requests)
            .where(c.request_id == request_id, c.consumed_at.is_(None))
            .values(consumed_at=now, outcome=outcome)
        )
        self._write("consume a controller request", consume)

    def paired_outcomes(
        self, model_name: str, version_a: str, version_b: str, *, since: datetime
    ) -> list[tuple[float, float, float]]:
        """(prediction of a, prediction of b, outcome) for requests one version answered live
        and the other scored in shadow since `since`, oldest first.

        The live row carries the (symbol, as of) its outcome settles. A (symbol, as of) scored
        more than once (a replay that wrapped around) counts once, with its newest request.
        """
        live, shadow = predictions.alias("live"), predictions.alias("shadow")
        query = (
            sa.select(
                live.c.model_version,
                live.c.prediction,
                shadow.c.prediction.label("shadow_prediction"),
                outcomes.c.value,
                live.c.symbol,
                live.c.as_of,
            )
            .join(shadow, (shadow.c.request_id == live.c.request_id) & (shadow.c.slot == "shadow"))
            .join(
                outcomes, (outcomes.c.symbol == live.c.symbol) & (outcomes.c.as_of == live.c.as_of)
            )
            .where(
                live.c.slot == "live",
                live.c.model_name == model_name,
                shadow.c.model_name == model_name,
                live.c.created_at >= since,
                # A conflicting outcome is evidence for no one until an admin resolves it.
                outcomes.c.conflict.is_(False),
                sa.or_(
                    (live.c.model_version == version_a) & (shadow.c.model_version == version_b),
                    (live.c.model_version == version_b) & (shadow.c.model_version == version_a),
                ),
            )
            .order_by(live.c.created_at.desc())
        )

        def run() -> list[tuple[float, float, float]]:
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
            seen: set[tuple[str, datetime]] = set()
            pairs = []
            for row in rows:
                if (row.symbol, row.as_of) in seen or not row.prediction:
                    continue
                seen.add((row.symbol, row.as_of))
                # Requests carrying an as-of time describe their last row.
                live_value = float(row.prediction[-1])
                shadow_value = float(row.shadow_prediction[-1])
                a, b = (
                    (live_value, shadow_value)
                    if row.model_version == version_a
                    else (shadow_value, live_value)
                )
                pairs.append((a, b, float(row.value)))
            return pairs[::-1]

        return self.retry.run(run, "read paired outcomes")

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
        return self._insert(audit_events, rows, ("event_id",), "record audit events")

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
        return [AuditEvent(**row) for row in self._rows(query, "read audit events")]

    def _rows(self, query: sa.Select[Any], what: str) -> list[dict[str, Any]]:
        def run() -> list[dict[str, Any]]:
            with self.engine.connect() as conn:
                return [dict(row._mapping) for row in conn.execute(query)]

        return self.retry.run(run, what)

    def _write(self, what: str, *statements: sa.Executable) -> list[int]:
        """Run `statements` in one transaction; the rows each one matched."""

        def run() -> list[int]:
            with self.engine.begin() as conn:
                return [conn.execute(s).rowcount for s in statements]

        return self.retry.run(run, what)

    def _insert(
        self, table: sa.Table, rows: list[dict[str, Any]], keys: tuple[str, ...], what: str
    ) -> int:
        def run() -> int:
            with self.engine.begin() as conn:
                return len(insert_ignoring_duplicates(conn, table, rows, keys))

        return self.retry.run(run, what)
