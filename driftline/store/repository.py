"""The only place Driftline writes SQL: idempotent inserts and typed queries."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from driftline.config import Settings
from driftline.store import migrate
from driftline.store.drift_records import (
    Alert,
    Outcome,
    OutcomeIngest,
    OutcomePair,
    ScoreRow,
    StoredReport,
    StoreUnavailableError,
    UnknownOutcomeError,
)
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
    alerts,
    audit_events,
    controller_requests,
    controller_state,
    drift_baselines,
    drift_reports,
    drift_scores,
    gate_results,
    outcomes,
    predictions,
    rollouts,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


class Store:
    """Reads and writes Driftline's records; writes are idempotent on client-generated ids."""

    def __init__(
        self, url: str, *, pool_size: int = 5, retries: int = 5, backoff_s: float = 0.5
    ) -> None:
        self.url = url
        self.engine = create_engine(url, pool_size=pool_size)
        # Used by the calls wrapped in `_retrying` (the drift section's).
        self.retries = retries
        self.backoff_s = backoff_s

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        """A store for the configured URL (SQLite under `home` by default)."""
        if settings.store.database_url is None:
            settings.ensure_home()
        return cls(
            settings.store_url,
            pool_size=settings.store.pool_size,
            retries=settings.drift.store_retries,
            backoff_s=settings.drift.store_backoff_s,
        )

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

    # --- drift (owner: drift): outcomes, reports, scores, alerts, null models ---------------
    def record_outcomes(
        self, batch: Sequence[Outcome], *, late_after_s: float, allow_unknown: bool = False
    ) -> OutcomeIngest:
        """Store realised values that join a live prediction by (symbol, as_of), in one go.

        Outcomes repeating a stored one are duplicates (same value) or conflicting (another
        value; the stored one is kept). Unknown ones raise UnknownOutcomeError and nothing is
        stored, unless `allow_unknown` (the replay stream) only counts them.
        """
        if not batch:
            return OutcomeIngest()
        return self._retrying(
            lambda: self._record_outcomes(batch, late_after_s, allow_unknown), "record outcomes"
        )

    def _record_outcomes(
        self, batch: Sequence[Outcome], late_after_s: float, allow_unknown: bool
    ) -> OutcomeIngest:
        first: dict[tuple[str, datetime], Outcome] = {}
        duplicate = conflicting = 0
        for outcome in batch:
            key = (outcome.symbol, outcome.as_of)
            if key in first:
                same = math.isclose(first[key].value, outcome.value, rel_tol=1e-12, abs_tol=0)
                duplicate, conflicting = duplicate + same, conflicting + (not same)
            else:
                first[key] = outcome
        keys = list(first)
        with self.engine.begin() as conn:
            predicted = {
                (row.symbol, row.as_of): row.first
                for row in conn.execute(
                    sa.select(
                        predictions.c.symbol,
                        predictions.c.as_of,
                        sa.func.min(predictions.c.created_at).label("first"),
                    )
                    .where(sa.tuple_(predictions.c.symbol, predictions.c.as_of).in_(keys))
                    .where(predictions.c.slot == "live")
                    .group_by(predictions.c.symbol, predictions.c.as_of)
                )
            }
            unknown = [k for k in keys if k not in predicted]
            if unknown and not allow_unknown:
                raise UnknownOutcomeError(unknown)
            stored_values = {
                (row.symbol, row.as_of): row.value
                for row in conn.execute(
                    sa.select(outcomes.c.symbol, outcomes.c.as_of, outcomes.c.value).where(
                        sa.tuple_(outcomes.c.symbol, outcomes.c.as_of).in_(keys)
                    )
                )
            }
            rows = []
            for key in keys:
                if key in unknown:
                    continue
                outcome = first[key]
                if key in stored_values:
                    same = math.isclose(stored_values[key], outcome.value, rel_tol=1e-12)
                    duplicate, conflicting = duplicate + same, conflicting + (not same)
                    continue
                delay = outcome.received_at - predicted[key]
                rows.append(
                    {
                        "symbol": outcome.symbol,
                        "as_of": outcome.as_of,
                        "value": float(outcome.value),
                        "received_at": outcome.received_at,
                        "source": outcome.source,
                        "late": delay > timedelta(seconds=late_after_s),
                    }
                )
            stored = 0
            late = 0
            if rows:
                inserted = self._insert_returning(conn, outcomes, rows, ("symbol", "as_of"))
                stored = len(inserted)
                late = sum(1 for r in rows if r["late"] and (r["symbol"], r["as_of"]) in inserted)
                # Rows another writer stored first are duplicates of theirs.
                duplicate += len(rows) - stored
        return OutcomeIngest(
            stored=stored,
            late=late,
            duplicate=duplicate,
            conflicting=conflicting,
            unknown=len(unknown),
            unknown_keys=tuple(unknown),
        )

    def count_outcomes(self, *, late: bool | None = None) -> int:
        """How many outcomes are stored, optionally only late (or on-time) ones."""
        query = sa.select(sa.func.count()).select_from(outcomes)
        if late is not None:
            query = query.where(outcomes.c.late == late)
        return self._retrying(lambda: self._scalar_int(query), "count outcomes")

    def outcome_pairs(
        self, model_name: str, *, limit: int, model_version: str | None = None
    ) -> list[OutcomePair]:
        """The newest `limit` live predictions with realised values, oldest first.

        A (symbol, as_of) predicted more than once (a replay that wrapped around) counts once,
        with its newest prediction.
        """
        query = (
            sa.select(
                predictions.c.as_of,
                predictions.c.symbol,
                predictions.c.model_version,
                predictions.c.prediction,
                outcomes.c.value,
                outcomes.c.late,
            )
            .join(
                outcomes,
                (outcomes.c.symbol == predictions.c.symbol)
                & (outcomes.c.as_of == predictions.c.as_of),
            )
            .where(predictions.c.slot == "live", predictions.c.model_name == model_name)
            .order_by(predictions.c.as_of.desc(), predictions.c.created_at.desc())
            .limit(2 * limit)
        )
        if model_version is not None:
            query = query.where(predictions.c.model_version == model_version)

        def run() -> list[OutcomePair]:
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
            seen: set[tuple[str, datetime]] = set()
            pairs = []
            for row in rows:
                key = (row.symbol, row.as_of)
                if key in seen or not row.prediction:
                    continue
                seen.add(key)
                # Requests carrying an as-of time describe their last row.
                pairs.append(
                    OutcomePair(
                        as_of=row.as_of,
                        symbol=row.symbol,
                        model_version=row.model_version,
                        prediction=float(row.prediction[-1]),
                        value=float(row.value),
                        late=bool(row.late),
                    )
                )
            return pairs[:limit][::-1]

        return self._retrying(run, "read outcome pairs")

    def latest_predictions(
        self, model_name: str, *, limit: int, model_version: str | None = None
    ) -> list[PredictionRecord]:
        """The newest `limit` live predictions of `model_name` that carry features, oldest first."""
        query = (
            sa.select(predictions)
            .where(
                predictions.c.slot == "live",
                predictions.c.model_name == model_name,
                predictions.c.features.is_not(None),
            )
            .order_by(predictions.c.created_at.desc())
            .limit(limit)
        )
        if model_version is not None:
            query = query.where(predictions.c.model_version == model_version)

        def run() -> list[PredictionRecord]:
            with self.engine.connect() as conn:
                return [_prediction_record(row._mapping) for row in conn.execute(query)][::-1]

        return self._retrying(run, "read predictions")

    def latest_live_version(self, model_name: str) -> str | None:
        """The model version of the newest live prediction of `model_name`."""
        query = (
            sa.select(predictions.c.model_version)
            .where(predictions.c.slot == "live", predictions.c.model_name == model_name)
            .order_by(predictions.c.created_at.desc())
            .limit(1)
        )

        def run() -> str | None:
            with self.engine.connect() as conn:
                value = conn.execute(query).scalar_one_or_none()
            return None if value is None else str(value)

        return self._retrying(run, "read the live version")

    def record_report(self, report: StoredReport, scores: Sequence[ScoreRow]) -> bool:
        """Store a drift report and its scores; False if its id was already stored."""
        row = {
            "report_id": report.report_id,
            "created_at": report.created_at,
            "model_name": report.model_name,
            "model_version": report.model_version,
            "severity": report.severity,
            "severity_level": report.severity_level,
            "recommendation": report.recommendation,
            "n_rows": report.n_rows,
            "window_start": report.window_start,
            "window_end": report.window_end,
            "payload": _json_safe(report.payload),
        }
        score_rows = [
            {
                "report_id": s.report_id,
                "detector": s.detector,
                "feature": s.feature,
                "method": s.method,
                "created_at": s.created_at,
                "model_name": s.model_name,
                "value": _finite_or_none(s.value),
                "pvalue": _finite_or_none(s.pvalue),
                "threshold": _finite_or_none(s.threshold),
                "drifted": s.drifted,
            }
            for s in scores
        ]

        def run() -> bool:
            with self.engine.begin() as conn:
                if not self._insert_returning(conn, drift_reports, [row], ("report_id",)):
                    return False
                if score_rows:
                    conn.execute(sa.insert(drift_scores), score_rows)
                return True

        return self._retrying(run, "record a drift report")

    def latest_report(self, model_name: str) -> StoredReport | None:
        """The newest drift report of `model_name` (what the controller reads)."""
        found = self.drift_reports(model_name=model_name, limit=1)
        return found[0] if found else None

    def drift_report(self, report_id: str) -> StoredReport | None:
        """One stored drift report by id, or None."""
        query = sa.select(drift_reports).where(drift_reports.c.report_id == report_id)

        def run() -> StoredReport | None:
            with self.engine.connect() as conn:
                row = conn.execute(query).one_or_none()
            return None if row is None else StoredReport(**dict(row._mapping))

        return self._retrying(run, "read a drift report")

    def drift_reports(
        self,
        *,
        model_name: str | None = None,
        since: datetime | None = None,
        min_severity_level: int | None = None,
        limit: int = 100,
    ) -> list[StoredReport]:
        """Drift reports, newest first, filtered by model, time and least severity."""
        query = sa.select(drift_reports).order_by(drift_reports.c.created_at.desc()).limit(limit)
        if model_name is not None:
            query = query.where(drift_reports.c.model_name == model_name)
        if since is not None:
            query = query.where(drift_reports.c.created_at >= since)
        if min_severity_level is not None:
            query = query.where(drift_reports.c.severity_level >= min_severity_level)

        def run() -> list[StoredReport]:
            with self.engine.connect() as conn:
                return [StoredReport(**dict(row._mapping)) for row in conn.execute(query)]

        return self._retrying(run, "read drift reports")

    def drift_scores(
        self,
        *,
        model_name: str | None = None,
        feature: str | None = None,
        method: str | None = None,
        since: datetime | None = None,
        limit: int = 1000,
    ) -> list[ScoreRow]:
        """Stored scores, newest first, filtered by model, feature, method and time."""
        query = sa.select(drift_scores).order_by(drift_scores.c.created_at.desc()).limit(limit)
        for column, value in (
            (drift_scores.c.model_name, model_name),
            (drift_scores.c.feature, feature),
            (drift_scores.c.method, method),
        ):
            if value is not None:
                query = query.where(column == value)
        if since is not None:
            query = query.where(drift_scores.c.created_at >= since)

        def run() -> list[ScoreRow]:
            with self.engine.connect() as conn:
                return [ScoreRow(**dict(row._mapping)) for row in conn.execute(query)]

        return self._retrying(run, "read drift scores")

    def record_alert(self, alert: Alert) -> bool:
        """Store an alert; False if its id was already stored."""
        row = {name: getattr(alert, name) for name in alert.__slots__}

        def run() -> bool:
            with self.engine.begin() as conn:
                return bool(self._insert_returning(conn, alerts, [row], ("alert_id",)))

        return self._retrying(run, "record an alert")

    def alerts(
        self,
        *,
        model_name: str | None = None,
        acknowledged: bool | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[Alert]:
        """Alerts, newest first, filtered by model, acknowledgement and time."""
        query = sa.select(alerts).order_by(alerts.c.created_at.desc()).limit(limit)
        if model_name is not None:
            query = query.where(alerts.c.model_name == model_name)
        if acknowledged is not None:
            column = alerts.c.acknowledged_at
            query = query.where(column.is_not(None) if acknowledged else column.is_(None))
        if since is not None:
            query = query.where(alerts.c.created_at >= since)

        def run() -> list[Alert]:
            with self.engine.connect() as conn:
                return [Alert(**dict(row._mapping)) for row in conn.execute(query)]

        return self._retrying(run, "read alerts")

    def acknowledge_alert(self, alert_id: str, *, by: str, at: datetime) -> Alert | None:
        """Mark an alert acknowledged (once; later calls keep the first); None if unknown."""

        def run() -> Alert | None:
            with self.engine.begin() as conn:
                conn.execute(
                    sa.update(alerts)
                    .where(alerts.c.alert_id == alert_id, alerts.c.acknowledged_at.is_(None))
                    .values(acknowledged_at=at, acknowledged_by=by)
                )
                row = conn.execute(
                    sa.select(alerts).where(alerts.c.alert_id == alert_id)
                ).one_or_none()
            return None if row is None else Alert(**dict(row._mapping))

        return self._retrying(run, "acknowledge an alert")

    def save_null_model(
        self,
        model_name: str,
        model_version: str,
        window: int,
        payload: dict[str, Any],
        at: datetime,
    ) -> None:
        """Keep a version's null model for `window`-row windows (first one written wins)."""
        row = {
            "model_name": model_name,
            "model_version": model_version,
            "window": window,
            "created_at": at,
            "payload": _json_safe(payload),
        }

        def run() -> None:
            with self.engine.begin() as conn:
                self._insert_returning(
                    conn, drift_baselines, [row], ("model_name", "model_version", "window")
                )

        self._retrying(run, "save a null model")

    def load_null_model(
        self, model_name: str, model_version: str, window: int
    ) -> dict[str, Any] | None:
        """A stored null model, or None."""
        query = sa.select(drift_baselines.c.payload).where(
            drift_baselines.c.model_name == model_name,
            drift_baselines.c.model_version == model_version,
            drift_baselines.c.window == window,
        )

        def run() -> dict[str, Any] | None:
            with self.engine.connect() as conn:
                value = conn.execute(query).scalar_one_or_none()
            return None if value is None else dict(value)

        return self._retrying(run, "load a null model")

    def _retrying(self, operation: Callable[[], T], what: str) -> T:
        """Run `operation` (one whole transaction), retrying lost connections with backoff."""
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

    def _scalar_int(self, query: sa.Select[Any]) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def _insert_returning(
        self,
        conn: sa.Connection,
        table: sa.Table,
        rows: list[dict[str, Any]],
        keys: tuple[str, ...],
    ) -> set[tuple[Any, ...]]:
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        statement = (
            dialect.insert(table)
            .on_conflict_do_nothing(index_elements=list(keys))
            .returning(*(table.c[k] for k in keys))
        )
        return {tuple(row) for row in conn.execute(statement, rows).all()}

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

        return self._retrying(run, "read paired outcomes")

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


def _connection_lost(error: sa.exc.DBAPIError) -> bool:
    # OperationalError covers refused/dropped connections (and SQLite's "database is locked");
    # InterfaceError a connection that was closed under us.
    return bool(error.connection_invalidated) or isinstance(
        error, sa.exc.OperationalError | sa.exc.InterfaceError
    )


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _json_safe(value: Any) -> Any:
    # JSONB refuses NaN and infinities; they mean "undefined" here, so they become null.
    if isinstance(value, float):
        return _finite_or_none(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value
