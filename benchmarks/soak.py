"""Soak: `driftline serve` held at 80% of its saturation throughput, minute by minute.

Starts `driftline serve` as a user does, logging every prediction to PostgreSQL
(DRIFTLINE_DATABASE_URL, else DRIFTLINE_TEST_DATABASE_URL; in a schema of its own, emptied before
and after), and loads the URL it printed: first closed-loop at concurrency 16 to measure the
saturation throughput, then open-loop at 80% of it for a warm-up and 10 minutes. Each minute
records requests/s, p50/p99 (from when each request was due), errors by status, PSS and RSS of
every process the command started, the prediction writer's backlog (its `/metrics`) and the rows
stored. DRIFTLINE_BENCH_QUICK=1 (or `--quick`) runs three 20-second "minutes" and writes to
`$TMPDIR/driftline-bench-quick/` instead of benchmarks/results/.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from statistics import median
from typing import Any

import httpx
import numpy as np
import psutil
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from benchmarks import synthetic
from benchmarks._processes import (
    Sample,
    cpu_seconds,
    host_busy_seconds,
    kind_of,
    postgres_cpu_seconds,
    sample,
    total,
)
from benchmarks.harness import main_for, write
from benchmarks.loadgen import LoadResult, Timeline, open_loop, run_load
from benchmarks.serving import INFER, body, create_key, driftline_serve, logged, user_env
from benchmarks.stack import fresh_schema, postgres_url
from driftline.config import Settings

SCHEMA = "bench_soak"
QUICK_RESULTS = Path(tempfile.gettempdir()) / "driftline-bench-quick"
LOAD_SHARE = 0.8  # of the saturation throughput, as the issue sets
SATURATION_CONCURRENCY = 16
# Open-loop connections: enough that a stall queues requests in the generator (where their
# latency keeps counting from when they were due) rather than capping the rate early.
CONNECTIONS = 64
# The targets: no failed request, last-minute p99 within 1.2x the first minute's,
# resident memory (PSS of every process) growing at most 5% from the first minute to the last.
P99_RATIO_MAX = 1.2
PSS_GROWTH_MAX = 0.05
BACKLOG_METRICS = ("driftline_store_backlog", "driftline_store_spooled")


@dataclass(frozen=True)
class Plan:
    """How long each phase runs; every duration is a whole number of sampling ticks."""

    saturation_s: float
    warmup_s: float
    minute_s: float
    minutes: int
    sample_s: float

    @property
    def soak_s(self) -> float:
        """The open-loop run: warm-up and every minute."""
        return self.warmup_s + self.minutes * self.minute_s

    @property
    def ticks(self) -> int:
        """Samples from the first due request to the end of the last minute, both included."""
        return round(self.soak_s / self.sample_s) + 1

    def counts_rows(self, tick: int) -> bool:
        """Whether sample `tick` falls on a minute's edge (the warm-up's end included)."""
        warmup, minute = round(self.warmup_s / self.sample_s), round(self.minute_s / self.sample_s)
        return tick >= warmup and (tick - warmup) % minute == 0


FULL = Plan(saturation_s=25.0, warmup_s=60.0, minute_s=60.0, minutes=10, sample_s=5.0)
QUICK = Plan(saturation_s=10.0, warmup_s=10.0, minute_s=20.0, minutes=3, sample_s=2.0)


@dataclass(frozen=True)
class Point:
    """One sample of the serving tree, `t` seconds after the open-loop run's first due request."""

    t: float
    pss: float
    rss: float
    cpu_s: float
    postgres_cpu_s: float
    host_cpu_s: float  # every core of the host, busy
    backlog: float | None  # the writer's buffered records, summed over ingress replicas
    spooled: float | None  # its records spilled to the local spool file
    rows: int | None  # predictions stored, counted on minute edges only (a full count is slow)
    # PostgreSQL's checkpoints and the prediction partitions' autovacuums and autoanalyzes so
    # far, read on minute edges with the row count: the database's own work shows up here.
    maintenance: tuple[int, int] | None
    kinds: Sample


