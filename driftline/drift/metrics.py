"""The drift metrics of the catalogue, exported with prometheus_client."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge

from driftline.breakers import export_metrics
from driftline.contracts import Severity
from driftline.drift.report import DriftReport
from driftline.observability.catalog import by_name

# Scores exported per feature; `ks_textbook` stays in reports (it is what calibration corrects).
EXPORTED_METHODS = frozenset({"ks", "psi", "js"})


def _spec(name: str) -> tuple[str, str, tuple[str, ...]]:
    spec = by_name()[name]
    return spec.name, spec.help, spec.labels


@dataclass
class DriftMetrics:
    """Gauges and counters of one monitor, on their own registry unless one is given."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        name, doc, labels = _spec("driftline_drift_score")
        self.score = Gauge(name, doc, labels, registry=self.registry)
        name, doc, labels = _spec("driftline_drift_severity")
        self.severity = Gauge(name, doc, labels, registry=self.registry)
        name, doc, labels = _spec("driftline_drift_alerts")
        self.alerts = Counter(name, doc, labels, registry=self.registry)
        name, doc, labels = _spec("driftline_live_performance")
        self.performance = Gauge(name, doc, labels, registry=self.registry)
        # The monitor reads and writes the store through its breakers.
        export_metrics(self.registry)

    def observe(self, report: DriftReport) -> None:
        """Publish one report's scores, severity and live performance."""
        model = report.model_name
        for result in report.results:
            for score in result.scores:
                if result.detector in {"feature", "prediction"} and score.method in (
                    EXPORTED_METHODS
                ):
                    self.score.labels(model, score.feature, score.method).set(score.value)
        self.severity.labels(model).set(int(report.severity))
        performance = report.result("performance")
        if performance is not None and performance.skipped is None:
            for metric, value in performance.summary["live"].items():
                self.performance.labels(model, report.model_version, metric).set(value)

    def alerted(self, model: str, severity: Severity) -> None:
        """Count one raised alert."""
        self.alerts.labels(model, severity.label).inc()
