"""The ingress's HTTP handlers: KServe V1/V2, the domain endpoints, health and metrics.

Each handler takes the Router (routing and scoring) and the request; the Serve deployment
mounts them. This layer knows nothing of Serve itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import version as package_version
from typing import Any, TypeVar

import pandas as pd
from opentelemetry.trace import Span, SpanKind, StatusCode
from starlette.requests import Request
from starlette.responses import Response

from driftline.auth.routes import PUBLIC, Public
from driftline.auth.scopes import Scope
from driftline.data import DataValidationError, validate_bars
from driftline.observability import tracing
from driftline.symbols import check_symbol
from serving import protocol
from serving.errors import BadInputError, NotReadyError, ServingError
from serving.http import JSON, correlation, error_response, json_response
from serving.metrics import exposition
from serving.mirror import MIRROR_ID_PREFIX, is_mirror, mirror_key
from serving.routing import Router

log = logging.getLogger(__name__)

Endpoint = Callable[[Router, Request], Awaitable[Response]]
T = TypeVar("T")
SERVER_NAME = "driftline"
# Bodies from here up are parsed off the event loop: about a millisecond of orjson and KServe's
# types, where a thread's hand-off (tens of microseconds) stops mattering (serving/README.md).
PARSE_INLINE_BYTES = 64 * 1024


def wrap(router: Router, name: str, endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
    """Add correlation ids, a server span, error mapping and per-endpoint metrics to `endpoint`.

    A request presenting the mirror's key (`serving.mirror`) is answered but neither stored nor
    mirrored: its sender stores the answer as its shadow's. Without a key nothing is checked; with
    one, only requests named as mirrors are (`MIRROR_ID_PREFIX`)."""
    m = router.metrics
    settings = router.settings
    mirrors = bool(mirror_key(settings))

    async def handler(request: Request) -> Response:
        start = time.perf_counter()
        request.state.start = start
        request.state.version = ""
        parent = tracing.incoming(request.headers)
        with (
            tracing.span(name, root=True, kind=SpanKind.SERVER, parent=parent) as span,
            correlation(request) as cid,
        ):
            request.state.request_id = cid
            try:
                if (
                    mirrors
                    and cid.startswith(MIRROR_ID_PREFIX)
                    and is_mirror(request.headers, settings)
                ):
                    response = await endpoint(router.unlogged(), request)
                else:
                    response = await endpoint(router, request)
            except ServingError as error:
                m.errors.labels(name, error.kind).inc()
                response = error_response(error, cid, router.settings.serving.retry_after_s)
            except Exception:
                log.exception("unhandled error", extra={"endpoint": name})
                m.errors.labels(name, "internal").inc()
                response = error_response(
                    ServingError(f"internal error; correlation id {cid}"), cid
                )
            # Serve itself echoes x-request-id; ours names the id our logs and store use.
            response.headers["x-correlation-id"] = cid
            if span is not None:
                _annotate(span, request, response.status_code, cid)
        version = request.state.version
        code = response.status_code
        # A client error's latency says nothing of the service: kept out of the histogram the
        # controller verifies (its count is still here, under its own code).
        if not 400 <= code < 500:
            m.request_duration.labels(name, router.model_name, version).observe(
                time.perf_counter() - start
            )
        m.requests.labels(name, router.model_name, version, str(code)).inc()
        return response

    return handler


def _annotate(span: Span, request: Request, code: int, cid: str) -> None:
    span.set_attributes(
        {
            "http.request.method": request.method,
            "url.path": request.url.path,
            "http.response.status_code": code,
            "driftline.correlation_id": cid,
            "driftline.model_version": request.state.version,
        }
    )
    if code >= 500:
        span.set_status(StatusCode.ERROR)


async def parsed(parse: Callable[..., T], body: bytes, *args: Any) -> T:
    """`parse(body, *args)`; a large body is parsed on a thread so the event loop keeps serving."""
    if len(body) < PARSE_INLINE_BYTES:
        return parse(body, *args)
    return await asyncio.to_thread(parse, body, *args)


def _elapsed_ms(request: Request) -> float:
    return (time.perf_counter() - float(request.state.start)) * 1e3


# --- KServe V2 ----------------------------------------------------------------------------
async def v2_infer(router: Router, request: Request) -> Response:
    """POST /v2/models/{model}[/versions/{version}]/infer.

    The request parameters `symbol` and `as_of` key the stored row for outcomes, as a forecast's
    bars do (`protocol.outcome_key`)."""
    route = router.route_for(request.path_params["model"], request.path_params.get("version"))
    request.state.version = route.version
    body = await request.body()
    length = protocol.json_length_of(request.headers.get(protocol.JSON_LENGTH_HEADER), len(body))
    infer = await parsed(protocol.parse_v2, body, length, router.model_name)
    inputs = protocol.v2_inputs(infer, route.limits)
    key = protocol.outcome_key(infer.parameters)
    rows, ensemble, members = await router.predict_inputs(route, inputs)
    request_id = request.state.request_id
    router.record(
        request_id=request_id,
        endpoint="v2_infer",
        route=route,
        rows=rows,
        ensemble=ensemble,
        members=members,
        latency_ms=_elapsed_ms(request),
        symbol=key.symbol,
        as_of=key.as_of,
    )
    router.mirror(request_id, "v2_infer", rows)
    payload, json_length = protocol.v2_response(
        infer,
        model_name=router.model_name,
        version=route.version,
        prediction=ensemble,
        members=members,
    )
    if json_length is None:
        return Response(payload, media_type=JSON)
    return Response(
        payload,
        media_type="application/octet-stream",
        headers={protocol.JSON_LENGTH_HEADER: str(json_length)},
    )


async def v2_server_metadata(router: Router, _request: Request) -> Response:
    """GET /v2."""
    return json_response(
        {"name": SERVER_NAME, "version": _version(), "extensions": ["binary_tensor_data"]}
    )


async def v2_live(_router: Router, _request: Request) -> Response:
    """GET /v2/health/live."""
    return json_response({"live": True})


async def v2_ready(router: Router, _request: Request) -> Response:
    """GET /v2/health/ready: ready while a version is active; the store's state is reported."""
    status = router.writer.status()
    ready = router.routing.active is not None
    document = {
        "ready": ready,
        "degraded": status.degraded,
        "store": {
            "backlog": status.backlog,
            "dropped": status.dropped,
            "last_error": status.last_error,
        },
    }
    # A store outage degrades but does not stop serving: stay in rotation and say so.
    return json_response(document, 200 if ready else 503)


