"""The local head runs the dashboard modules Driftline calls and no Ray Client server."""

from __future__ import annotations

import re

import httpx
import psutil
import pytest

from driftline.raycluster import LocalRayCluster
from driftline.rayhead import DASHBOARD_MODULES, dashboard_command
from serving.serve_api import auth_headers

MODULE_PROCESS = re.compile(r"ray-dashboard-(\w+)-\d+")


def test_the_dashboard_command_ends_with_the_module_list() -> None:
    command = dashboard_command(["python", "dashboard.py", "--port=1"], ["JobHead", "ServeHead"])
    assert command[-1] == "--modules-to-load=JobHead,ServeHead"
    assert command[:3] == ["python", "dashboard.py", "--port=1"]


def _head_tree(cluster: LocalRayCluster) -> list[str]:
    assert cluster._process is not None
    root = psutil.Process(cluster._process.pid)
    lines = []
    for process in [root, *root.children(recursive=True)]:
        try:
            lines.append(" ".join(process.cmdline()))
        except psutil.NoSuchProcess:
            continue
    return lines


@pytest.mark.ray
def test_the_head_starts_only_the_modules_driftline_calls(ray_cluster: LocalRayCluster) -> None:
    lines = _head_tree(ray_cluster)
    modules = {m.group(1) for line in lines if (m := MODULE_PROCESS.match(line))}
    assert modules == set(DASHBOARD_MODULES)
    assert not [line for line in lines if "ray.util.client.server" in line]


@pytest.mark.ray
def test_the_apis_driftline_calls_answer(ray_cluster: LocalRayCluster) -> None:
    headers = auth_headers()
    for path in ("/api/jobs/", "/api/serve/applications/"):
        reply = httpx.get(f"{ray_cluster.dashboard_url}{path}", headers=headers, timeout=30)
        assert reply.status_code == 200, (path, reply.text[:300])
