"""What the controller observed of the world in one round: jobs, colours, drift, evidence."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal

from driftline.contracts import Colour, Severity
from operators.states import GateResult, Phase, RolloutState

FaultSource = Literal["runtime", "jobs", "registry", "store", "drift"]


class JobStatus(StrEnum):
    """A retraining job's status as the runtime reports it."""

    ABSENT = "absent"
    # Not yet submitted to Ray: its own Ray cluster is starting (a KubeRay RayJob's cold start).
    STARTING = "starting"
    # Submitted, waiting for Ray to place it.
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"

    @property
    def finished(self) -> bool:
        """True once the job can no longer change anything."""
        return self in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}


@dataclass(frozen=True, slots=True)
class JobObservation:
    """The current rollout's retraining job; `version` is what it registered, if it succeeded."""

    job_id: str
    status: JobStatus
    version: str | None = None
    message: str = ""


@dataclass(frozen=True, slots=True)
class ColourObservation:
    """One serving colour: the version it serves and whether it answers."""

    version: str | None
    ready: bool
    message: str = ""
    # Being deleted: retiring it again would only repeat the request (and its audit event).
    retiring: bool = False


@dataclass(frozen=True, slots=True)
class DriftSignal:
    """One drift report for the model."""

    report_id: str
    severity: Severity
    observed_at: datetime


@dataclass(frozen=True, slots=True)
class Health:
    """Service health of the colour taking traffic since the switch, or since `since`."""

    requests: int
    errors: int
    p99_ms: float | None
    # When counting began, if later than the switch (a controller restarted mid-verification).
    since: datetime | None = None

    @property
    def error_rate(self) -> float:
        """Failed share of requests (0 without requests)."""
        return self.errors / self.requests if self.requests else 0.0


@dataclass(frozen=True, slots=True)
class PairedEvidence:
    """Candidate vs champion losses on the same requests, once their outcomes arrived.

    `pvalue` belongs to the one-sided test that the candidate's loss is *greater* (it is worse).
    """

    pairs: int
    test: str
    statistic: float | None
    pvalue: float | None
    candidate_loss: float | None
    champion_loss: float | None


@dataclass(frozen=True, slots=True)
class ManualRequest:
    """An operator's `driftline promote VERSION` or `driftline rollback`, not yet handled."""

    request_id: str
    kind: Literal["promote", "rollback"]
    version: str | None = None
    actor: str = "cli"


@dataclass(frozen=True, slots=True)
class Evidence:
    """What was observed about one rollout in one phase: gate results, paired losses, health."""

    rollout_id: str
    phase: Phase
    gates: tuple[GateResult, ...] = ()
    paired: PairedEvidence | None = None
    health: Health | None = None


@dataclass(frozen=True, slots=True)
class Approval:
    """A promotion under review: its branch, the branch tip, and whether it reached `target`."""

    version: str
    branch: str
    target: str
    commit: str | None = None  # None: the branch was never pushed (or was deleted unmerged)
    merged: bool = False


@dataclass(frozen=True, slots=True)
class World:
    """Everything observed in one round; a source that could not be read is in `faults`."""

    now: datetime
    champion_version: str | None = None
    routed: Colour | None = None
    shadow: Colour | None = None
    colours: Mapping[Colour, ColourObservation] = field(default_factory=dict)
    job: JobObservation | None = None
    running_jobs: tuple[str, ...] = ()
    drift: tuple[DriftSignal, ...] = ()
    evidence: Evidence | None = None
    requests: tuple[ManualRequest, ...] = ()
    # Observed only while a rollout that requires approval is verifying.
    approval: Approval | None = None
    faults: Mapping[FaultSource, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Observed:
    """The stored state (None before the first round) and the world as observed."""

    state: RolloutState | None
    world: World
