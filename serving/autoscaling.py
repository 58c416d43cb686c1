"""Member autoscaling that sees socket traffic as well as Serve's own queue.

Calls that reach a member over its socket (`serving.channel`) never enter Serve's request
queue, so Serve's default policy, which counts ongoing requests, would not see them. Member
replicas therefore report how busy they are (the share of wall time spent predicting) as a
custom autoscaling metric, and `MemberPolicy` asks for enough replicas to bring that share
down to a target, or for what Serve's queue-length policy asks, whichever is more. Serve
applies min/max replicas, the up/down scaling delays and factors around it.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ray.serve.autoscaling_policy import replica_queue_length_autoscaling_policy
from ray.serve.config import AutoscalingContext

BUSY_METRIC = "busy"


class BusyClock:
    """The share of wall time spent in `measure` blocks since the previous reading."""

    def __init__(self, clock: Any = time.perf_counter) -> None:
        self._clock = clock
        self._since = clock()
        self._busy = 0.0
        # Socket calls run on their own threads, Serve calls on the replica's loop.
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        """Count `seconds` of work."""
        with self._lock:
            self._busy += seconds

    def read(self) -> float:
        """Busy share (0..1) since the last read; starts a new interval."""
        with self._lock:
            now = self._clock()
            elapsed, busy = now - self._since, self._busy
            self._since, self._busy = now, 0.0
        return min(1.0, busy / elapsed) if elapsed > 0 else 0.0


def replicas_for_busy(busy: list[float], target: float) -> float:
    """Replicas that would carry the summed busy share at `target` each."""
    return sum(busy) / target if busy else 0.0


class MemberPolicy:
    """Serve autoscaling policy for member deployments (`policy_kwargs`: `target_busy`)."""

    def __init__(self, target_busy: float = 0.7) -> None:
        self.target_busy = target_busy

    def __call__(self, ctx: AutoscalingContext) -> tuple[float, dict[str, Any]]:
        queued, state = replica_queue_length_autoscaling_policy(ctx)
        metrics = ctx.aggregated_metrics or {}
        busy = list((metrics.get(BUSY_METRIC) or {}).values())
        return max(float(queued), replicas_for_busy(busy, self.target_busy)), state
