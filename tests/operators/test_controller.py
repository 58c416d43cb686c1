"""The controller loop on a real store: full rollout, restart, lease, faults, audit, metrics."""

from __future__ import annotations

import threading

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import generate_latest

from driftline.store import Store
from operators.controller import Controller
from operators.metrics import ControllerMetrics
from operators.observations import Health, JobObservation, JobStatus
from operators.observe import Observer
from operators.spec import RolloutSpec
from operators.states import Phase
from tests.operators.fakes import Clock, FakeDrift, FakeGates, FakeLosses, FakeRuntime

SPEC = RolloutSpec.model_validate(
    {
        "modelName": "market-ensemble",
        "driftPolicy": {"sustainedReports": 2, "cooldownSeconds": 0},
        "retraining": {"timeoutSeconds": 600},
        "rollout": {
            "shadow": {"minPairedOutcomes": 30},
            "gates": {"test": "paired-t"},
            "verification": {"windowSeconds": 120, "minRequests": 10},
        },
    }
)


class World:
    """One runtime, drift source, evidence and clock shared by successive controllers."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.runtime = FakeRuntime()
        self.drift = FakeDrift()
        self.losses = FakeLosses()
        self.gates = FakeGates()
        self.clock = Clock()

    def controller(self, holder: str = "a", metrics: ControllerMetrics | None = None) -> Controller:
        observer = Observer(SPEC, self.store, self.runtime, self.drift, self.losses)
        return Controller(
            SPEC,
            self.store,
            self.runtime,
            observer,
            self.gates,
            metrics=metrics or ControllerMetrics(),
            holder=holder,
            lease_s=30,
            clock=self.clock,
        )


def _until(controller: Controller, phase: Phase, rounds: int = 10, seconds: float = 5) -> None:
    for _ in range(rounds):
        report = controller.step()
        assert report.decision is not None
        if report.decision.state.phase is phase:
            return
        controller.clock.advance(seconds)  # type: ignore[attr-defined]
    raise AssertionError(f"never reached {phase}: {report.to_json()}")


def test_drift_to_promotion_leaves_the_whole_chain_in_the_audit(store: Store) -> None:
    w = World(store)
    metrics = ControllerMetrics()
    c = w.controller(metrics=metrics)
    w.drift.add("high", w.clock.now)
    assert c.step().decision.state.phase is Phase.DRIFTING  # type: ignore[union-attr]
    w.drift.add("critical", w.clock.advance(60))
    _until(c, Phase.RETRAINING)
    _until(c, Phase.RETRAINING)
    assert len(w.runtime.submitted) == 1
    w.runtime.finish_jobs("2")
    _until(c, Phase.DEPLOYING)
    _until(c, Phase.VERIFYING)
    assert (w.runtime.routed, w.runtime.shadow) == ("green", "blue")
    w.clock.advance(121)
    _until(c, Phase.PROMOTED)
    c.step()
    assert w.runtime.champion == "2"
    assert (w.runtime.routed, w.runtime.shadow) == ("green", None)
    # Blue stays up while requests routed to it before the switch drain, then it is retired.
    assert "blue" in w.runtime.colours
    w.clock.advance(SPEC.rollout.drain_seconds)
    c.step()
    assert "blue" not in w.runtime.colours

    kinds = [
        (e.kind, e.state_to) for e in store.controller.audit_events(model_name="market-ensemble")
    ]
    phases = [to for kind, to in kinds if kind == "transition"]
    assert phases == ["drifting", "retraining", "evaluating", "deploying", "verifying", "promoted"]
    gates = store.controller.audit_events(kind="gate")
    assert {e.details["gate"] for e in gates} >= {"artifact", "beats_champion", "shadow_quality"}
    assert all(e.details["passed"] for e in gates)
    (rollout,) = store.controller.rollouts("market-ensemble")
    assert (rollout.result, rollout.candidate_version) == ("promoted", "2")
    # The shadow verdict is stored beside the offline ones, once, for the candidate.
    stored = store.controller.gate_results(rollout.rollout_id)
    assert {g.name: g.stage for g in stored}["shadow_quality"] == "shadow"
    assert [g.name for g in stored].count("shadow_quality") == 1
    assert {g.version for g in stored} == {"2"}
    scrape = generate_latest(metrics.registry).decode()
    assert 'driftline_rollouts_total{model="market-ensemble",result="promoted"} 1.0' in scrape
    assert (
        'driftline_retraining_jobs_total{model="market-ensemble",status="succeeded"} 1.0' in scrape
    )
    assert 'driftline_controller_state{model="market-ensemble",state="promoted"} 1.0' in scrape


def test_a_restarted_controller_resumes_and_never_starts_a_second_rollout(store: Store) -> None:
    w = World(store)
    first = w.controller("first")
    w.drift.add("high", w.clock.now)
    w.drift.add("critical", w.clock.advance(1))
    _until(first, Phase.RETRAINING)
    first.step()
    (job,) = w.runtime.submitted
    # Killed: no release; its lease must expire before anyone else acts.
    second = w.controller("second")
    assert second.step().skipped == "lease held by first"
    w.clock.advance(31)
    report = second.step()
    assert report.decision is not None
    assert report.decision.state.phase is Phase.RETRAINING
    assert w.runtime.submitted == [job]
    w.runtime.finish_jobs("2")
    _until(second, Phase.VERIFYING)
    w.runtime.health_now = Health(200, 20, 30.0)
    _until(second, Phase.ROLLED_BACK)
    second.step()
    assert w.runtime.submitted == [job]
    assert (w.runtime.routed, w.runtime.champion) == ("blue", "1")
    assert len(store.controller.rollouts("market-ensemble")) == 1


def test_a_corrupt_candidate_is_rejected_and_the_champion_keeps_serving(store: Store) -> None:
    w = World(store)
    w.gates.failing = {"artifact": "members/rf/model.onnx: protobuf parsing failed"}
    c = w.controller()
    w.drift.add("critical", w.clock.now)
    w.drift.add("critical", w.clock.advance(1))
    _until(c, Phase.RETRAINING)
    w.runtime.finish_jobs("2")
    _until(c, Phase.REJECTED)
    assert w.runtime.colours.keys() == {"blue"}
    assert (w.runtime.routed, w.runtime.champion) == ("blue", "1")
    (event,) = [e for e in store.controller.audit_events(kind="gate") if not e.details["passed"]]
    assert "protobuf parsing failed" in event.reason


def test_failed_actions_are_audited_and_retried(store: Store) -> None:
    w = World(store)
    c = w.controller()
    w.drift.add("critical", w.clock.now)
    w.drift.add("critical", w.clock.advance(1))
    w.runtime.fail.add("submit_retraining")
    report = c.step()
    assert report.errors
    assert "refused by the test" in report.errors[0]
    assert store.controller.audit_events(kind="action_failed")
    w.runtime.fail.clear()
    c.clock.advance(5)  # type: ignore[attr-defined]
    assert not c.step().errors
    assert len(w.runtime.submitted) == 1


def test_a_runtime_outage_is_a_fault_and_the_rollout_holds(store: Store) -> None:
    w = World(store)
    c = w.controller()
    w.drift.add("critical", w.clock.now)
    w.drift.add("critical", w.clock.advance(1))
    _until(c, Phase.RETRAINING)
    w.runtime.fail |= {"observe_job", "running_jobs"}
    report = c.step()
    assert report.decision is not None
    assert report.decision.state.phase is Phase.RETRAINING
    assert "unobservable" in report.decision.reason
    w.runtime.fail.clear()
    c.step()
    reasons = [e.reason for e in store.controller.audit_events(kind="fault")]
    assert any(r.startswith("jobs unavailable: RuntimeOperationError") for r in reasons)
    assert "jobs recovered" in reasons


def test_a_job_that_hangs_is_stopped_and_the_rollout_fails(store: Store) -> None:
    w = World(store)
    c = w.controller()
    w.drift.add("critical", w.clock.now)
    w.drift.add("critical", w.clock.advance(1))
    _until(c, Phase.RETRAINING)
    c.step()
    w.clock.advance(601)
    _until(c, Phase.FAILED)
    c.step()
    (job,) = w.runtime.submitted
    assert w.runtime.jobs[job].status is JobStatus.STOPPED
    assert w.runtime.routed == "blue"


def _starting_rollout(w: World) -> tuple[Controller, str]:
    """A controller whose retraining job's own Ray cluster is starting (a RayJob cold start)."""
    c = w.controller()
    w.drift.add("critical", w.clock.now)
    w.drift.add("critical", w.clock.advance(1))
    _until(c, Phase.RETRAINING)
    (job,) = w.runtime.submitted
    w.runtime.jobs[job] = JobObservation(job, JobStatus.STARTING, message="pulling image")
    return c, job