def run(quick: bool | None = None) -> dict[str, Any]:
    """Serve, saturate, soak, and report the figures with `targets` and `met`."""
    if quick is None:
        quick = os.environ.get("DRIFTLINE_BENCH_QUICK") == "1"
    plan = QUICK if quick else FULL
    home = Path(tempfile.mkdtemp(prefix="dl-bench-soak-"))
    settings = Settings(home=home)
    bundle = synthetic.make_bundle(settings, "1")  # the serving benchmark's model
    payload = body(np.random.default_rng(1).normal(size=(1, len(bundle.spec.features))))
    server = postgres_url()
    store_url = fresh_schema(server, SCHEMA)
    from driftline.store import Store  # noqa: PLC0415

    store = Store(store_url)
    store.upgrade()
    env = user_env(home, store_url)
    try:
        with driftline_serve("1", env, home / "serve.log") as printed:
            key = create_key(env, "bench-soak")
            result = _measure(printed, key, payload, store, plan)
            result["logged"] = logged(result.pop("answered"), store, store_url, 0)
    finally:
        store.close()
        fresh_schema(server, SCHEMA)  # the soak's rows (about 700,000) are not kept
    result["printed_url"] = printed
    result["title"] = "Soak: the printed URL at 80% of saturation" + (" (quick)" if quick else "")
    result["targets"] = targets(result["minutes"], result["errors"], result["logged"])
    result["tables"] = tables(result)
    result["notes"] = notes(plan)
    return result


def _measure(base: str, key: str, payload: bytes, store: Any, plan: Plan) -> dict[str, Any]:
    """Saturation closed-loop, then the open-loop soak sampled on every tick."""
    url = base + INFER
    warm = run_load(url, payload, concurrency=4, duration_s=3.0, key=key)
    saturation = run_load(
        url, payload, concurrency=SATURATION_CONCURRENCY, duration_s=plan.saturation_s, key=key
    )
    rate = LOAD_SHARE * saturation.rps
    root = _serve_process()
    # The generator runs in its own process: sampling here must not delay its sends.
    start_at = time.perf_counter() + 10.0
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        future = pool.submit(
            open_loop,
            url,
            payload,
            rate=rate,
            duration_s=plan.soak_s,
            key=key,
            connections=CONNECTIONS,
            start_at=start_at,
        )
        points = watch(root, base, key, store=store, start_at=start_at, plan=plan)
        timeline: Timeline = future.result()
    if timeline.started != start_at:
        raise RuntimeError("the load generator started late: samples and load do not align")
    soak = timeline.between(0.0, plan.soak_s)
    return {
        "machine": {"cpus": os.cpu_count(), "loadavg_end": os.getloadavg()},
        "saturation": saturation.as_dict(),
        "rate": round(rate, 1),
        "warmup": window(timeline, points, 0.0, plan.warmup_s),
        "minutes": per_minute(timeline, points, plan),
        "soak": soak.as_dict(),
        "errors": warm.errors + saturation.errors + soak.errors,
        "answered": _answered(warm) + _answered(saturation) + _answered(soak),
        "memory_by_kind": _kinds_table(points, plan),
    }


def _answered(load: LoadResult) -> int:
    """Requests answered 2xx (a closed-loop run leaves some answered but uncounted)."""
    return load.requests - load.errors


def _serve_process() -> psutil.Process:
    """The `driftline serve` this process started (`driftline_serve` yields only its URL)."""
    for child in psutil.Process().children():
        if kind_of(child.cmdline()) == "driftline serve":
            return child
    raise RuntimeError("no `driftline serve` child process")


def watch(
    root: psutil.Process, base: str, key: str, *, store: Any, start_at: float, plan: Plan
) -> list[Point]:
    """A sample of the serving tree every `plan.sample_s` from `start_at` to the soak's end."""
    points = []
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as client:
        for tick in range(plan.ticks):
            time.sleep(max(0.0, start_at + tick * plan.sample_s - time.perf_counter()))
            memory = sample(root)
            backlog, spooled = _backlog(client)
            edge = plan.counts_rows(tick)
            rows = store.predictions.count_predictions() if edge else None
            points.append(
                Point(
                    t=time.perf_counter() - start_at,
                    pss=total(memory, "pss"),
                    rss=total(memory, "rss"),
                    cpu_s=cpu_seconds(root),
                    postgres_cpu_s=postgres_cpu_seconds(),
                    host_cpu_s=host_busy_seconds(),
                    backlog=backlog,
                    spooled=spooled,
                    rows=rows,
                    maintenance=maintenance(store) if edge else None,
                    kinds=memory,
                )
            )
    return points


