"""The one owner of local blue/green: deploy, route, drain and retire colours on one Ray cluster.

Everything goes through the declarative config on the dashboard (`PUT /api/serve/applications/`),
the same surface KubeRay's RayService uses. `driftline serve` (following the champion alias) and
the controller's local runtime (operators/runtimes/local.py) both act through this module, so a
colour leaves routing and is retired the same way, after `DRIFTLINE_CONTROLLER_DRAIN_S`.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests

from driftline.config import Settings
from driftline.contracts import (
    COLOURS,
    INGRESS_APP,
    INGRESS_DEPLOYMENT,
    RoutingConfig,
    forwarded_env,
    serve_ray_env,
)
from driftline.raycluster import LocalRayCluster, free_port
from serving.serve_api import ServeApi, ServeApiError
from serving.serve_config import http_options, serve_config

log = logging.getLogger(__name__)


class RolloutError(RuntimeError):
    """A colour did not become healthy in time, or cannot be routed; routing stays as it was."""


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
        client: ServeApi | None = None,
    ) -> None:
        self.settings = settings
        self.client = client or ServeApi(dashboard_url)
        self.http_port = http_port
        self.loader = loader
        self.outcome_hook = outcome_hook
        self.env = dict(env) if env is not None else forwarded_env(settings)
        self.timeout_s = timeout_s

    # --- observe --------------------------------------------------------------------------
    def details(self) -> dict[str, Any]:
        """Serve's instance details (applications, statuses, target groups)."""
        return self.client.get_serve_details()

    def state(self) -> ServingState:
        """What the ingress is configured to route, read back from the deployed config."""
        routing = routing_in(self.details().get("applications") or {})
        return ServingState(dict(routing.colours), routing.active, routing.shadow)

    def direct_urls(self) -> list[str]:
        """URLs of the ingress replicas' own HTTP servers (direct ingress), if enabled."""
        urls = []
        for group in self.details().get("target_groups", []):
            if group.get("app_name") == INGRESS_APP and group.get("protocol") == "HTTP":
                scheme = self.settings.serving.scheme
                urls += [f"{scheme}://{t['ip']}:{t['port']}" for t in group.get("targets", [])]
        return urls

    def front_url(self) -> str:
        """The one address users are given: the ingress replica's own server, else the proxy.

        With direct ingress the replica binds `settings.serving.port` (see `ray_env`); should
        that port be taken, it binds the next one, and this reports the port it really has.
        """
        scheme = self.settings.serving.scheme
        direct = self.direct_urls()
        wanted = f"{scheme}://{self.settings.serving.host}:{self.settings.serving.port}"
        if direct:
            return wanted if wanted in direct else direct[0]
        port = (self.details().get("http_options") or {}).get("port") or self.http_port
        return f"{scheme}://{self.settings.serving.host}:{port}"

    # --- act: one config change each, not waited for (the controller observes) -------------
    def deploy_colour(self, colour: str, version: str) -> None:
        """Put `version` on `colour` beside what runs; the ingress does not route to it yet."""
        config = self._in_force()
        apps = [a for a in config["applications"] if a["name"] != colour]
        apps.insert(0, self._colour_app(config, colour, version))
        self._put({**config, "applications": apps})

    def route(self, active: str, shadow: str | None = None) -> RoutingConfig:
        """Switch the ingress in place to `active`, mirroring to `shadow`; both must be deployed."""
        config = self._in_force()
        versions = {
            a["name"]: str(a["args"]["version"])
            for a in config["applications"]
            if a["name"] in COLOURS
        }
        missing = [c for c in (active, shadow) if c is not None and c not in versions]
        if missing:
            raise RolloutError(f"cannot route to {missing[0]}: it is not deployed")
        colours = {c: versions[c] for c in (active, shadow) if c is not None}
        routing = RoutingConfig(colours, active, shadow)
        apps = [a for a in config["applications"] if a["name"] != INGRESS_APP]
        apps.append(self._ingress_app(config, routing))
        self._put({**config, "applications": apps})
        return routing

    def retire(self, colour: str) -> None:
        """Delete `colour`'s application (call it once the colour has drained)."""
        config = self._in_force()
        apps = [a for a in config["applications"] if a["name"] != colour]
        if len(apps) != len(config["applications"]):
            self._put({**config, "applications": apps})

    # --- sequences, each waited for -------------------------------------------------------
    def config(self, state: ServingState) -> dict[str, Any]:
        """The declarative Serve config that serves `state` from nothing."""
        config = serve_config(
            self.settings,
            colours=state.colours,
            active=state.active,
            shadow=state.shadow,
            http_port=self.http_port,
            loader=self.loader,
            outcome_hook=self.outcome_hook,
            env=self.env,
        )
        return one_ingress_replica(config, self.settings)

    def deploy(self, version: str, colour: str = COLOURS[0]) -> ServingState:
        """Serve `version` on `colour` as the only, active colour."""
        state = ServingState({colour: version}, colour, None)
        if INGRESS_APP not in (self.details().get("applications") or {}):
            return self._first_deploy(state)
        self._put(self.config(state))
        self.wait_running([colour, INGRESS_APP], state)
        return state

    def _first_deploy(self, state: ServingState) -> ServingState:
        """Start the ingress alone, then the colour beside it, then route to the colour.

        Serve gives every application's ingress replica a direct-ingress port, the lowest free
        one first: started together, a colour's replica could take the port users are given.
        """
        assert state.active is not None
        nothing = ServingState({}, None, None)
        self._put(self.config(nothing))
        self.wait_running([INGRESS_APP], nothing)
        self.deploy_colour(state.active, state.colours[state.active])
        self.wait_running([state.active], nothing)
        return self._switch(state)

    def rollout(self, version: str, *, keep_shadow: bool = False) -> ServingState:
        """Blue/green: `version` to the idle colour, wait, switch, drain, retire the old one."""
        current = self.state()
        if current.active is None:
            return self.deploy(version)
        if current.active_version == version:
            return current
        idle, old = current.idle_colour(), current.active
        # 1. The new colour comes up beside the old; the ingress does not know it yet.
        self.deploy_colour(idle, version)
        self.wait_running([idle], current)
        # 2. The ingress switches in place (reconfigure, no restart).
        if keep_shadow:
            both = {old: current.colours[old], idle: version}
            return self._switch(ServingState(both, idle, old))
        routed = self._switch(ServingState({idle: version}, idle, None))
        # 3. Requests already routed to the old colour finish before it is removed.
        time.sleep(self.settings.rollout.drain_seconds)
        self.retire(old)
        self.wait_gone(old)
        log.info("rolled out", extra={"version": version, "colour": idle, "retired": old})
        return routed

    def set_shadow(self, version: str | None) -> ServingState:
        """Mirror live traffic to `version` on the idle colour (or stop mirroring)."""
        current = self.state()
        if current.active is None:
            raise RolloutError("nothing is deployed yet")
        active_only = {current.active: current.colours[current.active]}
        if version is None:
            state = self._switch(ServingState(active_only, current.active, None))
            if current.shadow is not None:
                self.retire(current.shadow)
                self.wait_gone(current.shadow)
            return state
        idle = current.idle_colour()
        self.deploy_colour(idle, version)
        self.wait_running([idle], current)
        mirrored = ServingState({**active_only, idle: version}, current.active, idle)
        return self._switch(mirrored)

    def _switch(self, state: ServingState) -> ServingState:
        """Route as `state` says and wait until the ingress runs with it."""
        assert state.active is not None
        self.route(state.active, state.shadow)
        self.wait_running([*state.colours, INGRESS_APP], state)
        return state

    # --- the config in force, edited in place ---------------------------------------------
    def _in_force(self) -> dict[str, Any]:
        """The declarative config now deployed, so a change touches only what it means to."""
        details = self.details()
        apps = [
            _app_config(app)
            for app in (details.get("applications") or {}).values()
            if app.get("deployed_app_config")
        ]
        http = details.get("http_options") or {}
        return {
            "proxy_location": details.get("proxy_location") or "HeadOnly",
            "http_options": http_options(self.settings, http.get("port") or self.http_port)
            | ({"host": http["host"]} if http.get("host") else {}),
            "applications": apps,
        }

    def _fresh(self, name: str, colour: str, version: str) -> dict[str, Any]:
        """Application `name` as `config` would write it for `colour` serving `version`."""
        fresh = self.config(ServingState({colour: version}, colour, None))
        return next(a for a in fresh["applications"] if a["name"] == name)

    def _colour_app(self, config: dict[str, Any], colour: str, version: str) -> dict[str, Any]:
        # Copy a deployed colour's settings (runtime_env, loader): the cluster may have been
        # set up by another process (`driftline serve`, `driftline up`) than the one editing it.
        template = next((a for a in config["applications"] if a["name"] in COLOURS), None)
        app = copy.deepcopy(template) if template else self._fresh(colour, colour, version)
        app.update(name=colour, route_prefix=None)
        app["args"] = {**app.get("args", {}), "model": self.settings.registry.model_name}
        app["args"].update(version=version, colour=colour)
        app.pop("deployments", None)
        return app

    def _ingress_app(self, config: dict[str, Any], routing: RoutingConfig) -> dict[str, Any]:
        current = next((a for a in config["applications"] if a["name"] == INGRESS_APP), None)
        colour, version = next(iter(routing.colours.items()))
        app = copy.deepcopy(current) if current else self._fresh(INGRESS_APP, colour, version)
        app.update(name=INGRESS_APP, route_prefix="/")
        app.setdefault("args", {})["model"] = self.settings.registry.model_name
        if self.outcome_hook and "outcome_hook" not in app["args"]:
            app["args"]["outcome_hook"] = self.outcome_hook
        others = [d for d in app.get("deployments", []) if d.get("name") != INGRESS_DEPLOYMENT]
        ingress: dict[str, Any] = next(
            (d for d in app.get("deployments", []) if d.get("name") == INGRESS_DEPLOYMENT), {}
        )
        user_config = routing.to_config()
        app["deployments"] = [
            *others,
            {**ingress, "name": INGRESS_DEPLOYMENT, "user_config": user_config},
        ]
        return app

    def _put(self, config: dict[str, Any], attempts: int = 4) -> None:
        # The config is declarative, so re-sending it is safe; the dashboard drops connections
        # (or answers 500 from a module still starting) now and then while a busy head starts.
        for attempt in range(attempts):
            try:
                self.client.deploy_applications(config)
                return
            except (requests.ConnectionError, ServeApiError) as error:
                transient = not isinstance(error, ServeApiError) or error.status >= 500
                if attempt == attempts - 1 or not transient:
                    raise
                log.warning("Serve REST API unreachable; retrying", extra={"attempt": attempt})
                time.sleep(2.0 * (attempt + 1))

    def shutdown(self) -> None:
        """Delete every application; ingress replicas flush their predictions as they stop."""
        self.client.delete_applications()
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

    def wait_gone(self, app: str) -> None:
        """Block until Serve has deleted `app`."""
        deadline = time.monotonic() + self.timeout_s
        while app in (self.details().get("applications") or {}):
            if time.monotonic() > deadline:
                raise RolloutError(f"application {app} not deleted after {self.timeout_s:.0f}s")
            time.sleep(0.5)

    def _routed(self, state: ServingState) -> bool:
        # RUNNING alone can be the previous config's status: confirm ours is the one deployed.
        return self.state() == state


