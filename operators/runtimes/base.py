"""What every runtime offers the controller: observe serving and jobs, and act on them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from driftline.contracts import Colour
from operators.actions import RequestApproval, SetChampion, SubmitRetraining
from operators.observations import Approval, ColourObservation, Health, JobObservation


class RuntimeOperationError(RuntimeError):
    """A runtime could not observe or act; the message is one line for the audit trail."""


@dataclass(frozen=True, slots=True)
class ServingObservation:
    """Colours as deployed, and where live and mirrored traffic go."""

    routed: Colour | None
    shadow: Colour | None
    colours: Mapping[Colour, ColourObservation] = field(default_factory=dict)


class Runtime(Protocol):
    """One place that runs retraining jobs and serves colours."""

    name: str

    def observe_serving(self) -> ServingObservation:
        """Colours, routing and mirroring as they are now."""
        ...

    def observe_job(self, job_id: str) -> JobObservation:
        """One retraining job (ABSENT if it was never submitted)."""
        ...

    def running_jobs(self) -> tuple[str, ...]:
        """Every unfinished retraining job of this model."""
        ...

    def champion_version(self) -> str | None:
        """The version recorded as champion (registry alias, or the GitOps values file)."""
        ...

    def health(self, colour: Colour, version: str, since: datetime) -> Health:
        """Requests, errors and p99 latency of `version` on `colour` since `since`."""
        ...

    def submit_retraining(self, action: SubmitRetraining) -> None:
        """Start the job unless it exists."""
        ...

    def stop_retraining(self, job_id: str) -> None:
        """Stop the job if it runs."""
        ...

    def deploy(self, colour: Colour, version: str) -> None:
        """Serve `version` on `colour`."""
        ...

    def route(self, active: Colour, shadow: Colour | None) -> None:
        """Live traffic to `active`, mirrored to `shadow`."""
        ...

    def retire(self, colour: Colour) -> None:
        """Stop serving on `colour`."""
        ...

    def set_champion(self, action: SetChampion) -> None:
        """Record the champion."""
        ...


class ChampionRecord(Protocol):
    """Where the champion version is recorded (the registry alias, or a GitOps values file)."""

    def get(self) -> str | None:
        """The recorded champion version."""
        ...

    def set(self, action: SetChampion) -> None:
        """Record `action.version` as champion."""
        ...


class JobVersions(Protocol):
    """Which model version a retraining job registered."""

    def version_for(
        self, job_id: str, started: datetime | None, finished: datetime | None
    ) -> str | None:
        """The version `job_id` registered (it ran from `started` to `finished`), or None."""
        ...


class HealthSource(Protocol):
    """Serving health of one version."""

    def health(self, colour: Colour, version: str, since: datetime) -> Health:
        """Requests, errors and p99 since `since`."""
        ...


class Approvals(Protocol):
    """Where promotions wait for a reviewer (a GitOps repository's review branches)."""

    def approval(self, version: str) -> Approval:
        """Whether the promotion of `version` was requested, and whether it was merged."""
        ...

    def request_approval(self, action: RequestApproval) -> None:
        """Put the promotion up for review unless it already is."""
        ...
