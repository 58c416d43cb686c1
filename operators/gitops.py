"""A GitOps repository the controller promotes through: edit, commit, push; revert to roll back.

Promotions carry trailers (`Driftline-Promotion`, `Driftline-Rollout`, `Driftline-Previous`) so the
history itself says which commit promoted which version. A lock ref on the remote, updated with
`--force-with-lease` (an atomic compare-and-swap), serialises promotions across controllers and
people; a cooldown read from that history keeps versions from flapping.

With `require_approval` the controller never pushes the target branch: each commit goes to a
branch of its own (`driftline/promote-<model>-<version>`) and counts once a reviewer merged it.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from operators.actions import SetChampion
from operators.observations import Approval

log = logging.getLogger(__name__)
PROMOTION, ROLLOUT, PREVIOUS, ROLLBACK = (
    "Driftline-Promotion",
    "Driftline-Rollout",
    "Driftline-Previous",
    "Driftline-Rollback",
)


class GitOpsError(RuntimeError):
    """A git operation failed; the message is one line."""


class PromotionBlockedError(GitOpsError):
    """A promotion may not happen now (lock held, cooldown running)."""


@dataclass
class GitOpsRepository:
    """One environment's values file in one branch of one remote."""

    remote: str
    branch: str
    values_path: str
    workdir: Path
    model_name: str = "market-ensemble"
    cooldown_s: float = 3600.0
    lock_ttl_s: float = 300.0
    push_attempts: int = 4
    backoff_s: float = 1.0
    identity: str = "driftline-controller"
    require_approval: bool = False
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    @property
    def lock_ref(self) -> str:
        """The remote ref whose existence is the promotion lock of this environment."""
        env = hashlib.sha256(self.values_path.encode()).hexdigest()[:12]
        return f"refs/driftline/promotion-lock/{env}"

    # --- reading --------------------------------------------------------------------------
    def current_version(self) -> str | None:
        """`model.version` at the branch head (None when empty: the chart follows the alias)."""
        self._sync()
        model = self._values().get("model") or {}
        version = str(model.get("version") or "").strip()
        return version or None

    def last_promotion(self) -> tuple[datetime, str] | None:
        """When the newest promotion commit of this file was made, and its sha."""
        out = self._git(
            "log", "-1", f"--grep=^{PROMOTION}:", "--format=%ct %H", "HEAD", "--", self.values_path
        ).strip()
        if not out:
            return None
        stamp, sha = out.split()
        return datetime.fromtimestamp(int(stamp), UTC), sha

    # --- promoting ------------------------------------------------------------------------
    def publish(self, action: SetChampion) -> str | None:
        """Commit and push `action`; returns the new commit's sha, None if nothing changed.

        Under `require_approval` the commit goes to its review branch instead (a rollback too:
        serving has already rolled back, the values file follows once the branch is merged).
        """
        if self.require_approval:
            return self.request_approval(action)
        with self._locked():
            for attempt in range(1, self.push_attempts + 1):
                self._sync()
                if self._records(action):
                    return None
                self._check_cooldown(action)
                sha = self._commit(action)
                if self._push(f"HEAD:refs/heads/{self.branch}"):
                    log.info("published version %s as %s", action.version, sha)
                    return sha
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            raise GitOpsError(f"push to {self.branch} rejected {self.push_attempts} times")

    def current_colour_local(self) -> str | None:
        """`serving.activeColour` in the local checkout (None when the file leaves it unset)."""
        serving = self._values().get("serving") or {}
        colour = str(serving.get("activeColour") or "").strip()
        return colour or None

    def _records(self, action: SetChampion) -> bool:
        """Whether the checkout already records `action`: its version, and its colour if any."""
        if self.current_version_local() != action.version:
            return False
        return action.colour is None or self.current_colour_local() == action.colour

    def current_version_local(self) -> str | None:
        """`model.version` in the local checkout."""
        model = self._values().get("model") or {}
        version = str(model.get("version") or "").strip()
        return version or None

    def _check_cooldown(self, action: SetChampion) -> None:
        if action.rollback or action.rollout_id is None:
            return  # rollbacks and restorations are safety actions: never held back
        last = self.last_promotion()
        if last is None:
            return
        until = last[0] + timedelta(seconds=self.cooldown_s)
        if self.clock() < until:
            raise PromotionBlockedError(
                f"cooldown: the last promotion {last[1][:10]} was at {last[0].isoformat()}; "
                f"next allowed at {until.isoformat()}"
            )

    def _commit(self, action: SetChampion) -> str:
        if action.rollback:
            reverted = self._promotion_of(action.previous)
            if reverted is not None and self._revert(reverted, action):
                return self._git("rev-parse", "HEAD").strip()
        self._write_values(action)
        self._git("add", self.values_path)
        message = _message(action, self.model_name, self.values_path)
        self._git("commit", "-q", "-F", "-", stdin=message)
        return self._git("rev-parse", "HEAD").strip()

    def _promotion_of(self, version: str | None) -> str | None:
        """The newest commit that promoted `version` (the one a rollback reverts)."""
        if version is None:
            return None
        out = self._git(
            "log",
            "-1",
            f"--grep=^{PROMOTION}: {version}$",
            "--format=%H",
            "HEAD",
            "--",
            self.values_path,
        ).strip()
        return out or None

    def _revert(self, sha: str, action: SetChampion) -> bool:
        try:
            self._git("revert", "--no-commit", sha)
        except GitOpsError:
            self._git("revert", "--abort", check=False)
            return False  # the file moved on since: fall back to an edit naming the rollback
        if not self._records(action):
            self._git("reset", "-q", "--hard", "HEAD")
            return False
        message = (
            f"Roll back {self.model_name} to version {action.version}\n\n"
            f"This reverts commit {sha}.\n\n{action.reason}\n\n{ROLLBACK}: {sha}\n"
            + (f"{ROLLOUT}: {action.rollout_id}\n" if action.rollout_id else "")
        )
        self._git("commit", "-q", "-F", "-", stdin=message)
        return True

    # --- approval -------------------------------------------------------------------------
    def approval_branch(self, version: str, *, rollback: bool = False) -> str:
        """The branch a reviewer merges to approve setting `version`."""
        model = re.sub(r"[^A-Za-z0-9._-]+", "-", self.model_name).strip(".-") or "model"
        return f"driftline/{'rollback' if rollback else 'promote'}-{model}-{version}"

    def approval(self, version: str) -> Approval:
        """Where the promotion of `version` stands: requested (branch tip) and merged or not."""
        self._sync()
        branch = self.approval_branch(version)
        tip = self._remote_ref(f"refs/heads/{branch}")
        # Landed: the target pins the version through a promotion commit (merged, squashed or
        # rebased; the trailer survives each, and the branch may be deleted after the merge).
        merged = self.current_version_local() == version and self._promotion_of(version) is not None
        return Approval(version, branch, self.branch, tip, merged)

    def under_review(self, version: str) -> bool:
        """Whether a change to `version` awaits review (only ever under `require_approval`)."""
        if not self.require_approval:
            return False
        return any(
            self._remote_ref(f"refs/heads/{self.approval_branch(version, rollback=rollback)}")
            for rollback in (False, True)
        )

    def request_approval(self, action: SetChampion) -> str | None:
        """Push `action`'s commit to its review branch; the branch tip, None if already landed."""
        self._sync()
        if self.current_version_local() == action.version:
            return None
        ref = f"refs/heads/{self.approval_branch(action.version, rollback=action.rollback)}"
        tip = self._remote_ref(ref)
        if tip is not None:
            return tip  # already requested; the reviewer may have pushed fixups since
        sha = self._commit(action)
        if not self._push(f"HEAD:{ref}", lease=f"{ref}:"):
            raise GitOpsError(f"could not push {ref}: created by someone else just now")
        log.info("requested approval of version %s on %s (%s)", action.version, ref, sha)
        return sha

    def approve(self, version: str, reviewer: str) -> str:
        """Merge `version`'s review branch into the target and push: a reviewer's merge, locally."""
        self._sync()
        branch = self.approval_branch(version)
        if self._remote_ref(f"refs/heads/{branch}") is None:
            raise GitOpsError(f"no promotion of version {version} awaits approval ({branch})")
        self._git("fetch", "-q", "origin", f"+refs/heads/{branch}:refs/remotes/origin/{branch}")
        message = f"Merge {branch}: approve version {version}\n\nApproved-by: {reviewer}\n"
        try:
            self._git("merge", "-q", "--no-ff", "-m", message, f"origin/{branch}")
        except GitOpsError as error:
            self._git("merge", "--abort", check=False)
            raise GitOpsError(
                f"{branch} does not merge cleanly into {self.branch}: {error}"
            ) from None
        if not self._push(f"HEAD:refs/heads/{self.branch}"):
            raise GitOpsError(f"push to {self.branch} rejected; fetch and approve again")
        self._push(f":refs/heads/{branch}")  # merged: the branch has done its job
        return self._git("rev-parse", "HEAD").strip()

    # --- the lock ---------------------------------------------------------------------------
    def _locked(self) -> _Lock:
        return _Lock(self)

    def acquire_lock(self) -> str:
        """Create the lock ref on the remote; PromotionBlockedError while another holds it."""
        self._ensure_clone()
        expires = self.clock() + timedelta(seconds=self.lock_ttl_s)
        message = f"promotion lock held by {self.identity} until {expires.isoformat()}"
        tree = self._git("hash-object", "-t", "tree", "-w", "--stdin", stdin="").strip()
        sha = self._git("commit-tree", tree, "-m", message).strip()
        current = self._remote_ref(self.lock_ref)
        if current is not None:
            holder, until = self._lock_owner(current)
            if until is not None and until > self.clock() and holder != self.identity:
                raise PromotionBlockedError(
                    f"promotion locked by {holder} until {until.isoformat()}"
                )
        expect = current or ""
        if not self._push(f"{sha}:{self.lock_ref}", lease=f"{self.lock_ref}:{expect}"):
            raise PromotionBlockedError("promotion lock taken by another controller just now")
        return sha

    def release_lock(self, sha: str) -> None:
        """Delete the lock ref if it is still ours."""
        self._push(f":{self.lock_ref}", lease=f"{self.lock_ref}:{sha}")

    def _lock_owner(self, sha: str) -> tuple[str, datetime | None]:
        self._git("fetch", "-q", "origin", sha, check=False)
        text = self._git("log", "-1", "--format=%s", sha, check=False).strip()
        holder, _, until = text.removeprefix("promotion lock held by ").partition(" until ")
        try:
            return holder, datetime.fromisoformat(until)
        except ValueError:
            return holder or "unknown", None

    # --- git plumbing -----------------------------------------------------------------------
    def _ensure_clone(self) -> None:
        if (self.workdir / ".git").is_dir():
            return
        self.workdir.parent.mkdir(parents=True, exist_ok=True)
        self._run(["git", "clone", "-q", "--no-checkout", self.remote, str(self.workdir)])

    def _sync(self) -> None:
        self._ensure_clone()
        self._git(
            "fetch", "-q", "origin", f"+refs/heads/{self.branch}:refs/remotes/origin/{self.branch}"
        )
        self._git("checkout", "-q", "-B", self.branch, f"origin/{self.branch}")
        self._git("reset", "-q", "--hard", f"origin/{self.branch}")

    def _push(self, refspec: str, *, lease: str | None = None) -> bool:
        args = ["push", "-q", "--porcelain", "origin", refspec]
        if lease is not None:
            args.insert(1, f"--force-with-lease={lease}")
        try:
            self._git(*args)
        except GitOpsError as error:
            log.warning("push %s rejected: %s", refspec, error)
            return False
        return True

    def _remote_ref(self, ref: str) -> str | None:
        out = self._git("ls-remote", "origin", ref).strip()
        return out.split()[0] if out else None

    def _values(self) -> dict[str, Any]:
        path = self.workdir / self.values_path
        if not path.is_file():
            raise GitOpsError(f"{self.values_path} does not exist in {self.remote}@{self.branch}")
        data = _yaml().load(path.read_text())
        return dict(data or {})

    def _write_values(self, action: SetChampion) -> None:
        # With GitOps the controller owns both values: Argo CD renders the colour it committed.
        path = self.workdir / self.values_path
        yaml = _yaml()
        data = yaml.load(path.read_text())
        data.setdefault("model", {})["version"] = action.version
        if action.colour is not None:
            data.setdefault("serving", {})["activeColour"] = action.colour
        buffer = io.StringIO()
        yaml.dump(data, buffer)
        path.write_text(buffer.getvalue())

    def _git(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        return self._run(["git", "-C", str(self.workdir), *args], stdin=stdin, check=check)

    def _run(self, argv: list[str], *, stdin: str | None = None, check: bool = True) -> str:
        env = {
            **os.environ,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_NAME": self.identity,
            "GIT_AUTHOR_EMAIL": f"{self.identity}@driftline.invalid",
            "GIT_COMMITTER_NAME": self.identity,
            "GIT_COMMITTER_EMAIL": f"{self.identity}@driftline.invalid",
        }
        result = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, env=env, timeout=60, check=False
        )
        if check and result.returncode != 0:
            lines = [line.strip() for line in (result.stderr or result.stdout).splitlines()]
            detail = "; ".join(line for line in lines if line) or f"exit {result.returncode}"
            command = argv[3] if argv[1] == "-C" else argv[1]
            raise GitOpsError(f"git {command}: {detail[-400:]}")
        return result.stdout


