"""Issue 3, item 1: the registered version served through the Serve graph with the registry
loader (what `driftline serve` deploys) answers KServe's own client like its MLflow pyfunc.
Issue 12, item 2: the InferenceService predictor answers exactly as the Serve graph does.
Issue 13, item 3: and it logs the same rows and takes outcomes through the same API.

Runs after test_graph.py (file order), which shuts its synthetic system down at its end.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

from driftline.contracts import forwarded_env
from driftline.raycluster import LocalRayCluster
from driftline.registry import output_names
from driftline.store import Store
from serving.control import ServingControl
from tests.serving.conftest import client_key

if TYPE_CHECKING:
    from tests.conftest import RegisteredModel
    from tests.serving.conftest import Served

pytestmark = [
    pytest.mark.ray,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:.*Any type hint is inferred as AnyType:UserWarning"),
    # KServe's REST app answers through FastAPI's ORJSONResponse, which FastAPI now deprecates.
    pytest.mark.filterwarnings("ignore:ORJSONResponse is deprecated"),
]


@pytest.fixture(scope="module")
def registry_served(
    ray_cluster: LocalRayCluster, registered_model: RegisteredModel, served: Served
) -> Iterator[str]:
    """The registered version on blue, loaded from MLflow by the default loader.

    Serve keeps the HTTP port it first started with, so this reuses the session's.
    """
    # The session's PostgreSQL store, where the InferenceService predictor logs too.
    settings = registered_model.settings.updated({"store": {"database_url": served.store.url}})
    port = served.control.http_port
    control = ServingControl(
        settings, ray_cluster.dashboard_url, http_port=port, env=forwarded_env(settings)
    )
    control.deploy(registered_model.version)
    yield f"http://127.0.0.1:{port}"
    control.shutdown()


@pytest.fixture(scope="module")
def headers(registered_model: RegisteredModel, served: Served) -> dict[str, str]:
    """A client's key in the store the registered version's ingress (and the predictor) read:
    the session's PostgreSQL store."""
    settings = registered_model.settings.updated({"store": {"database_url": served.store.url}})
    return {"Authorization": f"Bearer {client_key(settings)}"}


@pytest.fixture(scope="module")
def reference(registered_model: RegisteredModel) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The version's saved input example and what its pyfunc predicts for it."""
    mlflow.set_tracking_uri(registered_model.settings.tracking_uri)
    mlflow.set_registry_uri(registered_model.settings.tracking_uri)
    pyfunc = mlflow.pyfunc.load_model(registered_model.model_uri)
    example = pyfunc.input_example
    return example, pyfunc.predict(example)


async def test_v2_infer_matches_the_pyfunc(
    registry_served: str,
    reference: tuple[pd.DataFrame, pd.DataFrame],
    headers: dict[str, str],
) -> None:
    example, expected = reference
    x = example.to_numpy(dtype=np.float64)
    request = InferRequest("market-ensemble", [InferInput("features", list(x.shape), "FP64")])
    request.inputs[0].set_data_from_numpy(x, binary_data=False)
    client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=60))
    try:
        assert await client.is_model_ready(registry_served, "market-ensemble")
        response = await client.infer(
            registry_served, request, model_name="market-ensemble", headers=headers
        )
    finally:
        await client.close()
    prediction = response.get_output_by_name("prediction").as_numpy()
    np.testing.assert_allclose(prediction, expected["prediction"], atol=1e-5)


async def test_v1_predict_matches_the_pyfunc(
    registry_served: str,
    reference: tuple[pd.DataFrame, pd.DataFrame],
    headers: dict[str, str],
) -> None:
    example, expected = reference
    client = InferenceRESTClient(RESTConfig(protocol="v1", timeout=60))
    try:
        response = await client.infer(
            registry_served,
            {"instances": example.to_numpy(dtype=np.float64).tolist()},
            model_name="market-ensemble",
            headers=headers,
        )
    finally:
        await client.close()
    np.testing.assert_allclose(
        np.asarray(response["predictions"], dtype=np.float64), expected["prediction"], atol=1e-5
    )


