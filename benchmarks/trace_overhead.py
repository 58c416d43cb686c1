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


def tracing_overhead(
    serve: Any,
    untraced: str,
    env: dict[str, str],
    home: Path,
    body: bytes,
    *,
    duration_s: float,
    rounds: int,
    key: str,
) -> dict[str, Any]:
    """Median c1 p50 traced and untraced; `serve(version, env, log)` starts `driftline serve`
    and yields the URL it printed, `untraced` is an untraced one's."""
    # Its own home: a second server sharing the first's would find its member sockets too.
    traced_home = home / "traced"
    settings = Settings(home=home)
    name = settings.registry.model_name
    source = synthetic.bundle_dir(settings, name, "1")
    shutil.copytree(source, synthetic.bundle_dir(Settings(home=traced_home), name, "1"))
    with OtlpCollector() as collector:
        traced_env = {
            **env,
            "DRIFTLINE_HOME": str(traced_home),
            "DRIFTLINE_SERVE_PORT": str(free_port()),
            "DRIFTLINE_RAY_DASHBOARD_PORT": str(free_port()),
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        }
        with serve("1", traced_env, home / "serve-traced.log") as traced:
            urls = {"untraced": untraced, "traced": traced}
            runs: dict[str, list[LoadResult]] = {name: [] for name in urls}
            for url in urls.values():
                run_load(url, body, concurrency=1, duration_s=1.0, key=key)
            for _ in range(rounds):
                for name, url in urls.items():
                    one = run_load(url, body, concurrency=1, duration_s=duration_s, key=key)
                    if one.errors:
                        raise RuntimeError(f"{name}: {one.errors} of {one.requests} failed")
                    runs[name].append(one)
        # The server has stopped: its replicas flushed their spans on the way out.
        spans = dict(collector.span_names())
        services = sorted(collector.services())
    p50 = {
        name: sorted(r.p50_ms for r in measured)[len(measured) // 2]
        for name, measured in runs.items()
    }
    ratio = p50["traced"] / p50["untraced"]
    return {
        "what": "c1 one-row p50 at the printed URL, traced (OTLP/HTTP export) vs untraced",
        "untraced_c1_p50_ms": round(p50["untraced"], 3),
        "traced_c1_p50_ms": round(p50["traced"], 3),
        "p50_runs_ms": {n: [round(r.p50_ms, 3) for r in m] for n, m in runs.items()},
        "traced_requests": sum(r.requests for r in runs["traced"]),
        "spans_received": spans,
        "services": services,
        "ratio": round(ratio, 3),
        "met": ratio < TARGET,
    }
