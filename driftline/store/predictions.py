"""The predictions table (owner: serving): every answered request, and reading them back."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import psycopg
import sqlalchemy as sa
from psycopg import sql

from driftline.store.engine import dumps_json, insert_ignoring_duplicates
from driftline.store.partitions import PartitionsAhead, utc_day
from driftline.store.records import PredictionRecord, utcnow
from driftline.store.retry import RetryPolicy
from driftline.store.tables import Timestamp, prediction_dead_letters, predictions

_COLUMNS = tuple(c.name for c in predictions.columns)
_JSON_COLUMNS = frozenset({"prediction", "member_outputs"})
_TIMESTAMP = Timestamp()


class PredictionStore:
    """Writes predictions idempotently and reads them back.

    The key is (request_id, slot) on SQLite and (request_id, slot, day) on PostgreSQL, whose table
    is partitioned by `day`: there a request answered again under the same id is stored once if
    the answers share a UTC day, and twice if midnight fell between them.
    """

    def __init__(self, engine: sa.Engine, retry: RetryPolicy) -> None:
        self.engine = engine
        self.retry = retry
        self._partitions = PartitionsAhead()

    def record_predictions(self, records: Sequence[PredictionRecord]) -> int:
        """Insert `records`, skipping those stored already (by the key above); how many were new."""
        if not records:
            return 0
        rows = [prediction_row(r) for r in records]

        def run() -> int:
            if self.engine.dialect.name == "postgresql":
                self._partitions.ensure(self.engine, utcnow())
            with self.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    return _copy_ignoring_duplicates(conn, rows)
                return len(
                    insert_ignoring_duplicates(conn, predictions, rows, ("request_id", "slot"))
                )

        return self.retry.run(run, "record predictions")

    def quarantine(self, records: Sequence[PredictionRecord], error: str) -> None:
        """Keep `records`, which the store refused, in the dead-letter table with `error`."""
        now = utcnow()
        rows = [
            {
                "quarantined_at": now,
                "request_id": _ascii(r.request_id),
                "slot": _ascii(r.slot),
                "error": _ascii(error),
                "record": record_json(r),
            }
            for r in records
        ]

        def run() -> None:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(prediction_dead_letters), rows)

        self.retry.run(run, "quarantine predictions")

    def dead_letters(self) -> list[tuple[PredictionRecord, str]]:
        """Quarantined records with the store's error, oldest first."""
        query = sa.select(prediction_dead_letters).order_by(prediction_dead_letters.c.id)

        def run() -> list[tuple[PredictionRecord, str]]:
            with self.engine.connect() as conn:
                return [(record_from_json(r.record), r.error) for r in conn.execute(query)]

        return self.retry.run(run, "read dead letters")

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
            # `day` too, so PostgreSQL reads only the partitions of those days.
            query = query.where(
                predictions.c.created_at >= since, predictions.c.day >= utc_day(since)
            )
        if model_version is not None:
            query = query.where(predictions.c.model_version == model_version)
        if slot is not None:
            query = query.where(predictions.c.slot == slot)
        if limit is not None:
            query = query.limit(limit)

        def run() -> list[PredictionRecord]:
            with self.engine.connect() as conn:
                return [prediction_record(row._mapping) for row in conn.execute(query)]

        return self.retry.run(run, "read predictions")

    def count_predictions(self, request_ids: Iterable[str] | None = None) -> int:
        """How many predictions are stored, optionally among `request_ids`."""
        query = sa.select(sa.func.count()).select_from(predictions)
        if request_ids is not None:
            query = query.where(predictions.c.request_id.in_(list(request_ids)))

        def run() -> int:
            with self.engine.connect() as conn:
                return int(conn.execute(query).scalar_one())

        return self.retry.run(run, "count predictions")


