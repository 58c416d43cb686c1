"""The rollout state machine's vocabulary: phases, colours and the state the controller stores."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal

from driftline.contracts import COLOURS, Colour, Severity, SeverityField


class Phase(StrEnum):
    """Where a model is in the loop from drift to a rolled-out (or rolled-back) version."""

    STABLE = "stable"
    DRIFTING = "drifting"
    RETRAINING = "retraining"
    EVALUATING = "evaluating"
    DEPLOYING = "deploying"
    VERIFYING = "verifying"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    REJECTED = "rejected"
    FAILED = "failed"

    @property
    def in_rollout(self) -> bool:
        """True while a rollout is under way (a candidate exists or is being trained)."""
        return self in _IN_ROLLOUT

    @property
    def resource_name(self) -> str:
        """The CamelCase spelling the ModelDeployment status uses."""
        return "".join(part.capitalize() for part in self.value.split("_"))


_IN_ROLLOUT = frozenset({Phase.RETRAINING, Phase.EVALUATING, Phase.DEPLOYING, Phase.VERIFYING})


class RolloutKind(StrEnum):
    """What started a rollout: drift (retrain), an operator's promote or rollback."""

    RETRAIN = "retrain"
    PROMOTE = "promote"
    ROLLBACK = "rollback"


class Result(StrEnum):
    """How a rollout ended."""

    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    REJECTED = "rejected"
    FAILED = "failed"


GateStage = Literal["offline", "shadow", "live"]


@dataclass(frozen=True, slots=True)
class GateResult:
    """One gate's verdict on a candidate, with the figures it was based on."""

    name: str
    passed: bool
    detail: str
    figures: dict[str, float | None] = field(default_factory=dict)
    stage: GateStage = "offline"


@dataclass(frozen=True, slots=True)
class Rollout:
    """One attempt to replace the champion, from trigger to result."""

    rollout_id: str
    kind: RolloutKind
    trigger: str
    started_at: datetime
    champion_version: str
    champion_colour: Colour
    candidate_colour: Colour
    candidate_version: str | None = None
    attempt: int = 1
    # The last round this attempt's job was seen starting (its Ray cluster coming up): it was
    # submitted after this, so the schedule timeout counts from here.
    job_starting_seen_at: datetime | None = None
    switched_at: datetime | None = None
    gates: tuple[GateResult, ...] = ()
    result: Result | None = None

    @property
    def job_id(self) -> str:
        """The retraining job of this attempt; deterministic so submission is idempotent."""
        return f"{self.rollout_id}-{self.attempt}"

    @property
    def failed_gates(self) -> tuple[GateResult, ...]:
        """Gates this candidate did not pass."""
        return tuple(g for g in self.gates if not g.passed)


@dataclass(frozen=True, slots=True)
class RolloutState:
    """What the controller stores per model; a restarted controller resumes from it."""

    model_name: str
    phase: Phase = Phase.STABLE
    since: datetime | None = None
    active_colour: Colour = COLOURS[0]
    active_version: str | None = None
    passed_versions: tuple[str, ...] = ()
    drift_severity: SeverityField = Severity.NONE
    drift_report_id: str | None = None
    drift_streak: int = 0
    rollout: Rollout | None = None
    rest_since: datetime | None = None
    handled_requests: tuple[tuple[str, str], ...] = ()
    reason: str = ""

    @property
    def last_passed(self) -> str | None:
        """The newest version that passed every gate and its verification (or was the seed)."""
        return self.passed_versions[-1] if self.passed_versions else None

    @property
    def current(self) -> Rollout | None:
        """The rollout under way, if any (the last one is kept after it ends)."""
        return self.rollout if self.phase.in_rollout else None