class _Lock:
    def __init__(self, repo: GitOpsRepository) -> None:
        self.repo, self.sha = repo, ""

    def __enter__(self) -> _Lock:
        self.sha = self.repo.acquire_lock()
        return self

    def __exit__(self, *_: object) -> None:
        self.repo.release_lock(self.sha)


def _yaml() -> YAML:
    yaml = YAML()  # round-trip: comments, key order, quoting and indentation survive an edit
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def _message(action: SetChampion, model: str, values_path: str) -> str:
    verb = "Roll back" if action.rollback else "Promote"
    lines = [
        f"{verb} {model} to version {action.version} in {values_path}"
        + (f" (active colour {action.colour})" if action.colour else ""),
        "",
        action.reason,
    ]
    if action.gates:
        lines += ["", "Gates passed:"]
        lines += [f"- {g.name}: {g.detail}" for g in action.gates if g.passed]
    if action.trigger:
        lines += ["", f"Triggered by: {_trigger(action.trigger)}"]
    lines += [""]
    if not action.rollback:
        lines.append(f"{PROMOTION}: {action.version}")
    if action.rollout_id:
        lines.append(f"{ROLLOUT}: {action.rollout_id}")
    if action.previous:
        lines.append(f"{PREVIOUS}: {action.previous}")
    return "\n".join(lines) + "\n"


def _trigger(trigger: str) -> str:
    kind, _, ref = trigger.partition(":")
    return {"drift": f"drift report {ref}", "request": f"operator request {ref}"}.get(kind, trigger)
