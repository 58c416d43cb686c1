"""The predictor of one colour on the InferenceService runtime: KServe's ModelServer, one process.

`python -m serving.kserve_server` serves `DRIFTLINE_MODEL_VERSION` (a version or an alias,
resolved once at start) of `DRIFTLINE_MODEL_NAME` with KServe V1/V2 on `DRIFTLINE_SERVING_PORT`.
Members run in the registry's runtime (ONNX Runtime first) inside this process: KServe's raw
deployment mode scales pods, not Serve replicas. Answers carry the same output names and values
as the Ray path's. Like the Ray ingress it logs every answer to the store's predictions and
serves the outcomes and drift API under `/api` (`serving.kserve_contract`); `/metrics` carries
KServe's own series and Driftline's request, error, member-latency and store-writer metrics under
the ingress's names and endpoint labels.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
from prometheus_client import REGISTRY
from prometheus_client.registry import Collector

from driftline.config import Settings
from driftline.observability.logs import configure_logging
from driftline.registry.bundle import ModelBundle
from driftline.registry.outputs import named_outputs
from driftline.registry.predictor import Array, EnsemblePredictor
from driftline.store import Store
from serving import protocol
from serving.errors import BadInputError
from serving.http import BodyLimit, InferBodyCheck
from serving.kserve_contract import PredictionLog, mount_api, request_id
from serving.metrics import _LOCAL, metrics

log = logging.getLogger(__name__)


class _DriftlineMetrics(Collector):
    """Driftline's serving metrics, exposed through KServe's default-registry `/metrics`."""

    def collect(self) -> Iterator[Any]:
        yield from _LOCAL.collect()


def load(settings: Settings) -> ModelBundle:
    """The configured version's bundle from the registry."""
    from driftline.registry import Registry  # noqa: PLC0415  (MLflow imports slowly)

    return Registry(settings).load_bundle(settings.serving.model_version)


def build_model(settings: Settings, bundle: ModelBundle, log: PredictionLog | None = None) -> Any:
    """A `kserve.Model` answering V1 and V2 with the ensemble and its members; each answer goes
    to `log` (the server always passes one; integrity checks and benchmarks only score)."""
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
            except BadInputError as error:
                serving_metrics.errors.labels(endpoint, error.kind).inc()
                raise InvalidInput(error.message) from None
            prediction, members = score(rows)
            elapsed = time.perf_counter() - started
            serving_metrics.requests.labels(endpoint, *labels, "200").inc()
            serving_metrics.request_duration.labels(endpoint, *labels).observe(elapsed)
            if log is not None:
                log.record(
                    request_id=request_id(headers),
                    endpoint=endpoint,
                    rows=rows,
                    ensemble=prediction,
                    members=members,
                    latency_ms=elapsed * 1e3,
                )
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
    mount_api(kserve.model_server.app, prediction_log)
    server = ModelServer(http_port=settings.serving.predictor_port, enable_grpc=False)
    # KServe's REST app is this module-level FastAPI app; hostile bodies stop in front of it.
    from kserve.model_server import app  # noqa: PLC0415

    app.add_middleware(InferBodyCheck, model_name=bundle.name)
    app.add_middleware(BodyLimit, limit=settings.serving.max_body_bytes)
    server.start([build_model(settings, bundle, prediction_log)])


if __name__ == "__main__":
    main()
