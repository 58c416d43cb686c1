"""The controller loop: lease, load, observe, decide, audit, save, act — resumable at any point.

State is saved before any action runs, and every action is idempotent: a controller killed
mid-round resumes from the stored state and re-derives the same actions from what it observes.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from opentelemetry.trace import StatusCode

from driftline.observability import tracing
from driftline.store import AuditEvent, Store, utcnow
from driftline.store.rollouts import GateRecord, RolloutRecord
from operators.actions import (
    Action,
    ConsumeRequest,
    Deploy,
    RequestApproval,
    Retire,
    Route,
    RunGates,
    SetChampion,
    StopRetraining,
    SubmitRetraining,
    describe,
)
from operators.audit import (
    action_event,
    approval_event,
    decision_events,
    fault_event,
    gate_events,
    new_gates,
)
from operators.codec import decode_state, encode_state
from operators.decide import Decision, decide
from operators.metrics import ControllerMetrics
from operators.observations import Approval, Observed, World
from operators.observe import Observer, one_line
from operators.runtimes.base import Runtime, RuntimeOperationError
from operators.runtimes.gitops import approvals_of
from operators.spec import RolloutSpec
from operators.states import GateResult, RolloutState

log = logging.getLogger(__name__)


class GateRunner(Protocol):
    """Evaluates a candidate's offline gates."""

    def run(self, version: str, champion_version: str) -> tuple[GateResult, ...]:
        """Every offline gate's verdict; a gate that cannot run is a failed verdict."""
        ...