async def v2_model_ready(router: Router, request: Request) -> Response:
    """GET /v2/models/{model}[/versions/{version}]/ready."""
    route = router.route_for(request.path_params["model"], request.path_params.get("version"))
    request.state.version = route.version
    return json_response({"name": router.model_name, "ready": True})


async def v2_model_metadata(router: Router, request: Request) -> Response:
    """GET /v2/models/{model}[/versions/{version}]."""
    route = router.route_for(request.path_params["model"], request.path_params.get("version"))
    request.state.version = route.version
    document = protocol.model_metadata(
        router.model_name,
        sorted(router.routing.by_version),
        route.limits.n_features,
        [m["name"] for m in route.info["members"]],
    )
    return json_response(document)


# --- KServe V1 ----------------------------------------------------------------------------
async def v1_live(_router: Router, _request: Request) -> Response:
    """GET / (the V1 liveness check)."""
    return json_response({"status": "alive"})


async def v1_model(router: Router, request: Request) -> Response:
    """GET /v1/models/{model}."""
    route = router.route_for(request.path_params["model"], None)
    request.state.version = route.version
    return json_response({"name": router.model_name, "ready": True})


async def v1_predict(router: Router, request: Request) -> Response:
    """POST /v1/models/{model}:predict."""
    route = router.route_for(request.path_params["model"], None)
    request.state.version = route.version
    rows = protocol.v1_rows(await parsed(protocol.loads, await request.body()), route.limits)
    ensemble, members = await router.predict_rows(route, rows)
    request_id = request.state.request_id
    router.record(
        request_id=request_id,
        endpoint="v1_predict",
        route=route,
        rows=rows,
        ensemble=ensemble,
        members=members,
        latency_ms=_elapsed_ms(request),
    )
    router.mirror(request_id, "v1_predict", rows)
    return Response(protocol.v1_response(ensemble), media_type=JSON)