def proxy_port(settings: Settings) -> int:
    """Where Serve's own proxy listens: off the user's port when the ingress serves it directly.

    Direct ingress needs the proxy (Serve turns replica HTTP off with `proxy_location:
    Disabled`), so it stays, on a free loopback port that nothing prints.
    """
    return free_port() if settings.serving.throughput_optimized else settings.serving.port


def ray_env(settings: Settings, *, direct_port_base: int | None = None) -> dict[str, str]:
    """Environment the Ray head must start with for Serve to run the way Driftline tunes it.

    Serve reads these when its processes start, so they cannot be changed per application.
    Direct-ingress HTTP ports start at `direct_port_base` (default `settings.serving.port`):
    the first ingress replica binds the port users are given.
    """
    base = settings.serving.port if direct_port_base is None else direct_port_base
    env = {
        **serve_ray_env(base),
        # Direct ingress replicas drain for 30 s by default before stopping; ours flush
        # predictions on shutdown themselves and tests restart apps often.
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "2",
        # Serve holds a stopped replica's port back for 150 s (for HAProxy's stale workers, which
        # we do not run); without the hold a restarted ingress takes the printed port again.
        "RAY_SERVE_PORT_QUARANTINE_S": "0",
    }
    if settings.serving.throughput_optimized:
        env["RAY_SERVE_THROUGHPUT_OPTIMIZED"] = "1"
    return env


