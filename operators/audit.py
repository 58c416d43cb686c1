"""Audit events for every decision, action and gate: the trail `driftline audit` shows."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from driftline.store import AuditEvent
from operators.actions import Action, describe
from operators.decide import Decision
from operators.observations import Approval, World
from operators.states import GateResult, RolloutState

ACTOR = "controller"


def decision_events(
    before: RolloutState | None, decision: Decision, world: World
) -> list[AuditEvent]:
    """One event per transition and one for the decision, with its inputs; none for a hold."""
    after = decision.state
    if not decision.transitions and not decision.actions:
        return []
    inputs = summarise(world)
    events = [
        AuditEvent(
            model_name=after.model_name,
            kind="transition",
            reason=t.reason,
            actor=ACTOR,
            rollout_id=t.rollout_id,
            state_from=t.phase_from.value,
            state_to=t.phase_to.value,
            details={"inputs": inputs},
            created_at=world.now,
        )
        for t in decision.transitions
    ]
    rollout = after.rollout if after.current or decision.transitions else None
    events.append(
        AuditEvent(
            model_name=after.model_name,
            kind="decision",
            reason=after.reason,
            actor=ACTOR,
            rollout_id=rollout.rollout_id
            if rollout and (after.current or decision.transitions)
            else None,
            state_from=(before.phase.value if before else None),
            state_to=after.phase.value,
            details={"actions": [describe(a) for a in decision.actions], "inputs": inputs},
            created_at=world.now,
        )
    )
    events += gate_events(after.model_name, new_gates(before, after), after, world.now)
    return events


def action_event(
    model_name: str, action: Action, rollout_id: str | None, error: str | None, at: datetime
) -> AuditEvent:
    """What came of one action."""
    return AuditEvent(
        model_name=model_name,
        kind="action" if error is None else "action_failed",
        reason=describe(action) + ("" if error is None else f": {error}"),
        actor=ACTOR,
        rollout_id=rollout_id,
        details={"action": type(action).__name__, **_jsonable(asdict(action))},
        created_at=at,
    )


def gate_events(
    model_name: str, gates: tuple[GateResult, ...], state: RolloutState, at: datetime
) -> list[AuditEvent]:
    """One event per gate verdict, with its figures."""
    rollout = state.rollout
    return [
        AuditEvent(
            model_name=model_name,
            kind="gate",
            reason=f"{g.name} {'passed' if g.passed else 'FAILED'}: {g.detail}",
            actor=ACTOR,
            rollout_id=rollout.rollout_id if rollout else None,
            details={
                "gate": g.name,
                "passed": g.passed,
                "stage": g.stage,
                "version": rollout.candidate_version if rollout else None,
                "figures": g.figures,
            },
            created_at=at,
        )
        for g in gates
    ]


def approval_event(
    model_name: str,
    before: Approval | None,
    after: Approval | None,
    rollout_id: str | None,
    at: datetime,
) -> AuditEvent | None:
    """A promotion's review as it changes: requested (branch, commit), still waiting, merged."""
    if after is None or after == before or (after.commit is None and not after.merged):
        return None  # nothing to say, or not pushed yet: the request itself is an action event
    if after.merged:
        reason = f"approved: {after.branch} merged into {after.target}"
    else:
        assert after.commit is not None
        verb = "still waiting" if before is not None and before.commit else "approval requested"
        reason = (
            f"{verb}: {after.branch} at {after.commit[:10]} awaits a reviewer's merge "
            f"into {after.target}"
        )
    return AuditEvent(
        model_name=model_name,
        kind="approval",
        reason=reason,
        actor=ACTOR,
        rollout_id=rollout_id,
        details=_jsonable(asdict(after)),
        created_at=at,
    )


def fault_event(model_name: str, reason: str, details: dict[str, Any], at: datetime) -> AuditEvent:
    """A source that failed, or recovered."""
    return AuditEvent(
        model_name=model_name, kind="fault", reason=reason, details=details, created_at=at
    )


def summarise(world: World) -> dict[str, Any]:
    """The observations a decision rested on, compact enough for every event."""
    evidence = world.evidence
    summary: dict[str, Any] = _jsonable(
        {
            "now": world.now,
            "champion": world.champion_version,
            "routed": world.routed,
            "shadow": world.shadow,
            "colours": {
                c: {"version": o.version, "ready": o.ready} for c, o in world.colours.items()
            },
            "job": asdict(world.job) if world.job else None,
            "running_jobs": list(world.running_jobs),
            "drift": asdict(world.drift[-1]) if world.drift else None,
            "paired": asdict(evidence.paired) if evidence and evidence.paired else None,
            "health": asdict(evidence.health) if evidence and evidence.health else None,
            "requests": [r.request_id for r in world.requests],
            "faults": dict(world.faults),
        }
    )
    return summary


def new_gates(before: RolloutState | None, after: RolloutState) -> tuple[GateResult, ...]:
    """Shadow and live gate verdicts decided in this round (offline ones come from the runner)."""
    rollout = after.rollout
    if rollout is None:
        return ()
    previous = before.rollout if before else None
    known = set()
    if previous is not None and previous.rollout_id == rollout.rollout_id:
        known = {g.name for g in previous.gates}
    return tuple(g for g in rollout.gates if g.stage != "offline" and g.name not in known)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