def _failure_reason(store: Store) -> str:
    events = store.controller.audit_events(model_name="market-ensemble")
    (failed,) = [e for e in events if e.kind == "transition" and e.state_to == "failed"]
    return failed.reason


def test_a_cold_start_over_the_start_timeout_is_stopped_with_the_reason(store: Store) -> None:
    w = World(store)
    c, job = _starting_rollout(w)
    w.clock.advance(300)  # minutes of image pulls: not a scheduling failure
    assert c.step().decision.state.phase is Phase.RETRAINING  # type: ignore[union-attr]
    w.clock.advance(301)
    _until(c, Phase.FAILED)
    c.step()
    assert w.runtime.jobs[job].status is JobStatus.STOPPED
    assert "over the 600s start timeout (retraining.startTimeoutSeconds): pulling image" in (
        _failure_reason(store)
    )


def test_a_started_job_left_pending_is_stopped_after_the_schedule_timeout(store: Store) -> None:
    w = World(store)
    c, job = _starting_rollout(w)
    w.clock.advance(300)
    c.step()
    w.runtime.jobs[job] = JobObservation(job, JobStatus.PENDING, message="waiting for 1 CPU")
    w.clock.advance(30)
    assert c.step().decision.state.phase is Phase.RETRAINING  # type: ignore[union-attr]
    w.clock.advance(31)
    _until(c, Phase.FAILED)
    c.step()
    assert w.runtime.jobs[job].status is JobStatus.STOPPED
    assert "over the 60s schedule timeout (retraining.scheduleTimeoutSeconds): waiting for 1" in (
        _failure_reason(store)
    )


