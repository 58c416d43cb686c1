"""Progress lines: elapsed seconds, a stage column, the message."""

from __future__ import annotations

import io
from types import SimpleNamespace

from training.progress import Progress, TuneProgress, time_left


def test_lines_carry_elapsed_time_and_stage() -> None:
    stream = io.StringIO()
    ticks = iter([100.0, 112.34])
    Progress(stream, clock=lambda: next(ticks))("tune", "rf trial 1/2 fold 3/4")
    assert stream.getvalue() == "[   12.3s] tune      rf trial 1/2 fold 3/4\n"


def test_time_left_extrapolates_the_pace_so_far() -> None:
    assert time_left(30.0, 3, 12) == "~1m 30s"
    assert time_left(10.0, 5, 8) == "~6s"
    assert time_left(10.0, 0, 8) == ""
    assert time_left(10.0, 8, 8) == ""


def test_each_fold_line_says_how_long_tuning_has_left() -> None:
    stream = io.StringIO()
    now = [0.0]
    callback = TuneProgress(Progress(stream, clock=lambda: now[0]), trials=2, members=2)
    trial = SimpleNamespace(trial_id="a", config={"member": "rf", "rf": {}})
    result = {"fold": 1, "folds": 4, "rmse": 0.01, "fold_seconds": 2.0}
    now[0] = 4.0
    callback.on_trial_result(0, [], trial, result)
    # 1 of 2 trials x 2 members x 4 folds took 4 s: 15 folds more take about 60 s.
    assert stream.getvalue().endswith(
        "rf trial 1/2 fold 1/4 rmse 0.01000 (2.0s), tuning ~1m 00s left\n"
    )
