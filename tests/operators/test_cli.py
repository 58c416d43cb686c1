"""`driftline status | audit | promote | rollback` (operators.cli): readable, one-line errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from driftline.cli import main
from driftline.config import Settings
from driftline.store import Store
from operators.cli import parse_since
from operators.controller import Controller
from operators.observe import Observer
from operators.spec import RolloutSpec
from tests.operators.fakes import Clock, FakeDrift, FakeGates, FakeLosses, FakeRuntime


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DRIFTLINE_HOME", str(tmp_path))
    return tmp_path


def _run_rounds(home: Path) -> Store:
    settings = Settings(home=home)
    store = Store.from_settings(settings)
    store.upgrade()
    spec = RolloutSpec.model_validate(
        {"modelName": settings.registry.model_name, "driftPolicy": {"sustainedReports": 1}}
    )
    runtime, drift, clock = (
        FakeRuntime(),
        FakeDrift(),
        Clock(datetime.now(UTC) - timedelta(hours=1)),
    )
    observer = Observer(spec, store, runtime, drift, FakeLosses())
    controller = Controller(spec, store, runtime, observer, FakeGates(), clock=clock)
    drift.add("critical", clock.now)
    controller.step()
    clock.advance(5)
    controller.step()
    return store


def test_status_and_audit_show_the_rollout(home: Path) -> None:
    _run_rounds(home)
    runner = CliRunner()
    result = runner.invoke(main, ["status", "--json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert status["state"] == "retraining"
    assert status["active"] == {"colour": "blue", "version": "1"}
    assert status["candidate"]["trigger"] == "drift:report-0"
    assert status["drift"]["severity"] == "critical"
    text = runner.invoke(main, ["status"]).output
    assert "serving version 1 on blue" in text
    audit = runner.invoke(main, ["audit", "--since", "2h"])
    assert audit.exit_code == 0
    assert "transition" in audit.output
    assert "stable->drifting" in audit.output
    assert "drifting->retraining" in audit.output
    lines = runner.invoke(main, ["audit", "--since", "2h", "--json", "--kind", "transition"]).output
    assert [json.loads(line)["to"] for line in lines.splitlines()] == ["drifting", "retraining"]


def test_rollback_is_queued_for_the_controller(home: Path) -> None:
    store = _run_rounds(home)
    result = CliRunner().invoke(main, ["rollback"])
    assert result.exit_code == 0
    assert "queued request" in result.output
    (request,) = store.controller.controller_requests("market-ensemble")
    assert request.kind == "rollback"
    assert request.actor.startswith("cli")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["promote", "latest"], "VERSION must be a registered version number, got 'latest'"),
        (["audit", "--since", "yesterday"], "'yesterday': use a duration like 30m, 2h, 7d"),
    ],
)
def test_bad_input_is_a_one_line_error(home: Path, argv: list[str], message: str) -> None:
    Store.from_settings(Settings(home=home)).upgrade()
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 2 if argv[0] == "audit" else result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("migrated", [True, False], ids=["migrated", "empty-store"])
def test_status_before_any_controller_round_says_so_and_succeeds(
    home: Path, migrated: bool
) -> None:
    if migrated:
        Store.from_settings(Settings(home=home)).upgrade()
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("No controller round has run for market-ensemble yet.")
    as_json = CliRunner().invoke(main, ["status", "--json"])
    assert json.loads(as_json.output) == {"model": "market-ensemble", "state": None}


def test_parse_since() -> None:
    now = datetime(2026, 1, 2, tzinfo=UTC)
    assert parse_since("90m", now) == now - timedelta(minutes=90)
    assert parse_since("2026-01-01T12:00", now) == datetime(2026, 1, 1, 12, tzinfo=UTC)
