"""The predictions table (owner: serving): every answered request, and reading them back."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import sqlalchemy as sa

from driftline.store.engine import insert_ignoring_duplicates
from driftline.store.records import PredictionRecord
from driftline.store.retry import RetryPolicy
from driftline.store.tables import predictions


class PredictionStore:
    """Writes predictions idempotently on (request_id, slot) and reads them back."""

    def __init__(self, engine: sa.Engine, retry: RetryPolicy) -> None:
        self.engine = engine
        self.retry = retry

    def record_predictions(self, records: Sequence[PredictionRecord]) -> int:
        """Insert `records`, skipping request ids already stored; returns how many were new."""
        if not records:
            return 0
        rows = [prediction_row(r) for r in records]

        def run() -> int:
            with self.engine.begin() as conn:
                return len(
                    insert_ignoring_duplicates(conn, predictions, rows, ("request_id", "slot"))
                )

        return self.retry.run(run, "record predictions")

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
