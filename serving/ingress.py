"""The one HTTP ingress: KServe V1/V2, domain endpoints, the stream, metrics and blue/green routing.

The active and shadow colours live in the deployment's `user_config`; Serve applies a new one
in place through `reconfigure`, so switching colour swaps one reference between requests and
never fails a request in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from ray import serve
from ray.serve.exceptions import BackPressureError
from ray.serve.handle import DeploymentHandle
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from driftline.config import Settings
from driftline.data import load_bars
from driftline.observability.logs import bound_correlation_id, configure_logging
from driftline.store import PredictionRecord, Store
from serving import protocol
from serving.channel import MemberEndpoint, endpoints, in_background, score, socket_dir
from serving.coalesce import Coalescer
from serving.errors import (
    BadInputError,
    DeadlineExceededError,
    NotFoundError,
    NotReadyError,
    OverloadedError,
    PayloadTooLargeError,
    ServingError,
)
from serving.metrics import enable_multiprocess, metrics, process_exiting
from serving.model import combine
from serving.stream import BarReplay, OutcomeHook, StreamHub
from serving.stream import Message as StreamMessage
from serving.writer import PredictionWriter, WriterStatus

log = logging.getLogger(__name__)

JSON = "application/json"
Array = np.ndarray[Any, Any]
Scored = tuple[Array, dict[str, Array]]
REQUEST_ID_HEADERS = (b"x-request-id", b"x-correlation-id")


@dataclass(frozen=True, eq=False)
class ColourRoute:
    """A deployed colour: its handle and what its model accepts."""

    colour: str
    handle: DeploymentHandle[Any]
    info: dict[str, Any]
    members: dict[str, MemberEndpoint] = field(default_factory=dict)

    async def score(self, rows: Array) -> Scored:
        """Ensemble and member outputs for feature rows: the members are asked directly and
        combined here, one hop instead of two through the colour's combiner."""
        # Members compare float32 features (trees, ONNX): float32 halves what is sent.
        outputs = await score(self.members, rows.astype(np.float32))
        return combine(outputs, self.weights, float(self.info["intercept"])), outputs

    @functools.cached_property
    def weights(self) -> dict[str, float]:
        """Each member's weight in the ensemble."""
        return {m: float(w) for m, w in self.info["weights"].items()}

    @property
    def version(self) -> str:
        return str(self.info["version"])

    @functools.cached_property
    def limits(self) -> protocol.Limits:
        return protocol.Limits(
            n_features=int(self.info["n_features"]),
            window=int(self.info["window"]),
            max_rows=int(self.info["max_rows"]),
        )


@dataclass
class Routing:
    """The active colour, an optional shadow, and every deployed colour by version."""

    active: ColourRoute | None = None
    shadow: ColourRoute | None = None
    by_version: dict[str, ColourRoute] = field(default_factory=dict)


