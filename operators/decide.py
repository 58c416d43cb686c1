"""The pure core: from the stored state and one round's observations to the next state and actions.

`decide` is level-triggered: it compares the state it wants with the world it sees and asks for the
actions that close the gap. Transitions are applied until nothing changes, and actions are derived
from the final state only, so deciding again on the same observations changes nothing and asks for
the same idempotent actions.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import timedelta

from driftline.contracts import COLOURS, Colour, other_colour
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
    Evidence,
    JobStatus,
    ManualRequest,
    Observed,
    PairedEvidence,
    World,
)
from operators.spec import RolloutSpec, VerificationPolicy, required_gates
from operators.states import (
    GateResult,
    GateStage,
    Phase,
    Result,
    Rollout,
    RolloutKind,
    RolloutState,
)

# Each transition moves forward through a finite machine; more rounds than this is a bug.
MAX_TRANSITIONS = 16

_END_PHASE = {
    Result.PROMOTED: Phase.PROMOTED,
    Result.ROLLED_BACK: Phase.ROLLED_BACK,
    Result.REJECTED: Phase.REJECTED,
    Result.FAILED: Phase.FAILED,
}


@dataclass(frozen=True, slots=True)
class Transition:
    """A phase change (or a restart of the same phase, e.g. a retraining retry) and why."""

    phase_from: Phase
    phase_to: Phase
    reason: str
    rollout_id: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """The next state, the actions that converge the world to it, and how it was reached."""

    state: RolloutState
    actions: tuple[Action, ...]
    transitions: tuple[Transition, ...]

    @property
    def reason(self) -> str:
        """Why the state is what it is."""
        return self.state.reason


def decide(spec: RolloutSpec, observed: Observed) -> Decision:
    """The next state and actions for `observed`; pure and deterministic."""
    world = observed.world
    state = observed.state or bootstrap(spec, world)
    state = forget_consumed(track_drift(spec, state, world), world)
    transitions: list[Transition] = []
    for _ in range(MAX_TRANSITIONS):
        following = step(spec, state, world)
        if following == state:
            break
        if (following.phase, following.since) != (state.phase, state.since):
            transitions.append(_transition(state, following))
        state = following
    else:  # pragma: no cover - a cycle in the transition rules
        raise AssertionError(f"no fixed point after {MAX_TRANSITIONS} transitions: {state}")
    return Decision(state, converge(spec, state, world), tuple(transitions))


def _transition(before: RolloutState, after: RolloutState) -> Transition:
    rollout = after.rollout if after.phase.in_rollout or before.phase.in_rollout else None
    return Transition(
        before.phase, after.phase, after.reason, rollout.rollout_id if rollout else None
    )


def bootstrap(spec: RolloutSpec, world: World) -> RolloutState:
    """The first state: adopt whatever colour already takes traffic, else blue and the champion."""
    colour: Colour = world.routed or COLOURS[0]
    serving = world.colours.get(colour)
    version = (serving.version if serving else None) or world.champion_version
    return RolloutState(
        model_name=spec.model_name,
        since=world.now,
        active_colour=colour,
        active_version=version,
        passed_versions=(version,) if version else (),
        reason=f"adopted version {version} on {colour}" if version else "no champion yet",
    )


def rollout_id(model_name: str, trigger: str) -> str:
    """A rollout's id, derived from what triggered it so the same trigger never starts two."""
    return hashlib.sha256(f"{model_name}|{trigger}".encode()).hexdigest()[:12]


def track_drift(spec: RolloutSpec, state: RolloutState, world: World) -> RolloutState:
    """Count consecutive reports at or above the retraining severity; each report counts once."""
    ids = [r.report_id for r in world.drift]
    seen = ids.index(state.drift_report_id) + 1 if state.drift_report_id in ids else 0
    for signal in world.drift[seen:]:
        high = signal.severity >= spec.drift_policy.retrain_at
        state = replace(
            state,
            drift_severity=signal.severity,
            drift_report_id=signal.report_id,
            drift_streak=state.drift_streak + 1 if high else 0,
        )
    return state


