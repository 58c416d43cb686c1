"""GitOps promotion against a real bare repository: commits, retries, reverts, lock, cooldown,
and promotions that wait for a reviewer to merge their branch."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from driftline.store import Store
from operators.actions import SetChampion
from operators.cli import promote as cli_promote
from operators.controller import Controller
from operators.gitops import GitOpsError, GitOpsRepository, PromotionBlockedError
from operators.observations import Approval, ColourObservation
from operators.observe import Observer
from operators.runtimes.gitops import GitOpsRuntime
from operators.spec import RolloutSpec
from operators.states import GateResult, Phase
from tests.operators.fakes import Clock, FakeDrift, FakeGates, FakeLosses, FakeRuntime

VALUES = "gitops/environments/staging/values.yaml"
ORIGINAL = """\
# Driftline in staging (Argo CD Application gitops/applications/staging.yaml).
# The controller's GitOps runtime edits `model.version` here: one commit per promotion or rollback.
model:
  name: market-ensemble
  # Empty follows the champion alias.
  version: "6"   # pinned by the controller

serving:
  runtime: RayService
  ray:
    workers:
      minReplicas: 2   # keep two warm
"""
GATES = (
    GateResult("beats_champion", True, "diebold-mariano p=0.012 < 0.05 on 250 bars"),
    GateResult("onnx_parity", True, "max |native - onnx| 3.1e-07 <= 1e-05"),
)


def git(cwd: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "PATH": "/usr/bin:/bin",
    }
    return subprocess.run(
        ["git", "-C", str(cwd), *args], check=True, capture_output=True, text=True, env=env
    ).stdout


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """A bare repository holding an environment's values file, as the Helm branch ships it."""
    bare = tmp_path / "gitops.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    seed = tmp_path / "seed"
    git(tmp_path, "clone", "-q", str(bare), str(seed))
    (seed / VALUES).parent.mkdir(parents=True)
    (seed / VALUES).write_text(ORIGINAL)
    git(seed, "add", ".")
    git(seed, "commit", "-q", "-m", "staging values")
    git(seed, "push", "-q", "origin", "HEAD:main")
    return bare


def repo(
    remote: Path, name: str, clock: Clock | None = None, **options: object
) -> GitOpsRepository:
    return GitOpsRepository(
        remote=str(remote),
        branch="main",
        values_path=VALUES,
        workdir=remote.parent / f"work-{name}",
        identity=name,
        backoff_s=0.01,
        clock=clock or (lambda: datetime.now(UTC)),
        **options,  # type: ignore[arg-type]
    )


def promote(version: str, previous: str, rollout: str = "r-1") -> SetChampion:
    return SetChampion(
        version, previous, rollout, "promoted after 600s of verification", "drift:rep-42", GATES
    )


def show(remote: Path, what: str = "main") -> str:
    return git(remote, "show", f"{what}:{VALUES}")


def test_promotion_is_one_commit_that_keeps_comments_and_names_everything(remote: Path) -> None:
    sha = repo(remote, "ctl").publish(promote("7", "6"))
    assert sha is not None
    assert show(remote) == ORIGINAL.replace('version: "6"', 'version: "7"')
    message = git(remote, "log", "-1", "--format=%B", "main")
    assert message.startswith(f"Promote market-ensemble to version 7 in {VALUES}")
    assert "- beats_champion: diebold-mariano p=0.012" in message
    assert "Triggered by: drift report rep-42" in message
    assert "Driftline-Promotion: 7\nDriftline-Rollout: r-1\nDriftline-Previous: 6" in message
    assert repo(remote, "ctl").publish(promote("7", "6")) is None  # idempotent


def test_a_rollback_reverts_the_promotion_commit(remote: Path) -> None:
    r = repo(remote, "ctl")
    promoted = r.publish(promote("7", "6"))
    rollback = SetChampion("6", "7", "r-1", "error rate 9% > 1%", "drift:rep-42", rollback=True)
    assert r.publish(rollback) is not None
    assert show(remote) == ORIGINAL
    message = git(remote, "log", "-1", "--format=%B", "main")
    assert f"This reverts commit {promoted}." in message
    assert f"Driftline-Rollback: {promoted}" in message
    assert "Driftline-Promotion" not in message


