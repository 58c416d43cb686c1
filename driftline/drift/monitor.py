"""The drift monitor: off the request path, it judges windows of live traffic on a schedule.

Each run reads the newest `drift_window` live feature rows and predictions of the version now
serving and the newest outcomes, runs every detector against that version's baseline, stores
the report (and an alert when the rules say so) and updates the Prometheus metrics. It runs in
its own process (`driftline drift monitor`) or on a daemon thread inside another (the
controller's), through `start`. Scheduled runs take the model's lease in the store first, so
replicas (a Deployment rolling over, a second `driftline drift monitor`) never both write: the
one holding it reports, the others stand by and take over when it lapses.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from driftline.config import Settings
from driftline.contracts import Severity
from driftline.drift.alerting import alert_for, should_alert
from driftline.drift.baselines import Baselines
from driftline.drift.concept import ConceptDrift
from driftline.drift.detectors import Detector, FeatureDrift, JointDrift, PredictionDrift
from driftline.drift.errors import DriftInputError
from driftline.drift.ks import alibi_ks_class
from driftline.drift.metrics import DriftMetrics
from driftline.drift.performance import PerformanceDrift, outcome_frame
from driftline.drift.report import DriftReport
from driftline.drift.severity import grade
from driftline.drift.window import Baseline, Window
from driftline.store import PredictionRecord, Store, utcnow
from driftline.store.drift_records import Alert, ScoreRow, StoredReport
from driftline.store.repository import retention_policy

log = logging.getLogger(__name__)

# A standby takes over once the leader missed this many rounds (or after the floor, whichever is
# longer: a run over a large window may outlast a short interval).
LEASE_ROUNDS = 3
LEASE_FLOOR_S = 30.0


def lease_name(model_name: str) -> str:
    """The store lease that elects one monitor of `model_name`."""
    return f"drift-monitor/{model_name}"


def default_holder() -> str:
    """This process's name on the lease: the pod's hostname and the process id."""
    return f"{socket.gethostname()}-{os.getpid()}"


# Retention is cheap but needs no more than a daily pass.
PRUNE_EVERY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class MonitorRun:
    """One run's outcome: a report (and maybe an alert), or why there was none."""

    report: DriftReport | None = None
    alert: Alert | None = None
    skipped: str | None = None


def default_detectors(settings: Settings) -> tuple[Detector, ...]:
    """Feature, joint, prediction, performance and concept drift as the settings configure them."""
    alpha = settings.drift.alpha
    prefer = settings.drift.prefer_alibi
    minimum = settings.drift.min_rows
    return (
        FeatureDrift(alpha=alpha, prefer_alibi=prefer, min_rows=minimum),
        JointDrift(min_rows=minimum),
        PredictionDrift(alpha=alpha, prefer_alibi=prefer, min_rows=minimum),
        PerformanceDrift(alpha=alpha, min_outcomes=settings.drift.min_outcomes),
        ConceptDrift(min_outcomes=settings.drift.min_outcomes),
    )