def forget_consumed(state: RolloutState, world: World) -> RolloutState:
    """Keep the outcome of exactly those handled requests still waiting to be consumed."""
    if "store" in world.faults:
        return state  # requests unobservable: forgetting now would handle them twice later
    pending = {r.request_id for r in world.requests}
    kept = tuple(h for h in state.handled_requests if h[0] in pending)
    return state if kept == state.handled_requests else replace(state, handled_requests=kept)


def step(spec: RolloutSpec, state: RolloutState, world: World) -> RolloutState:
    """One transition (or none) from `state` given `world`."""
    request = next(
        (r for r in world.requests if r.request_id not in dict(state.handled_requests)), None
    )
    if request is not None:
        return _handle_request(spec, state, world, request)
    if spec.paused:
        return _hold(state, "paused: observing only, taking no action")
    match state.phase:
        case Phase.RETRAINING:
            return _retraining(spec, state, world)
        case Phase.EVALUATING:
            return _evaluating(spec, state, world)
        case Phase.DEPLOYING:
            return _deploying(spec, state, world)
        case Phase.VERIFYING:
            return _verifying(spec, state, world)
        case _:
            return _at_rest(spec, state, world)


# --- transitions ------------------------------------------------------------------------------
def _at_rest(spec: RolloutSpec, state: RolloutState, world: World) -> RolloutState:
    if state.active_version is None:
        if world.champion_version is None:
            return _hold(state, "no champion version in the registry yet")
        version = world.champion_version
        return _hold(
            replace(state, active_version=version, passed_versions=(version,)),
            f"adopted champion version {version}",
        )
    if state.drift_streak == 0:
        if state.phase is Phase.DRIFTING:
            return _goto(state, Phase.STABLE, world, f"drift subsided ({state.drift_severity})")
        return state
    policy = spec.drift_policy
    why = f"drift {state.drift_severity} in {state.drift_streak} consecutive report(s)"
    if state.phase is not Phase.DRIFTING:
        return _goto(state, Phase.DRIFTING, world, why)
    if state.drift_streak < policy.sustained_reports:
        return _drifting(state, world, f"{why}; retraining at {policy.sustained_reports}")
    if state.rest_since is not None:
        until = state.rest_since + timedelta(seconds=policy.cooldown_seconds)
        if world.now < until:
            return _drifting(state, world, f"{why}; cooling down until {until.isoformat()}")
    if "jobs" in world.faults:
        return _drifting(state, world, f"{why}; job runtime unobservable: {world.faults['jobs']}")
    if world.running_jobs:
        return _drifting(state, world, f"{why}; waiting for job {world.running_jobs[0]} to stop")
    return _start(
        state,
        world,
        kind=RolloutKind.RETRAIN,
        trigger=f"drift:{state.drift_report_id}",
        phase=Phase.RETRAINING,
        reason=f"{why}: retraining",
    )


