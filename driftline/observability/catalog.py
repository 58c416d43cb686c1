"""Every Prometheus metric Driftline exports, by the name a scrape shows.

Dashboards, alert rules and the Helm chart reference metrics only from this catalogue, and a
test checks each name against a live `/metrics` scrape; change a name here and there together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["counter", "gauge", "histogram"]
Component = Literal["serving", "drift", "controller"]


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """A metric's scrape name (without _total/_bucket suffixes), type, labels and help text."""

    name: str
    kind: Kind
    labels: tuple[str, ...]
    help: str
    component: Component
    # Other components that export it too (breakers guard every process's calls).
    also: tuple[Component, ...] = ()

    def exported_by(self, component: Component) -> bool:
        """Whether `component`'s /metrics shows this metric."""
        return component == self.component or component in self.also

    def series_names(self) -> tuple[str, ...]:
        """The sample names a scrape shows for this metric."""
        if self.kind == "counter":
            return (f"{self.name}_total",)
        if self.kind == "histogram":
            return tuple(f"{self.name}_{s}" for s in ("bucket", "sum", "count"))
        return (self.name,)


CATALOG: tuple[MetricSpec, ...] = (
    # --- serving --------------------------------------------------------------------------
    MetricSpec(
        "driftline_request_duration_seconds",
        "histogram",
        ("endpoint", "model", "version"),
        "End-to-end request latency at the ingress.",
        "serving",
    ),
    MetricSpec(
        "driftline_requests",
        "counter",
        ("endpoint", "model", "version", "code"),
        "Requests answered, by HTTP status code.",
        "serving",
    ),
    MetricSpec(
        "driftline_request_errors",
        "counter",
        ("endpoint", "kind"),
        "Requests that failed, by error kind (bad_input, overload, timeout, internal).",
        "serving",
    ),
    MetricSpec(
        "driftline_member_duration_seconds",
        "histogram",
        ("model", "version", "member"),
        "Latency of one ensemble member's predict call.",
        "serving",
    ),
    MetricSpec(
        "driftline_member_calls",
        "counter",
        ("model", "version", "member", "transport"),
        "Calls a member replica answered, by how they reached it (socket or serve).",
        "serving",
    ),
    MetricSpec(
        "driftline_batch_size",
        "histogram",
        ("deployment",),
        "Rows per batched call into a deployment.",
        "serving",
    ),
    MetricSpec(
        "driftline_store_backlog",
        "gauge",
        (),
        "Prediction records waiting to be written to the store.",
        "serving",
    ),
    MetricSpec(
        "driftline_store_degraded",
        "gauge",
        (),
        "1 while the store is unreachable and predictions are buffered.",
        "serving",
    ),
    MetricSpec(
        "driftline_store_dropped",
        "counter",
        (),
        "Prediction records dropped because the buffer was full.",
        "serving",
    ),
    MetricSpec(
        "driftline_store_quarantined",
        "counter",
        (),
        "Prediction records the store refused, kept in the dead-letter table.",
        "serving",
    ),
    MetricSpec(
        "driftline_store_spooled",
        "gauge",
        (),
        "Prediction records spilled to the local spool file, waiting for the store.",
        "serving",
    ),
    MetricSpec(
        "driftline_stream_clients",
        "gauge",
        (),
        "Connected WebSocket prediction-stream clients.",
        "serving",
    ),
    MetricSpec(
        "driftline_stream_dropped_messages",
        "counter",
        (),
        "Stream messages dropped for clients whose queue was full.",
        "serving",
    ),
    MetricSpec(
        "driftline_model_info",
        "gauge",
        ("model", "version", "colour", "spec_hash"),
        "1 for each model version being served.",
        "serving",
    ),
    MetricSpec(
        "driftline_circuit_breaker_state",
        "gauge",
        ("breaker",),
        (
            "State of a circuit breaker on a member, the store or MLflow: 0 closed, 1 half-open "
            "(trial calls go through), 2 open (calls fail at once)."
        ),
        "serving",
        also=("drift", "controller"),
    ),
    MetricSpec(
        "driftline_circuit_breaker_opens",
        "counter",
        ("breaker",),
        "Times a circuit breaker opened after repeated failed calls.",
        "serving",
        also=("drift", "controller"),
    ),
    MetricSpec(
        "driftline_circuit_breaker_rejected_calls",
        "counter",
        ("breaker",),
        "Calls refused at once because their circuit breaker was open.",
        "serving",
        also=("drift", "controller"),
    ),
    # --- drift ----------------------------------------------------------------------------
    MetricSpec(
        "driftline_drift_score",
        "gauge",
        ("model", "feature", "method"),
        (
            "Latest drift score per feature and method: ks = two-sample KS statistic (0..1), "
            "psi = population stability index and js = Jensen-Shannon divergence in bits (0..1), "
            "both over bins frozen from the version's reference; feature=prediction is the "
            "ensemble output."
        ),
        "drift",
    ),
    MetricSpec(
        "driftline_drift_severity",
        "gauge",
        ("model",),
        (
            "Severity of the newest drift report of the version serving: 0 none, 1 low, "
            "2 medium, 3 high, 4 critical."
        ),
        "drift",
    ),
    MetricSpec(
        "driftline_drift_alerts",
        "counter",
        ("model", "severity"),
        (
            "Drift alerts raised, by severity; repeats of the same or a lower severity within "
            "the cooldown are not raised."
        ),
        "drift",
    ),
    MetricSpec(
        "driftline_live_performance",
        "gauge",
        ("model", "version", "metric"),
        (
            "Live performance over the newest realised outcomes (DRIFTLINE_DRIFT_PERFORMANCE_"
            "WINDOW): rmse, mae, r2 and directional_accuracy (share of correct signs, 0..1)."
        ),
        "drift",
    ),
    # --- controller -----------------------------------------------------------------------
    MetricSpec(
        "driftline_controller_state",
        "gauge",
        ("model", "state"),
        "1 for the controller's current rollout state.",
        "controller",
    ),
    MetricSpec(
        "driftline_rollouts",
        "counter",
        ("model", "result"),
        "Finished rollouts by result (promoted, rolled_back, rejected, failed).",
        "controller",
    ),
    MetricSpec(
        "driftline_retraining_jobs",
        "counter",
        ("model", "status"),
        "Retraining jobs by final status.",
        "controller",
    ),
)


def by_name() -> dict[str, MetricSpec]:
    """The catalogue keyed by metric name."""
    return {spec.name: spec for spec in CATALOG}
