"""`serving.app:build_app`, the one-colour application each RayService of the chart runs, and
the HTTP shadow mirror between two of them."""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import orjson
import pytest

from benchmarks import synthetic
from driftline.auth.keys import issue_key
from driftline.auth.scopes import Scope
from driftline.store.keys import KeyStore
from operators.states import Phase, RolloutState
from tests.serving.stored_route import in_rollout, set_route

if TYPE_CHECKING:
    from tests.serving.conftest import Served

pytestmark = [pytest.mark.ray, pytest.mark.postgres, pytest.mark.slow]

MODEL = "market-ensemble"
APP = "rayservice-green"
PREFIX = "/rayservice"


def _current_config(served: Served) -> dict[str, Any]:
    return served.control.config(served.control.state())


def _wait_for(
    served: Served, ok: Any, what: str, timeout_s: float = 300, apps: tuple[str, ...] = (APP,)
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = served.control.details().get("applications", {})
        if ok(found):
            return
        for app in apps:
            failed = found.get(app, {})
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


def _application(colour: str, version: str, served: Served, env: dict[str, str]) -> dict[str, Any]:
    """One colour as the chart's RayService runs it (`serving.app:build_app`), under a prefix."""
    return {
        "name": f"mirror-{colour}",
        "import_path": "serving.app:build_app",
        "route_prefix": f"/mirror-{colour}",
        "runtime_env": {"env_vars": {**served.control.env, **env}},
        "args": {
            "model_name": MODEL,
            "model_version": version,
            "colour": colour,
            "loader": synthetic.LOADER,
            "num_cpus": 0.05,
            "autoscaling_config": {"min_replicas": 1, "max_replicas": 1},
        },
    }


def test_each_colours_ingress_mirrors_to_the_other_over_http(served: Served) -> None:
    """In the cluster each colour is its own RayService, so the shadow colour is never bound in
    the active colour's application: its ingress mirrors over HTTP to the URL the chart gives it
    (the preview Service; here the other application's prefix), with the mirror's key, and the
    controller's stored route says who mirrors. The shadow's answers are stored by the sender
    under the live request's id; the receiver stores nothing of them."""
    keys = KeyStore.from_settings(served.settings)
    name = f"shadow-mirror-{uuid.uuid4().hex[:8]}"  # the session's database holds others
    mirror_key = issue_key(keys, name, frozenset({Scope.PREDICT})).key
    keys.close()
    shared = {"DRIFTLINE_SERVE_SHADOW_KEY": mirror_key, "DRIFTLINE_SERVE_SHADOW_POLL_S": "0.2"}
    base = served.base_url
    config = _current_config(served)
    for colour, version, other in (("blue", "1", "green"), ("green", "2", "blue")):
        env = {**shared, "DRIFTLINE_SERVE_SHADOW_URL": f"{base}/mirror-{other}"}
        config["applications"].append(_application(colour, version, served, env))
    names = ("mirror-blue", "mirror-green")
    set_route(served.store, in_rollout(Phase.DEPLOYING, "blue"))
    served.control.client.deploy_applications(config)
    try:
        _wait_for(
            served,
            lambda apps: all(apps.get(n, {}).get("status") == "RUNNING" for n in names),
            "the two colours not running",
            apps=names,
        )
        time.sleep(2)  # each ingress has read the controller's route (every 0.2 s)
        ids = [f"rs-mirror-{time.time_ns()}-{i}" for i in range(3)]
        for i, request_id in enumerate(ids):
            x = np.random.default_rng(i).normal(size=(i + 1, 45))
            body = {"inputs": [{"name": "features", "shape": list(x.shape), "datatype": "FP64"}]}
            body["inputs"][0]["data"] = x.ravel().tolist()
            response = httpx.post(
                f"{base}/mirror-blue/v2/models/{MODEL}/infer",
                content=orjson.dumps(body),
                headers={**served.headers, "X-Request-ID": request_id},
                timeout=30,
            )
            assert response.status_code == 200, response.text
            assert response.json()["model_version"] == "1"
        models = httpx.get(f"{base}/mirror-blue/api/models", headers=served.headers, timeout=30)
        assert models.json()["shadow"] == {
            "colour": "green",
            "mirrored_to": f"{base}/mirror-green/v2/models/{MODEL}/infer",
        }
        wanted = {*ids, *(f"shadow-{i}" for i in ids)}
        deadline = time.monotonic() + 30
        while True:
            stored = [
                r for r in served.store.predictions.predictions(slot=None) if r.request_id in wanted
            ]
            if len(stored) >= 2 * len(ids) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        time.sleep(1)  # anything stored twice would be there by now
        stored = [
            r for r in served.store.predictions.predictions(slot=None) if r.request_id in wanted
        ]
    finally:
        set_route(served.store, RolloutState(MODEL, phase=Phase.STABLE, active_colour="blue"))
        served.control.client.deploy_applications(_current_config(served))
        _wait_for(
            served,
            lambda apps: not any(n in apps for n in names),
            "the two colours not removed",
            apps=names,
        )
    slots = sorted((r.request_id, r.slot, r.colour, r.model_version) for r in stored)
    assert slots == sorted(
        [(i, "live", "blue", "1") for i in ids] + [(i, "shadow", "green", "2") for i in ids]
    )
    by = {(r.request_id, r.slot): r for r in stored}
    for request_id in ids:
        live, shadow = by[(request_id, "live")], by[(request_id, "shadow")]
        assert live.features is not None
        assert shadow.features is not None
        np.testing.assert_allclose(shadow.features, live.features)
        expected = synthetic.native_predict(served.bundles["2"], np.asarray(live.features))
        np.testing.assert_allclose(shadow.prediction, expected, atol=1e-5)
