"""`driftline status | audit | promote | rollback` (operators.cli): readable, one-line errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from driftline.cli import main
from driftline.config import Settings
from driftline.store import Store
from driftline.store.records import AuditEvent
from driftline.store.rollouts import ControllerRequest
from operators.cli import follow_rollout, parse_since
from operators.codec import encode_state
from operators.controller import Controller
from operators.observe import Observer
from operators.spec import RolloutSpec
from operators.states import Phase, Result, Rollout, RolloutKind, RolloutState
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
    document = runner.invoke(main, ["audit", "--since", "2h", "--json", "--kind", "transition"])
    assert [e["to"] for e in json.loads(document.output)] == ["drifting", "retraining"]


def test_rollback_is_queued_for_the_controller(home: Path) -> None:
    store = _run_rounds(home)
    result = CliRunner().invoke(main, ["rollback"])
    assert result.exit_code == 0
    assert "queued request" in result.output
    (request,) = store.controller.controller_requests("market-ensemble")
    assert request.kind == "rollback"
    assert request.actor.startswith("cli")
    queued = json.loads(CliRunner().invoke(main, ["rollback", "--json"]).output)
    assert (queued["kind"], queued["model"], queued["version"]) == (
        "rollback",
        request.model_name,
        None,
    )


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


def _settle(store: Store, request: ControllerRequest, outcome: str, result: Result | None) -> None:
    """Write what the controller writes when it handles `request` and its rollout ends."""
    now = datetime.now(UTC)
    store.controller.consume_controller_request(request.request_id, outcome, now=now)
    if result is None:
        return
    rollout = Rollout(
        rollout_id="r-7",
        kind=RolloutKind.PROMOTE,
        trigger="cli",
        started_at=now,
        champion_version="1",
        champion_colour="blue",
        candidate_colour="green",
        candidate_version="7",
        result=result,
    )
    state = RolloutState(model_name=request.model_name, phase=Phase.STABLE, rollout=rollout)
    record = store.controller.acquire_controller_lease(request.model_name, "t", ttl_s=60, now=now)
    assert record is not None
    store.controller.save_controller_state(
        request.model_name,
        encode_state(state),
        phase="stable",
        revision=record.revision,
        holder="t",
        now=now,
    )
    store.controller.record_audit(
        AuditEvent(request.model_name, "gate", "offline passed", rollout_id="r-7"),
        AuditEvent(request.model_name, "transition", "switched", rollout_id="r-7"),
    )


def _follow(
    home: Path, outcome: str, result: Result | None, timeout_s: float = 5, as_json: bool = False
) -> Any:
    settings = Settings(home=home)
    store = Store.from_settings(settings)
    store.upgrade()
    request = ControllerRequest(settings.registry.model_name, "promote", "7", "cli")
    store.controller.add_controller_request(request)
    _settle(store, request, outcome, result)
    store.close()
    command = click.Command(
        "t",
        callback=lambda: follow_rollout(
            settings, request, timeout_s=timeout_s, poll_s=0.1, as_json=as_json
        ),
    )
    return CliRunner().invoke(command, [])


def test_promote_wait_json_is_one_document_on_stdout(home: Path) -> None:
    result = _follow(home, "accepted as rollout r-7", Result.PROMOTED, as_json=True)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert (document["rollout"], document["result"], document["version"]) == (
        "r-7",
        "promoted",
        "7",
    )
    assert "offline passed" in result.stderr


def test_promote_wait_follows_the_rollout_to_its_end(home: Path) -> None:
    result = _follow(home, "accepted as rollout r-7", Result.PROMOTED)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "rollout r-7 started"
    assert "offline passed" in lines[1]
    assert "switched" in lines[2]
    assert lines[-1] == "rollout r-7 ended promoted"


@pytest.mark.parametrize(
    ("outcome", "result", "message"),
    [
        ("accepted as rollout r-7", Result.REJECTED, "rollout r-7 ended rejected"),
        ("refused: a rollout is under way", None, "did not start a rollout: refused: a rollout"),
        ("", None, "gave up waiting after 1 s"),
    ],
)
def test_promote_wait_fails_unless_promoted(
    home: Path, outcome: str, result: Result | None, message: str
) -> None:
    # An empty outcome leaves the request pending: nothing ever handles it.
    run = _follow(home, outcome, result, timeout_s=1) if outcome else _pending(home)
    assert run.exit_code == 1
    assert message in run.output


def _pending(home: Path) -> Any:
    settings = Settings(home=home)
    store = Store.from_settings(settings)
    store.upgrade()
    request = ControllerRequest(settings.registry.model_name, "promote", "7", "cli")
    store.controller.add_controller_request(request)
    store.close()
    command = click.Command(
        "t", callback=lambda: follow_rollout(settings, request, timeout_s=1, poll_s=0.1)
    )
    return CliRunner().invoke(command, [])


def test_approval_without_gitops_stops_the_local_controller_with_one_line(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRIFTLINE_CONTROLLER_REQUIRE_APPROVAL", "true")
    result = CliRunner().invoke(main, ["controller", "step"])
    assert result.exit_code == 1
    assert "requireApproval needs the GitOps runtime" in result.output
    assert "Traceback" not in result.output
