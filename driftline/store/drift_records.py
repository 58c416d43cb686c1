"""Typed records of the drift tables (outcomes, reports, scores, alerts); owner: drift."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from driftline.ids import new_id
from driftline.store.records import utcnow


class UnknownOutcomeError(LookupError):
    """Outcomes whose (symbol, as_of) matches no stored prediction; nothing was written."""

    def __init__(self, keys: list[tuple[str, datetime]]) -> None:
        self.keys = keys
        shown = ", ".join(f"{s}@{t.isoformat()}" for s, t in keys[:5])
        more = f" and {len(keys) - 5} more" if len(keys) > 5 else ""
        super().__init__(
            f"{len(keys)} outcome(s) match no stored prediction ({shown}{more}); nothing was stored"
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """The realised value of the target for `symbol` at `as_of`."""

    symbol: str
    as_of: datetime
    value: float
    source: str = "api"
    received_at: datetime = field(default_factory=utcnow)
    recorded_by: str = "unrecorded"


@dataclass(frozen=True, slots=True)
class OutcomeIngest:
    """What one batch of outcomes did: stored, and the ones handled otherwise, by kind."""

    stored: int = 0
    late: int = 0
    duplicate: int = 0
    conflicting: int = 0
    unknown: int = 0
    unknown_keys: tuple[tuple[str, datetime], ...] = ()
    conflict_keys: tuple[tuple[str, datetime], ...] = ()

    def as_dict(self) -> dict[str, int]:
        """Counts by kind."""
        return {
            "stored": self.stored,
            "late": self.late,
            "duplicate": self.duplicate,
            "conflicting": self.conflicting,
            "unknown": self.unknown,
        }


@dataclass(frozen=True, slots=True)
class OutcomePair:
    """A live prediction joined with its realised value."""

    as_of: datetime
    symbol: str
    model_version: str
    prediction: float
    value: float
    late: bool


@dataclass(frozen=True, slots=True)
class StoredReport:
    """A drift report as stored: its indexed columns plus the full JSON payload."""

    report_id: str
    created_at: datetime
    model_name: str
    model_version: str
    severity: str
    severity_level: int
    recommendation: str
    n_rows: int
    window_start: datetime | None
    window_end: datetime | None
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ScoreRow:
    """One stored score: a report's value for one feature, detector and method."""

    report_id: str
    created_at: datetime
    model_name: str
    detector: str
    feature: str
    method: str
    value: float | None
    pvalue: float | None
    threshold: float | None
    drifted: bool


@dataclass(frozen=True, slots=True)
class Alert:
    """A raised drift alert; acknowledged once someone has seen it."""

    model_name: str
    model_version: str
    severity: str
    severity_level: int
    recommendation: str
    message: str
    report_id: str | None = None
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    alert_id: str = field(default_factory=new_id)
    created_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True, slots=True)
class OutcomeConflict:
    """Two values recorded for one (symbol, as_of), held out of every gate until resolved."""

    symbol: str
    as_of: datetime
    value: float
    recorded_by: str
    conflict_value: float
    conflict_by: str
