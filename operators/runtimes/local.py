"""LocalRayRuntime: retraining through the Ray Jobs API; blue and green as two Serve applications
behind one ingress whose `user_config` routes (the surface documented in serving/README.md)."""

from __future__ import annotations

import copy
import shlex
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from driftline.config import Settings
from operators.actions import SetChampion, SubmitRetraining
from operators.health import ScrapeHealth
from operators.observations import ColourObservation, Health, JobObservation, JobStatus
from operators.runtimes.base import (
    ChampionRecord,
    JobVersions,
    RuntimeOperationError,
    ServingObservation,
)
from operators.states import COLOURS, Colour

# Serving's contract (serving/README.md): application names, import paths and the ingress config.
INGRESS_APP = "driftline"
INGRESS_DEPLOYMENT = "Ingress"
COLOUR_IMPORT_PATH = "serving.app:colour_app"
INGRESS_IMPORT_PATH = "serving.app:ingress_app"
JOB_PREFIX = "driftline-retrain-"
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
            self.scrape = ScrapeHealth(
                f"{self.serve_url}/metrics", self.settings.registry.model_name, clock=self.clock
            )

    # --- serving ----------------------------------------------------------------------------
    def observe_serving(self) -> ServingObservation:
        apps = self._details().get("applications") or {}
        colours: dict[Colour, ColourObservation] = {}
        for colour in COLOURS:
            app = apps.get(colour)
            if app is not None:
                colours[colour] = colour_observation(app)
        routing = _routing(apps.get(INGRESS_APP) or {})
        active, shadow = routing.get("active"), routing.get("shadow")
        return ServingObservation(
            active if active in COLOURS else None,
            shadow if shadow in COLOURS and shadow != active else None,
            colours,
        )

    def deploy(self, colour: Colour, version: str) -> None:
        config = self._config()
        apps = [a for a in config["applications"] if a["name"] != colour]
        apps.insert(0, self._colour_app(config, colour, version))
        self._put({**config, "applications": apps})

    def route(self, active: Colour, shadow: Colour | None) -> None:
        config = self._config()
        versions = {
            a["name"]: str(a["args"]["version"])
            for a in config["applications"]
            if a["name"] in COLOURS
        }
        missing = [c for c in (active, shadow) if c is not None and c not in versions]
        if missing:
            raise RuntimeOperationError(f"cannot route to {missing[0]}: it is not deployed")
        routing = {
            "colours": {c: versions[c] for c in (active, shadow) if c is not None},
            "active": active,
            "shadow": shadow,
        }
        apps = [a for a in config["applications"] if a["name"] != INGRESS_APP]
        apps.append(self._ingress_app(config, routing))
        self._put({**config, "applications": apps})
        # Verification counts the new active version's requests from this moment.
        assert self.scrape is not None
        self.scrape.mark(versions[active])

    def retire(self, colour: Colour) -> None:
        config = self._config()
        apps = [a for a in config["applications"] if a["name"] != colour]
        if len(apps) != len(config["applications"]):
            self._put({**config, "applications": apps})

    def health(self, colour: Colour, version: str, since: datetime) -> Health:
        assert self.scrape is not None
        return self.scrape.health(colour, version, since)

    # --- jobs -------------------------------------------------------------------------------
    def submit_retraining(self, action: SubmitRetraining) -> None:
        settings = self.settings
        argv = [
            sys.executable,
            "-m",
            "training.job",
            "--trials",
            str(settings.retraining.trials),
        ]
        argv += shlex.split(settings.controller.retrain_args)
        env = {
            **self.job_env,
            "DRIFTLINE_MODEL_NAME": settings.registry.model_name,
            "DRIFTLINE_JOB_ID": action.job_id,
            "DRIFTLINE_ROLLOUT_ID": action.rollout_id,
        }
        try:
            self._jobs().submit_job(
                entrypoint=shlex.join(argv),
                submission_id=JOB_PREFIX + action.job_id,
                runtime_env={"env_vars": env},
                metadata={
                    "driftline.model": settings.registry.model_name,
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
        return JobObservation(job_id, status, version, str(info.message or "")[:500])

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
    def _details(self) -> dict[str, Any]:
        from ray.dashboard.modules.serve.sdk import ServeSubmissionClient  # noqa: PLC0415

        details: dict[str, Any] = ServeSubmissionClient(self.dashboard_url).get_serve_details()
        return details

    def _put(self, config: dict[str, Any]) -> None:
        from ray.dashboard.modules.serve.sdk import ServeSubmissionClient  # noqa: PLC0415

        ServeSubmissionClient(self.dashboard_url).deploy_applications(config)

    def _jobs(self) -> Any:
        from ray.job_submission import JobSubmissionClient  # noqa: PLC0415

        return JobSubmissionClient(self.dashboard_url)

    def _config(self) -> dict[str, Any]:
        """The declarative config now in force, so a change touches only what it means to."""
        details = self._details()
        apps = [
            _app_config(app)
            for app in (details.get("applications") or {}).values()
            if app.get("deployed_app_config")
        ]
        http = details.get("http_options") or {}
        return {
            "proxy_location": details.get("proxy_location") or "HeadOnly",
            "http_options": {
                "host": http.get("host") or "127.0.0.1",
                "port": http.get("port") or self.http_port,
            },
            "applications": apps,
        }

    def _colour_app(self, config: dict[str, Any], colour: Colour, version: str) -> dict[str, Any]:
        # Copy a deployed colour's settings (runtime_env, loader) when there is one.
        template = next((a for a in config["applications"] if a["name"] in COLOURS), None)
        app = copy.deepcopy(template) if template else self._fresh_app(COLOUR_IMPORT_PATH)
        app.update(name=colour, route_prefix=None)
        app["args"] = {**app.get("args", {}), "model": self.settings.registry.model_name}
        app["args"].update(version=version, colour=colour)
        app.pop("deployments", None)
        return app

    def _ingress_app(self, config: dict[str, Any], routing: dict[str, Any]) -> dict[str, Any]:
        current = next((a for a in config["applications"] if a["name"] == INGRESS_APP), None)
        app = copy.deepcopy(current) if current else self._fresh_app(INGRESS_IMPORT_PATH)
        app.update(name=INGRESS_APP, route_prefix="/")
        app.setdefault("args", {})["model"] = self.settings.registry.model_name
        if self.outcome_hook and "outcome_hook" not in app["args"]:
            app["args"]["outcome_hook"] = self.outcome_hook
        deployments = [d for d in app.get("deployments", []) if d.get("name") != INGRESS_DEPLOYMENT]
        ingress: dict[str, Any] = next(
            (d for d in app.get("deployments", []) if d.get("name") == INGRESS_DEPLOYMENT), {}
        )
        deployments.append({**ingress, "name": INGRESS_DEPLOYMENT, "user_config": routing})
        app["deployments"] = deployments
        return app

    def _fresh_app(self, import_path: str) -> dict[str, Any]:
        runtime_env = {"env_vars": dict(self.serve_env)} if self.serve_env else {}
        return {"import_path": import_path, "runtime_env": runtime_env, "args": {}}


def _routing(ingress: Mapping[str, Any]) -> dict[str, Any]:
    config = ingress.get("deployed_app_config") or {}
    for deployment in config.get("deployments") or []:
        if deployment.get("name") == INGRESS_DEPLOYMENT and deployment.get("user_config"):
            return dict(deployment["user_config"])
    return {}


def _app_config(app: Mapping[str, Any]) -> dict[str, Any]:
    config = copy.deepcopy(dict(app["deployed_app_config"]))
    # Serve reports deployments it filled in itself; only the ones we set are ours to resend.
    config["deployments"] = [
        d for d in config.get("deployments") or [] if d.get("name") == INGRESS_DEPLOYMENT
    ]
    if not config["deployments"]:
        config.pop("deployments")
    return config


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
