"""The predictor of one colour on the InferenceService runtime: KServe's ModelServer, one process.

`python -m serving.kserve_server` serves `DRIFTLINE_MODEL_VERSION` (a version or an alias,
resolved once at start) of `DRIFTLINE_MODEL_NAME` with KServe V1/V2 on `DRIFTLINE_SERVING_PORT`.
Members run in the registry's runtime (ONNX Runtime first) inside this process: KServe's raw
deployment mode scales pods, not Serve replicas. Answers carry the same output names and values
as the Ray path's. Like the Ray ingress it logs every answer to the store's predictions (keyed
by the V2 request parameters `symbol` and `as_of` when given, `protocol.outcome_key`) and
serves the outcomes and drift API under `/api` (`serving.kserve_contract`); while the controller
has a shadow colour it mirrors each answered request there and logs the shadow's answer
(`serving.mirror`). `/metrics` carries KServe's own series and Driftline's request, error,
member-latency and store-writer metrics under the ingress's names and endpoint labels. Every route
but the probes and the docs needs an API key (`PREDICTOR_ROUTES`, the drift API's under `/api`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
from prometheus_client import REGISTRY
from prometheus_client.registry import Collector

from driftline.auth.asgi import SecurityMiddleware
from driftline.auth.configure import guard_from_settings, websocket_limits
from driftline.auth.guard import Guard
from driftline.auth.routes import PUBLIC, Route, RouteTable, mounted
from driftline.auth.scopes import Scope
from driftline.config import Settings
from driftline.observability.logs import configure_logging
from driftline.registry.bundle import ModelBundle
from driftline.registry.outputs import named_outputs
from driftline.registry.predictor import Array, EnsemblePredictor
from driftline.store import Store
from driftline.store.keys import KeyStore
from serving import protocol
from serving.errors import BadInputError
from serving.http import BodyLimit, InferBodyCheck
from serving.kserve_contract import PredictionLog, mount_api, request_id
from serving.metrics import _LOCAL, metrics
from serving.mirror import ShadowMirror, is_mirror

log = logging.getLogger(__name__)

# What each route of KServe's REST app needs (driftline.auth); probes and docs are public.
PREDICTOR_ROUTES: tuple[Route, ...] = (
    Route("GET", "/", PUBLIC),
    Route("GET", "/openapi.json", PUBLIC),
    Route("GET", "/docs", PUBLIC),
    Route("GET", "/docs/oauth2-redirect", PUBLIC),
    Route("GET", "/metrics", Scope.READ),
    Route("GET", "/v1/models", Scope.READ),
    Route("GET", "/v1/models/{model_name}", PUBLIC),
    Route("POST", "/v1/models/{model_name}:predict", Scope.PREDICT),
    Route("POST", "/v1/models/{model_name}:explain", Scope.PREDICT),
    Route("GET", "/v2", Scope.READ),
    Route("GET", "/v2/health/live", PUBLIC),
    Route("GET", "/v2/health/ready", PUBLIC),
    Route("GET", "/v2/models", Scope.READ),
    Route("GET", "/v2/models/{model_name}", Scope.READ),
    Route("GET", "/v2/models/{model_name}/versions/{model_version}", Scope.READ),
    Route("GET", "/v2/models/{model_name}/ready", PUBLIC),
    Route("GET", "/v2/models/{model_name}/versions/{model_version}/ready", PUBLIC),
    Route("POST", "/v2/models/{model_name}/infer", Scope.PREDICT),
    Route("POST", "/v2/models/{model_name}/versions/{model_version}/infer", Scope.PREDICT),
    Route("POST", "/v2/repository/models/{model_name}/load", Scope.ADMIN),
    Route("POST", "/v2/repository/models/{model_name}/unload", Scope.ADMIN),
)


def predictor_guard(settings: Settings) -> Guard:
    """The predictor's guard: KServe's routes as declared above and the drift API's under /api,
    keys from the store."""
    from driftline.drift.api import DRIFT_ROUTES  # noqa: PLC0415  (FastAPI only when serving)

    return guard_from_settings(
        settings,
        RouteTable([*PREDICTOR_ROUTES, *mounted(DRIFT_ROUTES, "/api")]),
        KeyStore.from_settings(settings),
    )


def guard_kserve_app(app: Any, settings: Settings, guard: Guard) -> None:
    """Put `guard` in front of KServe's module-level app (uvicorn imports it by name)."""
    app.add_middleware(SecurityMiddleware, guard=guard, websockets=websocket_limits(settings))


class _DriftlineMetrics(Collector):
    """Driftline's serving metrics, exposed through KServe's default-registry `/metrics`."""

    def collect(self) -> Iterator[Any]:
        yield from _LOCAL.collect()


def load(settings: Settings) -> ModelBundle:
    """The configured version's bundle from the registry."""
    from driftline.registry import Registry  # noqa: PLC0415  (MLflow imports slowly)

    return Registry(settings).load_bundle(settings.serving.model_version)


