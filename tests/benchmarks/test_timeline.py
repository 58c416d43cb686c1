"""An open-loop run read as a fault timeline: a stall after a fault shows as its recovery."""

from __future__ import annotations

import numpy as np

from benchmarks._timeline import NO_ANSWER, from_open_loop, recovery_s
from benchmarks.loadgen import CONNECTION_FAILED, Timeline


def test_a_stall_after_the_fault_is_its_recovery_and_failures_keep_their_status() -> None:
    rate, seconds = 100.0, 20
    due = np.arange(int(rate * seconds)) / rate
    latency = np.full(len(due), 0.002)
    # Requests due in [8, 10) wait until 10.5: nothing is answered between 8 and 10.5.
    stalled = (due >= 8) & (due < 10)
    latency[stalled] = 10.5 - due[stalled]
    status = np.full(len(due), 200, dtype=np.int16)
    status[[5, 6]] = (503, CONNECTION_FAILED)
    run = Timeline(rate, 16, 0.0, due, np.zeros(len(due)), np.zeros(len(due)), latency, status, 0.0)
    timeline = from_open_loop(run, {"kill": 6.0})
    assert timeline.errors() == {"503": 1, NO_ANSWER: 1}
    # Answers stop at 8 and resume at 10.5: the last one-second window short of 90% of the
    # rate before the fault is [9.5, 10.5), which ends 4.5 s after it.
    assert recovery_s(timeline, "kill") == 4.5
