"""The predictor of one colour on the InferenceService runtime: KServe's ModelServer, one process.

`python -m serving.kserve_server` serves `DRIFTLINE_MODEL_VERSION` (a version or an alias,
resolved once at start) of `DRIFTLINE_MODEL_NAME` with KServe V1/V2 on `DRIFTLINE_SERVING_PORT`.
Members run in ONNX Runtime (native when a member has no ONNX artifact) inside this process:
KServe's raw deployment mode scales pods, not Serve replicas. `/metrics` carries KServe's own
series and Driftline's request, error and member-latency metrics.
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
from serving.metrics import _LOCAL, metrics
from serving.model import MemberRuntime, ServedModel, served_model

log = logging.getLogger(__name__)
FEATURES = "features"


class _DriftlineMetrics(Collector):
    """Driftline's serving metrics, exposed through KServe's default-registry `/metrics`."""

    def collect(self) -> Iterator[Any]:
        yield from _LOCAL.collect()


def load(settings: Settings) -> ServedModel:
    """The configured version's bundle from the registry, adapted for serving."""
    from driftline.registry import Registry  # noqa: PLC0415  (MLflow imports slowly)

    return served_model(Registry(settings).load_bundle(settings.serving.model_version))


def check_rows(model: ServedModel, data: np.ndarray[Any, Any], max_rows: int) -> str | None:
    """Why `data` cannot be scored by `model`, or None when it can."""
    n_features = len(model.spec.features)
    if data.ndim != 2 or data.shape[1] != n_features:
        return f"input '{FEATURES}': shape {list(data.shape)}, expected [n, {n_features}]"
    if not 1 <= data.shape[0] <= max_rows:
        return f"input '{FEATURES}': {data.shape[0]} rows, expected 1 to {max_rows}"
    if not np.isfinite(data).all():
        return f"input '{FEATURES}': values must be finite numbers"
    return None


def build_model(settings: Settings, served: ServedModel) -> Any:
    """A `kserve.Model` scoring feature rows with the ensemble and its members."""
    from kserve import InferOutput, InferRequest, InferResponse, Model  # noqa: PLC0415
    from kserve.errors import InvalidInput  # noqa: PLC0415

    runtimes = {m.name: MemberRuntime(m) for m in served.members}
    serving_metrics = metrics()
    labels = (settings.registry.model_name, served.version)

    class Ensemble(Model):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(settings.registry.model_name)
            self.ready = True

        def predict(self, payload: InferRequest, headers: Any = None) -> InferResponse:
            started = time.perf_counter()
            tensor = next((i for i in payload.inputs if i.name == FEATURES), None)
            if tensor is None:
                serving_metrics.errors.labels("infer", "bad_input").inc()
                raise InvalidInput(f"an input named '{FEATURES}' is required")
            rows = np.asarray(tensor.as_numpy(), dtype=np.float64)
            problem = check_rows(served, rows, settings.serving.max_rows)
            if problem is not None:
                serving_metrics.errors.labels("infer", "bad_input").inc()
                raise InvalidInput(problem)
            outputs = {}
            for name, runtime in runtimes.items():
                member_started = time.perf_counter()
                outputs[name] = runtime.predict(rows)
                serving_metrics.member_duration.labels(*labels, name).observe(
                    time.perf_counter() - member_started
                )
            tensors = [_output("prediction", served.combine(outputs), InferOutput)]
            tensors += [_output(name, out, InferOutput) for name, out in outputs.items()]
            serving_metrics.requests.labels("infer", *labels, "200").inc()
            serving_metrics.request_duration.labels("infer", *labels).observe(
                time.perf_counter() - started
            )
            return InferResponse(
                model_name=settings.registry.model_name,
                infer_outputs=tensors,
                response_id=payload.id,
            )

    return Ensemble()


def _output(name: str, values: np.ndarray[Any, Any], kind: Any) -> Any:
    out = kind(name, shape=[len(values)], datatype="FP64")
    out.set_data_from_numpy(np.asarray(values, dtype=np.float64), binary_data=False)
    return out


def main() -> None:
    """Load the version and serve it until the pod stops."""
    from kserve import ModelServer  # noqa: PLC0415

    settings = Settings()
    configure_logging(settings.observability.log_level, json=settings.observability.log_json)
    served = load(settings)
    metrics().model_info.labels(
        settings.registry.model_name, served.version, settings.serving.colour, served.spec.hash
    ).set(1)
    REGISTRY.register(_DriftlineMetrics())
    log.info(
        "serving with KServe's ModelServer",
        extra={
            "version": served.version,
            "colour": settings.serving.colour,
            "port": settings.serving.predictor_port,
        },
    )
    server = ModelServer(http_port=settings.serving.predictor_port, enable_grpc=False)
    server.start([build_model(settings, served)])


if __name__ == "__main__":
    main()
