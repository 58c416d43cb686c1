"""The whole local stack of `driftline up` under load: resident memory and CPU of every process.

Starts `driftline up` with its own home and free ports (training once if that home holds no
champion), drives V2 `infer` at concurrency 16 while the stream, the drift monitor and the
controller run, samples every process the command started, then stops it with Ctrl-C.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import psutil

from benchmarks.harness import main_for
from benchmarks.loadgen import run_load
from driftline.raycluster import free_port

HOME = Path(__file__).resolve().parents[1] / ".driftline" / "bench-stack"
LIMIT_MIB = 4096
LOAD_S = 30.0
CONCURRENCY = 16
READY_LINE = "Ctrl-C stops everything."


def run() -> dict[str, Any]:
    """Start the stack, measure it idle and under load, stop it."""
    port = free_port()
    env = {
        **os.environ,
        "DRIFTLINE_HOME": str(HOME),
        "DRIFTLINE_SERVE_PORT": str(port),
        "DRIFTLINE_RAY_DASHBOARD_PORT": str(free_port()),
        "DRIFTLINE_CONTROLLER_PORT": "0",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DRIFTLINE_DATABASE_URL", None)
    HOME.mkdir(parents=True, exist_ok=True)
    log_path = HOME / "up.log"
    started = time.monotonic()
    with log_path.open("wb") as log:
        up = subprocess.Popen(
            [str(Path(sys.executable).with_name("driftline")), "up", "--trials", "1"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        _wait_for_line(log_path, READY_LINE, up, timeout_s=1800)
        ready_s = time.monotonic() - started
        root = psutil.Process(up.pid)
        time.sleep(10)  # let the stream and monitor settle before the idle sample
        idle = _sample(root)
        base = f"http://127.0.0.1:{port}"
        n_features = int(httpx.get(f"{base}/api/models", timeout=30).json()["active"]["n_features"])
        body = _body(n_features)
        peak, cores, load = _under_load(root, f"{base}/v2/models/market-ensemble/infer", body)
    finally:
        stop_s = _stop(up)
    return _result(idle, peak, cores=cores, load=load.as_dict(), ready_s=ready_s, stop_s=stop_s)


def _body(n_features: int) -> bytes:
    rows = np.random.default_rng(0).standard_normal((1, n_features))
    tensor = {"name": "features", "shape": [1, n_features], "datatype": "FP64", "data": rows}
    return orjson.dumps({"inputs": [tensor]}, option=orjson.OPT_SERIALIZE_NUMPY)


def _under_load(root: psutil.Process, url: str, body: bytes) -> tuple[dict[str, float], float, Any]:
    """Peak resident memory by process kind, CPU cores used, and the load's own figures."""
    peak: dict[str, float] = {}
    done = threading.Event()
    cpu_before = _cpu_seconds(root)

    def sample() -> None:
        while not done.is_set():
            current = _sample(root)
            if sum(current.values()) > sum(peak.values()):
                peak.clear()
                peak.update(current)
            done.wait(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    started = time.monotonic()
    sampler.start()
    load = run_load(url, body, concurrency=CONCURRENCY, duration_s=LOAD_S)
    elapsed = time.monotonic() - started
    done.set()
    sampler.join()
    cores = (_cpu_seconds(root) - cpu_before) / elapsed
    return peak, cores, load


def _tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _sample(root: psutil.Process) -> dict[str, float]:
    """Resident MiB of every process `root` started, summed by kind."""
    by_kind: dict[str, float] = defaultdict(float)
    for process in _tree(root):
        try:
            by_kind[_kind(process.cmdline())] += process.memory_info().rss / 2**20
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return dict(by_kind)


def _cpu_seconds(root: psutil.Process) -> float:
    total = 0.0
    for process in _tree(root):
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


def _kind(cmdline: list[str]) -> str:
    """A short name for a process of the stack, from its command line."""
    text = " ".join(cmdline)
    replica = re.search(r"ray::ServeReplica:(\S+?):(\S+)", text)
    if replica:
        return f"serve replica {replica.group(1)}/{replica.group(2)}"
    if "driftline.cli up" in text or "driftline up" in text:
        return "driftline up (drift monitor, controller, stream client)"
    for marker, name in (
        ("ServeController", "serve controller"),
        ("ProxyActor", "serve proxy"),
        ("gcs_server", "ray gcs"),
        ("raylet", "ray raylet"),
        ("dashboard", "ray dashboard"),
        ("ray start", "ray start"),
        ("DashboardAgent", "ray agents"),
        ("RuntimeEnvAgent", "ray agents"),
        ("log_monitor", "ray monitors"),
        ("monitor.py", "ray monitors"),
        ("ray.util.client", "ray client server"),
        ("ray::IDLE", "ray idle workers"),
    ):
        if marker in text:
            return name
    return "other ray workers"


def _wait_for_line(
    path: Path, line: str, process: subprocess.Popen[bytes], timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if line in path.read_text(errors="replace"):
            return
        if process.poll() is not None:
            raise RuntimeError(f"driftline up exited with {process.returncode}; see {path}")
        time.sleep(1)
    raise RuntimeError(f"driftline up not ready after {timeout_s:.0f}s; see {path}")


def _stop(process: subprocess.Popen[bytes]) -> float:
    started = time.monotonic()
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return time.monotonic() - started


def _result(
    idle: dict[str, float],
    peak: dict[str, float],
    *,
    cores: float,
    load: dict[str, Any],
    ready_s: float,
    stop_s: float,
) -> dict[str, Any]:
    kinds = sorted(set(idle) | set(peak), key=lambda k: -peak.get(k, 0.0))
    rows = [[k, round(idle.get(k, 0.0), 1), round(peak.get(k, 0.0), 1)] for k in kinds]
    total_peak = sum(peak.values())
    rows.append(["total", round(sum(idle.values()), 1), round(total_peak, 1)])
    return {
        "title": "The local stack of `driftline up` (resident memory and CPU)",
        "rss_mib_idle_total": round(sum(idle.values()), 1),
        "rss_mib_peak_total": round(total_peak, 1),
        "rss_limit_mib": LIMIT_MIB,
        "rss_within_limit": total_peak < LIMIT_MIB,
        "cpu_cores_under_load": round(cores, 3),
        "load": load,
        "ready_s": round(ready_s, 1),
        "stop_s": round(stop_s, 1),
        "tables": [
            {
                "title": "Resident memory by process kind (MiB)",
                "columns": ["process", "idle", f"peak under load (c{CONCURRENCY}, {LOAD_S:g} s)"],
                "rows": rows,
            },
            {
                "title": "Under load",
                "columns": ["figure", "value"],
                "rows": [
                    ["requests/s", round(load["rps"], 1)],
                    ["p50 ms", round(load["p50_ms"], 2)],
                    ["p99 ms", round(load["p99_ms"], 2)],
                    ["errors", load["errors"]],
                    ["CPU cores used by the stack", round(cores, 3)],
                    ["peak RSS total MiB", round(total_peak, 1)],
                    [f"within {LIMIT_MIB} MiB", total_peak < LIMIT_MIB],
                    ["ready after s (incl. training if none)", round(ready_s, 1)],
                    ["Ctrl-C to exit s", round(stop_s, 1)],
                ],
            },
        ],
        "notes": [
            "Every process `driftline up` started (Ray head, Serve replicas, the up process with "
            "its drift monitor, controller and stream client) sampled every 0.5 s; peak is the "
            "sample with the largest total.",
            "Load: V2 infer with one 45-feature FP64 row; every prediction is persisted to the "
            "embedded SQLite store while the stream replays bars every 2 s.",
        ],
    }


if __name__ == "__main__":
    main_for(__name__, run)
