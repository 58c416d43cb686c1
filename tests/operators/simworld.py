"""A simulated world that applies the controller's actions, for property-based tests of `decide`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from hypothesis import strategies as st

from driftline.contracts import Colour, Severity
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
)
from operators.observations import (
    Approval,
    ColourObservation,
    DriftSignal,
    Evidence,
    FaultSource,
    Health,
    JobObservation,
    JobStatus,
    ManualRequest,
    PairedEvidence,
    World,
)
from operators.spec import RolloutSpec, required_gates
from operators.states import GateResult, Phase, RolloutState

START = datetime(2008, 1, 2, tzinfo=UTC)
T = TypeVar("T")
FAULT_SOURCES: tuple[FaultSource, ...] = ("runtime", "jobs", "registry", "store")


@dataclass
class SimWorld:
    """Serving colours, jobs, registry and store as a runtime would see them."""

    now: datetime = START
    champion: str | None = "1"
    colours: dict[Colour, ColourObservation] = field(
        default_factory=lambda: {"blue": ColourObservation("1", True)}
    )
    routed: Colour | None = "blue"
    shadow: Colour | None = None
    jobs: dict[str, JobObservation] = field(default_factory=dict)
    next_version: int = 2
    gates: dict[str, tuple[GateResult, ...]] = field(default_factory=dict)
    requests: list[ManualRequest] = field(default_factory=list)
    reports_seen: list[DriftSignal] = field(default_factory=list)
    reports: int = 0
    paired: PairedEvidence | None = None
    health: Health | None = None
    faults: dict[FaultSource, str] = field(default_factory=dict)
    submitted: list[str] = field(default_factory=list)
    request_count: int = 0
    # The GitOps repository under approval: review branches (version -> tip) and what main pins.
    review_branches: dict[str, str] = field(default_factory=dict)
    main_version: str | None = "1"

    def running(self) -> tuple[str, ...]:
        """Unfinished jobs."""
        return tuple(j for j, o in self.jobs.items() if not o.status.finished)

    def observe(self, state: RolloutState | None) -> World:
        """What an observer would report for `state`."""
        rollout = state.current if state else None
        job = None
        if state is not None and state.phase is Phase.RETRAINING and rollout is not None:
            job = self.jobs.get(rollout.job_id, JobObservation(rollout.job_id, JobStatus.ABSENT))
        return World(
            now=self.now,
            champion_version=None if "registry" in self.faults else self.champion,
            routed=self.routed,
            shadow=self.shadow,
            colours={} if "runtime" in self.faults else dict(self.colours),
            job=None if "jobs" in self.faults else job,
            running_jobs=() if "jobs" in self.faults else self.running(),
            drift=tuple(self.reports_seen[-5:]),
            evidence=None
            if state is None or rollout is None
            else Evidence(
                rollout.rollout_id,
                state.phase,
                self.gates.get(rollout.rollout_id, ()),
                self.paired,
                self.health,
            ),
            requests=tuple(self.requests),
            approval=self._approval(state),
            faults=dict(self.faults),
        )

    def _approval(self, state: RolloutState | None) -> Approval | None:
        rollout = state.current if state else None
        if state is None or state.phase is not Phase.VERIFYING or rollout is None:
            return None
        if "registry" in self.faults or rollout.candidate_version is None:
            return None
        version = rollout.candidate_version
        tip = self.review_branches.get(version)
        return Approval(version, f"promote-{version}", "main", tip, self.main_version == version)

    def apply(self, action: Action, gate_verdicts: dict[str, bool]) -> None:
        """Carry out one action the way a runtime would."""
        match action:
            case SubmitRetraining(job_id=job_id):
                assert not self.running(), f"second job {job_id} while {self.running()} runs"
                # Its own Ray cluster starts first, as a KubeRay RayJob's does.
                self.jobs.setdefault(job_id, JobObservation(job_id, JobStatus.STARTING))
                self.submitted.append(job_id)
            case StopRetraining(job_id=job_id):
                self.jobs[job_id] = JobObservation(job_id, JobStatus.STOPPED, message="stopped")
            case RunGates(rollout_id=rid):
                self.gates[rid] = tuple(
                    GateResult(name, passed, "simulated") for name, passed in gate_verdicts.items()
                )
            case Deploy(colour=colour, version=version):
                assert colour != self.routed or colour not in self.colours, "redeployed live colour"
                self.colours[colour] = ColourObservation(version, False, "starting")
            case Route(active=active, shadow=shadow):
                assert self.colours[active].ready, f"routed to {active} before it was ready"
                assert shadow != active
                self.routed, self.shadow = active, shadow
            case Retire(colour=colour):
                assert colour not in {self.routed, self.shadow}, f"retired {colour} with traffic"
                del self.colours[colour]
            case SetChampion(version=version):
                self.champion = version
            case RequestApproval(promotion=promotion):
                # Idempotent, as in a repository: a version's review branch is pushed once.
                self.review_branches.setdefault(promotion.version, f"sha-{promotion.version}")
            case ConsumeRequest(request_id=request_id):
                self.requests = [r for r in self.requests if r.request_id != request_id]


@st.composite
def specs(draw: st.DrawFn) -> RolloutSpec:
    """Small, varied policies."""
    return RolloutSpec.model_validate(
        {
            "modelName": "m",
            "paused": draw(st.integers(0, 9)) == 0,
            "driftPolicy": {
                "retrainAt": draw(st.sampled_from(["medium", "high", "critical"])),
                "sustainedReports": draw(st.integers(1, 3)),
                "cooldownSeconds": draw(st.sampled_from([0, 600, 5000])),
            },
            "retraining": {
                "timeoutSeconds": draw(st.sampled_from([300, 20000])),
                "maxAttempts": draw(st.integers(1, 3)),
            },
            "rollout": {
                "deployTimeoutSeconds": draw(st.sampled_from([300, 20000])),
                "requireApproval": draw(st.integers(0, 2)) == 0,
                "shadow": {
                    "minPairedOutcomes": draw(st.integers(1, 30)),
                    "maxDurationSeconds": draw(st.sampled_from([600, 50000])),
                },
                "gates": {"requireBaselines": draw(st.booleans()), "timeoutSeconds": 20000},
                "verification": {
                    "windowSeconds": draw(st.sampled_from([60, 600])),
                    "minRequests": draw(st.integers(0, 30)),
                },
            },
        }
    )


@dataclass(frozen=True)
class Change:
    """What happens in the world between two rounds."""

    seconds: int
    report: Severity | None
    job_outcome: str
    colours_ready: bool
    paired: PairedEvidence | None
    health: Health | None
    request: ManualRequest | None
    faults: frozenset[FaultSource]
    verdicts: tuple[bool, ...]
    failed_actions: frozenset[int]
    merge: bool = False  # a reviewer merges the newest promotion awaiting review


def _health(errors: list[int]) -> st.SearchStrategy[Health]:
    return st.builds(
        Health,
        requests=st.integers(0, 200),
        errors=st.sampled_from(errors),
        p99_ms=st.none() | st.floats(1, 260),
    ).filter(lambda h: h.errors <= h.requests)


_PAIRED = st.builds(
    PairedEvidence,
    pairs=st.integers(0, 60),
    test=st.just("diebold-mariano"),
    statistic=st.none() | st.floats(-5, 5),
    pvalue=st.none() | st.floats(0, 1),
    candidate_loss=st.just(1.0),
    champion_loss=st.just(1.0),
)
_REQUEST = st.builds(
    ManualRequest,
    request_id=st.just(""),
    kind=st.sampled_from(["promote", "promote", "rollback"]),
    version=st.sampled_from(["1", "2", "3", "9"]),
)


def _rarely(strategy: st.SearchStrategy[T], nothing: T, odds: int) -> st.SearchStrategy[T]:
    # one_of picks a branch uniformly, so `odds` copies of `nothing` make `strategy` 1 in odds+1.
    return st.one_of(*[st.just(nothing)] * odds, strategy)


def changes(*, hostile: bool) -> st.SearchStrategy[Change]:
    """World changes; a hostile world adds operator requests, outages and failing actions."""
    health = _health([0, 0, 0, 0, 0, 1, 5] if hostile else [0] * 12 + [1, 5])
    return st.builds(
        Change,
        seconds=st.sampled_from([0, 30, 120, 400, 400, 2000, 7000]),
        report=st.sampled_from([None, None, None, *Severity]),
        job_outcome=st.sampled_from(
            ["stay", "pending", "running", "succeeded", "succeeded", "failed", "empty"]
        ),
        colours_ready=st.booleans(),
        paired=st.one_of(_PAIRED, _PAIRED, st.none()),
        health=st.one_of(health, health, st.none()),
        request=_rarely(_REQUEST, None, 23) if hostile else st.none(),
        faults=_rarely(_FAULTS, frozenset(), 5) if hostile else st.just(frozenset()),
        verdicts=_rarely(st.tuples(*[st.booleans()] * 6), (True,) * 6, 2),
        failed_actions=_rarely(_FAILURES, frozenset(), 5) if hostile else st.just(frozenset()),
        merge=_rarely(st.just(True), False, 7),
    )


_JOB_OUTCOMES = ("stay", "pending", "running", "succeeded", "succeeded", "failed", "empty")
_FAULTS = st.frozensets(st.sampled_from(FAULT_SOURCES), min_size=1)
_FAILURES = st.frozensets(st.integers(0, 6), min_size=1)


def evolve(sim: SimWorld, change: Change, spec: RolloutSpec) -> dict[str, bool]:
    """Apply `change` to the world; returns the verdicts gates would reach now."""
    sim.now += timedelta(seconds=change.seconds)
    if change.report is not None:
        sim.reports += 1
        sim.reports_seen.append(DriftSignal(f"r{sim.reports}", change.report, sim.now))
    for job_id in sim.running():
        if change.job_outcome == "pending":
            sim.jobs[job_id] = JobObservation(job_id, JobStatus.PENDING)
        elif change.job_outcome == "running":
            sim.jobs[job_id] = JobObservation(job_id, JobStatus.RUNNING)
        elif change.job_outcome in {"succeeded", "empty"}:
            version = None if change.job_outcome == "empty" else str(sim.next_version)
            sim.next_version += 1
            sim.jobs[job_id] = JobObservation(job_id, JobStatus.SUCCEEDED, version)
        elif change.job_outcome == "failed":
            sim.jobs[job_id] = JobObservation(job_id, JobStatus.FAILED, message="boom")
    if change.colours_ready:
        sim.colours = {c: ColourObservation(o.version, True) for c, o in sim.colours.items()}
    sim.paired, sim.health = change.paired, change.health
    if change.request is not None:
        sim.request_count += 1
        version = change.request.version if change.request.kind == "promote" else None
        sim.requests.append(ManualRequest(f"q{sim.request_count}", change.request.kind, version))
    sim.faults = dict.fromkeys(change.faults, "down")
    if change.merge and sim.review_branches:
        sim.main_version = list(sim.review_branches)[-1]
    return dict(zip(required_gates(spec.rollout.gates), change.verdicts, strict=False))
