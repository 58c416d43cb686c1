"""Drives serving through Serve's REST API: deploy, inspect, and switch colours blue/green.

Everything goes through the declarative config on the dashboard (`PUT /api/serve/applications/`),
the same surface the controller's local runtime and KubeRay's RayService use.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import requests
from ray.dashboard.modules.serve.sdk import ServeSubmissionClient

from driftline.config import Settings
from serving.app import COLOURS, INGRESS_APP, serve_config

log = logging.getLogger(__name__)


class RolloutError(RuntimeError):
    """A colour did not become healthy in time; the previous routing stays in force."""


@dataclass(frozen=True)
class ServingState:
    """Deployed colours with their versions, the active one and the shadow."""

    colours: dict[str, str]
    active: str | None
    shadow: str | None

    @property
    def active_version(self) -> str | None:
        """The version the active colour serves."""
        return self.colours.get(self.active) if self.active else None

    def idle_colour(self) -> str:
        """The colour a new version goes to."""
        return next(c for c in COLOURS if c != self.active)


class ServingControl:
    """Deploys and switches Driftline's Serve applications on one Ray cluster."""

    def __init__(
        self,
        settings: Settings,
        dashboard_url: str,
        *,
        http_port: int,
        loader: str | None = None,
        outcome_hook: str | None = None,
        env: dict[str, str] | None = None,
        timeout_s: float = 600.0,
    ) -> None:
        self.settings = settings
        self.client = ServeSubmissionClient(dashboard_url)
        self.http_port = http_port
        self.loader = loader
        self.outcome_hook = outcome_hook
        self.env = dict(env) if env is not None else settings_env(settings)
        self.timeout_s = timeout_s

    # --- observe --------------------------------------------------------------------------
    def details(self) -> dict[str, Any]:
        """Serve's instance details (applications, statuses, target groups)."""
        details: dict[str, Any] = self.client.get_serve_details()
        return details

    def state(self) -> ServingState:
        """What the ingress is configured to route, read back from the deployed config."""
        apps = self.details().get("applications", {})
        ingress = apps.get(INGRESS_APP, {}).get("deployed_app_config") or {}
        for deployment in ingress.get("deployments", []):
            if deployment.get("name") == "Ingress" and deployment.get("user_config"):
                config = deployment["user_config"]
                return ServingState(dict(config["colours"]), config["active"], config["shadow"])
        return ServingState({}, None, None)

    def direct_urls(self) -> list[str]:
        """URLs of the ingress replicas' own HTTP servers (direct ingress), if enabled."""
        urls = []
        for group in self.details().get("target_groups", []):
            if group.get("app_name") == INGRESS_APP and group.get("protocol") == "HTTP":
                urls += [f"http://{t['ip']}:{t['port']}" for t in group.get("targets", [])]
        return urls

    # --- act ------------------------------------------------------------------------------
    def config(self, state: ServingState) -> dict[str, Any]:
        """The declarative Serve config that serves `state`."""
        return serve_config(
            self.settings,
            colours=state.colours,
            active=state.active,
            shadow=state.shadow,
            http_port=self.http_port,
            loader=self.loader,
            outcome_hook=self.outcome_hook,
            env=self.env,
        )

    def apply(self, state: ServingState) -> None:
        """Deploy the config for `state` and wait until every application runs."""
        self._put(self.config(state))
        self.wait_running([*state.colours, INGRESS_APP], state)

    def deploy(self, version: str, colour: str = "blue") -> ServingState:
        """Serve `version` on `colour` as the only, active colour."""
        state = ServingState({colour: version}, colour, None)
        self.apply(state)
        return state

    def rollout(self, version: str, *, keep_shadow: bool = False) -> ServingState:
        """Blue/green: deploy `version` to the idle colour, wait, switch, retire the old one."""
        current = self.state()
        if current.active is None:
            return self.deploy(version)
        if current.active_version == version:
            return current
        idle = current.idle_colour()
        old = current.active
        # 1. The new colour comes up beside the old; the ingress does not know it yet.
        self.apply(ServingState({**current.colours, idle: version}, old, current.shadow))
        # 2. The ingress learns both colours and switches in place (reconfigure, no restart).
        both = {old: current.colours[old], idle: version}
        self.apply(ServingState(both, idle, old if keep_shadow else None))
        if keep_shadow:
            return self.state()
        # 3. Requests already routed to the old colour finish before it is removed.
        time.sleep(self.settings.serving.request_timeout_s / 4)
        retired = ServingState({idle: version}, idle, None)
        self.apply(retired)
        log.info("rolled out", extra={"version": version, "colour": idle, "retired": old})
        return retired

    def set_shadow(self, version: str | None) -> ServingState:
        """Mirror live traffic to `version` on the idle colour (or stop mirroring)."""
        current = self.state()
        if current.active is None:
            raise RolloutError("nothing is deployed yet")
        active_only = {current.active: current.colours[current.active]}
        if version is None:
            state = ServingState(active_only, current.active, None)
            self.apply(state)
            return state
        idle = current.idle_colour()
        self.apply(ServingState({**current.colours, idle: version}, current.active, None))
        state = ServingState({**active_only, idle: version}, current.active, idle)
        self.apply(state)
        return state

    def _put(self, config: dict[str, Any], attempts: int = 4) -> None:
        # The config is declarative, so re-sending it is safe; the dashboard drops connections
        # now and then while a busy head starts Serve.
        for attempt in range(attempts):
            try:
                self.client.deploy_applications(config)
                return
            except requests.ConnectionError:
                if attempt == attempts - 1:
                    raise
                log.warning("Serve REST API unreachable; retrying", extra={"attempt": attempt})
                time.sleep(2.0 * (attempt + 1))

    def shutdown(self) -> None:
        """Delete every application; ingress replicas flush their predictions as they stop."""
        self.client.delete_applications()  # type: ignore[no-untyped-call]
        deadline = time.monotonic() + self.timeout_s
        while self.details().get("applications") and time.monotonic() < deadline:
            time.sleep(0.5)

    def wait_running(self, apps: list[str], state: ServingState) -> None:
        """Block until every app in `apps` runs with the config just applied."""
        deadline = time.monotonic() + self.timeout_s
        statuses: dict[str, str] = {}
        while time.monotonic() < deadline:
            details = self.details().get("applications", {})
            statuses = {a: details.get(a, {}).get("status", "MISSING") for a in apps}
            failed = [a for a, s in statuses.items() if s == "DEPLOY_FAILED"]
            if failed:
                message = details[failed[0]].get("message", "")
                raise RolloutError(f"application {failed[0]} failed to deploy: {message}")
            if all(s == "RUNNING" for s in statuses.values()) and self._routed(state):
                return
            time.sleep(0.5)
        raise RolloutError(f"applications not running after {self.timeout_s:.0f}s: {statuses}")

    def _routed(self, state: ServingState) -> bool:
        # RUNNING alone can be the previous config's status: confirm ours is the one deployed.
        return self.state() == state