def prediction_row(record: PredictionRecord) -> dict[str, Any]:
    """The table row of `record` (features as little-endian float64 bytes)."""
    features = None
    if record.features is not None:
        features = np.ascontiguousarray(record.features, dtype="<f8").tobytes()
    return {
        "request_id": record.request_id,
        "slot": record.slot,
        "day": utc_day(record.created_at),
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


def prediction_record(row: Any) -> PredictionRecord:
    """The record of a stored row."""
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


def record_json(record: PredictionRecord) -> str:
    """`record` as ASCII JSON: NULs and lone surrogates escaped, so any text store keeps it."""
    features = None
    if record.features is not None:
        data = np.ascontiguousarray(record.features, dtype="<f8")
        features = [base64.b64encode(data.tobytes()).decode(), list(data.shape)]
    value = {
        "request_id": record.request_id,
        "slot": record.slot,
        "created_at": record.created_at.isoformat(),
        "model_name": record.model_name,
        "model_version": record.model_version,
        "colour": record.colour,
        "endpoint": record.endpoint,
        "symbol": record.symbol,
        "as_of": record.as_of.isoformat() if record.as_of else None,
        "features": features,
        "prediction": record.prediction,
        "member_outputs": record.member_outputs,
        "latency_ms": record.latency_ms,
    }
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"))


def record_from_json(text: str) -> PredictionRecord:
    """The record `record_json` wrote."""
    value = json.loads(text)
    features = None
    if value["features"] is not None:
        data, shape = value["features"]
        features = np.frombuffer(base64.b64decode(data), dtype="<f8").reshape(shape)
    as_of = value["as_of"]
    return PredictionRecord(
        request_id=value["request_id"],
        slot=value["slot"],
        created_at=datetime.fromisoformat(value["created_at"]),
        model_name=value["model_name"],
        model_version=value["model_version"],
        colour=value["colour"],
        endpoint=value["endpoint"],
        symbol=value["symbol"],
        as_of=datetime.fromisoformat(as_of) if as_of else None,
        features=features,
        prediction=value["prediction"],
        member_outputs=value["member_outputs"],
        latency_ms=value["latency_ms"],
    )


def _copy_ignoring_duplicates(conn: sa.Connection, rows: list[dict[str, Any]]) -> int:
    # COPY cannot skip duplicates, so rows go into a per-connection temporary table first and
    # one INSERT ... ON CONFLICT DO NOTHING moves the new ones: idempotent and still one
    # round trip of data, several times faster than a multi-row INSERT.
    raw = conn.connection.driver_connection
    assert raw is not None  # a checked-out connection always has one
    columns = sql.SQL(", ").join(map(sql.Identifier, _COLUMNS))
    try:
        with raw.cursor() as cursor:
            cursor.execute(
                "CREATE TEMP TABLE IF NOT EXISTS predictions_incoming "
                "(LIKE predictions INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )
            copying = sql.SQL("COPY predictions_incoming ({}) FROM STDIN").format(columns)
            with cursor.copy(copying) as copy:
                for row in rows:
                    copy.write_row(tuple(_copy_value(k, row[k]) for k in _COLUMNS))
            # The same text every time, so psycopg prepares it from the fifth batch on: the
            # writer flushes small batches often, and planning each costs more than inserting.
            cursor.execute(
                sql.SQL(
                    "INSERT INTO predictions ({0}) SELECT {0} FROM predictions_incoming "
                    "ON CONFLICT (request_id, slot, day) DO NOTHING"
                ).format(columns)
            )
            return int(cursor.rowcount)
    except psycopg.Error as error:
        # Raised by the driver directly, not through SQLAlchemy: wrap it the way SQLAlchemy
        # would, so that the retry policy recognises a lost connection.
        lost = isinstance(error, psycopg.OperationalError) or raw.closed
        if lost:
            conn.invalidate()
        raise sa.exc.DBAPIError.instance(
            "COPY predictions", None, error, psycopg.Error, connection_invalidated=lost
        ) from error


def _copy_value(column: str, value: Any) -> Any:
    if column in _JSON_COLUMNS:
        return dumps_json(value)
    if isinstance(value, datetime):
        # COPY bypasses the column types' bind processing: keep UTCDateTime's check.
        try:
            return _TIMESTAMP.process_bind_param(value, None)
        except ValueError as error:
            raise sa.exc.StatementError(str(error), "COPY predictions", None, error) from error
    return value


def _ascii(text: str) -> str:
    return text.encode("ascii", "backslashreplace").decode("ascii")