def maintenance(store: Any) -> tuple[int, int]:
    """PostgreSQL's checkpoints so far, and autovacuums plus autoanalyzes of predictions."""
    with store.engine.connect() as conn:
        checkpoints = conn.execute(
            sa.text("SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter")
        ).scalar_one()
        autovacuums = conn.execute(
            sa.text(
                "SELECT coalesce(sum(autovacuum_count + autoanalyze_count), 0) "
                "FROM pg_stat_user_tables WHERE relname LIKE 'predictions%'"
            )
        ).scalar_one()
    return int(checkpoints), int(autovacuums)


def _backlog(client: httpx.Client) -> tuple[float | None, float | None]:
    """The writer's buffered and spooled records from `/metrics`; None for one not exposed."""
    try:
        response = client.get("/metrics", timeout=10)
        response.raise_for_status()
    except httpx.HTTPError:
        return None, None
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        if family.name in BACKLOG_METRICS:
            found[family.name] = sum(s.value for s in family.samples)
    return found.get(BACKLOG_METRICS[0]), found.get(BACKLOG_METRICS[1])


def window(timeline: Timeline, points: list[Point], start_s: float, end_s: float) -> dict[str, Any]:
    """The load and the samples of [start_s, end_s): one row of the per-minute table."""
    load = timeline.between(start_s, end_s)
    inside = [p for p in points if start_s <= p.t < end_s]
    queued = [p.backlog + (p.spooled or 0) for p in inside if p.backlog is not None]
    cores = _cores(inside, lambda p: p.cpu_s)
    postgres = _cores(inside, lambda p: p.postgres_cpu_s)
    host = _cores(inside, lambda p: p.host_cpu_s)
    events = _maintenance_between(points, start_s, end_s)
    return {
        "target_rps": round(timeline.rate, 1),
        "rps": round(load.rps, 1),
        "requests": load.requests,
        "p50_ms": round(load.p50_ms, 2),
        "p99_ms": round(load.p99_ms, 2),
        "send_lag_p99_ms": round(load.send_lag_p99_ms or 0.0, 2),
        "connection_wait_p99_ms": round(load.connection_wait_p99_ms or 0.0, 2),
        "errors": load.errors,
        "error_statuses": load.error_statuses,
        "pss_mib": round(median(p.pss for p in inside), 1) if inside else None,
        "pss_mib_max": round(max(p.pss for p in inside), 1) if inside else None,
        "rss_mib": round(median(p.rss for p in inside), 1) if inside else None,
        "store_backlog_max": max(queued) if queued else None,
        "store_spooled_max": max((p.spooled or 0 for p in inside), default=None),
        "rows_stored_at_end": _rows_from(points, end_s),
        "rows_added": _rows_added(points, start_s, end_s),
        "serve_cores": round(cores, 3) if cores is not None else None,
        "postgres_cores": round(postgres, 3) if postgres is not None else None,
        # The host's busy cores that are neither the serving tree nor PostgreSQL: the load
        # generator (its share is in the saturation row) and whatever else shares the machine.
        "other_cores": (
            round(host - cores - postgres, 3)
            if host is not None and cores is not None and postgres is not None
            else None
        ),
        "checkpoints": events[0] if events else None,
        "autovacuums": events[1] if events else None,
    }


def _cores(inside: list[Point], seconds: Callable[[Point], float]) -> float | None:
    """Cores busy on average over the samples, from a cumulative CPU-seconds reading."""
    if len(inside) < 2:
        return None
    return (seconds(inside[-1]) - seconds(inside[0])) / (inside[-1].t - inside[0].t)


def _maintenance_between(
    points: list[Point], start_s: float, end_s: float
) -> tuple[int, int] | None:
    before = next((p.maintenance for p in points if p.t >= start_s and p.maintenance), None)
    after = next((p.maintenance for p in points if p.t >= end_s and p.maintenance), None)
    if before is None or after is None:
        return None
    return after[0] - before[0], after[1] - before[1]