def build_model(
    settings: Settings,
    bundle: ModelBundle,
    log: PredictionLog | None = None,
    mirror: ShadowMirror | None = None,
) -> Any:
    """A `kserve.Model` answering V1 and V2 with the ensemble and its members; each answer goes
    to `log` (the server always passes one; integrity checks and benchmarks only score) and its
    rows to `mirror`, except a request another predictor mirrored here (`is_mirror`)."""
    from kserve import InferOutput, InferRequest, InferResponse, Model  # noqa: PLC0415
    from kserve.errors import InvalidInput  # noqa: PLC0415

    predictor = EnsemblePredictor(bundle, allow_native=settings.registry.allow_native_members)
    limits = protocol.Limits(
        n_features=len(bundle.spec.features),
        window=bundle.spec.window,
        max_rows=settings.serving.max_rows,
    )
    serving_metrics = metrics()
    labels = (bundle.name, bundle.version)

    def timer(member: str, seconds: float) -> None:
        serving_metrics.member_duration.labels(*labels, member).observe(seconds)

    def answered(endpoint: str, code: str, started: float) -> float:
        """Count an answer as `serving.endpoints.wrap` does: every code, and the latency of all
        but client errors (theirs says nothing of the service). Returns the seconds taken."""
        elapsed = time.perf_counter() - started
        serving_metrics.requests.labels(endpoint, *labels, code).inc()
        if not code.startswith("4"):
            serving_metrics.request_duration.labels(endpoint, *labels).observe(elapsed)
        return elapsed

    def score(rows: Array) -> tuple[Array, dict[str, Array]]:
        return predictor.predict_rows(rows, timer=timer)

    def rows_of(payload: dict[str, Any] | InferRequest) -> Array:
        if isinstance(payload, dict):
            return protocol.v1_rows(payload, limits)
        inputs = protocol.v2_inputs(payload, limits)
        if inputs.rows is None:
            raise BadInputError(
                f"this predictor scores feature rows: send one input named "
                f"{protocol.FEATURES_INPUT!r}"
            )
        return inputs.rows

    class Ensemble(Model):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(bundle.name)
            self.ready = True

        def predict(
            self, payload: dict[str, Any] | InferRequest, headers: Any = None
        ) -> dict[str, Any] | InferResponse:
            started = time.perf_counter()
            endpoint = endpoint_of(payload)
            try:
                rows = rows_of(payload)
                key = key_of(payload)
            except BadInputError as error:
                serving_metrics.errors.labels(endpoint, error.kind).inc()
                answered(endpoint, str(error.status), started)
                raise InvalidInput(error.message) from None
            try:
                prediction, members = score(rows)
            except Exception:
                # Counted as the Ray ingress counts a server error, so the controller's error
                # rate reads it on this runtime too; KServe's handlers log it and answer 500.
                serving_metrics.errors.labels(endpoint, "internal").inc()
                answered(endpoint, "500", started)
                raise
            elapsed = answered(endpoint, "200", started)
            if log is not None and not is_mirror(headers, settings):
                rid = request_id(headers)
                log.record(
                    request_id=rid,
                    endpoint=endpoint,
                    rows=rows,
                    ensemble=prediction,
                    members=members,
                    latency_ms=elapsed * 1e3,
                    symbol=key.symbol,
                    as_of=key.as_of,
                )
                if mirror is not None:
                    mirror.mirror(rid, endpoint, rows)
            if isinstance(payload, dict):
                return {"predictions": prediction.tolist()}
            outputs = named_outputs(prediction, members)
            return InferResponse(
                # The protocol makes the id optional; KServe's response model requires one.
                response_id=payload.id or "",
                model_name=bundle.name,
                model_version=bundle.version,
                infer_outputs=[_output(n, v, InferOutput) for n, v in outputs.items()],
            )

    return Ensemble()


def key_of(payload: dict[str, Any] | Any) -> protocol.OutcomeKey:
    """The (symbol, as_of) a V2 request's parameters key its row by, as on the Ray ingress;
    V1 requests carry none."""
    if isinstance(payload, dict):
        return protocol.UNKEYED
    return protocol.outcome_key(payload.parameters)


def endpoint_of(payload: dict[str, Any] | Any) -> str:
    """The Ray ingress's endpoint label for a request: its metrics and stored rows say the same."""
    return "v1_predict" if isinstance(payload, dict) else "v2_infer"


def _output(name: str, values: Array, kind: Any) -> Any:
    out = kind(name, shape=[len(values)], datatype="FP64")
    out.set_data_from_numpy(np.asarray(values, dtype=np.float64), binary_data=False)
    return out


def main() -> None:
    """Load the version and serve it until the pod stops."""
    import kserve.model_server  # noqa: PLC0415
    from kserve import ModelServer  # noqa: PLC0415

    settings = Settings()
    configure_logging(settings.observability.log_level, json=settings.observability.log_json)
    bundle = load(settings)
    metrics().model_info.labels(
        settings.registry.model_name, bundle.version, settings.serving.colour, bundle.spec.hash
    ).set(1)
    REGISTRY.register(_DriftlineMetrics())
    log.info(
        "serving with KServe's ModelServer",
        extra={
            "version": bundle.version,
            "colour": settings.serving.colour,
            "port": settings.serving.predictor_port,
        },
    )
    prediction_log = PredictionLog(
        Store.from_settings(settings),
        settings,
        model_name=bundle.name,
        version=bundle.version,
        metrics=metrics(),
    )
    mirror = ShadowMirror.from_settings(prediction_log, settings, metrics())
    app = kserve.model_server.app  # KServe's REST app: uvicorn imports it by name
    mount_api(app, prediction_log, mirror)
    # Starlette wraps the last middleware added outermost: the body limit, then the guard (no
    # body is parsed for a caller without a key), then the hostile-body check.
    app.add_middleware(InferBodyCheck, model_name=bundle.name)
    guard_kserve_app(app, settings, predictor_guard(settings))
    app.add_middleware(BodyLimit, limit=settings.serving.max_body_bytes)
    server = ModelServer(http_port=settings.serving.predictor_port, enable_grpc=False)
    server.start([build_model(settings, bundle, prediction_log, mirror)])


if __name__ == "__main__":
    main()
