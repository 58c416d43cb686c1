"""Serve application builders: the import paths in serveConfigV2 (`serving.serve_config`).

On one Ray cluster (`driftline serve`, `driftline up`, the local controller runtime), three
applications make one serving system:
- `blue` and `green`: `serving.app:colour_app`, one model version each (no HTTP route);
- `driftline`: `serving.app:ingress_app`, the HTTP ingress at `/`, whose `user_config`
  names the active colour, the shadow colour and each colour's version.

On Kubernetes each colour is its own RayService and the Services' selectors move traffic, so
`serving.app:build_app` builds one application holding the ingress and one colour's graph.
"""

from __future__ import annotations

from typing import Any, cast

from ray.serve import Application, Deployment

from driftline.config import Settings
from driftline.contracts import (
    CHAMPION,
    COLOURS,
    RoutingConfig,
)
from serving.deployments import access_log, build_colour_graph
from serving.ingress import Ingress
from serving.model import ModelRef


def colour_app(args: dict[str, Any]) -> Application:
    """One colour's graph. Args: `model`, `version`, `colour`, optional `loader`."""
    settings = Settings()
    ref = ModelRef(
        name=str(args.get("model") or settings.registry.model_name),
        version=str(args["version"]),
        loader=str(args.get("loader") or ModelRef.loader),
    )
    return build_colour_graph(ref, str(args["colour"]), settings)


def ingress_app(args: dict[str, Any]) -> Application:
    """The HTTP ingress. Args: `model`, optional `outcome_hook` (`module:function`)."""
    settings = Settings()
    ingress = _ingress(settings)
    app: Application = ingress.bind(
        str(args.get("model") or settings.registry.model_name), args.get("outcome_hook")
    )
    return app


def build_app(args: dict[str, Any]) -> Application:
    """One colour with its own ingress (a RayService per colour on Kubernetes).

    Args (the chart's `serveConfigV2`): `model_name`, `model_version` (a version, or an alias
    resolved once here so every replica loads the same one), `colour`, optional `num_cpus` for
    the light deployments, `autoscaling_config`, `outcome_hook`, `loader`.
    """
    settings = _with_serve_args(Settings(), args)
    name = str(args.get("model_name") or settings.registry.model_name)
    colour = str(args.get("colour") or COLOURS[0])
    loader = str(args.get("loader") or ModelRef.loader)
    version = _resolve(settings, name, str(args.get("model_version") or CHAMPION), loader)
    graph = build_colour_graph(ModelRef(name, version, loader), colour, settings)
    ingress = _ingress(settings).options(
        user_config=RoutingConfig({colour: version}, colour).to_config()
    )
    app: Application = ingress.bind(name, args.get("outcome_hook"), {colour: graph})
    return app


def _with_serve_args(settings: Settings, args: dict[str, Any]) -> Settings:
    """Settings with the chart's resource and autoscaling arguments applied."""
    update: dict[str, Any] = {}
    if args.get("num_cpus") is not None:
        update["light_cpus"] = float(args["num_cpus"])
    scaling = args.get("autoscaling_config") or {}
    for key in ("min_replicas", "max_replicas", "target_ongoing_requests"):
        if key in scaling:
            update[key] = scaling[key]
    return settings.updated({"serving": update}) if update else settings


def _resolve(settings: Settings, name: str, ref: str, loader: str) -> str:
    if ref.isdigit() or loader != ModelRef.loader:
        return ref
    from driftline.registry import Registry  # noqa: PLC0415  (MLflow imports slowly)

    return str(Registry(settings.updated({"registry": {"model_name": name}})).resolve(ref))


def ingress_slots(settings: Settings) -> int:
    """Requests one ingress replica takes at once. Serve counts an open WebSocket as a request
    for as long as it stays open: without room for the streams' own cap on top, 64 idle stream
    clients held every slot and inference waited behind them."""
    return settings.serving.max_ongoing_requests + settings.auth.ws_max_connections


def _ingress(settings: Settings) -> Deployment:
    return cast(Deployment, Ingress).options(
        ray_actor_options={"num_cpus": settings.serving.ingress_cpus},
        max_ongoing_requests=ingress_slots(settings),
        max_queued_requests=settings.serving.max_queued_requests,
        autoscaling_config={
            "min_replicas": settings.serving.min_replicas,
            "max_replicas": settings.serving.max_replicas,
            "target_ongoing_requests": settings.serving.target_ongoing_requests,
        },
        logging_config=access_log(settings),
        # Serve answers 503 itself when the queue is full: tell clients when to come back.
        backpressure_config={"retry_after_s": settings.serving.retry_after_s},
        # Flush buffered predictions before the replica is stopped.
        graceful_shutdown_timeout_s=settings.serving.request_timeout_s * 4,
    )
