"""The one report type every detector contributes to, with severity and recommendation."""

from __future__ import annotations

import enum
from collections.abc import Sized
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from driftline.contracts import Severity
from driftline.ids import new_id
from driftline.store.records import utcnow


class Recommendation(enum.StrEnum):
    """What a person or the controller should do about a report."""

    MONITOR = "monitor"
    INVESTIGATE_DATA = "investigate_data"
    RETRAIN = "retrain"
    ROLLBACK = "rollback"


@dataclass(frozen=True, slots=True)
class Score:
    """One detector's score for one feature (or the prediction, or a metric)."""

    feature: str
    method: str
    value: float
    drifted: bool
    threshold: float | None = None
    pvalue: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description."""
        return {
            "feature": self.feature,
            "method": self.method,
            "value": self.value,
            "drifted": self.drifted,
            "threshold": self.threshold,
            "pvalue": self.pvalue,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Score:
        """Read back `to_dict`."""
        return cls(**data)


@dataclass(frozen=True, slots=True)
class DetectorResult:
    """What one detector found in one window: its scores, a verdict and a small summary."""

    detector: str
    drifted: bool
    scores: tuple[Score, ...] = ()
    summary: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None

    @classmethod
    def too_few_outcomes(cls, detector: str, outcomes: Sized | None, needed: int) -> DetectorResult:
        """A skipped result that says how many outcomes there were and how many it needs."""
        have = 0 if outcomes is None else len(outcomes)
        return cls(detector, False, skipped=f"{have} outcomes; {needed} needed")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description."""
        return {
            "detector": self.detector,
            "drifted": self.drifted,
            "skipped": self.skipped,
            "summary": self.summary,
            "scores": [s.to_dict() for s in self.scores],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DetectorResult:
        """Read back `to_dict`."""
        return cls(
            detector=data["detector"],
            drifted=bool(data["drifted"]),
            scores=tuple(Score.from_dict(s) for s in data.get("scores", [])),
            summary=dict(data.get("summary", {})),
            skipped=data.get("skipped"),
        )


@dataclass(frozen=True, slots=True)
class DriftReport:
    """One window's verdict: every detector's result, the severity and what to do."""

    model_name: str
    model_version: str
    severity: Severity
    recommendation: Recommendation
    reasons: tuple[str, ...]
    results: tuple[DetectorResult, ...]
    n_rows: int
    window_start: datetime | None = None
    window_end: datetime | None = None
    report_id: str = field(default_factory=new_id)
    created_at: datetime = field(default_factory=utcnow)

    def result(self, detector: str) -> DetectorResult | None:
        """The named detector's result, if it ran."""
        return next((r for r in self.results if r.detector == detector), None)

    def scores(self) -> list[Score]:
        """Every score of every detector."""
        return [s for r in self.results for s in r.scores]

    @property
    def drifted_features(self) -> list[str]:
        """Features the calibrated feature-drift test flagged."""
        features = self.result("feature")
        if features is None:
            return []
        return [s.feature for s in features.scores if s.method == "ks" and s.drifted]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form `driftline drift compare --json` prints and the store keeps."""
        per_feature: dict[str, dict[str, Any]] = {}
        features = self.result("feature")
        for score in features.scores if features else ():
            per_feature.setdefault(score.feature, {})[score.method] = {
                k: v for k, v in score.to_dict().items() if k not in {"feature", "method"}
            }
        return {
            "report_id": self.report_id,
            "created_at": self.created_at.isoformat(),
            "model_name": self.model_name,
            "model_version": self.model_version,
            "severity": self.severity.label,
            "recommendation": self.recommendation.value,
            "reasons": list(self.reasons),
            "n_rows": self.n_rows,
            "window_start": self.window_start.isoformat() if self.window_start else None,
            "window_end": self.window_end.isoformat() if self.window_end else None,
            "drifted_features": self.drifted_features,
            "features": per_feature,
            "results": [r.to_dict() for r in self.results],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftReport:
        """Read back `to_dict`."""
        return cls(
            report_id=data["report_id"],
            created_at=datetime.fromisoformat(data["created_at"]),
            model_name=data["model_name"],
            model_version=data["model_version"],
            severity=Severity.parse(data["severity"]),
            recommendation=Recommendation(data["recommendation"]),
            reasons=tuple(data.get("reasons", [])),
            n_rows=int(data["n_rows"]),
            window_start=_when(data.get("window_start")),
            window_end=_when(data.get("window_end")),
            results=tuple(DetectorResult.from_dict(r) for r in data.get("results", [])),
        )


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None
