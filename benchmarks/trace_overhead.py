"""What traces cost on the user's path: one client's p50 at the URL `driftline serve` prints,
with every request traced and exported over OTLP/HTTP to a local collector, against the same
version served without a collector, the two loaded alternately in the same run."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from benchmarks import synthetic
from benchmarks.loadgen import LoadResult, run_load
from benchmarks.otlp import OtlpCollector
from driftline.config import Settings
from driftline.raycluster import free_port

TARGET = 1.05  # the bound: tracing adds under 5% to the one-client p50


# Driftline's default (DRIFTLINE_TRACE_RATIO, 10% of requests) is the target; every request
# traced is reported beside it.
SAMPLERS: dict[str, dict[str, str]] = {
    "default_ratio": {},
    "every_request": {"OTEL_TRACES_SAMPLER": "always_on"},
}


def tracing_overhead(
    serve: Any,
    untraced: str,
    path: str,
    env: dict[str, str],
    home: Path,
    *,
    body: bytes,
    duration_s: float,
    rounds: int,
    key: str,
) -> dict[str, Any]:
    """c1 p50 traced (per sampler) against untraced at `path`; `serve(version, env, log)`
    starts `driftline serve` and yields the URL it printed, `untraced` is an untraced one's."""
    # Its own home: a second server sharing the first's would find its member sockets too.
    traced_home = home / "traced"
    settings = Settings(home=home)
    name = settings.registry.model_name
    source = synthetic.bundle_dir(settings, name, "1")
    shutil.copytree(source, synthetic.bundle_dir(Settings(home=traced_home), name, "1"))
    # The store is shared: `serve` finds its saved read key by name there and in its home.
    shutil.copy2(home / "serve.key", traced_home / "serve.key")
    found: dict[str, Any] = {}
    for label, sampler in SAMPLERS.items():
        with OtlpCollector() as collector:
            traced_env = {
                **env,
                **sampler,
                "DRIFTLINE_HOME": str(traced_home),
                "DRIFTLINE_SERVE_PORT": str(free_port()),
                "DRIFTLINE_RAY_DASHBOARD_PORT": str(free_port()),
                "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
            }
            with serve("1", traced_env, home / f"serve-traced-{label}.log") as traced:
                urls = {"untraced": untraced + path, "traced": traced + path}
                runs = _interleaved(urls, body, duration_s, rounds, key)
            # The server has stopped: its replicas flushed their spans on the way out.
            found[label] = _figures(runs, collector)
    default = found["default_ratio"]
    return {
        "what": "c1 one-row p50 at the printed URL, traced (OTLP/HTTP export to a local "
        "collector) vs untraced, interleaved",
        **found,
        "ratio": default["ratio"],
        "met": default["ratio"] < TARGET,
    }


def _interleaved(
    urls: dict[str, str], body: bytes, duration_s: float, rounds: int, key: str
) -> dict[str, list[LoadResult]]:
    runs: dict[str, list[LoadResult]] = {name: [] for name in urls}
    for url in urls.values():
        run_load(url, body, concurrency=1, duration_s=1.0, key=key)
    for _ in range(rounds):
        for name, url in urls.items():
            one = run_load(url, body, concurrency=1, duration_s=duration_s, key=key)
            if one.errors:
                raise RuntimeError(f"{name}: {one.errors} of {one.requests} failed")
            runs[name].append(one)
    return runs


def _figures(runs: dict[str, list[LoadResult]], collector: OtlpCollector) -> dict[str, Any]:
    p50 = {
        name: sorted(r.p50_ms for r in measured)[len(measured) // 2]
        for name, measured in runs.items()
    }
    p99 = {
        name: sorted(r.p99_ms for r in measured)[len(measured) // 2]
        for name, measured in runs.items()
    }
    return {
        "untraced_c1_p50_ms": round(p50["untraced"], 3),
        "traced_c1_p50_ms": round(p50["traced"], 3),
        "untraced_c1_p99_ms": round(p99["untraced"], 3),
        "traced_c1_p99_ms": round(p99["traced"], 3),
        "p50_runs_ms": {n: [round(r.p50_ms, 3) for r in m] for n, m in runs.items()},
        "traced_requests": sum(r.requests for r in runs["traced"]),
        "spans_received": dict(collector.span_names()),
        "services": sorted(collector.services()),
        "ratio": round(p50["traced"] / p50["untraced"], 3),
    }
