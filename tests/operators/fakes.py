"""An in-memory runtime, drift source and gate runner for controller-loop tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from driftline.contracts import Colour, Severity
from operators.actions import SetChampion, SubmitRetraining
from operators.observations import ColourObservation, DriftSignal, Health, JobObservation, JobStatus
from operators.runtimes.base import RuntimeOperationError, ServingObservation
from operators.spec import BASELINE_GATE, OFFLINE_GATES
from operators.states import GateResult


@dataclass
class FakeRuntime:
    """Colours become ready on the next observation; jobs finish when a test says so."""

    name: str = "fake"
    colours: dict[Colour, ColourObservation] = field(
        default_factory=lambda: {"blue": ColourObservation("1", True)}
    )
    routed: Colour | None = "blue"
    shadow: Colour | None = None
    champion: str | None = "1"
    jobs: dict[str, JobObservation] = field(default_factory=dict)
    submitted: list[str] = field(default_factory=list)
    health_now: Health = field(default_factory=lambda: Health(100, 0, 20.0))
    fail: set[str] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)

    def _check(self, operation: str) -> None:
        self.calls.append(operation)
        if operation in self.fail:
            raise RuntimeOperationError(f"{operation} refused by the test")

    def observe_serving(self) -> ServingObservation:
        self._check("observe_serving")
        observed = dict(self.colours)
        self.colours = {c: ColourObservation(o.version, True) for c, o in self.colours.items()}
        return ServingObservation(self.routed, self.shadow, observed)

    def observe_job(self, job_id: str) -> JobObservation:
        self._check("observe_job")
        return self.jobs.get(job_id, JobObservation(job_id, JobStatus.ABSENT))

    def running_jobs(self) -> tuple[str, ...]:
        self._check("running_jobs")
        return tuple(j for j, o in self.jobs.items() if not o.status.finished)

    def champion_version(self) -> str | None:
        self._check("champion_version")
        return self.champion

    def health(self, colour: Colour, version: str, since: datetime) -> Health:
        self._check("health")
        return self.health_now

    def submit_retraining(self, action: SubmitRetraining) -> None:
        self._check("submit_retraining")
        assert not self.running_jobs(), "a second retraining job"
        if action.job_id not in self.jobs:
            self.jobs[action.job_id] = JobObservation(action.job_id, JobStatus.RUNNING)
            self.submitted.append(action.job_id)

    def finish_jobs(self, version: str | None, status: JobStatus = JobStatus.SUCCEEDED) -> None:
        for job_id in self.running_jobs():
            self.jobs[job_id] = JobObservation(job_id, status, version, "test")

    def stop_retraining(self, job_id: str) -> None:
        self._check("stop_retraining")
        self.jobs[job_id] = JobObservation(job_id, JobStatus.STOPPED, message="stopped")

    def deploy(self, colour: Colour, version: str) -> None:
        self._check("deploy")
        assert colour != self.routed
        self.colours[colour] = ColourObservation(version, False, "starting")

    def route(self, active: Colour, shadow: Colour | None) -> None:
        self._check("route")
        assert self.colours[active].ready
        self.routed, self.shadow = active, shadow

    def retire(self, colour: Colour) -> None:
        self._check("retire")
        assert colour not in {self.routed, self.shadow}
        self.colours.pop(colour, None)

    def set_champion(self, action: SetChampion) -> None:
        self._check("set_champion")
        self.champion = action.version


@dataclass
class FakeDrift:
    """Reports the tests append."""

    reports: list[DriftSignal] = field(default_factory=list)

    def recent(self, model_name: str, limit: int) -> list[DriftSignal]:
        return self.reports[-limit:]

    def add(self, severity: str, at: datetime) -> None:
        self.reports.append(
            DriftSignal(f"report-{len(self.reports)}", Severity.parse(severity), at)
        )


@dataclass
class FakeLosses:
    """Candidate and champion losses with a chosen ratio."""

    pairs: int = 40
    candidate_scale: float = 0.8

    def losses(
        self, model_name: str, candidate: str, champion: str, since: datetime
    ) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(0)
        champion_loss = rng.gamma(2.0, 1e-4, self.pairs)
        return champion_loss * self.candidate_scale + rng.normal(
            0, 1e-6, self.pairs
        ) ** 2, champion_loss


@dataclass
class FakeGates:
    """Every gate passes unless named in `failing`."""

    failing: dict[str, str] = field(default_factory=dict)
    runs: list[str] = field(default_factory=list)

    def run(self, version: str, champion_version: str) -> tuple[GateResult, ...]:
        self.runs.append(version)
        return tuple(
            GateResult(name, name not in self.failing, self.failing.get(name, "ok"), {"x": 1.0})
            for name in (*OFFLINE_GATES, BASELINE_GATE)
        )


@dataclass
class Clock:
    """A clock tests move by hand."""

    now: datetime = datetime(2008, 10, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@dataclass
class FakeRegistry:
    """The champion alias and which version each job registered."""

    champion: str | None = "1"
    job_versions: dict[str, str] = field(default_factory=dict)
    history: list[SetChampion] = field(default_factory=list)

    def get(self) -> str | None:
        return self.champion

    def set(self, action: SetChampion) -> None:
        self.history.append(action)
        self.champion = action.version

    def version_for(
        self, job_id: str, started: datetime | None, finished: datetime | None
    ) -> str | None:
        return self.job_versions.get(job_id)


@dataclass
class FakeHealth:
    """Health the tests set."""

    value: Health = field(default_factory=lambda: Health(100, 0, 20.0))

    def health(self, colour: Colour, version: str, since: datetime) -> Health:
        return self.value