def _retraining(spec: RolloutSpec, state: RolloutState, world: World) -> RolloutState:
    rollout = _current(state)
    job = world.job
    if "jobs" in world.faults:
        return _hold(state, f"retraining job {rollout.job_id} unobservable: {world.faults['jobs']}")
    if job is None or job.job_id != rollout.job_id:
        if state.since == world.now:
            # The attempt began this round, which submits its job: the round observed jobs
            # before it existed. Its status counts from the next round; the reason stays why
            # the attempt began.
            return state
        return _hold(state, f"retraining job {rollout.job_id} not observed")
    policy = spec.retraining
    if job.status is JobStatus.SUCCEEDED:
        if job.version is None:
            return _end(state, world, Result.FAILED, f"job {job.job_id} registered no version")
        if job.version == rollout.champion_version:
            return _end(state, world, Result.FAILED, f"job {job.job_id} returned the champion")
        return _goto(
            state,
            Phase.EVALUATING,
            world,
            f"job {job.job_id} registered version {job.version}",
            rollout=replace(rollout, candidate_version=job.version),
        )
    if job.status in {JobStatus.FAILED, JobStatus.STOPPED}:
        why = f"job {job.job_id} {job.status.value}: {job.message or 'no message'}"
        if rollout.attempt >= policy.max_attempts:
            return _end(state, world, Result.FAILED, f"{why}; no attempts left")
        return _goto(
            state,
            Phase.RETRAINING,
            world,
            f"{why}; attempt {rollout.attempt + 1} of {policy.max_attempts}",
            rollout=replace(rollout, attempt=rollout.attempt + 1, job_starting_seen_at=None),
        )
    elapsed = _elapsed(state, world)
    detail = job.message or "no message"
    if job.status is JobStatus.STARTING and elapsed > policy.start_timeout_seconds:
        return _end(
            state,
            world,
            Result.FAILED,
            f"job {job.job_id} did not start: its Ray cluster was not up and the job not "
            f"submitted after {elapsed:.0f}s, over the {policy.start_timeout_seconds:.0f}s start "
            f"timeout (retraining.startTimeoutSeconds): {detail}; stopping it",
        )
    # Pending counts from the job's submission: after its own cluster started, if it needed one.
    submitted = rollout.job_starting_seen_at or state.since or world.now
    pending = (world.now - submitted).total_seconds()
    if job.status is JobStatus.PENDING and pending > policy.schedule_timeout_seconds:
        return _end(
            state,
            world,
            Result.FAILED,
            f"job {job.job_id} could not be scheduled: pending {pending:.0f}s after submission, "
            f"over the {policy.schedule_timeout_seconds:.0f}s schedule timeout "
            f"(retraining.scheduleTimeoutSeconds): {detail}; stopping it",
        )
    if elapsed > policy.timeout_seconds:
        return _end(
            state,
            world,
            Result.FAILED,
            f"job {job.job_id} {job.status.value} after {elapsed:.0f}s, "
            f"over the {policy.timeout_seconds:.0f}s timeout "
            f"(retraining.timeoutSeconds): {detail}; stopping it",
        )
    if job.status is JobStatus.STARTING:
        seen = replace(rollout, job_starting_seen_at=world.now)
        reason = f"job {job.job_id} starting for {elapsed:.0f}s: {detail}"
        return _hold(replace(state, rollout=seen), reason)
    return _hold(state, f"job {job.job_id} {job.status.value} for {elapsed:.0f}s")


def _evaluating(spec: RolloutSpec, state: RolloutState, world: World) -> RolloutState:
    rollout = _current(state)
    evidence = _evidence(state, world)
    if evidence is None:
        return _hold(state, f"gate results unobservable: {world.faults.get('store', 'not yet')}")
    gates = evidence.gates
    failed = [g for g in gates if not g.passed]
    if failed:
        return _end(
            state,
            world,
            Result.REJECTED,
            "gates failed: " + "; ".join(f"{g.name}: {g.detail}" for g in failed),
            gates=gates,
        )
    policy = spec.rollout.gates
    missing = [name for name in required_gates(policy) if name not in {g.name for g in gates}]
    if missing:
        elapsed = _elapsed(state, world)
        if elapsed > policy.timeout_seconds:
            return _end(
                state,
                world,
                Result.FAILED,
                f"gates {', '.join(missing)} not evaluated within {policy.timeout_seconds:.0f}s",
            )
        return _hold(state, f"waiting for gates: {', '.join(missing)}")
    return _goto(
        state,
        Phase.DEPLOYING,
        world,
        f"{len(gates)} offline gates passed; deploying version {rollout.candidate_version} "
        f"on {rollout.candidate_colour} in shadow",
        rollout=replace(rollout, gates=gates),
    )