def ray_env(settings: Settings, *, direct_port_base: int) -> dict[str, str]:
    """Environment the Ray head must start with for Serve to run the way Driftline tunes it.

    Serve reads these when its processes start, so they cannot be changed per application.
    """
    env = {
        # Serve's replicas run at nice 15 by default: on a shared host that hands their CPU to
        # any neighbour; serving is the latency-critical work here.
        "RAY_worker_niceness": "0",
        # Direct ingress replicas drain for 30 s by default before stopping; ours flush
        # predictions on shutdown themselves and tests restart apps often.
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "2",
        "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(direct_port_base),
        "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": str(direct_port_base + 99),
        "RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT": str(direct_port_base + 100),
        "RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT": str(direct_port_base + 199),
    }
    if settings.serving.throughput_optimized:
        env["RAY_SERVE_THROUGHPUT_OPTIMIZED"] = "1"
    return env


def settings_env(settings: Settings) -> dict[str, str]:
    """This process's Driftline and MLflow settings, to hand to the replicas."""
    prefixes = ("DRIFTLINE_", "MLFLOW_")
    env = {k: v for k, v in os.environ.items() if k.startswith(prefixes)}
    env["DRIFTLINE_HOME"] = str(settings.home)
    env["MLFLOW_TRACKING_URI"] = settings.tracking_uri
    if settings.store.database_url:
        env["DRIFTLINE_DATABASE_URL"] = settings.store.database_url
    return env
