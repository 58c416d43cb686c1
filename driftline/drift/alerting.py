"""When a report raises an alert: a least severity, and a cooldown that de-duplicates repeats."""

from __future__ import annotations

from datetime import datetime, timedelta

from driftline.contracts import Severity
from driftline.drift.report import DriftReport
from driftline.store.drift_records import Alert


def should_alert(
    report: DriftReport,
    last: Alert | None,
    *,
    min_severity: Severity,
    cooldown: timedelta,
    now: datetime,
) -> bool:
    """True when `report` is severe enough and not a repeat of `last` inside the cooldown.

    A more severe report than the last alert always alerts (escalation is news); the same or a
    lesser severity waits for the cooldown to pass.
    """
    if report.severity < min_severity:
        return False
    if last is None or report.severity > last.severity_level:
        return True
    return now - last.created_at >= cooldown


def alert_for(report: DriftReport, now: datetime) -> Alert:
    """The alert `report` raises."""
    reasons = "; ".join(report.reasons) or "drift detected"
    return Alert(
        model_name=report.model_name,
        model_version=report.model_version,
        severity=report.severity.label,
        severity_level=int(report.severity),
        recommendation=report.recommendation.value,
        message=f"{report.severity.label} drift on {report.model_name} v{report.model_version}: "
        f"{reasons}; recommendation: {report.recommendation.value}",
        report_id=report.report_id,
        created_at=now,
    )
