"""The chart's serving path, simulated locally the way its RayService runs it.

`helm template` renders the chart on its defaults; the active colour's RayService gives the
Serve config (`serveConfigV2`: one application from `serving.app:build_app`, the ingress and
one colour's graph) and the Ray head's Serve environment (throughput-optimised Serve, direct
ingress ports, niceness). A local Ray head starts with that environment, the config is deployed
through the Serve REST API as KubeRay deploys it (only the model version, the synthetic loader
and loopback ports differ), and the URL measured is the ingress replica's direct-ingress port:
the port the chart's active and preview Services target.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from benchmarks import synthetic
from driftline.config import Settings
from driftline.raycluster import LocalRayCluster, free_port

CHART = Path(__file__).resolve().parents[1] / "helm" / "driftline"
TOOLS = Path(__file__).resolve().parents[1] / ".tools" / "bin"
# Port ranges the chart gives Serve's direct ingress: rebased onto free local ports.
_PORT_VARS = {
    "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": 0,
    "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": 99,
    "RAY_SERVE_DIRECT_INGRESS_MIN_GRPC_PORT": 100,
    "RAY_SERVE_DIRECT_INGRESS_MAX_GRPC_PORT": 199,
}


def rendered_rayservice(helm: str | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """The active colour's `serveConfigV2` and its Ray head's environment, as the chart
    renders them on its defaults."""
    binary = helm or shutil.which("helm") or str(TOOLS / "helm")
    out = subprocess.run(
        [binary, "template", "bench", str(CHART)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    services = [d for d in yaml.safe_load_all(out) if d and d.get("kind") == "RayService"]
    active = next(s for s in services if s["metadata"]["name"].endswith("-blue"))
    config: dict[str, Any] = yaml.safe_load(active["spec"]["serveConfigV2"])
    head = active["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]
    env = {e["name"]: str(e["value"]) for e in head["containers"][0]["env"] if "value" in e}
    return config, env


def local_config(config: dict[str, Any], proxy_port: int) -> dict[str, Any]:
    """The chart's config with the synthetic version 1 and Serve's proxy on loopback."""
    local = {**config, "http_options": {"host": "127.0.0.1", "port": proxy_port}}
    local["applications"] = [
        {**app, "args": {**app["args"], "model_version": "1", "loader": synthetic.LOADER}}
        for app in config["applications"]
    ]
    return local


def head_env(chart_env: dict[str, str], base_port: int) -> dict[str, str]:
    """The chart head's Serve and Ray settings, its port ranges rebased onto `base_port`."""
    env = {
        k: v
        for k, v in chart_env.items()
        if k.startswith("RAY_") or k.startswith("DRIFTLINE_SERVE_")
    }
    env.update({name: str(base_port + offset) for name, offset in _PORT_VARS.items()})
    return env


@contextlib.contextmanager
def chart_path(settings: Settings, home: Path, store_url: str) -> Iterator[str]:
    """The chart's serving path on a local Ray head; yields the direct-ingress URL."""
    from serving.control import ServingControl  # noqa: PLC0415

    config, chart_env = rendered_rayservice()
    chart_home = home / "chart"
    # Its own home: member sockets are found per home, and the printed URL's server has one.
    synthetic.copy_bundle(settings, chart_home)
    base = free_port()
    env = {
        **head_env(chart_env, base),
        "DRIFTLINE_HOME": str(chart_home),
        "DRIFTLINE_DATABASE_URL": store_url,
    }
    cluster = LocalRayCluster(num_cpus=2, env=env, log_path=home / "ray-chart.log").start()
    try:
        local_settings = settings.updated({"home": chart_home})
        control = ServingControl(local_settings, cluster.dashboard_url, http_port=free_port())
        control.client.deploy_applications(local_config(config, control.http_port))
        url = _wait_for_ingress(control)
        try:
            yield url
        finally:
            control.shutdown()
    finally:
        cluster.stop()


def _wait_for_ingress(control: Any, timeout_s: float = 600.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        apps = control.details().get("applications") or {}
        statuses = {name: app.get("status") for name, app in apps.items()}
        if "DEPLOY_FAILED" in statuses.values():
            raise RuntimeError(f"the chart's application failed to deploy: {apps}")
        urls = control.direct_urls()
        if statuses and all(s == "RUNNING" for s in statuses.values()) and urls:
            return str(urls[0])
        time.sleep(1.0)
    raise RuntimeError(f"the chart's application was not running after {timeout_s:.0f}s")
