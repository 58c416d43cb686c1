"""LocalRayRuntime: retraining through the Ray Jobs API; blue and green through serving.control,
which owns the Serve applications on a local cluster (serving/README.md)."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from driftline.config import Settings
from driftline.contracts import (
    COLOURS,
    JOB_ID_ENV,
    ROLLOUT_ID_ENV,
    Colour,
    TrainingRequest,
)
from operators.actions import SetChampion, SubmitRetraining
from operators.health import ScrapeHealth
from operators.observations import ColourObservation, Health, JobObservation, JobStatus
from operators.runtimes.base import (
    ChampionRecord,
    JobVersions,
    RuntimeOperationError,
    ServingObservation,
)

if TYPE_CHECKING:
    from serving.control import ServingControl

JOB_PREFIX = "driftline-retrain-"
# How much of a job's message the audit keeps: Ray appends up to 20,000 characters of log.
REASON_CHARS = 500
_JOB_STATUS = {
    "PENDING": JobStatus.PENDING,
    "RUNNING": JobStatus.RUNNING,
    "SUCCEEDED": JobStatus.SUCCEEDED,
    "FAILED": JobStatus.FAILED,
    "STOPPED": JobStatus.STOPPED,
}


@dataclass
class LocalRayRuntime:
    """Acts on one local (or remote) Ray cluster through its dashboard's REST APIs."""

    settings: Settings
    dashboard_url: str
    serve_url: str
    champion: ChampionRecord
    versions: JobVersions
    job_env: Mapping[str, str] = field(default_factory=dict)
    serve_env: Mapping[str, str] = field(default_factory=dict)
    outcome_hook: str | None = None
    http_port: int = 8000
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    name: str = "local"
    scrape: ScrapeHealth | None = None

    def __post_init__(self) -> None:
        if self.scrape is None:
            url = f"{self.serve_url}/metrics"  # one ingress, its replicas merged per node
            self.scrape = ScrapeHealth(
                lambda: [url],
                self.settings.registry.model_name,
                clock=self.clock,
                api_key=_secret(self.settings.controller.api_key),
            )

    # --- serving: serving.control owns the Serve applications ------------------------------
    @cached_property
    def serving(self) -> ServingControl:
        """Serving's control of this cluster (imported on first use: it loads Ray Serve)."""
        from serving.control import ServingControl  # noqa: PLC0415

        return ServingControl(
            self.settings,
            self.dashboard_url,
            http_port=self.http_port,
            outcome_hook=self.outcome_hook,
            env=dict(self.serve_env),
        )

    def observe_serving(self) -> ServingObservation:
        from serving.control import routing_in  # noqa: PLC0415

        apps = self.serving.details().get("applications") or {}
        colours: dict[Colour, ColourObservation] = {}
        for colour in COLOURS:
            app = apps.get(colour)
            if app is not None:
                colours[colour] = colour_observation(app)
        routing = routing_in(apps)
        active, shadow = routing.active, routing.shadow
        return ServingObservation(
            active if active in COLOURS else None,
            shadow if shadow in COLOURS and shadow != active else None,
            colours,
        )

    def deploy(self, colour: Colour, version: str) -> None:
        self.serving.deploy_colour(colour, version)

    def route(self, active: Colour, shadow: Colour | None) -> None:
        from serving.control import RolloutError  # noqa: PLC0415

        try:
            routing = self.serving.route(active, shadow)
        except RolloutError as error:
            raise RuntimeOperationError(str(error)) from None
        # Verification counts the new active version's requests from this moment.
        assert self.scrape is not None
        self.scrape.mark(routing.colours[active])

    def retire(self, colour: Colour) -> None:
        self.serving.retire(colour)

    def health(self, colour: Colour, version: str, since: datetime) -> Health:
        assert self.scrape is not None
        return self.scrape.health(colour, version, since)

    # --- jobs -------------------------------------------------------------------------------
    def submit_retraining(self, action: SubmitRetraining) -> None:
        retrain = self.settings
        request = TrainingRequest(
            trials=retrain.retraining.trials,
            extra=tuple(shlex.split(retrain.controller.retrain_args)),
        )
        argv = request.argv()
        env = {
            **self.job_env,
            "DRIFTLINE_MODEL_NAME": retrain.registry.model_name,
            JOB_ID_ENV: action.job_id,
            ROLLOUT_ID_ENV: action.rollout_id,
        }
        try:
            self._jobs().submit_job(
                entrypoint=shlex.join(argv),
                submission_id=JOB_PREFIX + action.job_id,
                runtime_env={"env_vars": env},
                metadata={
                    "driftline.model": retrain.registry.model_name,
                    "driftline.job_id": action.job_id,
                    "driftline.rollout_id": action.rollout_id,
                    "driftline.trigger": action.trigger,
                },
                entrypoint_num_cpus=0.5,
            )
        except RuntimeError as error:
            if "already exists" not in str(error):
                raise
            # Submission is idempotent by id: a restarted controller may submit again.

    def observe_job(self, job_id: str) -> JobObservation:
        try:
            info = self._jobs().get_job_info(JOB_PREFIX + job_id)
        except RuntimeError as error:
            if "does not exist" in str(error) or "404" in str(error):
                return JobObservation(job_id, JobStatus.ABSENT)
            raise
        status = _JOB_STATUS.get(str(info.status), JobStatus.PENDING)
        version = None
        if status is JobStatus.SUCCEEDED:
            version = self.versions.version_for(job_id, _ms(info.start_time), _ms(info.end_time))
        return JobObservation(job_id, status, version, job_reason(str(info.message or "")))

    def running_jobs(self) -> tuple[str, ...]:
        jobs = self._jobs().list_jobs()
        return tuple(
            sorted(
                str(j.metadata["driftline.job_id"])
                for j in jobs
                if (j.metadata or {}).get("driftline.model") == self.settings.registry.model_name
                and "driftline.job_id" in (j.metadata or {})
                and not _JOB_STATUS.get(str(j.status), JobStatus.PENDING).finished
            )
        )

    def stop_retraining(self, job_id: str) -> None:
        self._jobs().stop_job(JOB_PREFIX + job_id)

    # --- registry ---------------------------------------------------------------------------
    def champion_version(self) -> str | None:
        return self.champion.get()

    def set_champion(self, action: SetChampion) -> None:
        self.champion.set(action)

    # --- helpers ----------------------------------------------------------------------------
    def _jobs(self) -> Any:
        from ray.job_submission import JobSubmissionClient  # noqa: PLC0415

        return JobSubmissionClient(self.dashboard_url)


def job_reason(message: str, limit: int = REASON_CHARS) -> str:
    """At most `limit` characters of a Ray job's message that say why it ended: Ray's first line
    (the exit code) and the job's last `error:` line, else the log's tail. Ray appends the log
    after its first line, and the training job prints its reason last (`training.job`)."""
    message = message.strip()
    if len(message) <= limit:
        return message
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    errors = [line for line in lines[1:] if line.startswith("error:")]
    tail = errors[-1] if errors else message
    head = lines[0][: limit // 3]
    room = limit - len(head) - len(" ... ")
    return f"{head} ... {tail[-room:]}"


def _ms(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value / 1000, UTC)


def colour_observation(app: Mapping[str, Any]) -> ColourObservation:
    """One colour as Serve's application details report it."""
    args = (app.get("deployed_app_config") or {}).get("args") or {}
    status = str(app.get("status", ""))
    return ColourObservation(
        None if args.get("version") is None else str(args["version"]),
        status == "RUNNING",
        f"{status}: {app.get('message', '')}".strip(": ")[:300],
        retiring=status == "DELETING",
    )


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()