def test_the_active_colour_is_committed_with_the_version_and_reverted_with_it(
    remote: Path,
) -> None:
    # Issue 13: with GitOps the chart renders the colour the controller committed, not blue.
    r = repo(remote, "ctl")
    green = SetChampion("7", "6", "r-1", "promoted", "drift:rep-42", GATES, colour="green")
    assert r.publish(green) is not None
    values = show(remote)
    assert 'version: "7"' in values
    assert "serving:\n  runtime: RayService\n" in values
    assert "  activeColour: green\n" in values
    assert "minReplicas: 2   # keep two warm" in values  # the rest of the file untouched
    message = git(remote, "log", "-1", "--format=%B", "main")
    assert message.startswith(
        f"Promote market-ensemble to version 7 in {VALUES} (active colour green)"
    )
    assert r.publish(green) is None  # idempotent: version and colour already recorded
    # The same version moved to the other colour is a change to record.
    assert r.publish(SetChampion("7", "7", None, "restoring", colour="blue")) is not None
    assert "  activeColour: blue\n" in show(remote)
    # A rollback to the version before restores its colour too (blue, by an edit or a revert).
    rollback = SetChampion("6", "7", "r-1", "regressed", None, rollback=True, colour="blue")
    assert r.publish(rollback) is not None
    values = show(remote)
    assert 'version: "6"' in values
    assert "  activeColour: blue\n" in values


def test_pushes_are_retried_when_the_remote_refuses(remote: Path) -> None:
    hook = remote / "hooks" / "pre-receive"
    counter = remote / "refusals"
    hook.write_text(
        "#!/bin/sh\n"
        "read old new ref\n"
        'case "$ref" in refs/heads/*) ;; *) exit 0 ;; esac\n'
        f"n=$(cat {counter} 2>/dev/null || echo 0)\n"
        f'if [ "$n" -lt 2 ]; then echo $((n+1)) > {counter}; echo "remote busy" >&2; exit 1; fi\n'
    )
    hook.chmod(0o755)
    r = repo(remote, "ctl", cooldown_s=0)
    assert r.publish(promote("7", "6")) is not None
    assert counter.read_text().strip() == "2"
    assert 'version: "7"' in show(remote)
    counter.write_text("-10")
    with pytest.raises(GitOpsError, match="rejected 4 times"):
        r.publish(promote("8", "7", "r-2"))


def test_a_concurrent_commit_is_rebased_over(remote: Path, tmp_path: Path) -> None:
    r = repo(remote, "ctl")
    r.current_version()  # the controller's clone is now behind what a person pushes next
    person = tmp_path / "person"
    git(tmp_path, "clone", "-q", str(remote), str(person))
    (person / "README.md").write_text("staging notes\n")
    git(person, "add", ".")
    git(person, "commit", "-q", "-m", "notes")
    git(person, "push", "-q", "origin", "HEAD:main")
    assert r.publish(promote("7", "6")) is not None
    assert git(remote, "log", "--format=%s", "main").splitlines()[:2] == [
        f"Promote market-ensemble to version 7 in {VALUES}",
        "notes",
    ]


def test_the_promotion_lock_excludes_a_second_controller(remote: Path) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    holder = repo(remote, "ctl-a", Clock(now), lock_ttl_s=60)
    sha = holder.acquire_lock()
    other = repo(remote, "ctl-b", Clock(now + timedelta(seconds=30)), lock_ttl_s=60)
    with pytest.raises(PromotionBlockedError, match="locked by ctl-a until"):
        other.publish(promote("7", "6"))
    assert 'version: "6"' in show(remote)
    late = repo(remote, "ctl-b", Clock(now + timedelta(seconds=61)), lock_ttl_s=60)
    assert late.publish(promote("7", "6")) is not None  # a dead holder's lock expires
    holder.release_lock(sha)  # no longer ours: nothing happens
    assert git(remote, "for-each-ref", "refs/driftline").strip() == ""


