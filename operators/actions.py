"""Actions `decide` asks a runtime to take; each is idempotent, so repeating one is harmless."""

from __future__ import annotations

from dataclasses import dataclass

from driftline.contracts import Colour
from operators.states import GateResult


@dataclass(frozen=True, slots=True)
class SubmitRetraining:
    """Start the retraining job `job_id` unless it already exists."""

    job_id: str
    rollout_id: str
    trigger: str


@dataclass(frozen=True, slots=True)
class StopRetraining:
    """Stop a retraining job that must not keep running."""

    job_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class RunGates:
    """Evaluate the candidate's offline gates and store their results."""

    rollout_id: str
    version: str
    champion_version: str


@dataclass(frozen=True, slots=True)
class Deploy:
    """Serve `version` on `colour` (never the colour taking traffic)."""

    colour: Colour
    version: str


@dataclass(frozen=True, slots=True)
class Route:
    """Send live traffic to `active` and mirror it to `shadow` (None: no mirroring)."""

    active: Colour
    shadow: Colour | None


@dataclass(frozen=True, slots=True)
class Retire:
    """Stop serving on `colour`; only ever a colour without live or mirrored traffic."""

    colour: Colour


@dataclass(frozen=True, slots=True)
class SetChampion:
    """Record `version` as the champion (registry alias, or a GitOps commit), serving on
    `colour` when known (GitOps commits it as the chart's active colour)."""

    version: str
    previous: str | None
    rollout_id: str | None
    reason: str
    trigger: str | None = None
    gates: tuple[GateResult, ...] = ()
    rollback: bool = False
    colour: Colour | None = None


@dataclass(frozen=True, slots=True)
class RequestApproval:
    """Ask a reviewer to approve `promotion`: its commit goes to a branch of its own."""

    promotion: SetChampion


@dataclass(frozen=True, slots=True)
class ConsumeRequest:
    """Mark an operator request handled, with what came of it."""

    request_id: str
    outcome: str


Action = (
    SubmitRetraining
    | StopRetraining
    | RunGates
    | Deploy
    | Route
    | Retire
    | SetChampion
    | RequestApproval
    | ConsumeRequest
)


def describe(action: Action) -> str:
    """A short human-readable line for status and audit."""
    match action:
        case SubmitRetraining(job_id=job_id):
            return f"submit retraining job {job_id}"
        case StopRetraining(job_id=job_id, reason=reason):
            return f"stop retraining job {job_id} ({reason})"
        case RunGates(version=version):
            return f"run gates on version {version}"
        case Deploy(colour=colour, version=version):
            return f"deploy version {version} on {colour}"
        case Route(active=active, shadow=shadow):
            return f"route traffic to {active}" + (f", mirror to {shadow}" if shadow else "")
        case Retire(colour=colour):
            return f"retire {colour}"
        case SetChampion(version=version, rollback=rollback):
            return f"{'restore' if rollback else 'set'} champion version {version}"
        case RequestApproval(promotion=promotion):
            return f"request approval to promote version {promotion.version}"
        case ConsumeRequest(request_id=request_id, outcome=outcome):
            return f"request {request_id}: {outcome}"