async def test_both_runtimes_answer_v2_and_v1_alike(
    registry_served: str,
    kserve_app: Any,
    registered_model: RegisteredModel,
    reference: tuple[pd.DataFrame, pd.DataFrame],
    headers: dict[str, str],
) -> None:
    x = reference[0].to_numpy(dtype=np.float64)
    tensor = {"name": "features", "shape": list(x.shape), "datatype": "FP64", "data": x.tolist()}
    v2 = ("/v2/models/market-ensemble/infer", {"id": "same", "inputs": [tensor]})
    v1 = ("/v1/models/market-ensemble:predict", {"instances": x.tolist()})
    transport = httpx.ASGITransport(app=kserve_app)
    async with (
        httpx.AsyncClient(base_url=registry_served, timeout=60, headers=headers) as ray,
        httpx.AsyncClient(transport=transport, base_url="http://kserve") as kserve,
    ):
        answers = {
            (kind, runtime): await client.post(path, json=body)
            for kind, (path, body) in {"v2": v2, "v1": v1}.items()
            for runtime, client in {"ray": ray, "kserve": kserve}.items()
        }
    assert {key: a.status_code for key, a in answers.items()} == dict.fromkeys(answers, 200)
    ray_v2, kserve_v2 = answers["v2", "ray"].json(), answers["v2", "kserve"].json()
    for field in ("id", "model_name", "model_version"):
        assert ray_v2[field] == kserve_v2[field], field
    assert kserve_v2["model_version"] == registered_model.version
    members = [m.name for m in registered_model.bundle.members]
    for outputs in (ray_v2["outputs"], kserve_v2["outputs"]):
        assert [o["name"] for o in outputs] == output_names(members)
        assert [(o["shape"], o["datatype"]) for o in outputs] == [([len(x)], "FP64")] * len(outputs)
    for ours, theirs in zip(ray_v2["outputs"], kserve_v2["outputs"], strict=True):
        np.testing.assert_allclose(ours["data"], theirs["data"], rtol=0, atol=1e-6)
    ray_v1, kserve_v1 = answers["v1", "ray"].json(), answers["v1", "kserve"].json()
    assert list(ray_v1) == list(kserve_v1) == ["predictions"]
    np.testing.assert_allclose(ray_v1["predictions"], kserve_v1["predictions"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(ray_v1["predictions"], ray_v2["outputs"][0]["data"], atol=1e-6)


async def test_both_runtimes_log_the_same_rows_and_take_outcomes(  # noqa: PLR0917  (fixtures)
    registry_served: str,
    kserve_app: Any,
    served: Served,
    registered_model: RegisteredModel,
    reference: tuple[pd.DataFrame, pd.DataFrame],
    headers: dict[str, str],
) -> None:
    """Issue 13, item 3: the same requests to both runtimes leave the same rows in the store;
    a V2 request naming its symbol and as-of time in its parameters is stored under them on both,
    and an outcome for them settles it."""
    x = reference[0].to_numpy(dtype=np.float64)
    tensor = {"name": "features", "shape": list(x.shape), "datatype": "FP64", "data": x.tolist()}
    run = uuid.uuid4().hex[:8]
    key = {"symbol": f"V2{run}", "as_of": "2001-01-02"}  # a symbol of this run's own
    requests = {
        "v2_infer": ("/v2/models/market-ensemble/infer", {"parameters": key, "inputs": [tensor]}),
        "v1_predict": ("/v1/models/market-ensemble:predict", {"instances": x.tolist()}),
    }
    transport = httpx.ASGITransport(app=kserve_app)
    async with (
        httpx.AsyncClient(base_url=registry_served, timeout=60, headers=headers) as ray,
        httpx.AsyncClient(transport=transport, base_url="http://kserve", headers=headers) as kserve,
    ):
        clients = {"ray": ray, "kserve": kserve}
        for endpoint, (path, body) in requests.items():
            for runtime, client in clients.items():
                request_id = {"x-request-id": f"{run}-{runtime}-{endpoint}"}
                response = await client.post(path, json=body, headers=request_id)
                assert response.status_code == 200, response.text
        ids = [f"{run}-{r}-{e}" for r in clients for e in requests]
        rows = await _stored(served.store, ids)
        outcome = {"outcomes": [{**key, "value": 0.01}]}
        answers = [await c.post("/api/outcomes", json=outcome) for c in clients.values()]
    fields = ("endpoint", "model_name", "model_version", "colour", "slot", "n_rows")
    for endpoint in requests:
        ours, theirs = rows[f"{run}-ray-{endpoint}"], rows[f"{run}-kserve-{endpoint}"]
        for field in (*fields, "symbol", "as_of"):
            assert getattr(ours, field) == getattr(theirs, field), (endpoint, field)
        assert theirs.endpoint == endpoint
        assert theirs.model_version == registered_model.version
        assert ours.features is not None
        assert theirs.features is not None
        np.testing.assert_array_equal(ours.features, theirs.features)
        np.testing.assert_allclose(ours.prediction, theirs.prediction, rtol=0, atol=1e-6)
        assert ours.member_outputs.keys() == theirs.member_outputs.keys()
        for member, values in ours.member_outputs.items():
            np.testing.assert_allclose(values, theirs.member_outputs[member], atol=1e-6)
    v2 = rows[f"{run}-kserve-v2_infer"]
    assert (v2.symbol, v2.as_of) == (key["symbol"], datetime(2001, 1, 2, tzinfo=UTC))
    assert rows[f"{run}-kserve-v1_predict"].symbol is None
    # The same outcomes API on both, and the V2 rows are what it settles: stored through one,
    # a duplicate through the other.
    ray_answer, kserve_answer = answers
    assert ray_answer.status_code == kserve_answer.status_code == 200, kserve_answer.text
    assert ray_answer.json().keys() == kserve_answer.json().keys()
    assert (ray_answer.json()["stored"], kserve_answer.json()["duplicate"]) == (1, 1)


async def _stored(store: Store, ids: list[str], timeout_s: float = 30.0) -> dict[str, Any]:
    """The live predictions stored under `ids`, once every one of them is there."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = {
            r.request_id: r
            for r in store.predictions.predictions(slot="live")
            if r.request_id in ids
        }
        if len(found) == len(ids) or time.monotonic() > deadline:
            assert sorted(found) == sorted(ids)
            return found
        await asyncio.sleep(0.2)
