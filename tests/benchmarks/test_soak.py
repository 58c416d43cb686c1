"""The soak benchmark's arithmetic: its sampling plan, per-minute rows and targets."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.loadgen import Timeline, due_times
from benchmarks.soak import FULL, QUICK, Plan, Point, per_minute, targets, window

PLAN = Plan(saturation_s=1.0, warmup_s=2.0, minute_s=4.0, minutes=2, sample_s=1.0)


def test_rows_are_counted_on_every_minute_edge_and_nowhere_else() -> None:
    counted = [tick for tick in range(PLAN.ticks) if PLAN.counts_rows(tick)]
    assert PLAN.ticks == 11  # 0 s to 10 s, both included
    assert counted == [2, 6, 10]  # the warm-up's end and each minute's end


@pytest.mark.parametrize("plan", [FULL, QUICK])
def test_the_issue_s_plans_fall_on_whole_ticks(plan: Plan) -> None:
    edges = [t for t in range(plan.ticks) if plan.counts_rows(t)]
    assert len(edges) == plan.minutes + 1
    assert edges[-1] == plan.ticks - 1


def _timeline(latency_s: np.ndarray, rate: float = 10.0) -> Timeline:
    due = due_times(rate, PLAN.soak_s)
    return Timeline(
        rate=rate,
        connections=4,
        started=0.0,
        due_s=due,
        wait_s=np.zeros(len(due)),
        lag_s=np.zeros(len(due)),
        latency_s=latency_s,
        status=np.full(len(due), 200, dtype=np.int16),
        cpu_share=0.01,
    )


def _points(pss: list[float]) -> list[Point]:
    """One sample a second from t=0.01 s; rows counted on the plan's edges (10 a second)."""
    return [
        Point(
            t=tick + 0.01,
            pss=value,
            rss=2 * value,
            cpu_s=0.5 * tick,
            postgres_cpu_s=0.25 * tick,
            host_cpu_s=1.0 * tick,
            backlog=float(tick),
            spooled=0.0,
            rows=10 * tick if PLAN.counts_rows(tick) else None,
            maintenance=(tick // 3, tick) if PLAN.counts_rows(tick) else None,
            kinds={"driftline serve": {"pss": value, "rss": 2 * value}},
        )
        for tick, value in enumerate(pss)
    ]


def test_each_minute_takes_its_own_requests_and_samples() -> None:
    latency = np.full(len(due_times(10.0, PLAN.soak_s)), 0.01)
    latency[60:] = 0.02  # the second minute (due from 6 s) is slower
    pss = [90, 95, 100, 100, 101, 100, 100, 103, 104, 104, 104]
    minutes = per_minute(_timeline(latency), _points(pss), PLAN)
    first, second = minutes
    assert [m["minute"] for m in minutes] == [1, 2]
    assert first["requests"] == second["requests"] == 40
    assert (first["p50_ms"], second["p50_ms"]) == (10.0, 20.0)
    assert first["pss_mib"] == 100  # median of the samples at 2..5 s: the warm-up is left out
    assert second["pss_mib"] == 103.5
    assert first["rss_mib"] == 200
    assert (first["rows_stored_at_end"], first["rows_added"]) == (60, 40)
    assert first["store_backlog_max"] == 5.0
    assert first["serve_cores"] == pytest.approx(0.5)
    assert first["postgres_cores"] == pytest.approx(0.25)
    assert first["other_cores"] == pytest.approx(0.25)  # the host's 1.0 less both
    assert (first["checkpoints"], first["autovacuums"]) == (2, 4)  # ticks 2 to 6
    assert (second["checkpoints"], second["autovacuums"]) == (1, 4)  # ticks 6 to 10
    warmup = window(_timeline(latency), _points(pss), 0.0, PLAN.warmup_s)
    assert warmup["pss_mib"] == 92.5


def test_targets_compare_the_last_minute_with_the_first() -> None:
    minutes = [
        {"p99_ms": 10.0, "pss_mib": 1000.0},
        {"p99_ms": 30.0, "pss_mib": 2000.0},
        {"p99_ms": 11.5, "pss_mib": 1049.0},
    ]
    stored = {"answered_requests": 100, "stored_records": 100}
    met = targets(minutes, 0, stored)
    assert met["p99_last_vs_first_minute"] == 1.15
    assert met["pss_growth_first_to_last_minute"] == 0.049
    assert all(met["met"].values())
    missed = targets(
        [*minutes, {"p99_ms": 12.5, "pss_mib": 1051.0}],
        3,
        {"answered_requests": 100, "stored_records": 99},
    )["met"]
    assert not any(missed.values())
