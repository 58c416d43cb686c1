"""The whole local stack of `driftline up` under load: resident memory and CPU of every process.

Starts `driftline up` with its own home and free ports on PostgreSQL (DRIFTLINE_DATABASE_URL,
in a schema of its own emptied each run; training once if that home holds no champion), drives
V2 `infer` at concurrency 16 at the URL the command printed while the stream, the drift monitor
and the controller run, samples every process the command started, then stops it with Ctrl-C.
DRIFTLINE_BENCH_QUICK=1 loads for 10 s instead of 30.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import psutil

from benchmarks._processes import Sample, cpu_seconds, sample, total
from benchmarks.harness import RESULTS, main_for
from benchmarks.loadgen import run_load
from benchmarks.serving import create_key
from driftline.raycluster import free_port
from serving.cli import printed_url

HOME = Path(__file__).resolve().parents[1] / ".driftline" / "bench-stack"
LOAD_S = 10.0 if os.environ.get("DRIFTLINE_BENCH_QUICK") == "1" else 30.0
SCHEMA = "bench_stack"
# The targets: the stack at c16 reaches 0.8x the printed URL's own figure
# (benchmarks/results/serving.json, `graph`), in at most 2 GiB PSS.
TARGET_RPS_RATIO = 0.8
TARGET_PEAK_PSS_MIB = 2048
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
        # A fresh store each run: the registry (and so the champion) stays, but no drift
        # history from earlier runs can make the controller retrain during the measurement.
        "DRIFTLINE_DATABASE_URL": fresh_schema(postgres_url()),
        "PYTHONUNBUFFERED": "1",
    }
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
        idle = sample(root)
        base = printed_url(log_path.read_text(errors="replace"))
        key = create_key(env, "bench-stack")
        auth = {"Authorization": f"Bearer {key}"}
        models = httpx.get(f"{base}/api/models", headers=auth, timeout=30)
        n_features = int(models.json()["active"]["n_features"])
        body = _body(n_features)
        peak, cores, load = _under_load(root, f"{base}/v2/models/market-ensemble/infer", body, key)
    finally:
        stop_s = _stop(up)
    result = _result(idle, peak, cores=cores, load=load.as_dict(), ready_s=ready_s, stop_s=stop_s)
    result["printed_url"] = base
    result["targets"] = targets(result)
    return result


def postgres_url() -> str:
    """The PostgreSQL server to log to: DRIFTLINE_DATABASE_URL, else the tests' admin URL."""
    url = os.environ.get("DRIFTLINE_DATABASE_URL") or os.environ.get("DRIFTLINE_TEST_DATABASE_URL")
    if not url or not url.startswith("postgresql"):
        raise RuntimeError("this benchmark runs on PostgreSQL: set DRIFTLINE_DATABASE_URL")
    return url


def fresh_schema(url: str, schema: str = SCHEMA) -> str:
    """`url` with its tables in `schema` (`bench_stack` unless given), emptied now."""
    import sqlalchemy as sa  # noqa: PLC0415

    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
    engine.dispose()
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}"


def targets(result: dict[str, Any]) -> dict[str, Any]:
    """The stack's ratios: c16 requests/s against the printed URL's, and peak PSS."""
    serving = RESULTS / "serving.json"
    graph = json.loads(serving.read_text()).get("graph", {}) if serving.is_file() else {}
    printed = graph.get("c16_rows1", {}).get("rps")
    ratio = result["load"]["rps"] / printed if printed else None
    peak = result["pss_mib_peak_total"]
    return {
        "rps_c16_vs_printed_url": round(ratio, 3) if ratio is not None else None,
        "peak_pss_mib": peak,
        "met": {
            "rps_c16_vs_printed_url": ratio is not None and ratio >= TARGET_RPS_RATIO,
            "peak_pss_mib": peak <= TARGET_PEAK_PSS_MIB,
        },
    }


def _body(n_features: int) -> bytes:
    rows = np.random.default_rng(0).standard_normal((1, n_features))
    tensor = {"name": "features", "shape": [1, n_features], "datatype": "FP64", "data": rows}
    return orjson.dumps({"inputs": [tensor]}, option=orjson.OPT_SERIALIZE_NUMPY)