def test_cooldown_holds_back_a_second_promotion_but_not_a_rollback(remote: Path) -> None:
    clock = Clock(datetime.now(UTC))
    r = repo(remote, "ctl", clock, cooldown_s=3600)
    r.publish(promote("7", "6"))
    with pytest.raises(PromotionBlockedError, match="cooldown"):
        r.publish(promote("8", "7", "r-2"))
    r.publish(SetChampion("6", "7", "r-1", "regressed", None, rollback=True))
    assert 'version: "6"' in show(remote)
    clock.advance(3700)  # past the hour from the promotion commit (stamped a moment later)
    assert r.publish(promote("8", "6", "r-3")) is not None


def test_the_runtime_publishes_then_records_and_reports_disagreement(remote: Path) -> None:
    delegate = FakeRuntime(champion="6")
    runtime = GitOpsRuntime(delegate, repo(remote, "ctl"))
    assert runtime.champion_version() == "6"
    delegate.champion = "5"
    assert runtime.champion_version() == "git:6/registry:5"
    runtime.set_champion(promote("7", "6"))
    assert (runtime.champion_version(), delegate.champion) == ("7", "7")
    assert runtime.observe_serving().routed == "blue"


def test_a_missing_values_file_is_a_one_line_error(remote: Path) -> None:
    broken = GitOpsRepository(
        str(remote), "main", "gitops/environments/prod/values.yaml", remote.parent / "w"
    )
    with pytest.raises(GitOpsError, match=r"prod/values\.yaml does not exist"):
        broken.current_version()


# --- approval: the controller pushes a review branch, never the target ------------------------
BRANCH = "driftline/promote-market-ensemble-7"
APPROVAL_SPEC = RolloutSpec.model_validate(
    {
        "modelName": "market-ensemble",
        "driftPolicy": {"sustainedReports": 1, "cooldownSeconds": 0},
        "rollout": {
            "requireApproval": True,
            "shadow": {"minPairedOutcomes": 30},
            "gates": {"test": "paired-t"},
            "verification": {"windowSeconds": 120, "minRequests": 10},
        },
    }
)


def merge_in_a_clone(remote: Path, tmp_path: Path, branch: str = BRANCH) -> None:
    """What a reviewer does: merge the review branch into main and push."""
    reviewer = tmp_path / "reviewer"
    git(tmp_path, "clone", "-q", str(remote), str(reviewer))
    git(reviewer, "merge", "-q", "--no-ff", "-m", "Merge approved promotion", f"origin/{branch}")
    git(reviewer, "push", "-q", "origin", "HEAD:main")


def test_under_approval_a_promotion_goes_to_its_own_branch(remote: Path, tmp_path: Path) -> None:
    r = repo(remote, "ctl", require_approval=True)
    assert r.approval("7") == Approval("7", BRANCH, "main", None, False)
    sha = r.publish(promote("7", "6"))
    assert show(remote) == ORIGINAL  # main untouched
    assert git(remote, "rev-parse", BRANCH).strip() == sha
    assert 'version: "7"' in show(remote, BRANCH)
    message = git(remote, "log", "-1", "--format=%B", BRANCH)
    assert "- beats_champion: diebold-mariano p=0.012" in message
    assert "Driftline-Promotion: 7" in message
    assert r.request_approval(promote("7", "6")) == sha  # idempotent: already requested
    assert r.approval("7") == Approval("7", BRANCH, "main", sha, False)
    merge_in_a_clone(remote, tmp_path)
    assert r.approval("7").merged
    assert r.publish(promote("7", "6")) is None  # landed: nothing left to push


def test_under_approval_a_rollback_is_a_branch_too(remote: Path, tmp_path: Path) -> None:
    delegate = FakeRuntime(champion="7")
    runtime = GitOpsRuntime(delegate, repo(remote, "ctl", require_approval=True))
    runtime.repo.publish(promote("7", "6"))
    merge_in_a_clone(remote, tmp_path)
    runtime.set_champion(SetChampion("6", "7", "r-1", "regressed", None, rollback=True))
    assert 'version: "7"' in show(remote)  # main changes only through review
    rollback = git(remote, "log", "-1", "--format=%B", "driftline/rollback-market-ensemble-6")
    assert "Roll back market-ensemble to version 6" in rollback
    # Serving rolled back already; the pending branch is no disagreement to publish again.
    assert (delegate.champion, runtime.champion_version()) == ("6", "6")


