"""The URL `driftline serve` prints first is the fast path: the ingress replica's own server.

`driftline serve` runs as a user runs it, on a Ray head started with `ray_env` (as the command
starts its own), and the benchmark's launcher (`benchmarks.serving.driftline_serve`) reads the
printed URL, so this is the address the benchmark loads.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import psutil
import pytest
from websockets.sync.client import connect

from benchmarks import synthetic
from benchmarks.serving import create_key, driftline_serve
from driftline.config import Settings
from driftline.contracts import INGRESS_APP, INGRESS_DEPLOYMENT
from driftline.raycluster import LocalRayCluster
from serving.control import ServingControl, ray_env
from tests.ports import listener, user_port

pytestmark = [pytest.mark.ray, pytest.mark.slow]

MODEL = "market-ensemble"
ENV = {"DRIFTLINE_STREAM_INTERVAL_S": "0.5", "DRIFTLINE_CONTROLLER_DRAIN_S": "1"}


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A home holding two small versions, and a serving port of this test's own."""
    saved = dict(os.environ)
    os.environ.update(ENV)
    settings = Settings(home=tmp_path_factory.mktemp("front-door"), serving={"port": user_port()})
    for version in ("1", "2"):
        synthetic.make_bundle(settings, version, trees=(10, 10), depths=(3, 3), rows=300)
    yield settings
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def cluster(settings: Settings) -> Iterator[LocalRayCluster]:
    """A Ray head started the way `driftline serve` starts its own (`ray_env`)."""
    with LocalRayCluster(
        num_cpus=2, env=ray_env(settings), log_path=settings.home / "ray.log"
    ) as cluster:
        yield cluster


def test_the_head_runs_no_log_monitor(cluster: LocalRayCluster) -> None:
    assert cluster._process is not None
    head = psutil.Process(cluster._process.pid)
    commands = [" ".join(p.cmdline()) for p in head.children(recursive=True)]
    assert any("gcs_server" in c for c in commands)
    assert not [c for c in commands if "log_monitor" in c]


def _infer(url: str, headers: dict[str, str]) -> httpx.Response:
    body = {"inputs": [{"name": "features", "shape": [1, 45], "datatype": "FP64"}]}
    body["inputs"][0]["data"] = [[0.1] * 45]
    return httpx.post(f"{url}/v2/models/{MODEL}/infer", json=body, headers=headers, timeout=30)


def test_the_printed_url_is_the_ingress_replica_and_survives_a_blue_green_switch(
    settings: Settings, cluster: LocalRayCluster, tmp_path: Path
) -> None:
    env = {
        **ENV,
        **cluster.client_env(),
        "DRIFTLINE_HOME": str(settings.home),
        "DRIFTLINE_SERVE_PORT": str(settings.serving.port),
    }
    with driftline_serve("1", env, tmp_path / "serve.log") as url:
        # The default address, bound by the ingress replica itself, not by Serve's proxy.
        assert url == f"http://127.0.0.1:{settings.serving.port}"
        process = " ".join(listener(settings.serving.port).cmdline())
        assert f"ServeReplica:{INGRESS_APP}:{INGRESS_DEPLOYMENT}" in process, process
        ready = httpx.get(f"{url}/v2/health/ready", timeout=30)
        assert ready.status_code == 200
        # A client's key, created as users create one.
        key = create_key(env, "front-door", "predict,stream,read")
        auth = {"Authorization": f"Bearer {key}"}
        assert _infer(url, auth).json()["model_version"] == "1"
        stream = f"{url.replace('http', 'ws', 1)}/ws/predictions"
        with connect(stream, open_timeout=30, additional_headers=auth) as ws:
            assert orjson.loads(ws.recv(timeout=60))["model_version"] == "1"

        control = ServingControl(
            settings, cluster.dashboard_url, http_port=0, loader=synthetic.LOADER
        )
        proxy_port = control.details()["http_options"]["port"]
        assert proxy_port != settings.serving.port
        assert "ProxyActor" in " ".join(listener(proxy_port).cmdline())
        ingress = control.details()["applications"][INGRESS_APP]["deployments"][INGRESS_DEPLOYMENT]
        assert ingress["deployment_config"]["autoscaling_config"]["max_replicas"] == 1

        # Blue/green reconfigures the ingress in place: the printed address keeps answering.
        control.rollout("2")
        assert control.front_url() == url
        assert _infer(url, auth).json()["model_version"] == "2"
        models = httpx.get(f"{url}/api/models", headers=auth, timeout=30)
        assert models.json()["active"]["version"] == "2"
