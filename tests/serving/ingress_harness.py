"""The ingress's HTTP layer without Ray: its own routes, wrapper, error handler and body limit
over a Router whose one colour answers through in-process stand-ins for the Serve handles
(each row's sum), for tests that drive hostile or generated requests through it."""

from __future__ import annotations

from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Route

from driftline.config import Settings
from driftline.features import default_spec
from serving import endpoints
from serving.channel import MemberEndpoint
from serving.http import BodyLimit, http_error
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
    """Answers `handle.predict_bars.remote(bars)`: one feature row from the newest bar."""

    class predict_bars:  # noqa: N801
        @staticmethod
        async def remote(bars: dict[str, np.ndarray]) -> tuple[Any, ...]:
            rows = np.full((1, N_FEATURES), float(bars["close"][-1]))
            out = rows.sum(axis=1)
            return rows, out, {"rf": out}


def ingress_app(settings: Settings) -> tuple[Any, ServingMetrics]:
    """The app, body limit included, and the metrics it counts into."""
    m = metrics()
    router = Router("m", settings, m, PredictionWriter(_Sink(), **_writer()))
    info = {
        "version": "1",
        "n_features": N_FEATURES,
        "window": 3,
        "max_rows": settings.serving.max_rows,
        "intercept": 0.0,
        "weights": {"rf": 1.0},
        "members": [{"name": "rf"}],
        "spec_hash": "h",
    }
    route = ColourRoute("blue", _Colour(), info, {"rf": MemberEndpoint("rf", _Member(), list)})
    router.routing = Routing(active=route, by_version={"1": route})
    routes = [
        Route(path, endpoints.wrap(router, name, fn), methods=[method])
        for path, name, fn, method, _scope in endpoints.routes()
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
    return BodyLimit(app, settings.serving.max_body_bytes), m


def _writer() -> dict[str, Any]:
    return {"batch_size": 100, "interval_s": 1.0, "max_buffer": 10_000}
