"""Typed records of the controller's tables: state, rollouts, gate results, operator requests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from driftline.ids import new_id
from driftline.store.records import utcnow


class StaleStateError(RuntimeError):
    """The stored controller state changed (or the lease moved) since it was read."""


@dataclass(frozen=True, slots=True)
class ControllerStateRecord:
    """The stored state of one model's controller, with its revision and lease."""

    model_name: str
    revision: int
    phase: str
    state: dict[str, Any] | None
    updated_at: datetime
    lease_holder: str | None = None
    lease_expires: datetime | None = None


@dataclass(frozen=True, slots=True)
class RolloutRecord:
    """One rollout's summary, kept after it ends."""

    rollout_id: str
    model_name: str
    kind: str
    trigger: str
    started_at: datetime
    phase: str
    champion_version: str
    reason: str
    candidate_version: str | None = None
    finished_at: datetime | None = None
    result: str | None = None


@dataclass(frozen=True, slots=True)
class GateRecord:
    """One gate's verdict on one rollout's candidate."""

    rollout_id: str
    name: str
    model_name: str
    version: str
    passed: bool
    detail: str
    figures: dict[str, float | None] = field(default_factory=dict)
    stage: str = "offline"
    created_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True, slots=True)
class ControllerRequest:
    """An operator's promote or rollback request."""

    model_name: str
    kind: str
    version: str | None = None
    actor: str = "cli"
    request_id: str = field(default_factory=new_id)
    created_at: datetime = field(default_factory=utcnow)
    consumed_at: datetime | None = None
    outcome: str | None = None