def per_minute(timeline: Timeline, points: list[Point], plan: Plan) -> list[dict[str, Any]]:
    """One `window` a minute after the warm-up, numbered from 1."""
    return [
        {"minute": m + 1, **window(timeline, points, start, start + plan.minute_s)}
        for m in range(plan.minutes)
        for start in [plan.warmup_s + m * plan.minute_s]
    ]


def _rows_from(points: list[Point], t: float) -> int | None:
    """The first row count taken at or after `t` (counts are taken on minute edges)."""
    return next((p.rows for p in points if p.t >= t and p.rows is not None), None)


def _rows_added(points: list[Point], start_s: float, end_s: float) -> int | None:
    before, after = _rows_from(points, start_s), _rows_from(points, end_s)
    return after - before if before is not None and after is not None else None


def targets(minutes: list[dict[str, Any]], errors: int, stored: dict[str, Any]) -> dict[str, Any]:
    """The issue's figures from the per-minute rows, and whether each is met."""
    first, last = minutes[0], minutes[-1]
    p99_ratio = last["p99_ms"] / first["p99_ms"]
    growth = last["pss_mib"] / first["pss_mib"] - 1
    return {
        "errors": errors,
        "p99_last_vs_first_minute": round(p99_ratio, 3),
        "pss_growth_first_to_last_minute": round(growth, 4),
        "answered": stored["answered_requests"],
        "stored": stored["stored_records"],
        "met": {
            "zero_errors": errors == 0,
            "p99_last_within_1.2x_first": p99_ratio <= P99_RATIO_MAX,
            "pss_growth_within_5pct": growth <= PSS_GROWTH_MAX,
            "every_answered_prediction_stored": (
                stored["stored_records"] >= stored["answered_requests"]
            ),
        },
    }


def _kinds_table(points: list[Point], plan: Plan) -> list[list[Any]]:
    """PSS and RSS by kind of process at the first and the last minute's median sample."""
    first = _median_point(points, plan.warmup_s, plan.warmup_s + plan.minute_s)
    last = _median_point(points, plan.soak_s - plan.minute_s, plan.soak_s)
    zero = {"pss": 0.0, "rss": 0.0}
    kinds = sorted(set(first) | set(last), key=lambda k: -last.get(k, zero)["pss"])
    rows = [
        [k, *(round(s.get(k, zero)[m], 1) for m in ("pss", "rss") for s in (first, last))]
        for k in kinds
    ]
    return [
        *rows,
        ["total", *(round(total(s, m), 1) for m in ("pss", "rss") for s in (first, last))],
    ]


