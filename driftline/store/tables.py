"""The store's tables as SQLAlchemy Core metadata; migrations create them, this describes them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite would hand back naive ones)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store keeps UTC-aware timestamps")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# JSONB on PostgreSQL (indexable, compact), plain JSON text on SQLite.
JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Timestamp = UTCDateTime

predictions = sa.Table(
    "predictions",
    metadata,
    # One row per answered request and slot (per UTC day on PostgreSQL); `slot` is "live" or
    # "shadow". On PostgreSQL the table is partitioned by `day` (driftline.store.partitions), and
    # a partitioned table's key must hold the partition column; SQLite's stays (request_id, slot).
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("slot", sa.String(8), primary_key=True, server_default="live"),
    # The UTC date of `created_at`, set by the store as it builds the row.
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("created_at", Timestamp, nullable=False, index=True),
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("colour", sa.String(8), nullable=True),
    sa.Column("endpoint", sa.String(64), nullable=False),
    sa.Column("symbol", sa.String(32), nullable=True),
    sa.Column("as_of", Timestamp, nullable=True),
    sa.Column("n_rows", sa.Integer, nullable=False),
    # Feature rows as little-endian float64 bytes (n_rows x n_features): exact, compact.
    sa.Column("features", sa.LargeBinary, nullable=True),
    sa.Column("prediction", JSONType, nullable=False),
    sa.Column("member_outputs", JSONType, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Index("ix_predictions_symbol_as_of", "symbol", "as_of"),
    postgresql_partition_by="RANGE (day)",
)

# Prediction records the store refused (a NUL or a lone surrogate in a text field, say),
# kept as ASCII-escaped JSON so that one bad row never stops the prediction log.
prediction_dead_letters = sa.Table(
    "prediction_dead_letters",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("quarantined_at", Timestamp, nullable=False, index=True),
    sa.Column("request_id", sa.Text, nullable=False),
    sa.Column("slot", sa.Text, nullable=False),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("record", sa.Text, nullable=False),
)

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("event_id", sa.String(64), primary_key=True),
    sa.Column("created_at", Timestamp, nullable=False, index=True),
    sa.Column("model_name", sa.String(128), nullable=False, index=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("rollout_id", sa.String(64), nullable=True, index=True),
    sa.Column("state_from", sa.String(32), nullable=True),
    sa.Column("state_to", sa.String(32), nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("details", JSONType, nullable=False),
)


# --- drift (owner: drift; migration 0002) ---------------------------------------------------
outcomes = sa.Table(
    "outcomes",
    metadata,
    # One realised value per symbol and as-of time; predictions join on the same pair.
    sa.Column("symbol", sa.String(32), primary_key=True),
    sa.Column("as_of", Timestamp, primary_key=True),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("received_at", Timestamp, nullable=False, index=True),
    sa.Column("source", sa.String(32), nullable=False),
    # Stored later than `drift.outcome_late_s` after its prediction; still used, and counted.
    sa.Column("late", sa.Boolean, nullable=False),
    # Provenance (migration 0005): the principal that recorded the value.
    sa.Column("recorded_by", sa.String(128), nullable=False, server_default="unrecorded"),
    # A second, different value for the same pair: both kept, the pair used by no gate or
    # performance figure until an admin resolves it.
    sa.Column("conflict", sa.Boolean, nullable=False, server_default=sa.false(), index=True),
    sa.Column("conflict_value", sa.Float, nullable=True),
    sa.Column("conflict_by", sa.String(128), nullable=True),
    sa.Column("resolved_by", sa.String(128), nullable=True),
)

drift_reports = sa.Table(
    "drift_reports",
    metadata,
    sa.Column("report_id", sa.String(64), primary_key=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("severity_level", sa.Integer, nullable=False),
    sa.Column("recommendation", sa.String(32), nullable=False),
    sa.Column("n_rows", sa.Integer, nullable=False),
    sa.Column("window_start", Timestamp, nullable=True),
    sa.Column("window_end", Timestamp, nullable=True),
    sa.Column("payload", JSONType, nullable=False),
    sa.Index("ix_drift_reports_model_name_created_at", "model_name", "created_at"),
)

drift_scores = sa.Table(
    "drift_scores",
    metadata,
    # One row per report, detector, feature and method, so history filters run in SQL.
    sa.Column(
        "report_id",
        sa.String(64),
        sa.ForeignKey("drift_reports.report_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("detector", sa.String(32), primary_key=True),
    sa.Column("feature", sa.String(128), primary_key=True),
    sa.Column("method", sa.String(32), primary_key=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("pvalue", sa.Float, nullable=True),
    sa.Column("threshold", sa.Float, nullable=True),
    sa.Column("drifted", sa.Boolean, nullable=False),
    sa.Index(
        "ix_drift_scores_model_name_feature_created_at", "model_name", "feature", "created_at"
    ),
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("alert_id", sa.String(64), primary_key=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("severity_level", sa.Integer, nullable=False),
    sa.Column("recommendation", sa.String(32), nullable=False),
    sa.Column(
        "report_id",
        sa.String(64),
        sa.ForeignKey("drift_reports.report_id", ondelete="SET NULL"),
        nullable=True,
    ),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("acknowledged_at", Timestamp, nullable=True),
    sa.Column("acknowledged_by", sa.String(128), nullable=True),
    sa.Index("ix_alerts_model_name_created_at", "model_name", "created_at"),
)

drift_baselines = sa.Table(
    "drift_baselines",
    metadata,
    # A version's null model for one window length, computed once and shared by processes.
    sa.Column("model_name", sa.String(128), primary_key=True),
    sa.Column("model_version", sa.String(32), primary_key=True),
    sa.Column("window", sa.Integer, primary_key=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("payload", JSONType, nullable=False),
)


# --- controller (operators/): rollout state a restarted controller resumes from -------------------
controller_state = sa.Table(
    "controller_state",
    metadata,
    # One row per model: the decided state (JSON), a revision for compare-and-set writes, and the
    # lease that keeps a second controller from acting on the same model.
    sa.Column("model_name", sa.String(128), primary_key=True),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("phase", sa.String(32), nullable=False),
    sa.Column("state", JSONType, nullable=True),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.Column("lease_holder", sa.String(128), nullable=True),
    sa.Column("lease_expires", Timestamp, nullable=True),
)

rollouts = sa.Table(
    "rollouts",
    metadata,
    sa.Column("rollout_id", sa.String(64), primary_key=True),
    sa.Column("model_name", sa.String(128), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("trigger", sa.String(128), nullable=False),
    sa.Column("started_at", Timestamp, nullable=False, index=True),
    sa.Column("finished_at", Timestamp, nullable=True),
    sa.Column("phase", sa.String(32), nullable=False),
    sa.Column("result", sa.String(16), nullable=True),
    sa.Column("champion_version", sa.String(32), nullable=False),
    sa.Column("candidate_version", sa.String(32), nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
)

gate_results = sa.Table(
    "gate_results",
    metadata,
    sa.Column("rollout_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("version", sa.String(32), nullable=False),
    sa.Column("stage", sa.String(16), nullable=False),
    sa.Column("passed", sa.Boolean, nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("figures", JSONType, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
)

controller_requests = sa.Table(
    "controller_requests",
    metadata,
    # `driftline promote` / `driftline rollback`: queued here, handled by the controller in order.
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("model_name", sa.String(128), nullable=False, index=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("version", sa.String(32), nullable=True),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("consumed_at", Timestamp, nullable=True),
    sa.Column("outcome", sa.Text, nullable=True),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    # Keys Driftline issues (owner: driftline.store.keys): a SHA-256 of the key, never the key.
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("key_id", sa.String(16), nullable=False, unique=True),
    sa.Column("key_hash", sa.String(64), nullable=False),
    sa.Column("scopes", sa.String(256), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("expires_at", Timestamp, nullable=True),
    sa.Column("revoked_at", Timestamp, nullable=True),
)

# --- leases (driftline.store.leases): one holder at a time for a named job ---------------------
leases = sa.Table(
    "leases",
    metadata,
    # The drift monitor's leader lock: replicas that do not hold it stand by.
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("holder", sa.String(128), nullable=True),
    sa.Column("expires_at", Timestamp, nullable=True),
)
