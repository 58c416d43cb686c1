"""Trial CPUs sized from the cluster, and a clear refusal when training cannot fit."""

from __future__ import annotations

import pytest

from training.resources import ClusterCpus, SchedulingWatchdog, UnschedulableError, trial_cpus


def test_unset_trial_cpus_take_the_free_cpus_up_to_one() -> None:
    # `driftline up`: 2 CPUs, Serve holds 1.2 and the job's entrypoint 0.5.
    assert trial_cpus(None, ClusterCpus(total=2, free=0.3)) == 0.3
    assert trial_cpus(None, ClusterCpus(total=16, free=12)) == 1.0
    assert trial_cpus(None, ClusterCpus(total=2, free=0.339)) == 0.33


def test_a_configured_figure_is_kept_while_the_cluster_can_ever_hold_it() -> None:
    assert trial_cpus(1.0, ClusterCpus(total=2, free=0.3)) == 1.0


@pytest.mark.parametrize(
    ("configured", "cluster", "says"),
    [
        (None, ClusterCpus(total=2, free=0.01), "0.01 of 2.00 CPUs free"),
        (4.0, ClusterCpus(total=2, free=2), "asks for 4 CPUs but the cluster has only 2"),
    ],
)
def test_training_that_cannot_fit_is_refused_with_the_shortfall(
    configured: float | None, cluster: ClusterCpus, says: str
) -> None:
    with pytest.raises(UnschedulableError, match=says):
        trial_cpus(configured, cluster)


class _Trial:
    def __init__(self, status: str) -> None:
        self.status = status


def test_the_watchdog_fails_tuning_only_when_no_trial_ever_started() -> None:
    full = ClusterCpus(total=2, free=0.1)
    watchdog = SchedulingWatchdog(1.0, timeout_s=0, cluster=lambda: full)
    with pytest.raises(UnschedulableError, match=r"each asks for 1 CPUs .* 0.10 of 2.00"):
        watchdog.on_step_begin(0, [_Trial("PENDING"), _Trial("PENDING")])
    started = SchedulingWatchdog(1.0, timeout_s=0, cluster=lambda: full)
    started.on_step_begin(0, [_Trial("RUNNING"), _Trial("PENDING")])
    started.on_step_begin(1, [_Trial("PENDING")])  # later queueing is Tune's ordinary work
