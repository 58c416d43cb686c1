"""The local head runs the dashboard modules Driftline calls and no Ray Client server."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import cast

import httpx
import psutil
import pytest
from ray.dashboard.subprocesses.module import SubprocessModule

from driftline.raycluster import LocalRayCluster
from driftline.rayhead import AGENT_MODULES, DASHBOARD_MODULES, SCRIPT_MODE, through_launcher
from serving.serve_api import auth_headers

MODULE_PROCESS = re.compile(r"ray-dashboard-(\w+)-\d+")


def test_ray_scripts_run_through_the_launcher_with_their_flags() -> None:
    command = through_launcher(
        ["python", "-u", "/r/dashboard.py", "--port=1"], "dashboard.py", "-x"
    )
    assert command == [
        "python",
        "-u",
        "-m",
        "driftline.rayhead",
        SCRIPT_MODE,
        "/r/dashboard.py",
        "--port=1",
        "-x",
    ]


def test_the_tables_name_every_agent_module_and_where_the_dashboard_ones_live() -> None:
    from ray.dashboard import utils  # noqa: PLC0415

    # The agent must run what `ray start`'s runs: a Ray upgrade that adds a module fails here.
    discover = cast(Callable[[type], list[type]], utils.get_all_modules)  # untyped in Ray
    assert {m.__name__: m.__module__ for m in discover(utils.DashboardAgentModule)} == AGENT_MODULES
    heads = {m.__name__: m.__module__ for m in discover(SubprocessModule)}
    assert {name: heads[name] for name in DASHBOARD_MODULES} == DASHBOARD_MODULES


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
    assert [line for line in lines if f"{SCRIPT_MODE} " in line and "dashboard.py" in line]


@pytest.mark.ray
def test_the_apis_driftline_calls_answer(ray_cluster: LocalRayCluster) -> None:
    headers = auth_headers()
    for path in ("/api/jobs/", "/api/serve/applications/"):
        reply = httpx.get(f"{ray_cluster.dashboard_url}{path}", headers=headers, timeout=30)
        assert reply.status_code == 200, (path, reply.text[:300])


@pytest.mark.ray
def test_a_job_runs_on_the_head(ray_cluster: LocalRayCluster) -> None:
    # Jobs need the head node's id, which Ray's node module would record and this head does.
    from ray.job_submission import JobStatus, JobSubmissionClient  # noqa: PLC0415

    client = JobSubmissionClient(ray_cluster.dashboard_url)
    job = client.submit_job(entrypoint="python -c \"print('ran on the head')\"")
    deadline = time.monotonic() + 120
    while client.get_job_status(job) not in {JobStatus.SUCCEEDED, JobStatus.FAILED}:
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.5)
    assert client.get_job_status(job) == JobStatus.SUCCEEDED
    assert "ran on the head" in client.get_job_logs(job)