def _deploying(spec: RolloutSpec, state: RolloutState, world: World) -> RolloutState:
    rollout = _current(state)
    colour, version = rollout.candidate_colour, rollout.candidate_version
    if "runtime" in world.faults:
        return _hold(state, f"serving unobservable: {world.faults['runtime']}")
    observed = world.colours.get(colour)
    if not _serves(observed, version):
        elapsed = _elapsed(state, world)
        detail = observed.message if observed else "not deployed"
        if elapsed > spec.rollout.deploy_timeout_seconds:
            return _end(
                state,
                world,
                Result.FAILED,
                f"{colour} not serving version {version} after {elapsed:.0f}s: {detail}",
            )
        return _hold(state, f"waiting for {colour} to serve version {version}: {detail}")
    if rollout.kind is RolloutKind.ROLLBACK:
        return _end(
            replace(
                state,
                active_colour=colour,
                active_version=version,
                passed_versions=state.passed_versions[:-1],
            ),
            world,
            Result.ROLLED_BACK,
            f"rolled back to version {version} on {colour} by operator request",
        )
    return _shadow(spec, state, world)


def _shadow(spec: RolloutSpec, state: RolloutState, world: World) -> RolloutState:
    rollout = _current(state)
    if world.shadow != rollout.candidate_colour:
        return _hold(
            state, f"waiting for live traffic to be mirrored to {rollout.candidate_colour}"
        )
    evidence = _evidence(state, world)
    if evidence is None or evidence.paired is None:
        return _hold(state, f"shadow evidence unobservable: {world.faults.get('store', 'not yet')}")
    policy = spec.rollout.shadow
    paired = evidence.paired
    if paired.pairs < policy.min_paired_outcomes:
        elapsed = _elapsed(state, world)
        if elapsed > policy.max_duration_seconds:
            gate = GateResult(
                "shadow_quality",
                False,
                f"{paired.pairs} paired outcomes in {elapsed:.0f}s, "
                f"fewer than the {policy.min_paired_outcomes} required",
                {"pairs": float(paired.pairs)},
                "shadow",
            )
            return _end(
                state, world, Result.REJECTED, f"shadow_quality: {gate.detail}", gates=(gate,)
            )
        return _hold(
            state, f"shadow: {paired.pairs} of {policy.min_paired_outcomes} paired outcomes"
        )
    gate = quality_gate("shadow_quality", paired, spec.rollout.gates.alpha, "shadow")
    if not gate.passed:
        return _end(state, world, Result.REJECTED, f"shadow_quality: {gate.detail}", gates=(gate,))
    return _goto(
        replace(
            state, active_colour=rollout.candidate_colour, active_version=rollout.candidate_version
        ),
        Phase.VERIFYING,
        world,
        f"shadow passed ({gate.detail}); switched traffic to {rollout.candidate_colour}",
        rollout=replace(rollout, switched_at=world.now, gates=(*rollout.gates, gate)),
    )


def _too_little_traffic(
    state: RolloutState,
    world: World,
    policy: VerificationPolicy,
    requests: int,
    *,
    elapsed: float,
    gates: tuple[GateResult, ...],
) -> RolloutState:
    """Past the window with fewer than the minimum requests: wait for them, up to max_seconds."""
    seen = f"{requests} of the {policy.min_requests} requests needed in {elapsed:.0f}s"
    if elapsed < policy.max_seconds:
        return _hold(state, f"verifying until enough traffic: {seen}")
    rollout = _current(state)
    return _end(
        _back_to_champion(state, rollout),
        world,
        Result.ROLLED_BACK,
        f"rolled back to version {rollout.champion_version}: unverified, {seen}",
        gates=gates,
    )


def _unobservable(
    state: RolloutState, world: World, policy: VerificationPolicy, fault: str
) -> RolloutState:
    """Health not readable: wait, but a candidate nobody can watch is not verified, so past
    `max_seconds` from the switch it is rolled back like one that saw too little traffic."""
    rollout = _current(state)
    switched = rollout.switched_at or state.since or world.now
    elapsed = (world.now - switched).total_seconds()
    if elapsed < policy.max_seconds:
        return _hold(state, f"health unobservable: {fault}")
    return _end(
        _back_to_champion(state, rollout),
        world,
        Result.ROLLED_BACK,
        f"rolled back to version {rollout.champion_version}: unverified, health unobservable "
        f"for {elapsed:.0f}s ({fault})",
    )


