"""Issue 3, item 1: the registered version served through the Serve graph with the registry
loader (what `driftline serve` deploys) answers KServe's own client like its MLflow pyfunc.

Runs after test_graph.py (file order), which shuts its synthetic system down at its end.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import mlflow
import numpy as np
import pandas as pd
import pytest
from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

from driftline.contracts import forwarded_env
from driftline.raycluster import LocalRayCluster
from serving.control import ServingControl

if TYPE_CHECKING:
    from tests.conftest import RegisteredModel
    from tests.serving.conftest import Served

pytestmark = [
    pytest.mark.ray,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:.*Any type hint is inferred as AnyType:UserWarning"),
]


@pytest.fixture(scope="module")
def registry_served(
    ray_cluster: LocalRayCluster, registered_model: RegisteredModel, served: Served
) -> Iterator[str]:
    """The registered version on blue, loaded from MLflow by the default loader.

    Serve keeps the HTTP port it first started with, so this reuses the session's.
    """
    settings = registered_model.settings
    port = served.control.http_port
    control = ServingControl(
        settings, ray_cluster.dashboard_url, http_port=port, env=forwarded_env(settings)
    )
    control.deploy(registered_model.version)
    yield f"http://127.0.0.1:{port}"
    control.shutdown()


@pytest.fixture(scope="module")
def reference(registered_model: RegisteredModel) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The version's saved input example and what its pyfunc predicts for it."""
    mlflow.set_tracking_uri(registered_model.settings.tracking_uri)
    mlflow.set_registry_uri(registered_model.settings.tracking_uri)
    pyfunc = mlflow.pyfunc.load_model(registered_model.model_uri)
    example = pyfunc.input_example
    return example, pyfunc.predict(example)


async def test_v2_infer_matches_the_pyfunc(
    registry_served: str, reference: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    example, expected = reference
    x = example.to_numpy(dtype=np.float64)
    request = InferRequest("market-ensemble", [InferInput("features", list(x.shape), "FP64")])
    request.inputs[0].set_data_from_numpy(x, binary_data=False)
    client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=60))
    try:
        assert await client.is_model_ready(registry_served, "market-ensemble")
        response = await client.infer(registry_served, request, model_name="market-ensemble")
    finally:
        await client.close()
    prediction = response.get_output_by_name("prediction").as_numpy()
    np.testing.assert_allclose(prediction, expected["prediction"], atol=1e-5)


async def test_v1_predict_matches_the_pyfunc(
    registry_served: str, reference: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    example, expected = reference
    client = InferenceRESTClient(RESTConfig(protocol="v1", timeout=60))
    try:
        response = await client.infer(
            registry_served,
            {"instances": example.to_numpy(dtype=np.float64).tolist()},
            model_name="market-ensemble",
        )
    finally:
        await client.close()
    np.testing.assert_allclose(
        np.asarray(response["predictions"], dtype=np.float64), expected["prediction"], atol=1e-5
    )