@serve.deployment
@serve.ingress()
class Ingress:
    """HTTP and WebSocket front door; routes to the active colour's combiner."""

    def __init__(
        self,
        model_name: str,
        outcome_hook: str | None = None,
        graphs: dict[str, DeploymentHandle[Any]] | None = None,
    ) -> None:
        self.settings = Settings()
        configure_logging(
            self.settings.observability.log_level, json=self.settings.observability.log_json
        )
        enable_multiprocess(self.settings.home / "serve-metrics")
        self.model_name = model_name
        self.metrics = metrics()
        self.routing = Routing()
        # Colours bound into this application (a RayService per colour); others are looked up
        # as applications of their own by name.
        self._handles: dict[str, DeploymentHandle[Any]] = dict(graphs or {})
        self._batch = self.metrics.batch_size.labels("ingress")
        self._scorer = Coalescer(self._score, self.settings.serving.batch_size)
        self._shadow_inflight = 0
        self._info_labels: set[tuple[str, str, str, str]] = set()
        store = self.store = Store.from_settings(self.settings)
        self.writer = PredictionWriter(
            store,
            batch_size=self.settings.serving.write_batch,
            interval_s=self.settings.serving.write_interval_s,
            max_buffer=self.settings.serving.write_buffer,
            on_change=self._writer_changed,
        )
        self._dropped_seen = 0
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

    async def reconfigure(self, config: dict[str, Any]) -> None:
        """Apply `{"colours": {colour: version}, "active": colour, "shadow": colour|None}`."""
        colours: dict[str, str] = dict(config.get("colours", {}))
        # A colour still serving the same version keeps its route and member connections.
        known = {(r.colour, r.version): r for r in self.routing.by_version.values()}
        routes = {c: known.get((c, str(v))) or await self._route(c) for c, v in colours.items()}
        for route in set(known.values()) - set(routes.values()):
            in_background(self._retire(route))
        active = routes.get(config.get("active") or "")
        shadow = routes.get(config.get("shadow") or "")
        self.routing = Routing(
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
        handle = self._handles.get(colour)
        # A colour bound into this application (build_app) shares its name; others are apps.
        app = serve.get_replica_context().app_name if handle is not None else colour
        if handle is None:
            handle = serve.get_app_handle(colour)
            self._handles[colour] = handle
        info = await handle.info.remote()
        handles = {
            m["name"]: serve.get_deployment_handle(f"member_{m['name']}", app_name=app)
            for m in info["members"]
        }
        members = endpoints(handles, socket_dir(self.settings), app)
        info = {**info, "max_rows": self.settings.serving.max_rows}
        return ColourRoute(colour, handle, info, members)

    def _publish_model_info(self) -> None:
        gauge = self.metrics.model_info
        live = set()
        for route in (self.routing.active, self.routing.shadow):
            if route is not None:
                live.add((self.model_name, route.version, route.colour, route.info["spec_hash"]))
        for labels in self._info_labels - live:
            gauge.labels(*labels).set(0)
        for labels in live:
            gauge.labels(*labels).set(1)
        self._info_labels |= live

    def _writer_changed(self, status: WriterStatus) -> None:
        self.metrics.store_backlog.set(status.backlog)
        self.metrics.store_degraded.set(1 if status.degraded else 0)
        if status.dropped > self._dropped_seen:
            self.metrics.store_dropped.inc(status.dropped - self._dropped_seen)
            self._dropped_seen = status.dropped

    # --- lifecycle ------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        """Start the store writer; on shutdown stop the stream and flush every prediction."""
        self.writer.start()
        try:
            yield
        finally:
            await self.stream.close()
            await self.writer.close(timeout_s=self.settings.serving.request_timeout_s * 3)
            process_exiting()

    # --- routing helpers ------------------------------------------------------------------
    def route_for(self, model: str, version: str | None) -> ColourRoute:
        """The colour that answers for `model` (and `version`), or NotFoundError/NotReadyError."""
        if model != self.model_name:
            raise NotFoundError(
                f"model {model!r} not found; this server serves {self.model_name!r}"
            )
        if version is not None:
            route = self.routing.by_version.get(version)
            if route is None:
                known = sorted(self.routing.by_version)
                raise NotFoundError(
                    f"model {model!r} has no deployed version {version!r} ({known})"
                )
            return route
        if self.routing.active is None:
            raise NotReadyError("no model version is active yet")
        return self.routing.active

    async def call(self, awaitable: Awaitable[Any]) -> Any:
        """Await a handle call under the end-to-end deadline, mapping Serve's errors to ours."""
        try:
            # A timeout scope, not wait_for: no extra task per request on the hot path.
            async with asyncio.timeout(self.settings.serving.request_timeout_s):
                return await awaitable
        except TimeoutError:
            raise DeadlineExceededError(
                f"no answer within {self.settings.serving.request_timeout_s:g}s"
            ) from None
        except BackPressureError:
            raise OverloadedError("the model is at capacity; retry shortly") from None

    async def predict_rows(self, route: ColourRoute, rows: Array) -> Scored:
        """Ensemble and member outputs for feature rows from `route`."""
        result: Scored = await self.call(self._scorer((route, rows)))
        return result

    async def _score(self, items: list[tuple[ColourRoute, Array]]) -> list[Scored]:
        # Requests that arrive while a batch is in flight share the next member round: one
        # round per batch instead of one per request is what lets the graph keep up under load.
        self._batch.observe(len(items))
        if len(items) == 1:
            route, rows = items[0]
            return [await route.score(rows)]
        by_route: dict[str, list[int]] = {}
        for i, (route, _rows) in enumerate(items):
            by_route.setdefault(route.colour, []).append(i)
        results: list[Scored | None] = [None] * len(items)
        for indices in by_route.values():
            route = items[indices[0]][0]
            parts = [items[i][1] for i in indices]
            rows = parts[0] if len(parts) == 1 else np.concatenate(parts)
            ensemble, members = await route.score(rows)
            bounds = np.cumsum([len(p) for p in parts])[:-1]
            ens_parts = np.split(ensemble, bounds)
            member_parts = {k: np.split(v, bounds) for k, v in members.items()}
            for j, i in enumerate(indices):
                results[i] = (ens_parts[j], {k: v[j] for k, v in member_parts.items()})
        return [r for r in results if r is not None]

    async def predict_inputs(
        self, route: ColourRoute, inputs: protocol.Inputs
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], dict[str, np.ndarray[Any, Any]]]:
        """Feature rows, ensemble and member outputs for rows or a bar window."""
        if inputs.rows is not None:
            ensemble, members = await self.predict_rows(route, inputs.rows)
            return inputs.rows, ensemble, members
        assert inputs.bars is not None
        try:
            result = await self.call(route.handle.predict_bars.remote(dict(inputs.bars)))
        except BadInputError:
            raise
        except Exception as error:
            # A BadInputError raised inside the feature replica arrives wrapped by Ray.
            cause = getattr(error, "cause", None)
            if isinstance(cause, BadInputError):
                raise BadInputError(cause.message) from None
            raise
        rows, ensemble, members = result
        return rows, ensemble, members

    def record(
        self,
        *,
        request_id: str,
        endpoint: str,
        route: ColourRoute,
        rows: np.ndarray[Any, Any],
        ensemble: np.ndarray[Any, Any],
        members: dict[str, np.ndarray[Any, Any]],
        latency_ms: float,
        slot: str = "live",
        symbol: str | None = None,
        as_of: Any = None,
    ) -> None:
        """Queue one prediction for the store."""
        self.writer.submit(
            PredictionRecord(
                request_id=request_id,
                model_name=self.model_name,
                model_version=route.version,
                endpoint=endpoint,
                prediction=ensemble.tolist(),
                member_outputs={k: v.tolist() for k, v in members.items()},
                latency_ms=latency_ms,
                features=rows,
                colour=route.colour,
                slot=slot,
                symbol=symbol,
                as_of=as_of,
            )
        )

    def mirror(self, request_id: str, endpoint: str, rows: np.ndarray[Any, Any]) -> None:
        """Score `rows` on the shadow colour in the background; its answer is only stored."""
        shadow = self.routing.shadow
        if shadow is None or self._shadow_inflight >= self.settings.serving.max_ongoing_requests:
            return
        self._shadow_inflight += 1
        in_background(self._shadow(shadow, request_id, endpoint, rows))

    async def _shadow(
        self, route: ColourRoute, request_id: str, endpoint: str, rows: np.ndarray[Any, Any]
    ) -> None:
        start = time.perf_counter()
        try:
            # Straight to the shadow colour, not through the live batcher: a batch answers all
            # its callers at once, so sharing one would make live requests wait for the shadow.
            scored: Scored = await self.call(route.score(rows))
            ensemble, members = scored
            latency = (time.perf_counter() - start) * 1e3
            self.record(
                request_id=request_id,
                endpoint=endpoint,
                route=route,
                rows=rows,
                ensemble=ensemble,
                members=members,
                latency_ms=latency,
                slot="shadow",
            )
        except Exception as error:
            log.warning("shadow scoring failed: %s", error, extra={"colour": route.colour})
        finally:
            self._shadow_inflight -= 1

    # --- stream ---------------------------------------------------------------------------
    async def _stream_message(self) -> StreamMessage | None:
        route = self.routing.active
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
        rows, ensemble, members = await self.predict_inputs(
            route, protocol.Inputs(bars=BarReplay.columns(window))
        )
        latency = (time.perf_counter() - start) * 1e3
        as_of = window.index[-1]
        request_id = uuid.uuid4().hex
        self.record(
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
        self.mirror(request_id, "stream", rows)
        return {
            "timestamp": as_of.isoformat(),
            "symbol": self.settings.data.symbol,
            "prediction": float(ensemble[0]),
            "members": {k: float(v[0]) for k, v in members.items()},
            "model_version": route.version,
            "colour": route.colour,
            "latency_ms": round(latency, 3),
            "request_id": request_id,
        }


def _import(path: str) -> Any:
    import importlib  # noqa: PLC0415

    module, attribute = path.split(":")
    return getattr(importlib.import_module(module), attribute)


# --- the ASGI application -----------------------------------------------------------------
Handler = Callable[[Request], Awaitable[Response]]


def build_app(ingress: Ingress) -> ASGIApp:
    """The Starlette app of one ingress replica, wrapped in our own body-limit middleware."""
    from driftline.drift.api import drift_app  # noqa: PLC0415  (FastAPI off the import path)
    from driftline.drift.outcomes import OutcomeRecorder  # noqa: PLC0415
    from serving import endpoints  # noqa: PLC0415  (endpoints import this module)

    http = [
        Route(path, endpoints.wrap(ingress, name, fn), methods=methods)
        for path, name, fn, methods in endpoints.routes()
    ]
    # Drift status, reports, alerts and outcome ingestion under /api/drift/... and /api/outcomes.
    drift = drift_app(
        ingress.store,
        OutcomeRecorder(ingress.store, ingress.settings),
        model_name=ingress.model_name,
    )
    app = Starlette(
        routes=[
            *http,
            WebSocketRoute("/ws/predictions", ingress.stream.serve),
            Mount("/api", app=drift),
        ],
        lifespan=ingress.lifespan,
        exception_handlers={HTTPException: _http_error},
    )
    return BodyLimit(app, ingress.settings.serving.max_body_bytes)


class BodyLimit:
    """Refuses bodies over `limit` bytes with 413, by header or while streaming."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await send_error(send, PayloadTooLargeError(self._message(int(value))))
                return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise PayloadTooLargeError(self._message(received))
            return message

        await self.app(scope, limited, send)

    def _message(self, size: int) -> str:
        return f"request body of {size} bytes exceeds the limit of {self.limit} bytes"


async def _http_error(_request: Request, error: Exception) -> Response:
    # Unknown routes and methods answer in the protocol's error shape too.
    assert isinstance(error, HTTPException)
    return Response(
        orjson.dumps({"error": f"{error.detail}"}), status_code=error.status_code, media_type=JSON
    )


async def send_error(send: Send, error: ServingError) -> None:
    """Send `error` as a complete JSON response."""
    response = error_response(error)
    await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


def error_response(
    error: ServingError, correlation_id: str | None = None, retry_after_s: int = 1
) -> Response:
    """The protocol's `{"error": "..."}` body with the error's status."""
    headers = {}
    if error.status == 503:
        headers["retry-after"] = str(retry_after_s)
    if correlation_id:
        headers["x-correlation-id"] = correlation_id
    return Response(
        orjson.dumps({"error": error.message}),
        status_code=error.status,
        media_type=JSON,
        headers=headers,
    )


def request_id_of(request: Request) -> str:
    """The caller's request id header (trimmed to the store's 64 chars) or a new one."""
    for name in REQUEST_ID_HEADERS:
        value = request.headers.get(name.decode())
        if value:
            return value[:64]
    return uuid.uuid4().hex


def correlation(request: Request) -> contextlib.AbstractContextManager[str]:
    """Bind the request's correlation id to every log line of the handler."""
    return bound_correlation_id(request_id_of(request))