def _verifying(spec: RolloutSpec, state: RolloutState, world: World) -> RolloutState:
    rollout = _current(state)
    evidence = _evidence(state, world)
    health = evidence.health if evidence else None
    policy = spec.rollout.verification
    if "runtime" in world.faults or evidence is None or health is None:
        return _unobservable(state, world, policy, world.faults.get("runtime", "not yet"))
    problems = []
    if health.requests >= policy.min_requests and health.error_rate > policy.max_error_rate:
        problems.append(
            f"error rate {health.error_rate:.2%} over {health.requests} requests "
            f"> {policy.max_error_rate:.2%}"
        )
    if (
        health.requests >= policy.min_requests
        and health.p99_ms is not None
        and health.p99_ms > policy.max_p99_latency_ms
    ):
        problems.append(f"p99 {health.p99_ms:.1f} ms > {policy.max_p99_latency_ms:.1f} ms")
    gates: tuple[GateResult, ...] = ()
    paired = evidence.paired
    if paired is not None and paired.pairs >= spec.rollout.shadow.min_paired_outcomes:
        gate = quality_gate("live_quality", paired, spec.rollout.gates.alpha, "live")
        gates = (gate,)
        if not gate.passed:
            problems.append(f"live_quality: {gate.detail}")
    if problems:
        return _end(
            _back_to_champion(state, rollout),
            world,
            Result.ROLLED_BACK,
            f"rolled back to version {rollout.champion_version}: " + "; ".join(problems),
            gates=gates,
        )
    switched = rollout.switched_at or world.now
    # Only what was watched counts: a controller restarted mid-window lost the counts since the
    # switch, so it watches a whole window of its own before it vouches for the candidate.
    watched_from = max(switched, health.since) if health.since else switched
    elapsed = (world.now - watched_from).total_seconds()
    summary = (
        f"{health.requests} requests, error rate {health.error_rate:.2%}, "
        f"p99 {'n/a' if health.p99_ms is None else f'{health.p99_ms:.1f} ms'}"
    )
    if elapsed < policy.window_seconds:
        return _hold(state, f"verifying for {policy.window_seconds - elapsed:.0f}s more: {summary}")
    if health.requests < policy.min_requests:
        return _too_little_traffic(
            state, world, policy, health.requests, elapsed=elapsed, gates=gates
        )
    version = rollout.candidate_version
    assert version is not None
    if spec.rollout.require_approval:
        approval = world.approval
        if approval is None or approval.version != version or not approval.merged:
            return _hold(state, f"verified ({summary}); {_awaiting(approval, version, world)}")
        summary += f"; approved: {approval.branch} merged into {approval.target}"
    return _end(
        replace(state, passed_versions=(*state.passed_versions, version)),
        world,
        Result.PROMOTED,
        f"promoted version {version} after {elapsed:.0f}s of verification: {summary}",
        gates=gates,
    )


def _awaiting(approval: Approval | None, version: str, world: World) -> str:
    if "registry" in world.faults:
        return f"approval unobservable: {world.faults['registry']}"
    if approval is None or approval.version != version or approval.commit is None:
        return f"requesting approval to promote version {version}"
    return (
        f"awaiting approval: {approval.branch} at {approval.commit[:10]} "
        f"not yet merged into {approval.target}"
    )


def _handle_request(
    spec: RolloutSpec, state: RolloutState, world: World, request: ManualRequest
) -> RolloutState:
    refusal = _refusal(spec, state, world, request)
    if refusal is not None:
        return _remember(_hold(state, refusal), request, f"refused: {refusal}")
    trigger = f"request:{request.request_id}"
    if request.kind == "promote":
        assert request.version is not None
        started = _start(
            state,
            world,
            kind=RolloutKind.PROMOTE,
            trigger=trigger,
            phase=Phase.EVALUATING,
            reason=f"operator {request.actor} asked to promote version {request.version}",
            candidate_version=request.version,
        )
        return _remember(started, request, f"accepted as rollout {_current(started).rollout_id}")
    rollout = state.current
    if rollout is not None:
        verb = "rolled back" if state.phase is Phase.VERIFYING else "aborted"
        ended = _end(
            _back_to_champion(state, rollout),
            world,
            Result.ROLLED_BACK,
            f"rollout {verb} by {request.actor}; version {rollout.champion_version} serves",
        )
        return _remember(ended, request, f"{verb} rollout {rollout.rollout_id}")
    previous = state.passed_versions[-2]
    started = _start(
        state,
        world,
        kind=RolloutKind.ROLLBACK,
        trigger=trigger,
        phase=Phase.DEPLOYING,
        reason=f"operator {request.actor} asked to roll back to version {previous}",
        candidate_version=previous,
    )
    return _remember(started, request, f"rolling back to version {previous}")


