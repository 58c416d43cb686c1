"""`serving.app:build_app`, the one-colour application each RayService of the chart runs."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import orjson
import pytest

from benchmarks import synthetic

if TYPE_CHECKING:
    from tests.serving.conftest import Served

pytestmark = [pytest.mark.ray, pytest.mark.postgres, pytest.mark.slow]

MODEL = "market-ensemble"
APP = "rayservice-green"
PREFIX = "/rayservice"


def _current_config(served: Served) -> dict[str, Any]:
    return served.control.config(served.control.state())


def _wait_for(served: Served, ok: Any, what: str, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        apps = served.control.details().get("applications", {})
        if ok(apps):
            return
        failed = apps.get(APP, {})
        assert failed.get("status") != "DEPLOY_FAILED", failed.get("message")
        time.sleep(1)
    pytest.fail(f"{what} after {timeout_s:.0f}s")


def test_build_app_serves_one_colour_behind_its_own_ingress(served: Served) -> None:
    """The chart's serveConfigV2 args (version, colour, num_cpus, autoscaling) serve that
    version on that colour, with KServe V2 at the application's route."""
    config = _current_config(served)
    config["applications"].append(
        {
            "name": APP,
            "import_path": "serving.app:build_app",
            "route_prefix": PREFIX,
            "runtime_env": {"env_vars": served.control.env},
            "args": {
                "model_name": MODEL,
                "model_version": "2",
                "colour": "green",
                "loader": synthetic.LOADER,
                "num_cpus": 0.05,
                "autoscaling_config": {"min_replicas": 1, "max_replicas": 1},
            },
        }
    )
    served.control.client.deploy_applications(config)
    try:
        _wait_for(
            served, lambda apps: apps.get(APP, {}).get("status") == "RUNNING", f"{APP} not running"
        )
        base = f"{served.base_url}{PREFIX}"
        assert httpx.get(f"{base}/v2/models/{MODEL}/ready", timeout=30).status_code == 200
        x = np.random.default_rng(3).normal(size=(4, 45))
        body = {"inputs": [{"name": "features", "shape": [4, 45], "datatype": "FP64"}]}
        body["inputs"][0]["data"] = x.tolist()
        response = httpx.post(
            f"{base}/v2/models/{MODEL}/infer", content=orjson.dumps(body), headers=served.headers
        )
        assert response.status_code == 200, response.text
        outputs = {o["name"]: o for o in response.json()["outputs"]}
        expected = synthetic.native_predict(served.bundles["2"], x)
        np.testing.assert_allclose(outputs["prediction"]["data"], expected, atol=1e-5)
        models = httpx.get(f"{base}/api/models", headers=served.headers, timeout=30).json()
        assert models["active"]["version"] == "2"
    finally:
        served.control.client.deploy_applications(_current_config(served))
        _wait_for(served, lambda apps: APP not in apps, f"{APP} not removed")
