"""`driftline db`: the revision as text or as one JSON document."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from driftline.cli import main
from driftline.store import PredictionRecord, Store, migrate, partitions, utcnow


def test_upgrade_and_current_as_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLINE_HOME", str(tmp_path))
    upgraded = CliRunner().invoke(main, ["db", "upgrade", "--json"])
    assert upgraded.exit_code == 0, upgraded.output
    head = migrate.head_revision()
    assert json.loads(upgraded.output) == {"revision": head, "head": head}
    text = CliRunner().invoke(main, ["db", "current"]).output
    assert text == f"store at revision {head} (newest {head})\n"
    down = CliRunner().invoke(main, ["db", "downgrade", "base", "--json"])
    assert json.loads(down.output) == {"revision": "base", "head": head}


def test_db_prune_applies_the_configured_limits(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRIFTLINE_DATABASE_URL", store.url)
    monkeypatch.setenv("DRIFTLINE_PREDICTIONS_RETENTION_DAYS", "2")
    now = utcnow()
    old_day = (now - timedelta(days=4)).date()
    postgres = store.engine.dialect.name == "postgresql"
    if postgres:
        # As if the writer had made that day's partition ahead, four days ago.
        with store.engine.begin() as conn:
            partitions.ensure_days(conn, [old_day])
    store.predictions.record_predictions(
        [record("young", now - timedelta(days=1)), record("old", now - timedelta(days=3))]
        + [record(f"older-{i}", now - timedelta(days=4)) for i in range(3)]
    )
    result = CliRunner().invoke(main, ["db", "prune"])
    assert result.exit_code == 0, result.output
    assert "predictions: 4 deleted" in result.output
    dropped = f"1 day partition(s) of predictions dropped: {partitions.partition_name(old_day)}"
    assert (dropped in result.output) == postgres
    assert [r.request_id for r in store.predictions.predictions()] == ["young"]


def record(request_id: str, created_at: datetime) -> PredictionRecord:
    return PredictionRecord(
        request_id=request_id,
        model_name="m",
        model_version="1",
        endpoint="v2_infer",
        prediction=[0.1],
        member_outputs={"rf": [0.1]},
        latency_ms=1.0,
        created_at=created_at,
    )
