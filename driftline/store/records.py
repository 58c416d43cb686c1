"""Typed records the store reads and writes; callers never see rows or SQL."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from driftline.ids import new_id


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    """One answered request (or its shadow scoring) with everything needed to audit it later."""

    request_id: str
    model_name: str
    model_version: str
    endpoint: str
    prediction: list[float]
    member_outputs: dict[str, list[float]]
    latency_ms: float
    features: npt.NDArray[np.float64] | None = None
    colour: str | None = None
    slot: str = "live"
    symbol: str | None = None
    as_of: datetime | None = None
    created_at: datetime = field(default_factory=utcnow)
    # The span context of the request that made it, when traced: its write joins that trace.
    # Kept in memory only (not stored, not spooled).
    trace: Any = field(default=None, compare=False, repr=False)

    @property
    def n_rows(self) -> int:
        """How many rows the request scored."""
        return len(self.prediction)


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One decision or action, with its inputs and reason, for the audit trail."""

    model_name: str
    kind: str
    reason: str
    actor: str = "controller"
    details: dict[str, Any] = field(default_factory=dict)
    rollout_id: str | None = None
    state_from: str | None = None
    state_to: str | None = None
    event_id: str = field(default_factory=new_id)
    created_at: datetime = field(default_factory=utcnow)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form `driftline audit --json` prints and the audit API serves."""
        return {
            "at": self.created_at.isoformat(),
            "kind": self.kind,
            "actor": self.actor,
            "rollout": self.rollout_id,
            "from": self.state_from,
            "to": self.state_to,
            "reason": self.reason,
            "details": self.details,
        }
