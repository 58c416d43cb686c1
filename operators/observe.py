"""One round's observation: runtime, registry, store and evidence, each failure a named fault."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Literal, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from driftline.store import Store
from operators.observations import (
    Approval,
    DriftSignal,
    Evidence,
    FaultSource,
    JobObservation,
    ManualRequest,
    PairedEvidence,
    World,
)
from operators.quality import paired_evidence
from operators.runtimes.base import Approvals, Runtime, ServingObservation
from operators.runtimes.gitops import approvals_of
from operators.spec import RolloutSpec
from operators.states import GateResult, GateStage, Phase, RolloutState

T = TypeVar("T")
Losses = npt.NDArray[np.float64]


class DriftSource(Protocol):
    """A model's recent drift reports."""

    def recent(self, model_name: str, limit: int) -> Sequence[DriftSignal]:
        """Up to `limit` newest reports, oldest first."""
        ...


class PairedLosses(Protocol):
    """Squared errors of two versions on the same requests whose outcomes have arrived."""

    def losses(
        self, model_name: str, candidate: str, champion: str, since: datetime
    ) -> tuple[Losses, Losses]:
        """(candidate losses, champion losses), aligned by request."""
        ...


class Observer:
    """Reads every source for one round; a source that fails becomes a fault, not an error."""

    def __init__(
        self,
        spec: RolloutSpec,
        store: Store,
        runtime: Runtime,
        drift: DriftSource,
        losses: PairedLosses,
        *,
        approvals: Approvals | None = None,
    ) -> None:
        self.spec, self.store, self.runtime = spec, store, runtime
        self.drift, self.losses = drift, losses
        self.approvals = approvals or approvals_of(runtime)

    def observe(self, state: RolloutState | None, now: datetime) -> World:
        """The world as seen now, for the stored `state`."""
        faults: dict[FaultSource, str] = {}
        serving = _guard(faults, "runtime", self.runtime.observe_serving) or ServingObservation(
            None, None
        )
        job, running = self._jobs(state, faults)
        return World(
            now=now,
            champion_version=_guard(faults, "registry", self.runtime.champion_version),
            routed=serving.routed,
            shadow=serving.shadow,
            colours=serving.colours,
            job=job,
            running_jobs=running,
            drift=tuple(_guard(faults, "drift", self._drift) or ()),
            evidence=self._evidence(state, faults),
            requests=_guard(faults, "store", self._requests) or (),
            approval=self._approval(state, faults),
            faults=faults,
        )

    def _jobs(
        self, state: RolloutState | None, faults: dict[FaultSource, str]
    ) -> tuple[JobObservation | None, tuple[str, ...]]:
        running = _guard(faults, "jobs", self.runtime.running_jobs) or ()
        rollout = state.current if state else None
        if state is None or rollout is None or state.phase is not Phase.RETRAINING:
            return None, running
        return _guard(faults, "jobs", lambda: self.runtime.observe_job(rollout.job_id)), running

    def _approval(
        self, state: RolloutState | None, faults: dict[FaultSource, str]
    ) -> Approval | None:
        rollout = state.current if state else None
        if (
            not self.spec.rollout.require_approval
            or state is None
            or state.phase is not Phase.VERIFYING
            or rollout is None
            or rollout.candidate_version is None
        ):
            return None
        if self.approvals is None:
            faults.setdefault("registry", "approval is required but no GitOps repository is set")
            return None
        version = rollout.candidate_version
        approvals = self.approvals
        # The GitOps repository is the champion's record: its faults are the registry's.
        return _guard(faults, "registry", lambda: approvals.approval(version))

    def _drift(self) -> Sequence[DriftSignal]:
        # Enough history to count a full streak even if reports arrived faster than rounds.
        limit = max(10, 2 * self.spec.drift_policy.sustained_reports)
        return self.drift.recent(self.spec.model_name, limit)

    def _requests(self) -> tuple[ManualRequest, ...]:
        return tuple(
            ManualRequest(r.request_id, _kind(r.kind), r.version, r.actor)
            for r in self.store.controller.controller_requests(self.spec.model_name)
        )

    def _evidence(
        self, state: RolloutState | None, faults: dict[FaultSource, str]
    ) -> Evidence | None:
        rollout = state.current if state else None
        if state is None or rollout is None or rollout.candidate_version is None:
            return None
        rid, phase, candidate = rollout.rollout_id, state.phase, rollout.candidate_version
        if phase is Phase.EVALUATING:
            gates = _guard(faults, "store", lambda: self._gates(rid, candidate))
            return Evidence(rid, phase, gates=gates or ())
        if phase not in {Phase.DEPLOYING, Phase.VERIFYING}:
            return Evidence(rid, phase)
        # Evidence counts from the start of this phase: shadow pairs, then post-switch pairs.
        since = rollout.switched_at if phase is Phase.VERIFYING else state.since
        assert since is not None
        champion = rollout.champion_version
        paired = _guard(faults, "store", lambda: self._paired(candidate, champion, since))
        health = None
        if phase is Phase.VERIFYING:
            colour = state.active_colour
            health = _guard(
                faults, "runtime", lambda: self.runtime.health(colour, candidate, since)
            )
        return Evidence(rid, phase, paired=paired, health=health)

    def _gates(self, rollout_id: str, version: str) -> tuple[GateResult, ...]:
        return tuple(
            GateResult(g.name, g.passed, g.detail, dict(g.figures), _stage(g.stage))
            for g in self.store.controller.gate_results(rollout_id)
            if g.version == version and g.stage == "offline"
        )

    def _paired(self, candidate: str, champion: str, since: datetime) -> PairedEvidence:
        cand, champ = self.losses.losses(self.spec.model_name, candidate, champion, since)
        return paired_evidence(cand, champ, self.spec.rollout.gates.test)


def _kind(kind: str) -> Literal["promote", "rollback"]:
    return "promote" if kind == "promote" else "rollback"


def _stage(stage: str) -> GateStage:
    return "shadow" if stage == "shadow" else "live" if stage == "live" else "offline"


def _guard(faults: dict[FaultSource, str], source: FaultSource, read: Callable[[], T]) -> T | None:
    try:
        return read()
    except Exception as error:
        faults.setdefault(source, one_line(error))
        return None


def one_line(error: BaseException) -> str:
    """An error as one line for the audit trail: its type and first line."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"[:300]
