"""The Serve deployment of the one HTTP ingress: KServe V1/V2, the domain endpoints, the stream,
metrics and blue/green routing, assembled into one ASGI app per replica.

The top layer: it builds on `routing` (routing and scoring), `endpoints` (the HTTP handlers) and
`http` (HTTP helpers), none of which imports it. The active and shadow colours live in the
deployment's `user_config`; Serve applies a new one in place through `reconfigure`, so switching
colour swaps one reference between requests and never fails a request in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib.metadata import version as package_version
from typing import Any

from opentelemetry.trace import SpanKind
from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.types import ASGIApp
from starlette.websockets import WebSocket

from driftline.auth.configure import protect
from driftline.auth.keys import KeyLookup
from driftline.auth.routes import Route as AuthRoute
from driftline.auth.routes import RouteTable, mounted
from driftline.auth.scopes import Scope
from driftline.config import Settings
from driftline.data import load_bars
from driftline.ids import new_id
from driftline.observability import tracing
from driftline.observability.logs import configure_logging
from driftline.store import Store
from driftline.store.keys import KeyStore
from serving import apidocs, endpoints, protocol
from serving.channel import endpoints as member_endpoints
from serving.channel import in_background, socket_dir
from serving.http import BodyLimit, http_error
from serving.metrics import enable_multiprocess, metrics, process_exiting, writer_gauges
from serving.mirror import ShadowMirror
from serving.replica_grpc import bind_to_node_ip
from serving.routing import ColourRoute, Router, Routing, ShadowSink
from serving.spool import Spool
from serving.stream import BarReplay, OutcomeHook, StreamHub
from serving.stream import Message as StreamMessage
from serving.writer import PredictionWriter

log = logging.getLogger(__name__)
STREAM_PATH = "/ws/predictions"
API_PREFIX = "/api"


@serve.deployment
@serve.ingress()
class Ingress:
    """HTTP and WebSocket front door; routes to the active colour's members."""

    def __init__(
        self,
        model_name: str,
        outcome_hook: str | None = None,
        graphs: dict[str, DeploymentHandle[Any]] | None = None,
    ) -> None:
        bind_to_node_ip()
        self.settings = Settings()
        configure_logging(
            self.settings.observability.log_level, json=self.settings.observability.log_json
        )
        enable_multiprocess(self.settings.home / "serve-metrics")
        tracing.configure_tracing(
            "driftline-ingress",
            self.settings.observability.otlp_endpoint,
            self.settings.observability.trace_ratio,
        )
        self.model_name = model_name
        self.metrics = metrics()
        # Colours bound into this application (a RayService per colour); others are looked up
        # as applications of their own by name.
        self._handles: dict[str, DeploymentHandle[Any]] = dict(graphs or {})
        self._info_labels: set[tuple[str, str, str, str]] = set()
        self.store = Store.from_settings(self.settings)
        writer = PredictionWriter(
            self.store.predictions,
            batch_size=self.settings.serving.write_batch,
            interval_s=self.settings.serving.write_interval_s,
            max_buffer=self.settings.serving.write_buffer,
            on_change=writer_gauges(self.metrics),
            spool=_spool(self.settings),
        )
        self.router = Router(model_name, self.settings, self.metrics, writer)
        self.mirror = self._http_mirror(graphs)
        self.router.remote = self.mirror
        self._replay: BarReplay | None = None
        self._outcome_hook: OutcomeHook | None = _import(outcome_hook) if outcome_hook else None
        self.stream = StreamHub(
            self._stream_message,
            interval_s=self.settings.serving.stream_interval_s,
            queue_size=self.settings.serving.stream_client_queue,
            on_clients=self.metrics.stream_clients.set,
            on_drop=self.metrics.stream_dropped.inc,
        )

    def __serve_build_asgi_app__(self) -> ASGIApp:
        return build_app(self)

    def _http_mirror(self, graphs: dict[str, DeploymentHandle[Any]] | None) -> ShadowMirror | None:
        """The HTTP mirror of an application holding one colour (a RayService per colour in the
        cluster): its shadow lives behind the other colour's Service, never bound here. It
        follows the controller's route for the colour bound here, when a URL and key are set."""
        if not graphs or len(graphs) != 1:
            return None
        (colour,) = graphs
        settings = self.settings.updated({"serving": {"colour": colour}})
        return ShadowMirror.from_settings(
            ShadowSink(self.router, self.store), settings, self.metrics
        )

    async def reconfigure(self, config: dict[str, Any]) -> None:
        """Apply `{"colours": {colour: version}, "active": colour, "shadow": colour|None}`."""
        colours: dict[str, str] = dict(config.get("colours", {}))
        # A colour still serving the same version keeps its route and member connections.
        known = {(r.colour, r.version): r for r in self.router.routing.by_version.values()}
        routes = {c: known.get((c, str(v))) or await self._route(c) for c, v in colours.items()}
        for route in set(known.values()) - set(routes.values()):
            in_background(self._retire(route))
        active = routes.get(config.get("active") or "")
        shadow = routes.get(config.get("shadow") or "")
        self.router.routing = Routing(
            active=active,
            shadow=shadow if shadow is not active else None,
            by_version={r.version: r for r in routes.values()},
        )
        self._publish_model_info()
        log.info(
            "routing updated",
            extra={
                "active": active.colour if active else None,
                "shadow": shadow.colour if shadow else None,
                "versions": {c: r.version for c, r in routes.items()},
            },
        )

    async def _retire(self, route: ColourRoute) -> None:
        # Requests already routed there finish (or fall back to Serve) before the sockets close.
        await asyncio.sleep(self.settings.serving.request_timeout_s)
        for member in route.members.values():
            await member.close()

    async def _route(self, colour: str) -> ColourRoute:
        bound = self._handles.get(colour)
        # A colour bound into this application (build_app) shares its name; others are apps,
        # looked up each time (a cached app handle would pass for a bound colour next time).
        app = serve.get_replica_context().app_name if bound is not None else colour
        handle = bound if bound is not None else serve.get_app_handle(colour)
        info = await handle.info.remote()
        handles = {
            m["name"]: serve.get_deployment_handle(f"member_{m['name']}", app_name=app)
            for m in info["members"]
        }
        members = member_endpoints(handles, socket_dir(self.settings), app, self.settings.breakers)
        info = {**info, "max_rows": self.settings.serving.max_rows}
        return ColourRoute(colour, handle, info, members)

    def _publish_model_info(self) -> None:
        gauge = self.metrics.model_info
        live = set()
        routing = self.router.routing
        for route in (routing.active, routing.shadow):
            if route is not None:
                live.add((self.model_name, route.version, route.colour, route.info["spec_hash"]))
        for labels in self._info_labels - live:
            gauge.labels(*labels).set(0)
        for labels in live:
            gauge.labels(*labels).set(1)
        self._info_labels |= live

    # --- lifecycle ------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        """Start the store writer and the HTTP mirror; on shutdown stop the stream and the
        mirror, and flush every prediction."""
        writer = self.router.writer
        writer.start()
        if self.mirror is not None:
            await self.mirror.start()
        try:
            yield
        finally:
            await self.stream.close()
            # Mirrors in flight store the shadow's answers: they end before the last flush.
            if self.mirror is not None:
                await self.mirror.close()
            await writer.close(timeout_s=self.settings.serving.request_timeout_s * 3)
            tracing.flush()  # the writes' spans too; the actor may exit before atexit runs
            process_exiting()

    # --- stream ---------------------------------------------------------------------------
    async def _stream_message(self) -> StreamMessage | None:
        with tracing.span("stream.predict", root=True, kind=SpanKind.PRODUCER):
            return await self._stream_prediction()

    async def _stream_prediction(self) -> StreamMessage | None:
        router = self.router
        route = router.routing.active
        if route is None:
            return None
        if self._replay is None:
            bars = await asyncio.to_thread(load_bars, self.settings.data.path)
            self._replay = BarReplay(
                bars, window=route.limits.window, start=self.settings.serving.stream_start
            )
        window = self._replay.next_window()
        if self._outcome_hook is not None:
            pending = self._outcome_hook(self.settings.data.symbol, window)
            if pending is not None:
                await pending
        start = time.perf_counter()
        m = router.metrics
        try:
            rows, ensemble, members = await router.predict_inputs(
                route, protocol.Inputs(bars=BarReplay.columns(window))
            )
        except Exception:
            m.requests.labels("stream", router.model_name, route.version, "500").inc()
            raise
        elapsed = time.perf_counter() - start
        latency = elapsed * 1e3
        # Counted as requests are: a stream prediction is the version's live traffic, which a
        # rollout's verification needs (under `driftline up` the stream may be all there is).
        m.request_duration.labels("stream", router.model_name, route.version).observe(elapsed)
        m.requests.labels("stream", router.model_name, route.version, "200").inc()
        as_of = window.index[-1]
        request_id = new_id()
        router.record(
            request_id=request_id,
            endpoint="stream",
            route=route,
            rows=rows,
            ensemble=ensemble,
            members=members,
            latency_ms=latency,
            symbol=self.settings.data.symbol,
            as_of=(as_of.tz_localize("UTC") if as_of.tzinfo is None else as_of).to_pydatetime(),
        )
        # The stream is live traffic too: a shadow colour scores it, and the replay's outcomes
        # settle those pairs, which is what the controller's shadow gate compares.
        router.mirror(request_id, "stream", rows)
        return {
            "timestamp": as_of.isoformat(),
            "symbol": self.settings.data.symbol,
            "prediction": float(ensemble[0]),
            # The status page turns consecutive closes into the realised returns it draws.
            "close": float(window["close"].iloc[-1]),
            "members": {k: float(v[0]) for k, v in members.items()},
            "model_version": route.version,
            "colour": route.colour,
            "latency_ms": round(latency, 3),
            "request_id": request_id,
        }


def _import(path: str) -> Any:
    module, attribute = path.split(":")
    return getattr(importlib.import_module(module), attribute)


def build_app(ingress: Ingress) -> ASGIApp:
    """The Starlette app of one ingress replica, behind the guard and our body limit."""
    # FastAPI (the drift API) stays off the import path of everything that imports this module.
    from driftline.controller_api import controller_router  # noqa: PLC0415
    from driftline.drift.api import drift_app  # noqa: PLC0415
    from driftline.drift.outcomes import OutcomeRecorder  # noqa: PLC0415

    # Drift status, reports, alerts, outcome ingestion and the controller's state under /api.
    drift = drift_app(
        ingress.store,
        OutcomeRecorder(ingress.store, ingress.settings),
        model_name=ingress.model_name,
    )
    drift.include_router(controller_router(ingress.store, model_name=ingress.model_name))
    return assemble(
        ingress.settings,
        handlers=[
            Route(path, endpoints.wrap(ingress.router, name, fn), methods=[method])
            for path, name, fn, method, _scope in endpoints.routes()
        ],
        stream=ingress.stream.serve,
        api=drift,
        keys=KeyStore.from_settings(ingress.settings),
        lifespan=ingress.lifespan,
    )


def ingress_table() -> RouteTable:
    """What every route of the serving port needs: the one declaration the guard reads."""
    from driftline.controller_api import CONTROLLER_ROUTES  # noqa: PLC0415
    from driftline.drift.api import DRIFT_ROUTES  # noqa: PLC0415

    table = RouteTable(
        AuthRoute(method, path, scope) for path, _name, _fn, method, scope in endpoints.routes()
    )
    table.add("WEBSOCKET", STREAM_PATH, Scope.STREAM)
    table.extend(mounted([*DRIFT_ROUTES, *CONTROLLER_ROUTES], API_PREFIX))
    return apidocs.public_routes(table)


def assemble(
    settings: Settings,
    *,
    handlers: list[Route],
    stream: Callable[[WebSocket], Awaitable[None]],
    api: Any,
    keys: KeyLookup,
    lifespan: Any = None,
) -> ASGIApp:
    """The serving port: `handlers`, the stream, `api` under /api, docs and /ui, guarded."""
    table = ingress_table()
    title = f"Driftline serving ({settings.registry.model_name})"

    def document() -> dict[str, Any]:
        return apidocs.serving_document(
            title=title,
            version=package_version("driftline"),
            endpoints=apidocs.endpoint_paths(
                (p, n, fn, m) for p, n, fn, m, _scope in endpoints.routes()
            ),
            mounted={API_PREFIX: api.openapi()},
            table=table,
        )

    app = Starlette(
        routes=[
            *handlers,
            WebSocketRoute(STREAM_PATH, stream),
            Mount(API_PREFIX, app=api),
            *apidocs.docs_routes(title, document),
        ],
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error},
    )
    guarded = protect(app, table, settings, keys)
    return BodyLimit(guarded, settings.serving.max_body_bytes)


def _spool(settings: Settings) -> Spool | None:
    """The writer's spill file, or None when spilling is off."""
    if settings.serving.write_spool_bytes == 0:
        return None
    return Spool(settings.spool_dir, settings.serving.write_spool_bytes)