def _refusal(
    spec: RolloutSpec, state: RolloutState, world: World, request: ManualRequest
) -> str | None:
    if spec.paused:
        return "the controller is paused"
    if state.active_version is None:
        return "no champion serves yet"
    if request.kind == "rollback":
        if state.current is None and len(state.passed_versions) < 2:
            return "no earlier version passed its gates"
        return None
    if request.version is None:
        return "no version given"
    if state.current is not None:
        return f"rollout {state.current.rollout_id} is in progress ({state.phase.value})"
    if request.version == state.active_version:
        return f"version {request.version} already serves"
    if world.running_jobs:
        return f"retraining job {world.running_jobs[0]} is still running"
    return None


# --- state helpers ----------------------------------------------------------------------------
def _hold(state: RolloutState, reason: str) -> RolloutState:
    return state if state.reason == reason else replace(state, reason=reason)


def _goto(
    state: RolloutState, phase: Phase, world: World, reason: str, **changes: object
) -> RolloutState:
    return replace(state, phase=phase, since=world.now, reason=reason, **changes)  # type: ignore[arg-type]


def _drifting(state: RolloutState, world: World, reason: str) -> RolloutState:
    if state.phase is Phase.DRIFTING:
        return _hold(state, reason)
    return _goto(state, Phase.DRIFTING, world, reason)


def _start(
    state: RolloutState,
    world: World,
    *,
    kind: RolloutKind,
    trigger: str,
    phase: Phase,
    reason: str,
    candidate_version: str | None = None,
) -> RolloutState:
    assert state.active_version is not None
    rollout = Rollout(
        rollout_id=rollout_id(state.model_name, trigger),
        kind=kind,
        trigger=trigger,
        started_at=world.now,
        champion_version=state.active_version,
        champion_colour=state.active_colour,
        candidate_colour=other_colour(state.active_colour),
        candidate_version=candidate_version,
    )
    return _goto(state, phase, world, reason, rollout=rollout)


def _end(
    state: RolloutState,
    world: World,
    result: Result,
    reason: str,
    gates: tuple[GateResult, ...] = (),
) -> RolloutState:
    rollout = _current(state)
    ended = replace(rollout, result=result, gates=_merge(rollout.gates, gates))
    return replace(
        state,
        phase=_END_PHASE[result],
        since=world.now,
        reason=reason,
        rollout=ended,
        rest_since=world.now,
        drift_streak=0,
    )


def _remember(state: RolloutState, request: ManualRequest, outcome: str) -> RolloutState:
    handled = (*state.handled_requests, (request.request_id, outcome))
    return replace(state, handled_requests=handled)


def _back_to_champion(state: RolloutState, rollout: Rollout) -> RolloutState:
    return replace(
        state, active_colour=rollout.champion_colour, active_version=rollout.champion_version
    )


def _current(state: RolloutState) -> Rollout:
    assert state.rollout is not None, f"phase {state.phase} without a rollout"
    return state.rollout


def _evidence(state: RolloutState, world: World) -> Evidence | None:
    """The world's evidence, if it was observed for this rollout in this phase."""
    evidence, rollout = world.evidence, state.current
    if evidence is None or rollout is None or "store" in world.faults:
        return None
    if (evidence.rollout_id, evidence.phase) != (rollout.rollout_id, state.phase):
        return None
    return evidence