def local_head(settings: Settings, **placement: object) -> LocalRayCluster:
    """The local Ray head `driftline up` and `driftline serve` start: sized by `settings`, with
    the Serve environment of `ray_env`; `placement` overrides where it runs (ports, log)."""
    return LocalRayCluster.from_settings(settings, env=ray_env(settings), **placement)


def one_ingress_replica(config: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """`config` with its ingress fixed at one replica: the one that holds the printed port.

    A second local ingress replica would bind the next port (`serving.port` + 1), which no
    one is told about, and scaling down could stop the replica on the printed port. Members
    keep autoscaling; on Kubernetes (`build_app`) the Service spreads over ingress replicas.
    """
    pinned = {
        "min_replicas": 1,
        "max_replicas": 1,
        "target_ongoing_requests": settings.serving.target_ongoing_requests,
    }
    for app in config["applications"]:
        for deployment in app.get("deployments") or []:
            if app["name"] == INGRESS_APP and deployment.get("name") == INGRESS_DEPLOYMENT:
                deployment["autoscaling_config"] = pinned
    return config


def routing_in(applications: Mapping[str, Any]) -> RoutingConfig:
    """The ingress's routing as deployed, from Serve's application details."""
    ingress = (applications.get(INGRESS_APP) or {}).get("deployed_app_config") or {}
    for deployment in ingress.get("deployments") or []:
        if deployment.get("name") == INGRESS_DEPLOYMENT and deployment.get("user_config"):
            return RoutingConfig.from_config(deployment["user_config"])
    return RoutingConfig({}, None, None)


def _app_config(app: Mapping[str, Any]) -> dict[str, Any]:
    config = copy.deepcopy(dict(app["deployed_app_config"]))
    # Serve reports deployments it filled in itself; only the ones we set are ours to resend.
    config["deployments"] = [
        d for d in config.get("deployments") or [] if d.get("name") == INGRESS_DEPLOYMENT
    ]
    if not config["deployments"]:
        config.pop("deployments")
    return config
