"""The drift tables (owner: drift): outcomes, reports, scores, alerts, null models, and the
live predictions the monitor reads."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from driftline.store.drift_records import (
    Alert,
    Outcome,
    OutcomeConflict,
    OutcomeIngest,
    OutcomePair,
    ScoreRow,
    StoredReport,
    UnknownOutcomeError,
)
from driftline.store.engine import insert_ignoring_duplicates
from driftline.store.predictions import prediction_record
from driftline.store.records import PredictionRecord
from driftline.store.retry import RetryPolicy
from driftline.store.tables import (
    alerts,
    drift_baselines,
    drift_reports,
    drift_scores,
    outcomes,
    predictions,
)

OutcomeKey = tuple[str, datetime]


class DriftStore:
    """Reads and writes the drift monitor's records; every call retries lost connections."""

    def __init__(self, engine: sa.Engine, retry: RetryPolicy) -> None:
        self.engine = engine
        self.retry = retry

    def record_outcomes(
        self, batch: Sequence[Outcome], *, late_after_s: float, allow_unknown: bool = False
    ) -> OutcomeIngest:
        """Store realised values that join a live prediction by (symbol, as_of), in one go.

        An outcome repeating a stored one is a duplicate (same value) or a conflict (another
        value): a conflict keeps both values and holds the pair out of every gate until an
        admin resolves it. Unknown ones raise UnknownOutcomeError and nothing is stored,
        unless `allow_unknown` (the replay stream) only counts them.
        """
        if not batch:
            return OutcomeIngest()
        return self.retry.run(
            lambda: self._record_outcomes(batch, late_after_s, allow_unknown), "record outcomes"
        )

    def _record_outcomes(
        self, batch: Sequence[Outcome], late_after_s: float, allow_unknown: bool
    ) -> OutcomeIngest:
        first, rival, duplicate = _split(batch)
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
            stored_rows = {
                (row.symbol, row.as_of): row
                for row in conn.execute(
                    sa.select(
                        outcomes.c.symbol, outcomes.c.as_of, outcomes.c.value, outcomes.c.conflict
                    ).where(sa.tuple_(outcomes.c.symbol, outcomes.c.as_of).in_(keys))
                )
            }
            rows = []
            conflicts: list[tuple[tuple[str, datetime], Outcome]] = []
            for key in keys:
                if key in unknown:
                    continue
                outcome = first[key]
                if key in stored_rows:
                    existing = stored_rows[key]
                    if _same(existing.value, outcome.value):
                        duplicate += 1
                        if key in rival:
                            conflicts.append((key, rival[key]))
                    else:
                        conflicts.append((key, outcome))
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
                        "recorded_by": outcome.recorded_by,
                        "conflict": False,
                    }
                )
            stored = 0
            late = 0
            if rows:
                inserted = insert_ignoring_duplicates(conn, outcomes, rows, ("symbol", "as_of"))
                stored = len(inserted)
                late = sum(1 for r in rows if r["late"] and (r["symbol"], r["as_of"]) in inserted)
                # Rows another writer stored first are duplicates of theirs.
                duplicate += len(rows) - stored
                conflicts += [(k, rival[k]) for k in rival if k in inserted]
            for key, outcome in conflicts:
                _mark_conflict(conn, key, outcome)
        return OutcomeIngest(
            stored=stored,
            late=late,
            duplicate=duplicate,
            conflicting=len(conflicts),
            unknown=len(unknown),
            unknown_keys=tuple(unknown),
            conflict_keys=tuple(k for k, _ in conflicts),
        )

    def outcome_conflicts(self, *, limit: int = 1000) -> list[OutcomeConflict]:
        """Outcomes holding two values, oldest first, for an admin to resolve."""
        query = (
            sa.select(outcomes)
            .where(outcomes.c.conflict.is_(True))
            .order_by(outcomes.c.as_of)
            .limit(limit)
        )

        def run() -> list[OutcomeConflict]:
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
            return [
                OutcomeConflict(
                    symbol=r.symbol,
                    as_of=r.as_of,
                    value=float(r.value),
                    recorded_by=r.recorded_by,
                    conflict_value=float(r.conflict_value),
                    conflict_by=r.conflict_by or "",
                )
                for r in rows
            ]

        return self.retry.run(run, "read outcome conflicts")

    def resolve_outcome(self, symbol: str, as_of: datetime, value: float, *, by: str) -> bool:
        """Settle a conflicting outcome at `value`; False when no such conflict is open."""
        statement = (
            sa.update(outcomes)
            .where(
                outcomes.c.symbol == symbol,
                outcomes.c.as_of == as_of,
                outcomes.c.conflict.is_(True),
            )
            .values(value=float(value), conflict=False, resolved_by=by)
        )

        def run() -> bool:
            with self.engine.begin() as conn:
                return bool(conn.execute(statement).rowcount)

        return self.retry.run(run, "resolve an outcome conflict")

    def count_outcomes(self, *, late: bool | None = None) -> int:
        """How many outcomes are stored, optionally only late (or on-time) ones."""
        query = sa.select(sa.func.count()).select_from(outcomes)
        if late is not None:
            query = query.where(outcomes.c.late == late)

        def run() -> int:
            with self.engine.connect() as conn:
                return int(conn.execute(query).scalar_one())

        return self.retry.run(run, "count outcomes")

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
            # A conflicting outcome measures nothing until it is resolved.
            .where(outcomes.c.conflict.is_(False))
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

        return self.retry.run(run, "read outcome pairs")

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
                return [prediction_record(row._mapping) for row in conn.execute(query)][::-1]

        return self.retry.run(run, "read predictions")

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

        return self.retry.run(run, "read the live version")

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
                if not insert_ignoring_duplicates(conn, drift_reports, [row], ("report_id",)):
                    return False
                if score_rows:
                    conn.execute(sa.insert(drift_scores), score_rows)
                return True

        return self.retry.run(run, "record a drift report")

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

        return self.retry.run(run, "read a drift report")

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

        return self.retry.run(run, "read drift reports")

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

        return self.retry.run(run, "read drift scores")

    def record_alert(self, alert: Alert) -> bool:
        """Store an alert; False if its id was already stored."""
        row = {name: getattr(alert, name) for name in alert.__slots__}

        def run() -> bool:
            with self.engine.begin() as conn:
                return bool(insert_ignoring_duplicates(conn, alerts, [row], ("alert_id",)))

        return self.retry.run(run, "record an alert")

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

        return self.retry.run(run, "read alerts")

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

        return self.retry.run(run, "acknowledge an alert")

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
                insert_ignoring_duplicates(
                    conn, drift_baselines, [row], ("model_name", "model_version", "window")
                )

        self.retry.run(run, "save a null model")

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

        return self.retry.run(run, "load a null model")


def _split(
    batch: Sequence[Outcome],
) -> tuple[dict[OutcomeKey, Outcome], dict[OutcomeKey, Outcome], int]:
    """Each pair's first outcome, its first differing rival in the batch, and the repeats."""
    first: dict[OutcomeKey, Outcome] = {}
    rival: dict[OutcomeKey, Outcome] = {}
    duplicate = 0
    for outcome in batch:
        key = (outcome.symbol, outcome.as_of)
        if key not in first:
            first[key] = outcome
        elif _same(first[key].value, outcome.value):
            duplicate += 1
        else:
            rival.setdefault(key, outcome)
    return first, rival, duplicate


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=0)


def _mark_conflict(conn: sa.Connection, key: tuple[str, datetime], rival: Outcome) -> None:
    # The first rival is kept: a third value changes nothing an admin must look at anyway.
    conn.execute(
        sa.update(outcomes)
        .where(outcomes.c.symbol == key[0], outcomes.c.as_of == key[1])
        .where(outcomes.c.conflict.is_(False))
        .values(conflict=True, conflict_value=float(rival.value), conflict_by=rival.recorded_by)
    )


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
