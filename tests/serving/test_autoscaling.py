"""Member autoscaling: the busy clock and the policy that adds socket load to Serve's queue."""

from __future__ import annotations

from typing import Any

import pytest
from ray.serve.config import AutoscalingConfig, AutoscalingContext

from serving.autoscaling import BUSY_METRIC, BusyClock, MemberPolicy, replicas_for_busy


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_busy_clock_reads_the_share_of_each_interval() -> None:
    clock = Clock()
    busy = BusyClock(clock)
    clock.now = 2.0
    busy.add(0.5)
    assert busy.read() == pytest.approx(0.25)
    clock.now = 3.0
    assert busy.read() == 0.0
    clock.now = 4.0
    busy.add(5.0)  # work measured across the boundary never reads above 1
    assert busy.read() == 1.0


def test_replicas_for_busy_share() -> None:
    assert replicas_for_busy([], 0.7) == 0.0
    assert replicas_for_busy([0.7], 0.7) == pytest.approx(1.0)
    assert replicas_for_busy([0.9, 0.9], 0.6) == pytest.approx(3.0)


def context(replicas: int, ongoing: float, busy: list[float]) -> AutoscalingContext:
    config = AutoscalingConfig(min_replicas=1, max_replicas=4, target_ongoing_requests=2)
    ids: list[Any] = [f"r{i}" for i in range(replicas)]
    return AutoscalingContext(
        deployment_id=None,  # type: ignore[arg-type]
        deployment_name="member_rf",
        app_name="blue",
        current_num_replicas=replicas,
        target_num_replicas=replicas,
        running_replicas=ids,
        total_num_requests=ongoing,
        total_queued_requests=0,
        aggregated_metrics={BUSY_METRIC: dict(zip(ids, busy, strict=True))},
        raw_metrics=None,
        capacity_adjusted_min_replicas=1,
        capacity_adjusted_max_replicas=4,
        policy_state={},
        last_scale_up_time=None,
        last_scale_down_time=None,
        current_time=0.0,
        config=config,
    )


def test_busy_replicas_ask_for_more_although_serve_sees_no_queue() -> None:
    desired, _ = MemberPolicy(target_busy=0.5)(context(2, ongoing=0, busy=[0.9, 0.9]))
    assert desired == pytest.approx(3.6)


def test_serves_queue_still_counts_when_it_asks_for_more() -> None:
    desired, _ = MemberPolicy(target_busy=0.5)(context(1, ongoing=6, busy=[0.1]))
    assert desired == pytest.approx(3.0)


def test_idle_members_may_scale_down() -> None:
    desired, _ = MemberPolicy()(context(2, ongoing=0, busy=[0.05, 0.0]))
    assert desired < 1