def test_run_waits_out_a_store_outage_and_records_it(store: Store) -> None:
    w = World(store)
    c = w.controller()
    stop = threading.Event()
    broken = {"on": True}
    real = store.controller.acquire_controller_lease

    def flaky(*args: object, **kwargs: object) -> object:
        if broken["on"]:
            broken["on"] = False
            raise ConnectionError("connection refused")
        stop.set()
        return real(*args, **kwargs)  # type: ignore[arg-type]

    store.controller.acquire_controller_lease = flaky  # type: ignore[method-assign]
    c.run(stop, interval_s=0.01)
    (event,) = store.controller.audit_events(kind="fault")
    assert "store unavailable" in event.reason
    assert "connection refused" in event.reason


def test_a_round_is_one_trace_and_its_audit_events_carry_the_trace_id(
    store: Store, spans: InMemorySpanExporter
) -> None:
    w = World(store)
    c = w.controller()
    w.drift.add("high", w.clock.now)
    c.step()
    w.drift.add("critical", w.clock.advance(60))
    _until(c, Phase.RETRAINING)
    rounds = [s for s in spans.get_finished_spans() if s.name == "controller.round"]
    assert len(rounds) >= 2
    by_trace = {r.context.trace_id: r for r in rounds}
    for span in spans.get_finished_spans():
        if span.name != "controller.round":
            root = by_trace[span.context.trace_id]
            assert span.parent is not None
            assert span.parent.span_id == root.context.span_id
    names = {s.name for s in spans.get_finished_spans()}
    assert {"observe", "decide", "action SubmitRetraining"} <= names
    events = store.controller.audit_events(model_name="market-ensemble")
    assert events
    assert {int(e.details["trace_id"], 16) for e in events} <= set(by_trace)
    (submitted,) = [e for e in events if e.details.get("action") == "SubmitRetraining"]
    action_span = next(s for s in spans.get_finished_spans() if s.name.endswith("Retraining"))
    assert int(submitted.details["trace_id"], 16) == action_span.context.trace_id
