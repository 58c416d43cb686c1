"""Invariants of the pure core, held by hypothesis over simulated worlds, plus worked examples."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from driftline.contracts import Severity
from operators.actions import (
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
from operators.codec import decode_state, encode_state
from operators.decide import Decision, decide
from operators.observations import (
    Approval,
    ColourObservation,
    DriftSignal,
    Evidence,
    Health,
    JobObservation,
    JobStatus,
    ManualRequest,
    Observed,
    PairedEvidence,
    World,
)
from operators.spec import RolloutSpec, required_gates
from operators.states import GateResult, Phase, Result, RolloutState
from tests.operators.simworld import START, Change, SimWorld, changes, evolve, specs

ROUNDS = 40


def _rounds(*, hostile: bool) -> st.SearchStrategy[list[Change]]:
    return st.lists(changes(hostile=hostile), min_size=ROUNDS, max_size=ROUNDS)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs(), rounds=_rounds(hostile=True))
def test_invariants_hold_in_a_hostile_world(spec: RolloutSpec, rounds: list[Change]) -> None:
    """Operator requests, outages of every source and failing actions."""
    _check_invariants(spec, rounds)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs(), rounds=_rounds(hostile=False))
def test_invariants_hold_in_a_cooperative_world(spec: RolloutSpec, rounds: list[Change]) -> None:
    """Drift, jobs, gates and evidence only: most traces run whole rollouts."""
    _check_invariants(spec, rounds)


def _check_invariants(spec: RolloutSpec, rounds: list[Change]) -> None:
    sim = SimWorld()
    state: RolloutState | None = None
    rejected: set[str] = set()
    for change in rounds:
        verdicts = evolve(sim, change, spec)
        world = sim.observe(state)
        decision = decide(spec, Observed(state, world))

        # Idempotent: the same observations decide the same, and deciding again changes nothing.
        assert decide(spec, Observed(state, world)) == decision
        again = decide(spec, Observed(decision.state, world))
        assert again.state == decision.state
        assert again.actions == decision.actions
        assert again.transitions == ()

        new = decision.state
        for phase in {new.phase, *(t.phase_to for t in decision.transitions)}:
            event(f"reached {phase.value}")
        _check_round(spec, world, decision, rejected)
        # What is stored is what a restarted controller resumes from, exactly.
        assert decode_state(json.loads(json.dumps(encode_state(new)))) == new
        for action in decision.actions:
            if isinstance(action, Route):
                assert sim.colours[action.active].version == new.active_version

        # The simulated runtime asserts the rest as it applies the actions: at most one job runs,
        # traffic only goes to a ready colour, the colour taking traffic is never redeployed or
        # retired, and exactly one colour is routed. Some actions fail, as they do in real life.
        for index, action in enumerate(decision.actions):
            if index not in change.failed_actions:
                sim.apply(action, verdicts)
        assert len(sim.running()) <= 1
        assert sim.routed is not None
        assert sim.shadow != sim.routed
        state = new


def _check_round(spec: RolloutSpec, world: World, decision: Decision, rejected: set[str]) -> None:
    new = decision.state
    rollout = new.rollout
    if rollout is not None and rollout.failed_gates:
        rejected.add(rollout.rollout_id)
    # A candidate that failed a gate is never promoted, nor published as champion.
    if rollout is not None and rollout.rollout_id in rejected:
        assert new.phase is not Phase.PROMOTED
        assert not any(
            isinstance(a, SetChampion) and a.rollout_id == rollout.rollout_id
            for a in decision.actions
        )
    if new.phase is Phase.PROMOTED and rollout is not None:
        names = {g.name for g in rollout.gates if g.passed}
        assert set(required_gates(spec.rollout.gates)) <= names
        assert "shadow_quality" in names
    # Shadow first: traffic switches to a candidate only after it was mirrored to it.
    for t in decision.transitions:
        if t.phase_to is Phase.VERIFYING:
            assert rollout is not None
            assert world.shadow == rollout.candidate_colour
    # Under approval, a promotion needs the reviewer's merge of its own commit.
    for t in decision.transitions:
        if t.phase_to is Phase.PROMOTED and spec.rollout.require_approval:
            assert rollout is not None
            assert world.approval is not None
            assert world.approval.merged
            assert world.approval.version == rollout.candidate_version
            event("promoted after approval")
    # A rollback always returns to the last version that passed.
    if new.phase is Phase.ROLLED_BACK:
        assert new.active_version == new.last_passed
    for action in decision.actions:
        if isinstance(action, SetChampion):
            assert action.version == new.last_passed


def test_same_report_is_counted_once() -> None:
    spec = RolloutSpec(model_name="m")
    world = World(now=START, champion_version="1", drift=(DriftSignal("r1", Severity.HIGH, START),))
    first = decide(spec, Observed(None, world))
    second = decide(spec, Observed(first.state, world))
    assert first.state.drift_streak == second.state.drift_streak == 1
    assert second.state.phase is Phase.DRIFTING


# --- a walk through the whole machine ---------------------------------------------------------
def _serving(**colours: str) -> dict[str, ColourObservation]:
    return {c: ColourObservation(v, True) for c, v in colours.items()}


def _advance(state: RolloutState, world: World, spec: RolloutSpec) -> Decision:
    return decide(spec, Observed(state, world))


def _after_switch(state: RolloutState, now: datetime, health: Health) -> World:
    """Green (version 2) routed, blue (1) its shadow, and `health` since the switch."""
    assert state.rollout is not None
    evidence = Evidence(state.rollout.rollout_id, Phase.VERIFYING, health=health)
    colours = _serving(blue="1", green="2")
    return World(
        now=now,
        champion_version="1",
        routed="green",
        shadow="blue",
        colours=colours,
        evidence=evidence,
    )


def test_drift_to_promotion_walks_every_phase() -> None:
    spec = RolloutSpec.model_validate(
        {
            "modelName": "m",
            "driftPolicy": {"sustainedReports": 2, "cooldownSeconds": 0},
            "rollout": {"shadow": {"minPairedOutcomes": 10}, "verification": {"windowSeconds": 60}},
        }
    )
    t = START
    base = World(now=t, champion_version="1", routed="blue", colours=_serving(blue="1"))
    d = decide(spec, Observed(None, replace(base, drift=(DriftSignal("r1", Severity.HIGH, t),))))
    assert d.state.phase is Phase.DRIFTING
    assert d.actions == ()

    t += timedelta(minutes=5)
    d = _advance(
        d.state, replace(base, now=t, drift=(DriftSignal("r2", Severity.CRITICAL, t),)), spec
    )
    assert d.state.phase is Phase.RETRAINING
    assert d.state.rollout is not None
    # The job is submitted this round, so none was observed: the reason stays why it started.
    assert d.reason == "drift critical in 2 consecutive report(s): retraining"
    job_id = d.state.rollout.job_id
    # The job is not observed yet: the absent job is (re)submitted, idempotently.
    w = replace(base, now=t, drift=(DriftSignal("r2", Severity.CRITICAL, t),))
    d = _advance(d.state, replace(w, job=JobObservation(job_id, JobStatus.ABSENT)), spec)
    assert d.actions == (SubmitRetraining(job_id, d.state.rollout.rollout_id, "drift:r2"),)

    t += timedelta(minutes=20)
    w = replace(w, now=t, job=JobObservation(job_id, JobStatus.SUCCEEDED, "2"))
    d = _advance(d.state, w, spec)
    assert d.state.phase is Phase.EVALUATING
    assert d.actions == (RunGates(d.state.rollout.rollout_id, "2", "1"),)

    rid = d.state.rollout.rollout_id
    gates = tuple(GateResult(n, True, "ok") for n in required_gates(spec.rollout.gates))
    w = replace(w, job=None, evidence=Evidence(rid, Phase.EVALUATING, gates))
    d = _advance(d.state, w, spec)
    assert d.state.phase is Phase.DEPLOYING
    assert d.actions == (Deploy("green", "2"),)

    w = replace(w, colours=_serving(blue="1", green="2"))
    d = _advance(d.state, w, spec)
    assert d.actions == (Route("blue", "green"),)
    assert d.reason == "waiting for live traffic to be mirrored to green"

    paired = PairedEvidence(12, "dm", 0.4, 0.7, 1.0, 1.1)
    w = replace(w, shadow="green", evidence=Evidence(rid, Phase.DEPLOYING, paired=paired))
    d = _advance(d.state, w, spec)
    assert d.state.phase is Phase.VERIFYING
    assert d.state.active_colour == "green"
    assert d.actions == (Route("green", "blue"),)

    health = Evidence(rid, Phase.VERIFYING, health=Health(100, 0, 30.0))
    w = replace(w, routed="green", shadow="blue", evidence=health)
    t += timedelta(seconds=61)
    d = _advance(d.state, replace(w, now=t), spec)
    assert d.state.phase is Phase.PROMOTED
    assert d.state.passed_versions == ("1", "2")
    assert Route("green", None) in d.actions
    (champion,) = [a for a in d.actions if isinstance(a, SetChampion)]
    assert (champion.version, champion.trigger, champion.rollback) == ("2", "drift:r2", False)

    w = replace(w, now=t, shadow=None, champion_version="2")
    d = _advance(d.state, w, spec)
    assert d.actions == ()  # requests routed to blue before the switch are still draining
    w = replace(w, now=t + timedelta(seconds=spec.rollout.drain_seconds))
    d = _advance(d.state, w, spec)
    assert d.actions == (Retire("blue"),)
    # While blue is being deleted it is not retired again: one request, one audit event.
    deleting = ColourObservation(None, False, "DELETING", retiring=True)
    w = replace(w, colours={**_serving(green="2"), "blue": deleting})
    assert _advance(d.state, w, spec).actions == ()


def test_regression_after_switch_rolls_back_to_last_passed() -> None:
    spec = RolloutSpec.model_validate(
        {"modelName": "m", "rollout": {"verification": {"minRequests": 10}}}
    )
    state = _verifying_state()
    world = _after_switch(state, START + timedelta(seconds=30), Health(50, 5, 20.0))
    d = decide(spec, Observed(state, world))
    assert d.state.phase is Phase.ROLLED_BACK
    assert d.state.active_version == "1" == d.state.last_passed
    assert d.actions == (Route("blue", None),)
    assert "error rate 10.00%" in d.reason


def test_a_restarted_controller_verifies_a_whole_window_of_its_own() -> None:
    # Counts since the switch died with the old process; the new one began counting at `since`.
    spec = RolloutSpec.model_validate({"modelName": "m", "rollout": {"verification": {}}})
    window = spec.rollout.verification.window_seconds
    state = _verifying_state()
    late = START + timedelta(seconds=window + 60)

    def verdict(since_s: float | None) -> Decision:
        since = None if since_s is None else START + timedelta(seconds=since_s)
        world = _after_switch(state, late, Health(40, 0, 12.0, since=since))
        return decide(spec, Observed(state, world))

    assert verdict(window + 50).state.phase is Phase.VERIFYING
    assert "verifying for" in verdict(window + 50).reason
    assert verdict(50).state.phase is Phase.PROMOTED
    assert verdict(None).state.phase is Phase.PROMOTED


def test_under_approval_verification_passes_but_promotion_waits_for_the_merge() -> None:
    spec = RolloutSpec.model_validate({"modelName": "m", "rollout": {"requireApproval": True}})
    state = _verifying_state()
    branch = "driftline/promote-m-2"
    early = _after_switch(state, START + timedelta(seconds=5), Health(40, 0, 12.0))
    d = decide(spec, Observed(state, early))
    (request,) = [a for a in d.actions if isinstance(a, RequestApproval)]
    assert (request.promotion.version, request.promotion.previous) == ("2", "1")
    # Requested already (the branch exists): nothing more to ask for.
    pending = replace(early, approval=Approval("2", branch, "main", "abc1234def0"))
    assert not any(
        isinstance(a, RequestApproval) for a in decide(spec, Observed(state, pending)).actions
    )

    late = START + timedelta(seconds=spec.rollout.verification.window_seconds + 1)
    waiting = replace(pending, now=late)
    d = decide(spec, Observed(state, waiting))
    assert d.state.phase is Phase.VERIFYING
    assert d.reason.endswith(f"awaiting approval: {branch} at abc1234def not yet merged into main")
    assert not any(isinstance(a, SetChampion) for a in d.actions)

    merged = replace(waiting, approval=Approval("2", branch, "main", "abc1234def0", merged=True))
    d = decide(spec, Observed(state, merged))
    assert d.state.phase is Phase.PROMOTED
    assert d.reason.endswith(f"approved: {branch} merged into main")
    # A regression still rolls back while the promotion waits for review.
    sick = _after_switch(state, late, Health(50, 5, 20.0))
    assert decide(spec, Observed(state, replace(sick, approval=pending.approval))).state.phase is (
        Phase.ROLLED_BACK
    )


def test_too_little_traffic_waits_past_the_window_then_rolls_back_unverified() -> None:
    spec = RolloutSpec.model_validate(
        {
            "modelName": "m",
            "rollout": {
                "verification": {"windowSeconds": 60, "minRequests": 20, "maxSeconds": 300}
            },
        }
    )
    state = _verifying_state()

    def verdict(after_s: float, requests: int) -> Decision:
        world = _after_switch(state, START + timedelta(seconds=after_s), Health(requests, 0, 9.0))
        return decide(spec, Observed(state, world))

    assert verdict(120, 5).state.phase is Phase.VERIFYING
    assert verdict(120, 5).reason == (
        "verifying until enough traffic: 5 of the 20 requests needed in 120s"
    )
    assert verdict(120, 20).state.phase is Phase.PROMOTED
    late = verdict(300, 19)
    assert late.state.phase is Phase.ROLLED_BACK
    assert late.state.active_version == "1" == late.state.last_passed
    assert late.reason == (
        "rolled back to version 1: unverified, 19 of the 20 requests needed in 300s"
    )
    assert late.actions == (Route("blue", None),)


def test_unobservable_health_waits_then_rolls_back_unverified() -> None:
    # Issue 13: a candidate nobody can watch is not verified, and the wait for it is bounded.
    spec = RolloutSpec.model_validate(
        {"modelName": "m", "rollout": {"verification": {"windowSeconds": 60, "maxSeconds": 300}}}
    )
    state = _verifying_state()

    def verdict(after_s: float, *, fault: bool) -> Decision:
        world = _after_switch(state, START + timedelta(seconds=after_s), Health(40, 0, 9.0))
        if fault:
            world = replace(world, evidence=None, faults={"runtime": "scrape refused"})
        else:
            world = replace(world, evidence=None)
        return decide(spec, Observed(state, world))

    held = verdict(299, fault=True)
    assert held.state.phase is Phase.VERIFYING
    assert held.reason == "health unobservable: scrape refused"
    assert held.actions == ()
    for fault in (True, False):
        late = verdict(300, fault=fault)
        assert late.state.phase is Phase.ROLLED_BACK
        assert late.state.active_version == "1" == late.state.last_passed
        assert late.state.rollout is not None
        assert late.state.rollout.result is Result.ROLLED_BACK
        # An unreadable runtime is not routed blindly: the route follows once it answers.
        assert late.actions == (() if fault else (Route("blue", None),))
        assert late.reason.startswith("rolled back to version 1: unverified, health unobservable")
    assert late.reason.endswith("for 300s (not yet)")
    # The end of a rollout is a transition, which the controller audits.
    assert [t.phase_to for t in verdict(301, fault=True).transitions] == [Phase.ROLLED_BACK]


def test_retraining_timeout_fails_and_stops_the_job() -> None:
    spec = RolloutSpec.model_validate({"modelName": "m", "retraining": {"timeoutSeconds": 60}})
    state = _verifying_state()
    assert state.rollout is not None
    state = replace(state, phase=Phase.RETRAINING, active_colour="blue", active_version="1")
    job_id = state.rollout.job_id
    world = World(
        now=START + timedelta(seconds=61),
        champion_version="1",
        routed="blue",
        colours=_serving(blue="1"),
        job=JobObservation(job_id, JobStatus.RUNNING),
        running_jobs=(job_id,),
    )
    d = decide(spec, Observed(state, world))
    assert d.state.phase is Phase.FAILED
    assert "over the 60s timeout" in d.reason
    assert d.actions == (StopRetraining(job_id, "not the current rollout's job"),)


def test_a_failed_job_is_retried_and_the_new_attempt_is_submitted_in_the_same_round() -> None:
    spec = RolloutSpec(model_name="m")
    state = _verifying_state()
    assert state.rollout is not None
    state = replace(state, phase=Phase.RETRAINING, active_colour="blue", active_version="1")
    first = state.rollout.job_id
    world = World(
        now=START + timedelta(seconds=30),
        champion_version="1",
        routed="blue",
        colours=_serving(blue="1"),
        job=JobObservation(first, JobStatus.FAILED, message="exit 1"),
    )
    d = decide(spec, Observed(state, world))
    assert d.state.phase is Phase.RETRAINING
    assert d.state.rollout is not None
    second = d.state.rollout.job_id
    assert second != first
    # Only the first attempt's job was observable this round; the retry's reason stands.
    assert d.reason == f"job {first} failed: exit 1; attempt 2 of 2"
    assert d.actions == (SubmitRetraining(second, d.state.rollout.rollout_id, "drift:r1"),)


def test_a_job_the_cluster_cannot_place_fails_within_the_schedule_timeout() -> None:
    spec = RolloutSpec(model_name="m")
    state = _verifying_state()
    assert state.rollout is not None
    state = replace(state, phase=Phase.RETRAINING, active_colour="blue", active_version="1")
    job_id = state.rollout.job_id

    def world(seconds: float, status: JobStatus) -> World:
        return World(
            now=START + timedelta(seconds=seconds),
            champion_version="1",
            routed="blue",
            colours=_serving(blue="1"),
            job=JobObservation(job_id, status, message="waiting for 0.5 CPU"),
            running_jobs=(job_id,),
        )

    assert decide(spec, Observed(state, world(59, JobStatus.PENDING))).state.phase is (
        Phase.RETRAINING
    )
    # A running job is bounded by the job timeout, not the schedule timeout.
    assert decide(spec, Observed(state, world(61, JobStatus.RUNNING))).state.phase is (
        Phase.RETRAINING
    )
    d = decide(spec, Observed(state, world(61, JobStatus.PENDING)))
    assert d.state.phase is Phase.FAILED
    assert d.reason == (
        f"job {job_id} could not be scheduled: pending 61s after submission, over the 60s "
        "schedule timeout (retraining.scheduleTimeoutSeconds): waiting for 0.5 CPU; stopping it"
    )
    assert d.actions == (StopRetraining(job_id, "not the current rollout's job"),)


def _starting_job() -> tuple[RolloutState, str, Callable[..., World]]:
    """A retraining state since START and a world of its job at some second and status."""
    state = _verifying_state()
    assert state.rollout is not None
    state = replace(state, phase=Phase.RETRAINING, active_colour="blue", active_version="1")
    job_id = state.rollout.job_id

    def world(seconds: float, status: JobStatus, message: str) -> World:
        return World(
            now=START + timedelta(seconds=seconds),
            champion_version="1",
            routed="blue",
            colours=_serving(blue="1"),
            job=JobObservation(job_id, status, message=message),
            running_jobs=(job_id,),
        )

    return state, job_id, world


def _run(spec: RolloutSpec, state: RolloutState, *worlds: World) -> Decision:
    """Decide round after round, each from the state the last one stored."""
    decision = None
    for world in worlds:
        decision = decide(spec, Observed(state, world))
        state = decision.state
    assert decision is not None
    return decision


def test_a_cold_start_is_bounded_by_the_start_timeout_not_the_schedule_timeout() -> None:
    spec = RolloutSpec(model_name="m")
    state, job_id, world = _starting_job()
    pulling = "Ray cluster rt-1 starting: HeadPodReady: ContainerCreating"
    # Minutes of node scale-up and image pulls: well past the 60 s schedule timeout, still fine.
    d = _run(spec, state, *(world(s, JobStatus.STARTING, pulling) for s in (30, 300, 590)))
    assert d.state.phase is Phase.RETRAINING
    assert d.reason == f"job {job_id} starting for 590s: {pulling}"
    assert d.actions == ()
    d = decide(spec, Observed(d.state, world(601, JobStatus.STARTING, pulling)))
    assert d.state.phase is Phase.FAILED
    assert d.reason == (
        f"job {job_id} did not start: its Ray cluster was not up and the job not submitted "
        "after 601s, over the 600s start timeout (retraining.startTimeoutSeconds): "
        f"{pulling}; stopping it"
    )
    assert [(t.phase_from, t.phase_to, t.reason) for t in d.transitions] == [
        (Phase.RETRAINING, Phase.FAILED, d.reason)
    ]
    assert d.actions == (StopRetraining(job_id, "not the current rollout's job"),)


def test_the_start_timeout_is_its_own_setting() -> None:
    spec = RolloutSpec.model_validate(
        {"modelName": "m", "retraining": {"startTimeoutSeconds": 120}}
    )
    state, _, world = _starting_job()
    d = _run(spec, state, world(100, JobStatus.STARTING, ""), world(121, JobStatus.STARTING, ""))
    assert d.state.phase is Phase.FAILED
    assert "over the 120s start timeout (retraining.startTimeoutSeconds): no message" in d.reason


def test_after_a_cold_start_the_schedule_timeout_counts_from_submission() -> None:
    spec = RolloutSpec(model_name="m")
    state, job_id, world = _starting_job()
    waiting = "Job has not started yet; waiting for 0.5 CPU"
    starting = [world(s, JobStatus.STARTING, "Ray cluster starting") for s in (100, 400)]
    # Last seen starting at 400 s: submitted after that, so pending is counted from there.
    d = _run(spec, state, *starting, world(415, JobStatus.PENDING, waiting))
    assert d.state.phase is Phase.RETRAINING
    assert d.reason == f"job {job_id} pending for 415s"
    d = _run(spec, d.state, world(445, JobStatus.PENDING, waiting))
    assert d.state.phase is Phase.RETRAINING
    d = _run(spec, d.state, world(461, JobStatus.PENDING, waiting))
    assert d.state.phase is Phase.FAILED
    assert d.reason == (
        f"job {job_id} could not be scheduled: pending 61s after submission, over the 60s "
        f"schedule timeout (retraining.scheduleTimeoutSeconds): {waiting}; stopping it"
    )
    assert d.actions == (StopRetraining(job_id, "not the current rollout's job"),)


def test_a_retry_starts_its_cold_start_afresh() -> None:
    spec = RolloutSpec(model_name="m")
    state, _, world = _starting_job()
    d = _run(spec, state, world(300, JobStatus.STARTING, ""), world(900, JobStatus.FAILED, "x"))
    assert d.state.phase is Phase.RETRAINING
    assert d.state.rollout is not None
    assert d.state.rollout.attempt == 2
    assert d.state.rollout.job_starting_seen_at is None
    # The retry's job pending 61 s after the retry began: the first attempt's start is forgotten.
    second = d.state.rollout.job_id
    late = replace(
        world(961, JobStatus.PENDING, ""),
        job=JobObservation(second, JobStatus.PENDING),
        running_jobs=(second,),
    )
    assert decide(spec, Observed(d.state, late)).state.phase is Phase.FAILED


def test_operator_promote_runs_the_gates_and_rollback_needs_history() -> None:
    spec = RolloutSpec(model_name="m")
    world = World(
        now=START,
        champion_version="1",
        routed="blue",
        colours=_serving(blue="1"),
        requests=(ManualRequest("a", "rollback"), ManualRequest("b", "promote", "7")),
    )
    d = decide(spec, Observed(None, world))
    assert d.state.phase is Phase.EVALUATING
    assert dict(d.state.handled_requests)["a"].startswith("refused: no earlier version")
    assert ConsumeRequest("a", dict(d.state.handled_requests)["a"]) in d.actions
    assert RunGates(d.state.rollout.rollout_id, "7", "1") in d.actions  # type: ignore[union-attr]


def test_corrupt_candidate_is_rejected_and_never_deployed() -> None:
    spec = RolloutSpec(model_name="m")
    state = replace(_verifying_state(), phase=Phase.EVALUATING, active_colour="blue")
    state = replace(state, active_version="1")
    world = World(
        now=START,
        champion_version="1",
        routed="blue",
        colours=_serving(blue="1"),
        evidence=Evidence(
            state.rollout.rollout_id,  # type: ignore[union-attr]
            Phase.EVALUATING,
            (GateResult("artifact", False, "model.onnx: protobuf parsing failed"),),
        ),
    )
    d = decide(spec, Observed(state, world))
    assert d.state.phase is Phase.REJECTED
    assert "artifact: model.onnx" in d.reason
    assert not any(isinstance(a, Deploy | SetChampion) for a in d.actions)


def _verifying_state() -> RolloutState:
    spec = RolloutSpec.model_validate({"modelName": "m", "driftPolicy": {"sustainedReports": 1}})
    world = World(
        now=START,
        champion_version="1",
        routed="blue",
        colours=_serving(blue="1"),
        drift=(DriftSignal("r1", Severity.HIGH, START),),
    )
    d = decide(spec, Observed(None, world))
    assert d.state.rollout is not None
    rollout = replace(d.state.rollout, candidate_version="2", switched_at=START)
    return replace(
        d.state,
        phase=Phase.VERIFYING,
        active_colour="green",
        active_version="2",
        rollout=rollout,
    )


def test_random_walks_reach_every_phase() -> None:
    """The simulation is not vacuous: across seeds it visits every phase."""
    seen: set[Phase] = set()
    rng = random.Random(7)
    spec = RolloutSpec.model_validate(
        {
            "modelName": "m",
            "driftPolicy": {"sustainedReports": 1, "cooldownSeconds": 0},
            "rollout": {"shadow": {"minPairedOutcomes": 5}, "verification": {"windowSeconds": 60}},
        }
    )
    for _ in range(60):
        sim, state = SimWorld(), None
        for _ in range(ROUNDS):
            _random_evolve(sim, rng)
            decision = decide(spec, Observed(state, sim.observe(state)))
            names = required_gates(spec.rollout.gates)
            for action in decision.actions:
                sim.apply(action, {n: rng.random() < 0.9 for n in names})
            seen |= {decision.state.phase, *(t.phase_to for t in decision.transitions)}
            state = decision.state
    assert seen == set(Phase)


def _random_evolve(sim: SimWorld, rng: random.Random) -> None:
    sim.now += timedelta(seconds=rng.choice([0, 30, 400, 2000]))
    if rng.random() < 0.3:
        sim.reports += 1
        sim.reports_seen.append(
            DriftSignal(f"r{sim.reports}", rng.choice([Severity.LOW, Severity.HIGH]), sim.now)
        )
    for job_id, job in list(sim.jobs.items()):
        if not job.status.finished and rng.random() < 0.5:
            ok = rng.random() < 0.7
            sim.jobs[job_id] = JobObservation(
                job_id, JobStatus.SUCCEEDED if ok else JobStatus.FAILED, str(sim.next_version)
            )
            sim.next_version += 1
    for colour, observed in list(sim.colours.items()):
        sim.colours[colour] = ColourObservation(observed.version, True)
    sim.paired = PairedEvidence(rng.randint(0, 10), "dm", 0.0, rng.random(), 1.0, 1.0)
    sim.health = Health(100, rng.choice([0, 0, 0, 9]), 10.0)
    if rng.random() < 0.05:
        sim.request_count += 1
        sim.requests.append(ManualRequest(f"q{sim.request_count}", "rollback"))
    sim.faults = {}
