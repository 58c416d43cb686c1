"""A local Ray head dies with the process that started it, even when that one is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.ray]

CHILD = """
import sys, time
from driftline.raycluster import LocalRayCluster
cluster = LocalRayCluster(num_cpus=1).start()
print(cluster._temp_dir, flush=True)
time.sleep(600)
"""


def cluster_processes(temp_dir: str) -> list[psutil.Process]:
    """Processes whose command line names the cluster's temp dir (head, GCS, raylet, workers)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or ())
        if temp_dir in cmdline:
            found.append(process)
    return found


def alive(processes: set[psutil.Process]) -> list[psutil.Process]:
    return [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


def test_sigkilled_parent_leaves_no_ray_process_behind() -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdout=subprocess.PIPE, env=os.environ.copy()
    )
    try:
        assert child.stdout is not None
        temp_dir = child.stdout.readline().decode().strip()
        assert temp_dir.startswith("/tmp/dl-ray-"), temp_dir
        # Everything the head started, including workers whose command line Ray rewrites.
        before = set(cluster_processes(temp_dir))
        for process in list(before):
            before.update(process.children(recursive=True))
        assert before, "the head should be running before the kill"
        child.send_signal(signal.SIGKILL)
        child.wait()
        deadline = time.monotonic() + 20
        while alive(before) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not alive(before), [p.cmdline() for p in alive(before)]
        assert not cluster_processes(temp_dir)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()
