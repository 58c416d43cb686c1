"""The InferenceService predictor: KServe's ModelServer model over a registered version."""

from __future__ import annotations

from typing import TYPE_CHECKING

import mlflow
import numpy as np
import pytest
from kserve import InferInput, InferRequest
from kserve.errors import InvalidInput

from serving.kserve_server import build_model, check_rows
from serving.model import served_model

if TYPE_CHECKING:
    from tests.conftest import RegisteredModel

pytestmark = [
    pytest.mark.ray,
    pytest.mark.slow,
    # MLflow warns, on loading any pyfunc with an untyped predict, that it cannot validate it.
    pytest.mark.filterwarnings("ignore:.*Any type hint is inferred as AnyType:UserWarning"),
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
    model = build_model(registered_model.settings, served_model(registered_model.bundle))
    response = model.predict(_request(example.to_numpy(dtype=np.float64)))
    assert response.id == "r1"
    outputs = {o.name: o.as_numpy() for o in response.outputs}
    np.testing.assert_allclose(outputs["prediction"], expected["prediction"], atol=1e-5)
    for name in (m.name for m in registered_model.bundle.members):
        np.testing.assert_allclose(outputs[name], expected[f"member_{name}"], atol=1e-5)


def test_bad_rows_are_refused_with_what_was_wrong(registered_model: RegisteredModel) -> None:
    served = served_model(registered_model.bundle)
    n = len(served.spec.features)
    assert check_rows(served, np.zeros((2, n)), 10) is None
    assert "expected [n, 45]" in str(check_rows(served, np.zeros((2, 3)), 10))
    assert "11 rows, expected 1 to 10" in str(check_rows(served, np.zeros((11, n)), 10))
    assert "finite" in str(check_rows(served, np.full((1, n), np.nan), 10))
    model = build_model(registered_model.settings, served)
    with pytest.raises(InvalidInput, match="an input named 'features' is required"):
        model.predict(_request(np.zeros((1, n)), name="rows"))
