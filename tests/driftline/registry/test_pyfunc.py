"""Stock MLflow, in a fresh process, loads the registered version and predicts on its example."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from driftline.registry import EnsemblePredictor, Registry

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SCRIPT = """
import json, sys
import mlflow.pyfunc
from mlflow.models import Model
uri = sys.argv[1]
model = mlflow.pyfunc.load_model(uri)
example = Model.load(uri).load_input_example()
out = model.predict(example)
print(json.dumps({"columns": list(out.columns), "prediction": out["prediction"].tolist(),
                  "example": example.to_dict(orient="split")}))
"""


def test_stock_mlflow_loads_the_challenger_and_predicts_its_input_example(
    registered_model: Any,
) -> None:
    settings = registered_model.settings
    registry = Registry(settings)
    registry.set_alias("challenger", registered_model.version)
    env = {
        "MLFLOW_TRACKING_URI": settings.tracking_uri,
        "PATH": "/usr/bin:/bin",
        "HOME": str(settings.home),
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, f"models:/{registered_model.name}@challenger"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["columns"] == ["prediction", "member_rf", "member_xgb"]
    example = result["example"]
    assert example["columns"] == registered_model.bundle.spec.names
    expected, _ = EnsemblePredictor(registered_model.bundle).predict(np.array(example["data"]))
    assert len(result["prediction"]) == len(example["data"]) >= 1
    assert np.allclose(result["prediction"], expected, atol=1e-12)
