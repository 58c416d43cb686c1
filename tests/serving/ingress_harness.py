"""The ingress's HTTP layer without Ray: its own routes, wrapper, error handler and body limit
(and, in `serving_port`, the whole guarded port) over a Router whose one colour answers through
in-process stand-ins for the Serve handles (each row's sum), for tests that drive hostile or
generated requests through it."""

from __future__ import annotations

from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Route
from starlette.websockets import WebSocket

from driftline.auth.keys import KeyLookup
from driftline.config import Settings
from driftline.features import default_spec
from driftline.store import Store
from serving import endpoints
from serving.channel import MemberEndpoint
from serving.http import BodyLimit, http_error
from serving.ingress import assemble
from serving.metrics import ServingMetrics, metrics
from serving.routing import ColourRoute, Router, Routing
from serving.writer import PredictionWriter

N_FEATURES = len(default_spec().features)


class _Sink:
    def record_predictions(self, records: list[Any]) -> int:
        return len(records)


class _Member:
    """Answers `handle.predict.remote(rows)` as Serve would, with each row's sum."""

    class predict:  # noqa: N801 - the attribute a Serve handle has
        @staticmethod
        async def remote(rows: np.ndarray) -> np.ndarray:
            return np.asarray(rows, dtype=np.float64).sum(axis=1)


class _Colour:
    """Answers `handle.predict_bars.remote(bars, trace)`: one feature row from the newest bar."""

    class predict_bars:  # noqa: N801
        @staticmethod
        async def remote(bars: dict[str, np.ndarray], _trace: Any = None) -> tuple[Any, ...]:
            rows = np.full((1, N_FEATURES), float(bars["close"][-1]))
            out = rows.sum(axis=1)
            return rows, out, {"rf": out}


def ingress_app(
    settings: Settings, members: dict[str, MemberEndpoint] | None = None
) -> tuple[Any, ServingMetrics]:
    """The app, body limit included, and the metrics it counts into; its colour's `members`
    default to one, rf, answering each row's sum."""
    router, m = _router(settings, members)
    routes = [
        Route(path, endpoints.wrap(router, name, fn), methods=[method])
        for path, name, fn, method, _scope in endpoints.routes()
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
    return BodyLimit(app, settings.serving.max_body_bytes), m


def serving_port(
    settings: Settings,
    store: Store,
    keys: KeyLookup,
    router: Router | None = None,
    lifespan: Any = None,
) -> Any:
    """The whole serving port as `serving.ingress.assemble` builds it for a replica (guard,
    docs, the drift and controller API under /api), over the stand-in router (or `router`):
    what a client of `driftline serve` reaches, without Ray."""
    from driftline.controller_api import controller_router  # noqa: PLC0415
    from driftline.drift.api import drift_app  # noqa: PLC0415
    from driftline.drift.outcomes import OutcomeRecorder  # noqa: PLC0415

    router = router or _router(settings)[0]
    api = drift_app(store, OutcomeRecorder(store, settings), model_name="m")
    api.include_router(controller_router(store, model_name="m"))
    handlers = [
        Route(path, endpoints.wrap(router, name, fn), methods=[method])
        for path, name, fn, method, _scope in endpoints.routes()
    ]
    return assemble(
        settings, handlers=handlers, stream=_closed_stream, api=api, keys=keys, lifespan=lifespan
    )


async def _closed_stream(websocket: WebSocket) -> None:
    await websocket.close()


def _router(
    settings: Settings, members: dict[str, MemberEndpoint] | None = None
) -> tuple[Router, ServingMetrics]:
    m = metrics()
    router = colour_router(settings, PredictionWriter(_Sink(), **_writer()), members=members)
    return router, m


def colour_router(
    settings: Settings,
    writer: PredictionWriter,
    *,
    colour: str = "blue",
    version: str = "1",
    weight: float = 1.0,
    members: dict[str, MemberEndpoint] | None = None,
) -> Router:
    """A Router of model "m" writing to `writer`, whose one colour serves `version`: its rf
    member answers each row's sum, weighted by `weight` in the ensemble."""
    router = Router("m", settings, metrics(), writer)
    members = members or {"rf": MemberEndpoint("rf", _Member(), list)}
    info = colour_info(settings, dict.fromkeys(members, weight), version)
    route = ColourRoute(colour, _Colour(), info, members)
    router.routing = Routing(active=route, by_version={version: route})
    return router


def colour_info(
    settings: Settings, weights: dict[str, float], version: str = "1"
) -> dict[str, Any]:
    """A colour's `info` (what Combiner.info answers) for `version` with these member weights."""
    return {
        "version": version,
        "n_features": N_FEATURES,
        "window": 3,
        "max_rows": settings.serving.max_rows,
        "intercept": 0.0,
        "weights": weights,
        "members": [{"name": name} for name in weights],
        "spec_hash": "h",
    }


def _writer() -> dict[str, Any]:
    return {"batch_size": 100, "interval_s": 1.0, "max_buffer": 10_000}
