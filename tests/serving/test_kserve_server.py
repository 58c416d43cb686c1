"""The InferenceService predictor: KServe's ModelServer model over a registered version."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import joblib
import mlflow
import numpy as np
import pandas as pd
import pytest
from kserve import InferInput, InferRequest
from kserve.errors import InvalidInput
from prometheus_client import CollectorRegistry, generate_latest

from driftline.config import Settings
from driftline.features import default_spec
from driftline.registry import member_output, output_names
from driftline.registry.bundle import MemberArtifact, ModelBundle
from operators.health import counters_from_scrape
from serving.kserve_server import _DriftlineMetrics, build_model

if TYPE_CHECKING:
    from tests.conftest import RegisteredModel

pytestmark = [
    pytest.mark.ray,
    pytest.mark.slow,
    # MLflow warns, on loading any pyfunc with an untyped predict, that it cannot validate it.
    pytest.mark.filterwarnings("ignore:.*Any type hint is inferred as AnyType:UserWarning"),
    # KServe's REST app answers through FastAPI's ORJSONResponse, which FastAPI now deprecates.
    pytest.mark.filterwarnings("ignore:ORJSONResponse is deprecated"),
]


def _request(rows: np.ndarray, name: str = "features") -> InferRequest:
    tensor = InferInput(name, list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows, binary_data=False)
    return InferRequest("market-ensemble", [tensor], request_id="r1")


def test_predictions_match_the_registered_pyfunc(registered_model: RegisteredModel) -> None:
    mlflow.set_tracking_uri(registered_model.settings.tracking_uri)
    mlflow.set_registry_uri(registered_model.settings.tracking_uri)
    pyfunc = mlflow.pyfunc.load_model(registered_model.model_uri)
    example = pyfunc.input_example
    expected = pyfunc.predict(example)
    model = build_model(registered_model.settings, registered_model.bundle)
    response = model.predict(_request(example.to_numpy(dtype=np.float64)))
    assert (response.id, response.model_version) == ("r1", registered_model.version)
    outputs = {o.name: o.as_numpy() for o in response.outputs}
    members = [m.name for m in registered_model.bundle.members]
    assert list(outputs) == output_names(members) == list(expected.columns)
    for name in output_names(members):
        np.testing.assert_allclose(outputs[name], expected[name], atol=1e-5)
    assert member_output("rf") in outputs


def test_bad_rows_are_refused_with_what_was_wrong(registered_model: RegisteredModel) -> None:
    n = len(registered_model.bundle.spec.features)
    settings = registered_model.settings.updated({"serving": {"max_rows": 10}})
    model = build_model(settings, registered_model.bundle)
    for rows, message in (
        (np.zeros((2, 3)), "expected \\[n, 45\\]"),
        (np.zeros((11, n)), "11 rows exceed the limit of 10"),
        (np.full((1, n), np.nan), "non-finite value"),
    ):
        with pytest.raises(InvalidInput, match=message):
            model.predict(_request(rows))
    with pytest.raises(InvalidInput, match="expected one input named 'features'"):
        model.predict(_request(np.zeros((1, n)), name="rows"))
    with pytest.raises(InvalidInput, match="instances"):
        model.predict({"rows": [[0.0] * n]})


async def _post(app: Any, path: str, body: dict[str, Any]) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://kserve") as client:
        return await client.post(path, json=body)


async def test_a_v2_request_without_an_id_is_answered(
    kserve_app: Any, registered_model: RegisteredModel
) -> None:
    # The protocol makes the id optional; KServe's response model alone used to refuse it (500).
    n = len(registered_model.bundle.spec.features)
    tensor = {"name": "features", "shape": [1, n], "datatype": "FP64", "data": [0.0] * n}
    response = await _post(kserve_app, "/v2/models/market-ensemble/infer", {"inputs": [tensor]})
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["id"] == ""
    assert [o["name"] for o in document["outputs"]] == output_names(["rf", "xgb"])


async def test_bad_input_over_http_is_a_400_naming_the_problem(
    kserve_app: Any, registered_model: RegisteredModel
) -> None:
    response = await _post(
        kserve_app, "/v1/models/market-ensemble:predict", {"instances": [[0.0, 1.0]]}
    )
    assert response.status_code == 400
    assert "expected [n, 45]" in response.text


class _Failing:
    """A member model that raises on every call (pickled into the member's file)."""

    def predict(self, rows: Any) -> Any:
        raise RuntimeError("member failed")


def _failing_bundle(home: Path) -> ModelBundle:
    path = home / "failing.joblib"
    joblib.dump(_Failing(), path)
    return ModelBundle(
        name="failing-ensemble",
        version="7",
        spec=default_spec(),
        members=(MemberArtifact("broken", "sklearn", path, None),),
        weights={"broken": 1.0},
        intercept=0.0,
        horizon=1,
        evaluation={},
        data_window={},
        reference=pd.DataFrame(),
        importances={},
        local_dir=home,
    )


def _scrape() -> str:
    """What the predictor's /metrics adds to KServe's own series (`kserve_server.main`)."""
    registry = CollectorRegistry()
    registry.register(_DriftlineMetrics())
    return generate_latest(registry).decode()


def test_a_failed_scoring_is_counted_as_a_server_error_with_its_latency(
    settings: Settings, tmp_path: Path
) -> None:
    # The controller's error-rate check reads these counters on both runtimes alike.
    bundle = _failing_bundle(tmp_path)
    settings = settings.updated({"registry": {"allow_native_members": True}})
    model = build_model(settings, bundle)
    n = len(bundle.spec.features)
    for _ in range(2):
        with pytest.raises(RuntimeError, match="member failed"):
            model.predict(_request(np.zeros((1, n))))
    with pytest.raises(InvalidInput):
        model.predict(_request(np.zeros((1, 3))))
    counters = counters_from_scrape(_scrape(), model=bundle.name, version=bundle.version)
    assert (counters.requests, counters.errors) == (2, 2)
    # Both failures' latency is in the histogram; the client error's is not.
    assert counters.buckets[float("inf")] == 2
    refused = 'code="400",endpoint="v2_infer",model="failing-ensemble",version="7"} 1.0'
    assert f"driftline_requests_total{{{refused}" in _scrape()
