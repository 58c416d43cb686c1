"""The ModelDeployment status projected from the controller's state: pure, and only what changed."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from operators.actions import describe
from operators.decide import Decision
from operators.kube.manifests import Target, job_name
from operators.observations import World
from operators.states import Phase, RolloutState

Status = dict[str, Any]
_UNHAPPY = {
    Phase.FAILED: "RolloutFailed",
    Phase.ROLLED_BACK: "RolledBack",
    Phase.REJECTED: "Rejected",
}


def desired_status(
    target: Target,
    generation: int,
    decision: Decision,
    world: World,
    current: Mapping[str, Any],
) -> Status:
    """The whole status the resource should show after `decision`."""
    state = decision.state
    status: Status = {
        "observedGeneration": generation,
        "state": state.phase.resource_name,
        "activeColour": state.active_colour,
        "drift": {"severity": state.drift_severity.label},
    }
    if state.active_version:
        status["activeVersion"] = state.active_version
    if state.last_passed:
        status["lastPassedVersion"] = state.last_passed
    if state.drift_report_id:
        status["drift"]["reportId"] = state.drift_report_id
    if world.drift:
        status["drift"]["observedAt"] = _time(world.drift[-1].observed_at)
    rollout = state.rollout
    if rollout is not None:
        status["rolloutId"] = rollout.rollout_id
        status["candidate"] = {
            "colour": rollout.candidate_colour,
            "jobName": job_name(target, rollout.job_id),
            "gates": [
                {
                    "name": g.name,
                    "passed": g.passed,
                    "detail": g.detail[:1000],
                    "stage": g.stage,
                    "figures": dict(g.figures),
                }
                for g in rollout.gates
            ],
        }
        if rollout.candidate_version:
            status["candidate"]["version"] = rollout.candidate_version
    previous = current.get("lastDecision")
    if decision.transitions or decision.actions or not previous:
        status["lastDecision"] = {
            "at": _time(world.now),
            "actions": [describe(a) for a in decision.actions],
            "reason": state.reason,
        }
    else:
        status["lastDecision"] = previous
    status["conditions"] = conditions(state, world, generation, current.get("conditions") or [])
    return status


def conditions(
    state: RolloutState, world: World, generation: int, current: list[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Ready, Progressing and Degraded, keeping each one's transition time while it holds."""
    faults = "; ".join(f"{k}: {v}" for k, v in world.faults.items())
    serving = state.active_version is not None and (
        (observed := world.colours.get(state.active_colour)) is not None and observed.ready
    )
    wanted = [
        (
            "Ready",
            serving,
            "Serving" if serving else "NotServing",
            f"version {state.active_version} on {state.active_colour}"
            if serving
            else "no ready colour serves the champion",
        ),
        (
            "Progressing",
            state.phase.in_rollout,
            state.phase.resource_name if state.phase.in_rollout else "Idle",
            state.reason,
        ),
        _degraded(state, faults),
    ]
    previous = {c.get("type"): c for c in current}
    result = []
    for kind, ok, reason, message in wanted:
        value = "True" if ok else "False"
        before = previous.get(kind) or {}
        same = before.get("status") == value
        result.append(
            {
                "type": kind,
                "status": value,
                "observedGeneration": generation,
                "lastTransitionTime": before.get("lastTransitionTime")
                if same and before.get("lastTransitionTime")
                else _time(world.now),
                "reason": reason,
                "message": message[:1000],
            }
        )
    return result


def invalid_spec_conditions(
    message: str, generation: int, current: list[Mapping[str, Any]], now: datetime
) -> Status:
    """Status for a spec that cannot be read: Degraded/InvalidSpec, nothing else touched."""
    previous = {c.get("type"): c for c in current}
    kept = [c for c in current if c.get("type") != "Degraded"]
    before = previous.get("Degraded") or {}
    degraded = {
        "type": "Degraded",
        "status": "True",
        "observedGeneration": generation,
        "lastTransitionTime": before.get("lastTransitionTime")
        if before.get("status") == "True"
        else _time(now),
        "reason": "InvalidSpec",
        "message": message[:1000],
    }
    return {"observedGeneration": generation, "conditions": [*kept, degraded]}


def status_patch(current: Mapping[str, Any], desired: Status) -> Status:
    """The top-level status fields that differ; empty when nothing changed."""
    return {key: value for key, value in desired.items() if current.get(key) != value}


def _degraded(state: RolloutState, faults: str) -> tuple[str, bool, str, str]:
    if faults:
        return "Degraded", True, "SourceUnavailable", faults
    if state.phase in _UNHAPPY:
        return "Degraded", True, _UNHAPPY[state.phase], state.reason
    return "Degraded", False, "AsExpected", "no fault observed"


def _time(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")