def _elapsed(state: RolloutState, world: World) -> float:
    return (world.now - (state.since or world.now)).total_seconds()


def _merge(kept: tuple[GateResult, ...], new: tuple[GateResult, ...]) -> tuple[GateResult, ...]:
    names = {g.name for g in new}
    return (*(g for g in kept if g.name not in names), *new)


def _serves(observed: ColourObservation | None, version: str | None) -> bool:
    return observed is not None and observed.ready and observed.version == version


def quality_gate(name: str, paired: PairedEvidence, alpha: float, stage: GateStage) -> GateResult:
    """Fails only when the candidate's loss is significantly greater than the champion's."""
    figures: dict[str, float | None] = {
        "pairs": float(paired.pairs),
        "statistic": paired.statistic,
        "pvalue": paired.pvalue,
        "candidate_loss": paired.candidate_loss,
        "champion_loss": paired.champion_loss,
        "alpha": alpha,
    }
    worse = paired.pvalue is not None and paired.pvalue < alpha
    p = "n/a" if paired.pvalue is None else f"{paired.pvalue:.4g}"
    detail = (
        f"{paired.test} on {paired.pairs} paired losses: candidate "
        f"{'worse' if worse else 'not worse'} than champion (p={p}, alpha={alpha})"
    )
    return GateResult(name, not worse, detail, figures, stage)


# --- converging the world to the state --------------------------------------------------------
def converge(spec: RolloutSpec, state: RolloutState, world: World) -> tuple[Action, ...]:
    """Idempotent actions that bring the world to what `state` wants."""
    actions: list[Action] = [
        ConsumeRequest(r.request_id, dict(state.handled_requests)[r.request_id])
        for r in world.requests
        if r.request_id in dict(state.handled_requests)
    ]
    if spec.paused:
        return tuple(actions)
    if "jobs" not in world.faults:
        actions += _converge_jobs(state, world)
    if "store" not in world.faults:
        actions += _converge_gates(spec, state, world)
    if "runtime" not in world.faults:
        actions += _converge_serving(spec, state, world)
    if "registry" not in world.faults:
        actions += _converge_approval(spec, state, world)
        actions += _converge_champion(state, world)
    return tuple(actions)


def _converge_jobs(state: RolloutState, world: World) -> list[Action]:
    wanted = state.current.job_id if state.phase is Phase.RETRAINING and state.current else None
    stray = [job for job in world.running_jobs if job != wanted]
    actions: list[Action] = [StopRetraining(job, "not the current rollout's job") for job in stray]
    rollout = state.current
    if wanted is None or rollout is None or stray:
        return actions
    job = world.job
    # A job observed absent, or an attempt that began this round (so none can exist yet).
    absent = job.job_id == wanted and job.status is JobStatus.ABSENT if job else False
    fresh = state.since == world.now and (job is None or job.job_id != wanted)
    if absent or fresh:
        actions.append(SubmitRetraining(wanted, rollout.rollout_id, rollout.trigger))
    return actions


def _converge_gates(spec: RolloutSpec, state: RolloutState, world: World) -> list[Action]:
    rollout = state.current
    if state.phase is not Phase.EVALUATING or rollout is None:
        return []
    evidence = _evidence(state, world)
    names = {g.name for g in evidence.gates} if evidence else set()
    if all(name in names for name in required_gates(spec.rollout.gates)):
        return []
    assert rollout.candidate_version is not None
    return [RunGates(rollout.rollout_id, rollout.candidate_version, rollout.champion_version)]


def desired_colours(state: RolloutState) -> dict[Colour, str]:
    """The version each colour should serve in `state`."""
    wanted: dict[Colour, str] = {}
    if state.active_version is not None:
        wanted[state.active_colour] = state.active_version
    rollout = state.current
    if rollout is not None and rollout.candidate_version is not None:
        if state.phase is Phase.DEPLOYING:
            wanted[rollout.candidate_colour] = rollout.candidate_version
        elif state.phase is Phase.VERIFYING:
            wanted[rollout.champion_colour] = rollout.champion_version
    return wanted


