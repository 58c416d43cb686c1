"""The drift tables on PostgreSQL and SQLite: migration 0002, outcomes, reports, alerts, retries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import sqlalchemy as sa

from driftline.store import PredictionRecord, Store, migrate, utcnow
from driftline.store.drift_records import (
    Alert,
    Outcome,
    ScoreRow,
    StoredReport,
    UnknownOutcomeError,
)

DRIFT_TABLES = {"outcomes", "drift_reports", "drift_scores", "alerts", "drift_baselines"}
DAY = datetime(2008, 10, 1, tzinfo=UTC)
LATE_S = 3 * 86400.0


def _predict(store: Store, *days: int, created_at: datetime | None = None) -> None:
    store.predictions.record_predictions(
        [
            PredictionRecord(
                request_id=f"r{d}",
                model_name="m",
                model_version="1",
                endpoint="stream",
                prediction=[0.001 * d],
                member_outputs={"rf": [0.0]},
                latency_ms=1.0,
                features=np.full((1, 3), float(d)),
                symbol="SPX",
                as_of=DAY + timedelta(days=d),
                created_at=created_at or utcnow(),
            )
            for d in days
        ]
    )


def _outcome(day: int, value: float = 0.01, **kwargs: object) -> Outcome:
    return Outcome(symbol="SPX", as_of=DAY + timedelta(days=day), value=value, **kwargs)  # type: ignore[arg-type]


def test_migration_0002_goes_down_to_0001_and_back(store: Store) -> None:
    assert set(sa.inspect(store.engine).get_table_names()) >= DRIFT_TABLES
    migrate.downgrade(store.url, "0001")
    assert migrate.current_revision(store.engine) == "0001"
    names = set(sa.inspect(store.engine).get_table_names())
    assert not (DRIFT_TABLES & names)
    assert {"predictions", "audit_events"} <= names
    store.upgrade()
    assert set(sa.inspect(store.engine).get_table_names()) >= DRIFT_TABLES


def test_outcomes_join_predictions_and_count_duplicates_and_conflicts(store: Store) -> None:
    _predict(store, 0, 1, 2)
    first = store.drift.record_outcomes([_outcome(0), _outcome(1)], late_after_s=LATE_S)
    assert first.as_dict() == {
        "stored": 2,
        "late": 0,
        "duplicate": 0,
        "conflicting": 0,
        "unknown": 0,
    }
    again = store.drift.record_outcomes(
        [_outcome(0), _outcome(1, 0.5), _outcome(2), _outcome(2)], late_after_s=LATE_S
    )
    assert again.as_dict() == {
        "stored": 1,
        "late": 0,
        "duplicate": 2,
        "conflicting": 1,
        "unknown": 0,
    }
    assert again.conflict_keys == (("SPX", DAY + timedelta(days=1)),)
    pairs = store.drift.outcome_pairs("m", limit=10)
    # The conflicting pair measures nothing until it is resolved.
    assert [p.as_of for p in pairs] == [DAY, DAY + timedelta(days=2)]
    assert pairs[1].prediction == pytest.approx(0.002)


def test_a_conflict_keeps_both_values_and_who_wrote_them_until_an_admin_resolves_it(
    store: Store,
) -> None:
    _predict(store, 0, 1)
    store.drift.record_outcomes(
        [_outcome(0, recorded_by="key:feed"), _outcome(1, recorded_by="key:feed")],
        late_after_s=LATE_S,
    )
    # A different value, first in a later batch and then within one batch.
    store.drift.record_outcomes([_outcome(0, 0.9, recorded_by="key:other")], late_after_s=LATE_S)
    [conflict] = store.drift.outcome_conflicts()
    assert (conflict.value, conflict.recorded_by) == (0.01, "key:feed")
    assert (conflict.conflict_value, conflict.conflict_by) == (0.9, "key:other")
    assert [p.as_of for p in store.drift.outcome_pairs("m", limit=10)] == [DAY + timedelta(1)]

    assert not store.drift.resolve_outcome("SPX", DAY + timedelta(days=1), 0.5, by="key:admin")
    assert store.drift.resolve_outcome("SPX", DAY, 0.9, by="key:admin")
    assert store.drift.outcome_conflicts() == []
    pairs = store.drift.outcome_pairs("m", limit=10)
    assert [(p.as_of, p.value) for p in pairs] == [(DAY, 0.9), (DAY + timedelta(days=1), 0.01)]


def test_two_values_in_one_batch_store_a_conflict(store: Store) -> None:
    _predict(store, 0)
    result = store.drift.record_outcomes(
        [_outcome(0, recorded_by="key:a"), _outcome(0, 0.7, recorded_by="key:b")],
        late_after_s=LATE_S,
    )
    assert (result.stored, result.conflicting) == (1, 1)
    [conflict] = store.drift.outcome_conflicts()
    assert (conflict.recorded_by, conflict.conflict_by) == ("key:a", "key:b")
    assert store.drift.outcome_pairs("m", limit=10) == []


def test_migration_0006_goes_down_to_0005_and_back(store: Store) -> None:
    def columns() -> set[str]:
        return {c["name"] for c in sa.inspect(store.engine).get_columns("outcomes")}

    assert {"recorded_by", "conflict", "conflict_value", "conflict_by"} <= columns()
    migrate.downgrade(store.url, "0005")
    assert "recorded_by" not in columns()
    store.upgrade()
    assert migrate.current_revision(store.engine) == migrate.head_revision()
    assert "conflict" in columns()


def test_unknown_outcomes_are_refused_and_nothing_is_stored(store: Store) -> None:
    _predict(store, 0)
    with pytest.raises(UnknownOutcomeError, match="1 outcome\\(s\\) match no stored prediction"):
        store.drift.record_outcomes([_outcome(0), _outcome(9)], late_after_s=LATE_S)
    assert store.drift.count_outcomes() == 0
    counted = store.drift.record_outcomes(
        [_outcome(0), _outcome(9)], late_after_s=LATE_S, allow_unknown=True
    )
    assert (counted.stored, counted.unknown) == (1, 1)


def test_outcomes_arriving_long_after_their_prediction_are_late(store: Store) -> None:
    _predict(store, 0, created_at=utcnow() - timedelta(days=5))
    _predict(store, 1)
    result = store.drift.record_outcomes([_outcome(0), _outcome(1)], late_after_s=LATE_S)
    assert (result.stored, result.late) == (2, 1)
    assert store.drift.count_outcomes(late=True) == 1
    assert [p.late for p in store.drift.outcome_pairs("m", limit=5)] == [True, False]


def test_latest_predictions_and_live_version(store: Store) -> None:
    _predict(store, 0, created_at=utcnow() - timedelta(seconds=2))
    _predict(store, 1)
    assert store.drift.latest_live_version("m") == "1"
    assert store.drift.latest_live_version("other") is None
    latest = store.drift.latest_predictions("m", limit=1)
    assert [r.request_id for r in latest] == ["r1"]


def _report(report_id: str, severity: str, level: int, at: datetime) -> StoredReport:
    return StoredReport(
        report_id=report_id,
        created_at=at,
        model_name="m",
        model_version="1",
        severity=severity,
        severity_level=level,
        recommendation="monitor",
        n_rows=250,
        window_start=None,
        window_end=None,
        payload={"severity": severity, "r2": float("nan")},
    )


def _score(report_id: str, feature: str, method: str, at: datetime) -> ScoreRow:
    return ScoreRow(report_id, at, "m", "feature", feature, method, 0.1, float("nan"), None, False)


def test_reports_and_scores_are_stored_once_and_filtered(store: Store) -> None:
    t0 = utcnow()
    assert store.drift.record_report(
        _report("a", "low", 1, t0),
        [_score("a", "rsi_14", "ks", t0), _score("a", "rsi_14", "psi", t0)],
    )
    t1 = t0 + timedelta(seconds=1)
    assert store.drift.record_report(_report("b", "high", 3, t1), [_score("b", "adx_14", "ks", t1)])
    assert not store.drift.record_report(_report("b", "high", 3, t1), [])
    latest = store.drift.latest_report("m")
    assert latest is not None
    assert latest.report_id == "b"
    # NaN cannot live in JSONB: it is stored as null.
    assert latest.payload["r2"] is None
    assert [
        r.report_id for r in store.drift.drift_reports(model_name="m", min_severity_level=2)
    ] == ["b"]
    assert [r.report_id for r in store.drift.drift_reports(since=t1)] == ["b"]
    assert [
        (s.feature, s.method) for s in store.drift.drift_scores(feature="rsi_14", method="psi")
    ] == [("rsi_14", "psi")]
    assert store.drift.drift_scores(model_name="m", since=t1)[0].pvalue is None
    assert store.drift.drift_report("a") is not None
    assert store.drift.drift_report("nope") is None


def test_alerts_are_acknowledged_once(store: Store) -> None:
    alert = Alert("m", "1", "high", 3, "retrain", "high drift")
    assert store.drift.record_alert(alert)
    assert not store.drift.record_alert(alert)
    assert [a.alert_id for a in store.drift.alerts(acknowledged=False)] == [alert.alert_id]
    at = utcnow()
    acked = store.drift.acknowledge_alert(alert.alert_id, by="ops", at=at)
    assert acked is not None
    assert (acked.acknowledged_by, acked.acknowledged_at) == ("ops", at)
    again = store.drift.acknowledge_alert(alert.alert_id, by="someone-else", at=utcnow())
    assert again is not None
    assert again.acknowledged_by == "ops"
    assert store.drift.acknowledge_alert("missing", by="ops", at=at) is None
    assert store.drift.alerts(acknowledged=False) == []


def test_null_models_are_cached_per_version_and_window(store: Store) -> None:
    store.drift.save_null_model("m", "1", 250, {"window": 250}, utcnow())
    store.drift.save_null_model("m", "1", 250, {"window": 999}, utcnow())
    assert store.drift.load_null_model("m", "1", 250) == {"window": 250}
    assert store.drift.load_null_model("m", "1", 100) is None


@pytest.mark.postgres
def test_pooled_connections_killed_by_the_server_are_replaced(postgres_url: str) -> None:
    store = Store(postgres_url)
    store.upgrade()
    try:
        assert store.drift.count_outcomes() == 0
        admin = sa.create_engine(postgres_url, poolclass=sa.NullPool)
        with admin.connect() as conn:
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        admin.dispose()
        # The pool's pre-ping finds the dead connection and opens a new one.
        assert store.drift.count_outcomes() == 0
    finally:
        migrate.downgrade(postgres_url, "base")
        store.close()