def _under_load(root: psutil.Process, url: str, body: bytes, key: str) -> tuple[Sample, float, Any]:
    """Peak resident memory by process kind, CPU cores used, and the load's own figures."""
    peak: Sample = {}
    done = threading.Event()
    cpu_before = cpu_seconds(root)

    def watch() -> None:
        while not done.is_set():
            current = sample(root)
            if total(current, "pss") > total(peak, "pss"):
                peak.clear()
                peak.update(current)
            done.wait(0.5)

    sampler = threading.Thread(target=watch, daemon=True)
    started = time.monotonic()
    sampler.start()
    load = run_load(url, body, concurrency=CONCURRENCY, duration_s=LOAD_S, key=key)
    elapsed = time.monotonic() - started
    done.set()
    sampler.join()
    cores = (cpu_seconds(root) - cpu_before) / elapsed
    return peak, cores, load


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
    idle: Sample,
    peak: Sample,
    *,
    cores: float,
    load: dict[str, Any],
    ready_s: float,
    stop_s: float,
) -> dict[str, Any]:
    zero = {"rss": 0.0, "pss": 0.0}
    kinds = sorted(set(idle) | set(peak), key=lambda k: -peak.get(k, zero)["pss"])

    def cells(kind: str) -> list[Any]:
        a, b = idle.get(kind, zero), peak.get(kind, zero)
        return [
            kind,
            round(a["pss"], 1),
            round(b["pss"], 1),
            round(a["rss"], 1),
            round(b["rss"], 1),
        ]

    totals = {
        f"{w}_{k}": round(total(x, k), 1)
        for w, x in (("idle", idle), ("peak", peak))
        for k in ("pss", "rss")
    }
    rows = [cells(k) for k in kinds]
    rows.append(
        ["total", totals["idle_pss"], totals["peak_pss"], totals["idle_rss"], totals["peak_rss"]]
    )
    within = totals["peak_pss"] <= TARGET_PEAK_PSS_MIB
    return {
        "title": "The local stack of `driftline up` (memory and CPU)",
        "pss_mib_idle_total": totals["idle_pss"],
        "pss_mib_peak_total": totals["peak_pss"],
        "rss_mib_sum_peak_total": totals["peak_rss"],
        "limit_mib": TARGET_PEAK_PSS_MIB,
        "within_limit": within,
        "cpu_cores_under_load": round(cores, 3),
        "load": load,
        "ready_s": round(ready_s, 1),
        "stop_s": round(stop_s, 1),
        "tables": [
            {
                "title": "Memory by process kind (MiB)",
                "columns": [
                    "process",
                    "PSS idle",
                    f"PSS peak under load (c{CONCURRENCY}, {LOAD_S:g} s)",
                    "RSS idle",
                    "RSS peak",
                ],
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
                    ["errors by status", load.get("error_statuses") or "none"],
                    ["CPU cores used by the stack", round(cores, 3)],
                    ["peak PSS total MiB", totals["peak_pss"]],
                    ["peak RSS sum MiB (shared pages counted per process)", totals["peak_rss"]],
                    [f"peak PSS within the {TARGET_PEAK_PSS_MIB} MiB target", within],
                    ["ready after s (incl. training if none)", round(ready_s, 1)],
                    ["Ctrl-C to exit s", round(stop_s, 1)],
                ],
            },
        ],
        "notes": [
            "Every process `driftline up` started (Ray head, Serve replicas, the up process with "
            "its drift monitor, controller and stream client) sampled every 0.5 s; peak is the "
            "sample with the largest PSS total.",
            "PSS (proportional set size) charges a shared page to each of its N processes 1/N; "
            "the RSS sum counts it N times and overstates the stack (Ray forks its dashboard "
            "modules and workers from common parents).",
            "Load: V2 infer with one 45-feature FP64 row; every prediction is persisted to "
            "PostgreSQL while the stream replays bars every 2 s.",
        ],
    }


if __name__ == "__main__":
    main_for(__name__, run)