# --- domain -------------------------------------------------------------------------------
async def forecast(router: Router, request: Request) -> Response:
    """POST /api/forecast: `{"symbol": ..., "bars": [{date, open, high, low, close, volume}]}`."""
    route = router.route_for(router.model_name, None)
    request.state.version = route.version
    document = await parsed(protocol.loads, await request.body())
    if (
        not isinstance(document, dict)
        or not isinstance(document.get("bars"), list)
        or not all(isinstance(bar, dict) for bar in document["bars"])
    ):
        raise BadInputError('forecast body must be {"symbol": "...", "bars": [{"date": ..., ...}]}')
    try:
        given = document.get("symbol")
        symbol = router.settings.data.symbol if given is None else check_symbol(given)
        bars = validate_bars(
            pd.DataFrame(document["bars"]), "request", min_rows=1, max_gap_days=None
        )
    except (DataValidationError, ValueError, TypeError) as error:
        raise BadInputError(str(error)) from None
    columns = {c: bars[c].to_numpy() for c in protocol.BAR_INPUTS}
    inputs = protocol.Inputs(bars=protocol.check_bars(columns, route.limits))
    rows, ensemble, members = await router.predict_inputs(route, inputs)
    as_of = bars.index[-1]
    request_id = request.state.request_id
    latency = _elapsed_ms(request)
    router.record(
        request_id=request_id,
        endpoint="forecast",
        route=route,
        rows=rows,
        ensemble=ensemble,
        members=members,
        latency_ms=latency,
        symbol=symbol,
        as_of=as_of.tz_localize("UTC").to_pydatetime(),
    )
    router.mirror(request_id, "forecast", rows)
    return json_response(
        {
            "request_id": request_id,
            "symbol": symbol,
            "as_of": as_of.date().isoformat(),
            "prediction": float(ensemble[0]),
            "members": {k: float(v[0]) for k, v in members.items()},
            "model_version": route.version,
            "colour": route.colour,
            "latency_ms": round(latency, 3),
        }
    )


async def models(router: Router, _request: Request) -> Response:
    """GET /api/models: the active and shadow versions with members, spec hash, evaluation."""
    routing = router.routing
    if routing.active is None:
        raise NotReadyError("no model version is active yet")
    document = {
        "model": router.model_name,
        "active": {**routing.active.info, "colour": routing.active.colour},
        "shadow": _shadow(router),
        "deployed_versions": sorted(routing.by_version),
    }
    return json_response(document)


def _shadow(router: Router) -> dict[str, Any] | None:
    """The shadow bound here, or the colour this one mirrors to over HTTP (its own RayService
    in the cluster, whose version only its answers tell)."""
    shadow, remote = router.routing.shadow, router.remote
    if shadow is not None:
        return {**shadow.info, "colour": shadow.colour}
    if remote is not None and remote.shadow is not None:
        return {"colour": remote.shadow, "mirrored_to": remote.url}
    return None


async def prometheus(_router: Router, _request: Request) -> Response:
    """GET /metrics: every serving process on this node, merged."""
    body, content_type = exposition()
    return Response(body, media_type=content_type)


def routes() -> list[tuple[str, str, Endpoint, str, Scope | Public]]:
    """(path, endpoint label, handler, method, scope) for every HTTP route.

    Liveness and readiness (the server's and a model's, V1 and V2) are public: probes and
    load balancers carry no credential. `/metrics` needs `read` (Prometheus scrapes with a
    bearer token: docs/calling-driftline.md).
    """
    model = "/v2/models/{model}"
    versioned = "/v2/models/{model}/versions/{version}"
    return [
        ("/", "v1_live", v1_live, "GET", PUBLIC),
        ("/v2", "v2_metadata", v2_server_metadata, "GET", Scope.READ),
        ("/v2/health/live", "v2_live", v2_live, "GET", PUBLIC),
        ("/v2/health/ready", "v2_ready", v2_ready, "GET", PUBLIC),
        (f"{model}/infer", "v2_infer", v2_infer, "POST", Scope.PREDICT),
        (f"{versioned}/infer", "v2_infer", v2_infer, "POST", Scope.PREDICT),
        (f"{model}/ready", "v2_model_ready", v2_model_ready, "GET", PUBLIC),
        (f"{versioned}/ready", "v2_model_ready", v2_model_ready, "GET", PUBLIC),
        (model, "v2_model_metadata", v2_model_metadata, "GET", Scope.READ),
        (versioned, "v2_model_metadata", v2_model_metadata, "GET", Scope.READ),
        ("/v1/models/{model}:predict", "v1_predict", v1_predict, "POST", Scope.PREDICT),
        ("/v1/models/{model}", "v1_model", v1_model, "GET", PUBLIC),
        ("/api/forecast", "forecast", forecast, "POST", Scope.PREDICT),
        ("/api/models", "models", models, "GET", Scope.READ),
        ("/metrics", "metrics", prometheus, "GET", Scope.READ),
    ]


def _version() -> str:
    return package_version("driftline")
