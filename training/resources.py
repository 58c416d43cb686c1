"""CPUs for tuning trials and final fits, sized from what the connected Ray cluster has free.

A fixed request (one CPU a trial) never schedules beside a Serve application that reserves most
of a small head: Tune then waits silently on placement groups until the job's timeout.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ray
from ray import tune

# Below this a trial is all scheduling overhead; a cluster this full cannot train.
MIN_TRIAL_CPUS = 0.05
SCHEDULE_TIMEOUT_S = 60.0


class UnschedulableError(RuntimeError):
    """The cluster cannot give training the CPUs it needs."""


@dataclass(frozen=True)
class ClusterCpus:
    """The connected cluster's CPUs: all of them, and those no actor, task or job holds."""

    total: float
    free: float

    def describe(self) -> str:
        """`0.30 of 2.00 CPUs free`."""
        return f"{self.free:.2f} of {self.total:.2f} CPUs free"


def trial_cpus(configured: float | None, cluster: ClusterCpus) -> float:
    """CPUs per trial and per fit: the configured figure, else the free CPUs, at most one."""
    if configured is not None:
        if configured > cluster.total:
            raise UnschedulableError(
                f"each trial asks for {configured:g} CPUs but the cluster has only "
                f"{cluster.total:g} (DRIFTLINE_TRAIN_TRIAL_CPUS)"
            )
        return configured
    if cluster.free < MIN_TRIAL_CPUS:
        raise UnschedulableError(
            f"the cluster has {cluster.describe()}; training needs at least {MIN_TRIAL_CPUS} "
            "beside what serving holds"
        )
    return math.floor(min(1.0, cluster.free) * 100) / 100


def cluster_cpus() -> ClusterCpus:
    """The connected cluster's total and currently free CPUs."""
    # Ray's resource queries carry no type hints.
    total = ray.cluster_resources()  # type: ignore[no-untyped-call]
    free = ray.available_resources()  # type: ignore[no-untyped-call]
    return ClusterCpus(total=float(total.get("CPU", 0.0)), free=float(free.get("CPU", 0.0)))


class SchedulingWatchdog(tune.Callback):
    """Fails the experiment when no trial has started within `timeout_s`, naming the shortfall."""

    def __init__(
        self,
        cpus: float,
        timeout_s: float = SCHEDULE_TIMEOUT_S,
        cluster: Callable[[], ClusterCpus] = cluster_cpus,
    ) -> None:
        self._cpus = cpus
        self._cluster = cluster
        self._timeout_s = timeout_s
        self._since = time.monotonic()
        self._started = False

    def on_step_begin(self, iteration: int, trials: list[Any], **info: Any) -> None:
        """Raise once every trial has been pending for longer than the timeout."""
        if self._started:
            return
        if any(t.status != "PENDING" for t in trials):
            self._started = True
            return
        waited = time.monotonic() - self._since
        if trials and waited > self._timeout_s:
            raise UnschedulableError(
                f"no tuning trial could be scheduled in {waited:.0f}s: each asks for "
                f"{self._cpus:g} CPUs and the cluster has {self._cluster().describe()}"
            )