def desired_route(state: RolloutState) -> tuple[Colour, Colour | None]:
    """The colour taking traffic and the one mirrored to, in `state`."""
    rollout = state.current
    if rollout is None:
        return state.active_colour, None
    if state.phase is Phase.DEPLOYING and rollout.kind is not RolloutKind.ROLLBACK:
        return state.active_colour, rollout.candidate_colour
    if state.phase is Phase.VERIFYING:
        # The old champion keeps scoring in shadow: live quality is compared on the same requests.
        return state.active_colour, rollout.champion_colour
    return state.active_colour, None


def _converge_serving(spec: RolloutSpec, state: RolloutState, world: World) -> list[Action]:
    wanted = desired_colours(state)
    actions: list[Action] = []
    for colour, version in wanted.items():
        observed = world.colours.get(colour)
        # The colour taking traffic is never redeployed in place: that would fail requests.
        if observed is None or (observed.version != version and world.routed != colour):
            actions.append(Deploy(colour, version))
    active, shadow = desired_route(state)
    if _serves(world.colours.get(active), wanted.get(active)):
        if shadow is not None and not _serves(world.colours.get(shadow), wanted.get(shadow)):
            shadow = None
        if (world.routed, world.shadow) != (active, shadow):
            actions.append(Route(active, shadow))
    if _drained(spec, state, world):
        actions += [
            Retire(colour)
            for colour, observed in sorted(world.colours.items())
            if colour not in wanted
            and colour not in {world.routed, world.shadow}
            and not observed.retiring
        ]
    return actions


def _drained(spec: RolloutSpec, state: RolloutState, world: World) -> bool:
    """Whether requests routed before this phase began have all ended.

    A colour leaves routing in the round its phase begins (the Route converging it runs then);
    requests already sent to it finish within the serving deadline, so `drainSeconds` after
    that it can be retired without cutting any off.
    """
    return _elapsed(state, world) >= spec.rollout.drain_seconds


def _converge_approval(spec: RolloutSpec, state: RolloutState, world: World) -> list[Action]:
    """Push the promotion for review as soon as the candidate takes traffic.

    The reviewer can read the offline and shadow evidence while verification runs; the
    promotion counts only once verification passed *and* the commit reached the target branch.
    """
    rollout = state.current
    if not spec.rollout.require_approval or state.phase is not Phase.VERIFYING or rollout is None:
        return []
    version = rollout.candidate_version
    assert version is not None
    approval = world.approval
    if (
        approval is not None
        and approval.version == version
        and (approval.commit is not None or approval.merged)
    ):
        return []
    reason = (
        f"Version {version} passed its offline gates and shadow; it serves live traffic on "
        f"{state.active_colour} while verification runs. Merging this commit approves its "
        f"promotion; `driftline rollback` rejects it."
    )
    champion, rid, gates = rollout.champion_version, rollout.rollout_id, rollout.gates
    promotion = SetChampion(
        version, champion, rid, reason, rollout.trigger, gates, colour=state.active_colour
    )
    return [RequestApproval(promotion)]


def _converge_champion(state: RolloutState, world: World) -> list[Action]:
    champion = state.last_passed
    if champion is None or world.champion_version == champion:
        return []
    rollout = state.rollout
    # The colour the champion serves on, when it is the one taking traffic.
    colour = state.active_colour if state.active_version == champion else None
    # A promotion or operator rollback publishes its own record; anything else restores ours.
    if rollout is not None and state.phase in {Phase.PROMOTED, Phase.ROLLED_BACK}:
        return [
            SetChampion(
                champion,
                world.champion_version,
                rollout.rollout_id,
                state.reason,
                rollout.trigger,
                rollout.gates,
                rollback=state.phase is Phase.ROLLED_BACK,
                colour=colour,
            )
        ]
    return [
        SetChampion(
            champion,
            world.champion_version,
            None,
            f"champion moved outside the controller to {world.champion_version}; restoring "
            f"{champion} (use `driftline promote` to change it)",
            colour=colour,
        )
    ]
