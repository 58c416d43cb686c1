"""The faults benchmark's measures: recovery after a fault, and SIGKILLed commands' Ray heads."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import synthetic
from benchmarks._timeline import Answer, Timeline, recovery_s
from benchmarks.faults import sigkilled
from driftline.config import Settings


def steady(rate: int, seconds: int, dips: dict[int, int]) -> list[Answer]:
    """`rate` answers a second, `dips[s]` instead in second s."""
    return [
        Answer(second + i / dips.get(second, rate), "200", None)
        for second in range(seconds)
        for i in range(dips.get(second, rate))
    ]


def test_recovery_runs_to_the_end_of_the_last_slow_second() -> None:
    # The kill at 6 s costs nothing at once; the replacement's start slows seconds 9 and 10:
    # the last window below 90% starts at 10.7 s (40% of second 10, 70% of second 11).
    timeline = Timeline(steady(100, 20, {9: 50, 10: 60}), {"kill": 6.0}, 20.0)
    assert recovery_s(timeline, "kill") == pytest.approx(5.7, abs=0.15)


def test_no_dip_is_an_immediate_recovery_and_a_run_ending_slow_is_none() -> None:
    assert recovery_s(Timeline(steady(100, 12, {}), {"kill": 6.0}, 12.0), "kill") == 0.0
    slow_end = Timeline(steady(100, 12, {10: 10, 11: 10}), {"kill": 6.0}, 12.0)
    assert recovery_s(slow_end, "kill") is None


@pytest.mark.slow
@pytest.mark.ray
def test_a_sigkilled_driftline_serve_leaves_no_ray_process(tmp_path: Path) -> None:
    source = Settings(home=tmp_path / "source")
    synthetic.make_bundle(source, "1", trees=(10, 10), depths=(3, 3), rows=300)
    found = sigkilled("driftline_serve", source)
    assert found["processes_before"] > 5, found  # the head, its GCS, raylet, Serve's actors
    assert found["survivors"] == 0, found