class DriftMonitor:
    """Runs the detectors over live windows and records what they find."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        baselines: Baselines,
        *,
        metrics: DriftMetrics | None = None,
        detectors: Sequence[Detector] | None = None,
        clock: Callable[[], datetime] = utcnow,
        holder: str | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.baselines = baselines
        self.metrics = metrics or DriftMetrics()
        self.detectors = tuple(detectors or default_detectors(settings))
        self.clock = clock
        self.model_name = settings.registry.model_name
        self.min_alert = Severity.parse(settings.drift.alert_min_severity)
        self.last_run: MonitorRun | None = None
        self.holder = holder or default_holder()
        self.leading = False
        self._pruned_at: datetime | None = None

    def warm_up(self) -> None:
        """Import alibi-detect now (seconds), so no run or request ever waits for it."""
        if self.settings.drift.prefer_alibi:
            alibi_ks_class()

    def run_once(self) -> MonitorRun:
        """Judge the newest window; store and export the report."""
        version = self.store.drift.latest_live_version(self.model_name)
        if version is None:
            return self._skip("no live predictions yet")
        records = self.store.drift.latest_predictions(
            self.model_name, limit=self.settings.drift.window, model_version=version
        )
        features, predictions = _rows(records, self.settings.drift.window)
        if len(features) < self.settings.drift.window:
            return self._skip(
                f"{len(features)} of {self.settings.drift.window} live rows of v{version} so far"
            )
        baseline = self.baselines.get(self.model_name, version)
        window = self._window(records, features, predictions, baseline, version)
        results = [detector.detect(window, baseline) for detector in self.detectors]
        severity, recommendation, reasons = grade(results)
        report = DriftReport(
            model_name=self.model_name,
            model_version=version,
            severity=severity,
            recommendation=recommendation,
            reasons=reasons,
            results=tuple(results),
            n_rows=window.n_rows,
            window_start=window.start,
            window_end=window.end,
            created_at=self.clock(),
        )
        self.store.drift.record_report(*_stored(report))
        self.metrics.observe(report)
        alert = self._alert(report)
        run = MonitorRun(report=report, alert=alert)
        self.last_run = run
        log.info(
            "drift report",
            extra={
                "model": self.model_name,
                "version": version,
                "severity": severity.label,
                "recommendation": recommendation.value,
                "alert": alert is not None,
            },
        )
        return run

    def lead(self) -> bool:
        """Take or renew this model's lease; whether this monitor is the one that reports."""
        interval = self.settings.drift.interval_s
        leading = self.store.leases.acquire(
            lease_name(self.model_name),
            self.holder,
            ttl_s=max(LEASE_ROUNDS * interval, LEASE_FLOOR_S),
            now=self.clock(),
        )
        if leading != self.leading:
            log.info(
                "drift monitor %s",
                "leading" if leading else "standing by: another holds the lease",
                extra={"model": self.model_name, "holder": self.holder},
            )
        self.leading = leading
        return leading

    def run_forever(self, stop: threading.Event) -> None:
        """Run every `drift_interval_s` while this monitor holds the lease, until `stop` is set;
        a failed run is logged, not fatal. The lease is released on the way out."""
        self.warm_up()
        try:
            while not stop.is_set():
                try:
                    if self.lead():
                        self.run_once()
                        self.prune_if_due()
                except Exception:
                    # The monitor must outlive a bad window or a store outage; the log says which.
                    log.exception("drift monitor run failed")
                stop.wait(self.settings.drift.interval_s)
        finally:
            if self.leading:
                # A successor takes over now rather than after the lease's time to live.
                with contextlib.suppress(Exception):
                    self.store.leases.release(lease_name(self.model_name), self.holder)
                self.leading = False

    def prune_if_due(self) -> dict[str, int] | None:
        """Apply the retention limits once a day (the first call prunes); rows deleted."""
        now = self.clock()
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY:
            return None
        pruned = self.store.prune(retention_policy(self.settings), now)
        self._pruned_at = now
        log.info(
            "old records pruned",
            extra={"deleted": pruned.deleted, "partitions_dropped": pruned.partitions_dropped},
        )
        return pruned.deleted

    def start(self) -> tuple[threading.Thread, threading.Event]:
        """Run in a daemon thread (embedded in another process); set the event to stop it."""
        stop = threading.Event()
        thread = threading.Thread(
            target=self.run_forever, args=(stop,), name="drift-monitor", daemon=True
        )
        thread.start()
        return thread, stop

    def _window(
        self,
        records: list[PredictionRecord],
        features: np.ndarray[tuple[int, int], np.dtype[np.float64]],
        predictions: np.ndarray[tuple[int], np.dtype[np.float64]],
        baseline: Baseline,
        version: str,
    ) -> Window:
        names = baseline.feature_names
        if features.shape[1] != len(names):
            raise DriftInputError(
                f"live rows of v{version} have {features.shape[1]} features; its reference "
                f"has {len(names)}"
            )
        pairs = self.store.drift.outcome_pairs(
            self.model_name, limit=self.settings.drift.performance_window, model_version=version
        )
        outcomes = outcome_frame(
            np.array([p.prediction for p in pairs]), np.array([p.value for p in pairs])
        )
        stamps = [r.as_of or r.created_at for r in records]
        return Window(
            features=pd.DataFrame(features, columns=names),
            predictions=predictions,
            outcomes=outcomes,
            start=min(stamps),
            end=max(stamps),
        )

    def _alert(self, report: DriftReport) -> Alert | None:
        now = self.clock()
        last = self.store.drift.alerts(model_name=self.model_name, limit=1)
        if not should_alert(
            report,
            last[0] if last else None,
            min_severity=self.min_alert,
            cooldown=timedelta(seconds=self.settings.drift.alert_cooldown_s),
            now=now,
        ):
            return None
        alert = alert_for(report, now)
        if self.store.drift.record_alert(alert):
            self.metrics.alerted(self.model_name, report.severity)
        return alert

    def _skip(self, reason: str) -> MonitorRun:
        log.info("drift monitor skipped a run: %s", reason, extra={"model": self.model_name})
        run = MonitorRun(skipped=reason)
        self.last_run = run
        return run


def _rows(
    records: list[PredictionRecord], limit: int
) -> tuple[
    np.ndarray[tuple[int, int], np.dtype[np.float64]], np.ndarray[tuple[int], np.dtype[np.float64]]
]:
    usable = [r for r in records if r.features is not None and r.features.size]
    if not usable:
        return np.empty((0, 0)), np.empty(0)
    features = np.concatenate([r.features for r in usable if r.features is not None])[-limit:]
    outputs = np.concatenate([np.asarray(r.prediction, dtype=np.float64) for r in usable])[-limit:]
    return features, outputs


def _stored(report: DriftReport) -> tuple[StoredReport, list[ScoreRow]]:
    stored = StoredReport(
        report_id=report.report_id,
        created_at=report.created_at,
        model_name=report.model_name,
        model_version=report.model_version,
        severity=report.severity.label,
        severity_level=int(report.severity),
        recommendation=report.recommendation.value,
        n_rows=report.n_rows,
        window_start=report.window_start,
        window_end=report.window_end,
        payload=report.to_dict(),
    )
    scores = [
        ScoreRow(
            report_id=report.report_id,
            created_at=report.created_at,
            model_name=report.model_name,
            detector=result.detector,
            feature=score.feature,
            method=score.method,
            value=score.value,
            pvalue=score.pvalue,
            threshold=score.threshold,
            drifted=score.drifted,
        )
        for result in report.results
        for score in result.scores
    ]
    return stored, scores