def test_approve_merges_the_review_branch_as_a_reviewer(remote: Path) -> None:
    r = repo(remote, "ctl", require_approval=True)
    with pytest.raises(GitOpsError, match="no promotion of version 7 awaits approval"):
        r.approve("7", "cli:alice")
    requested = r.publish(promote("7", "6"))
    merged = repo(remote, "alice").approve("7", "cli:alice")
    assert 'version: "7"' in show(remote)
    assert git(remote, "rev-parse", "main^2").strip() == requested
    assert "Approved-by: cli:alice" in git(remote, "log", "-1", "--format=%B", merged)
    assert git(remote, "for-each-ref", "refs/heads/driftline").strip() == ""  # branch deleted
    assert r.approval("7").merged


def _step_until(controller: Controller, clock: Clock, phase: Phase, rounds: int = 12) -> str:
    for _ in range(rounds):
        report = controller.step()
        assert report.decision is not None
        assert not report.errors, report.to_json()
        if report.decision.state.phase is phase:
            return report.decision.reason
        clock.advance(5)
    raise AssertionError(f"never reached {phase}: {report.to_json()}")


def test_the_controller_promotes_only_once_the_review_branch_is_merged(
    remote: Path, tmp_path: Path, store: Store
) -> None:
    clock = Clock()
    delegate = FakeRuntime(champion="6", colours={"blue": ColourObservation("6", True)})
    runtime = GitOpsRuntime(delegate, repo(remote, "ctl", clock, require_approval=True))
    drift = FakeDrift()
    controller = Controller(
        APPROVAL_SPEC,
        store,
        runtime,
        Observer(APPROVAL_SPEC, store, runtime, drift, FakeLosses()),
        FakeGates(),
        clock=clock,
    )
    drift.add("critical", clock.now)
    _step_until(controller, clock, Phase.RETRAINING)
    delegate.finish_jobs("7")
    _step_until(controller, clock, Phase.VERIFYING)
    assert git(remote, "log", "-1", "--format=%B", BRANCH).count("- artifact: ok") == 1
    assert "- shadow_quality: paired-t" in git(remote, "log", "-1", "--format=%B", BRANCH)
    clock.advance(300)  # well past the verification window: verified, but not approved
    for _ in range(3):
        report = controller.step()
        assert report.decision is not None
        assert report.decision.state.phase is Phase.VERIFYING
        clock.advance(30)
    assert "awaiting approval: driftline/promote-market-ensemble-7 at" in report.decision.reason
    assert (show(remote), delegate.champion) == (ORIGINAL, "6")

    merge_in_a_clone(remote, tmp_path)
    reason = _step_until(controller, clock, Phase.PROMOTED, rounds=1)
    assert reason.endswith(f"approved: {BRANCH} merged into main")
    controller.step()
    assert delegate.champion == "7"
    # The controller never pushed main: its first-parent history is the seed and the merge.
    assert len(git(remote, "rev-list", "--first-parent", "main").split()) == 2
    trail = [
        e.reason
        for e in store.controller.audit_events(model_name="market-ensemble", kind="approval")
    ]
    assert [line.split(":")[0] for line in trail] == ["approval requested", "approved"]
    assert f"{BRANCH} at " in trail[0]


def test_driftline_promote_approve_merges_the_pending_promotion(
    remote: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo(remote, "ctl", require_approval=True).publish(promote("7", "6"))
    for name, value in {
        "DRIFTLINE_HOME": str(tmp_path / "home"),
        "DRIFTLINE_MODEL_NAME": "market-ensemble",
        "DRIFTLINE_CONTROLLER_GITOPS_REPO": str(remote),
        "DRIFTLINE_CONTROLLER_GITOPS_VALUES": VALUES,
    }.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(cli_promote, ["7", "--approve"])
    assert result.exit_code == 0, result.output
    assert "approved version 7 of market-ensemble: merged as" in result.output
    assert 'version: "7"' in show(remote)
    again = CliRunner().invoke(cli_promote, ["7", "--approve"])
    assert again.exit_code == 1
    assert "no promotion of version 7 awaits approval" in again.output
    assert "Traceback" not in again.output