@dataclass(frozen=True, slots=True)
class StepReport:
    """What one round saw, decided and did."""

    model_name: str
    decision: Decision | None = None
    world: World | None = None
    errors: tuple[str, ...] = ()
    skipped: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The report as `driftline controller step --json` prints it."""
        if self.decision is None:
            return {"model": self.model_name, "skipped": self.skipped, "errors": list(self.errors)}
        state = self.decision.state
        return {
            "model": self.model_name,
            "state": state.phase.value,
            "reason": state.reason,
            "active": {"colour": state.active_colour, "version": state.active_version},
            "transitions": [
                {"from": t.phase_from.value, "to": t.phase_to.value, "reason": t.reason}
                for t in self.decision.transitions
            ],
            "actions": [describe(a) for a in self.decision.actions],
            "errors": list(self.errors),
            "faults": dict(self.world.faults) if self.world else {},
        }


def default_holder() -> str:
    """This process's name for leases: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Controller:
    """Runs observe-decide-act rounds for one model through one runtime."""

    spec: RolloutSpec
    store: Store
    runtime: Runtime
    observer: Observer
    gates: GateRunner
    metrics: ControllerMetrics = field(default_factory=ControllerMetrics)
    holder: str = field(default_factory=default_holder)
    lease_s: float = 30.0
    clock: Callable[[], datetime] = utcnow
    last_ok: datetime | None = field(default=None, init=False)
    last_error: str | None = field(default=None, init=False)
    # Faults already reported; shared between successive controllers of one object.
    known_faults: dict[str, str] = field(default_factory=dict)
    # The last approval observed, so the audit trail records its changes once each.
    known_approval: Approval | None = field(default=None, init=False)

    @property
    def model_name(self) -> str:
        """The model this controller rolls out."""
        return self.spec.model_name

    def step(self) -> StepReport:
        """One round; raises only when the store itself cannot be reached."""
        attributes = {"driftline.model": self.model_name}
        with tracing.span("controller.round", root=True, attributes=attributes):
            return self._step()

    def _step(self) -> StepReport:
        now = self.clock()
        record = self.store.controller.acquire_controller_lease(
            self.model_name, self.holder, ttl_s=self.lease_s, now=now
        )
        if record is None:
            current = self.store.controller.controller_state(self.model_name)
            holder = current.lease_holder if current else "unknown"
            return StepReport(self.model_name, skipped=f"lease held by {holder}")
        before = decode_state(record.state) if record.state else None
        with tracing.span("observe"):
            world = self.observer.observe(before, now)
        with tracing.span("decide") as span:
            decision = decide(self.spec, Observed(before, world))
            if span is not None:
                span.set_attribute("driftline.phase", decision.state.phase.value)
        self._record_faults(world)
        self._record_approval(world, decision)
        self._audit(*decision_events(before, decision, world))
        self.store.controller.save_controller_state(
            self.model_name,
            encode_state(decision.state),
            phase=decision.state.phase.value,
            revision=record.revision,
            holder=self.holder,
            now=now,
        )
        self._record_rollout(before, decision.state)
        self._record_decided_gates(before, decision.state, now)
        self.metrics.record(decision, world)
        errors = self._act(decision)
        self.last_ok, self.last_error = now, errors[0] if errors else None
        return StepReport(self.model_name, decision, world, errors)

    def run(self, stop: threading.Event, interval_s: float) -> None:
        """Rounds every `interval_s` until `stop` is set; a store outage is waited out."""
        outage: tuple[datetime, str] | None = None
        while not stop.is_set():
            try:
                report = self.step()
                if outage is not None:
                    self._recovered(outage)
                    outage = None
                if report.decision and (report.decision.transitions or report.decision.actions):
                    log.info("controller round", extra=report.to_json())
            except Exception as error:
                self.last_error = one_line(error)
                outage = outage or (self.clock(), self.last_error)
                log.warning("controller round failed: %s", self.last_error)
            stop.wait(interval_s)
        self.close()

    def close(self) -> None:
        """Hand the lease on so a successor need not wait for it to expire."""
        try:
            self.store.controller.release_controller_lease(self.model_name, self.holder)
        except Exception as error:
            log.warning("could not release the lease: %s", one_line(error))

    def state(self) -> RolloutState | None:
        """The stored state, if any."""
        record = self.store.controller.controller_state(self.model_name)
        return decode_state(record.state) if record and record.state else None

    # --- acting ---------------------------------------------------------------------------
    def _act(self, decision: Decision) -> tuple[str, ...]:
        rollout = decision.state.rollout
        rollout_id = rollout.rollout_id if rollout else None
        for action in decision.actions:
            error: str | None = None
            with tracing.span(f"action {type(action).__name__}") as span:
                try:
                    self._execute(action, decision.state)
                except Exception as failure:
                    error = one_line(failure)
                    if span is not None:
                        span.set_status(StatusCode.ERROR, error)
            if not isinstance(action, ConsumeRequest) or error:
                at = self.clock()
                self._audit(action_event(self.model_name, action, rollout_id, error, at))
            if error is not None:
                # Later actions may rest on this one (e.g. retire after route): stop here.
                return (f"{describe(action)}: {error}",)
        return ()

    def _execute(self, action: Action, state: RolloutState) -> None:
        match action:
            case ConsumeRequest(request_id=request_id, outcome=outcome):
                self.store.controller.consume_controller_request(
                    request_id, outcome, now=self.clock()
                )
            case RunGates():
                self._run_gates(action, state)
            case SubmitRetraining():
                self.runtime.submit_retraining(action)
            case StopRetraining(job_id=job_id):
                self.runtime.stop_retraining(job_id)
            case Deploy(colour=colour, version=version):
                self.runtime.deploy(colour, version)
            case Route(active=active, shadow=shadow):
                self.runtime.route(active, shadow)
            case Retire(colour=colour):
                self.runtime.retire(colour)
            case SetChampion():
                self.runtime.set_champion(action)
            case RequestApproval():
                approvals = approvals_of(self.runtime)
                if approvals is None:
                    raise RuntimeOperationError("approval needs the GitOps runtime")
                approvals.request_approval(action)

    def _run_gates(self, action: RunGates, state: RolloutState) -> None:
        results = self.gates.run(action.version, action.champion_version)
        now = self.clock()
        self._store_gates(action.rollout_id, action.version, results, now)
        self._audit(*gate_events(self.model_name, results, state, now))

    def _store_gates(
        self, rollout_id: str, version: str, results: tuple[GateResult, ...], at: datetime
    ) -> None:
        self.store.controller.record_gate_results(
            [
                GateRecord(
                    rollout_id,
                    g.name,
                    self.model_name,
                    version,
                    g.passed,
                    g.detail,
                    dict(g.figures),
                    g.stage,
                    at,
                )
                for g in results
            ]
        )

    # --- bookkeeping ------------------------------------------------------------------------
    def _audit(self, *events: AuditEvent) -> None:
        trace_id = tracing.current_trace_id()
        if trace_id is not None:
            # The round's trace: from an audit event to the spans of what the controller did.
            events = tuple(replace(e, details={**e.details, "trace_id": trace_id}) for e in events)
        if events:
            self.store.controller.record_audit(*events)

    def _record_rollout(self, before: RolloutState | None, after: RolloutState) -> None:
        rollout = after.rollout
        if rollout is None or (
            before is not None and before.rollout == rollout and before.phase == after.phase
        ):
            return
        self.store.controller.upsert_rollout(
            RolloutRecord(
                rollout_id=rollout.rollout_id,
                model_name=self.model_name,
                kind=rollout.kind.value,
                trigger=rollout.trigger,
                started_at=rollout.started_at,
                phase=rollout.result.value if rollout.result else after.phase.value,
                champion_version=rollout.champion_version,
                reason=after.reason,
                candidate_version=rollout.candidate_version,
                finished_at=after.since if rollout.result else None,
                result=rollout.result.value if rollout.result else None,
            )
        )

    def _record_decided_gates(
        self, before: RolloutState | None, after: RolloutState, at: datetime
    ) -> None:
        # Shadow and live verdicts are decided in `decide`, not by the gate runner: store them
        # beside the offline ones so a rollout's gate results are complete in one place.
        rollout = after.rollout
        decided = new_gates(before, after)
        if rollout is not None and rollout.candidate_version is not None and decided:
            self._store_gates(rollout.rollout_id, rollout.candidate_version, decided, at)

    def _record_approval(self, world: World, decision: Decision) -> None:
        rollout = decision.state.rollout
        event = approval_event(
            self.model_name,
            self.known_approval,
            world.approval,
            rollout.rollout_id if rollout else None,
            world.now,
        )
        if world.approval is not None:
            self.known_approval = world.approval
        if event is not None:
            self._audit(event)

    def _record_faults(self, world: World) -> None:
        faults: dict[str, str] = {str(k): v for k, v in world.faults.items()}
        if faults == self.known_faults:
            return
        events: list[AuditEvent] = []
        for source, message in faults.items():
            if self.known_faults.get(source) != message:
                events.append(
                    fault_event(
                        self.model_name,
                        f"{source} unavailable: {message}",
                        {"source": source},
                        world.now,
                    )
                )
        events += [
            fault_event(self.model_name, f"{source} recovered", {"source": source}, world.now)
            for source in self.known_faults
            if source not in faults
        ]
        self.known_faults.clear()
        self.known_faults.update(faults)
        self._audit(*events)

    def _recovered(self, outage: tuple[datetime, str]) -> None:
        started, error = outage
        now = self.clock()
        self._audit(
            fault_event(
                self.model_name,
                f"store unavailable for {(now - started).total_seconds():.0f}s: {error}",
                {"source": "store", "since": started.isoformat()},
                now,
            )
        )
