"""The controller's Prometheus metrics, named as in driftline/observability/catalog.py."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from driftline.breakers import export_metrics
from driftline.observability.catalog import by_name
from operators.decide import Decision
from operators.observations import World
from operators.states import Phase

_END = {
    Phase.PROMOTED: "promoted",
    Phase.ROLLED_BACK: "rolled_back",
    Phase.REJECTED: "rejected",
    Phase.FAILED: "failed",
}


class ControllerMetrics:
    """State gauge, rollout and retraining-job counters and the breakers' metrics, in their own
    registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        catalog = by_name()
        state = catalog["driftline_controller_state"]
        rollouts = catalog["driftline_rollouts"]
        jobs = catalog["driftline_retraining_jobs"]
        self.state = Gauge(state.name, state.help, state.labels, registry=self.registry)
        self.rollouts = Counter(
            rollouts.name, rollouts.help, rollouts.labels, registry=self.registry
        )
        self.jobs = Counter(jobs.name, jobs.help, jobs.labels, registry=self.registry)
        # The controller calls the store and MLflow through breakers too.
        export_metrics(self.registry)

    def record(self, decision: Decision, world: World) -> None:
        """Count what this round decided; transitions happen once, so nothing is counted twice."""
        model = decision.state.model_name
        for phase in Phase:
            self.state.labels(model, phase.value).set(1 if phase is decision.state.phase else 0)
        for transition in decision.transitions:
            if transition.phase_from is Phase.RETRAINING and world.job is not None:
                status = world.job.status.value
                if transition.phase_to is Phase.FAILED and not world.job.status.finished:
                    status = "timeout"
                self.jobs.labels(model, status).inc()
            if transition.phase_from.in_rollout and transition.phase_to in _END:
                self.rollouts.labels(model, _END[transition.phase_to]).inc()