def _median_point(points: list[Point], start_s: float, end_s: float) -> Sample:
    inside = sorted((p for p in points if start_s <= p.t < end_s), key=lambda p: p.pss)
    return inside[len(inside) // 2].kinds if inside else {}


MINUTE_COLUMNS = (
    "minute",
    "req/s",
    "p50 ms",
    "p99 ms",
    "send lag p99 ms",
    "of it no free connection, p99 ms",
    "errors",
    "PSS MiB (median)",
    "RSS MiB (median)",
    "store backlog max",
    "rows stored",
    "serve cores",
    "PostgreSQL cores",
    "other cores",
    "checkpoints",
    "autovacuums",
)


def tables(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Targets, the per-minute record, memory by process kind and the saturation run."""
    t = result["targets"]
    rows = [["warm-up", *_minute_cells(result["warmup"])]]
    rows += [[m["minute"], *_minute_cells(m)] for m in result["minutes"]]
    return [
        {
            "title": "Targets",
            "columns": ["target", "measured", "met"],
            "rows": [
                ["zero errors", t["errors"], t["met"]["zero_errors"]],
                [
                    "p99 last minute / first minute <= 1.2",
                    t["p99_last_vs_first_minute"],
                    t["met"]["p99_last_within_1.2x_first"],
                ],
                [
                    "PSS growth first to last minute <= 5%",
                    f"{t['pss_growth_first_to_last_minute']:.2%}",
                    t["met"]["pss_growth_within_5pct"],
                ],
                [
                    "every answered prediction stored",
                    f"{t['stored']} stored / {t['answered']} answered",
                    t["met"]["every_answered_prediction_stored"],
                ],
            ],
        },
        {
            "title": f"Per minute, open-loop at {result['rate']} req/s",
            "columns": list(MINUTE_COLUMNS),
            "rows": rows,
        },
        {
            "title": "Memory by process kind (MiB, the first and last minute's median sample)",
            "columns": ["process", "PSS first", "PSS last", "RSS first", "RSS last"],
            "rows": result["memory_by_kind"],
        },
        {
            "title": "Whole runs: saturation (closed-loop) and soak (open-loop, warm-up included)",
            "columns": [
                "run",
                "generator",
                "connections",
                "s",
                "req/s",
                "p50 ms",
                "p99 ms",
                "errors",
                "generator CPU (machine share)",
            ],
            "rows": [_run_cells(name, result[name]) for name in ("saturation", "soak")],
        },
    ]


def _run_cells(name: str, load: dict[str, Any]) -> list[Any]:
    return [
        name,
        load["generator"],
        load["concurrency"],
        load["duration_s"],
        round(load["rps"], 1),
        round(load["p50_ms"], 2),
        round(load["p99_ms"], 2),
        f"{load['errors']} {load['error_statuses']}" if load["errors"] else 0,
        f"{load['loadgen_cpu_share']:.1%}",
    ]


def _minute_cells(m: dict[str, Any]) -> list[Any]:
    errors = f"{m['errors']} {m['error_statuses']}" if m["errors"] else 0
    return [
        m["rps"],
        m["p50_ms"],
        m["p99_ms"],
        m["send_lag_p99_ms"],
        m["connection_wait_p99_ms"],
        errors,
        m["pss_mib"],
        m["rss_mib"],
        m["store_backlog_max"],
        m["rows_stored_at_end"],
        m["serve_cores"],
        m["postgres_cores"],
        m["other_cores"],
        m["checkpoints"],
        m["autovacuums"],
    ]


def notes(plan: Plan) -> list[str]:
    """What the figures mean and how they were taken."""
    return [
        f"Saturation: closed-loop at concurrency {SATURATION_CONCURRENCY} for "
        f"{plan.saturation_s:g} s (wrk when installed, else the asyncio client) after a 3 s "
        f"warm-up at concurrency 4; the soak then runs open-loop (the asyncio generator, in a "
        f"process of its own, up to {CONNECTIONS} connections) at {LOAD_SHARE:.0%} of it.",
        "Latency runs from when each request was due, not when it was sent: a stall delays "
        "every request due during it (no coordinated omission). `send lag` is how late the "
        "generator sent them; `no free connection` is the part of it spent with every "
        "connection awaiting an answer (the server behind), the rest the generator's own delay.",
        f"Warm-up: the first {plan.warmup_s:g} s of the open-loop run are not a minute. The "
        "change from 16 closed-loop connections to the soak's rate and connections changes "
        "batch sizes, the writer's buffers and the allocators' pools; the baseline for p99 and "
        "memory is the first minute after they settle. The warm-up's own row stays in the "
        "table, so growth during it is visible.",
        f"Memory: PSS and RSS of every process `driftline serve` started (the command, its Ray "
        f"head and every Serve replica), sampled every {plan.sample_s:g} s; a minute's figure is "
        "the median of its samples. PSS charges a page shared by N processes 1/N to each.",
        "CPU: `serve cores` is the serving tree, `PostgreSQL cores` the host's postgres "
        "processes, `other cores` the rest of the host's busy time (the load generator, whose "
        "share is in the saturation row, and anything else on the shared machine). "
        "`checkpoints` and `autovacuums` count PostgreSQL's checkpoints and the prediction "
        "partitions' autovacuum and autoanalyze runs in the minute (pg_stat_bgwriter, "
        "pg_stat_user_tables).",
        "Store backlog: the prediction writer's buffered plus spooled records "
        f"({' + '.join(BACKLOG_METRICS)}) read from the ingress's `/metrics`; rows stored "
        "counted at each minute's end. Every prediction is logged to PostgreSQL.",
    ]


def main() -> None:
    """`python -m benchmarks.soak [--quick]`; quick results go to QUICK_RESULTS."""
    quick = "--quick" in sys.argv or os.environ.get("DRIFTLINE_BENCH_QUICK") == "1"
    if not quick:
        main_for("benchmarks.soak", run)
        return
    json_path, md_path = write("soak", run(quick=True), QUICK_RESULTS)
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
