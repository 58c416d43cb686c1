"""Readable progress lines from the training job: elapsed time, stage, then what happened."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from ray import tune


class Progress:
    """Writes `[  12.3s] stage     message` lines and flushes each, so log tails show them live."""

    def __init__(
        self,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        start: float | None = None,
    ) -> None:
        self._stream = stream or sys.stdout
        self._clock = clock
        self._start = clock() if start is None else start

    @property
    def elapsed(self) -> float:
        """Seconds since the job started."""
        return self._clock() - self._start

    def __call__(self, stage: str, message: str) -> None:
        """Emit one line."""
        self._stream.write(f"[{self.elapsed:7.1f}s] {stage:<9} {message}\n")
        self._stream.flush()


class TuneProgress(tune.Callback):
    """Reports each trial's folds and result through `Progress`, in place of Tune's tables."""

    def __init__(self, progress: Progress, trials: int, members: int = 1) -> None:
        self._progress = progress
        self._trials = trials
        self._members = members
        self._ordinal: dict[str, int] = {}
        self._counts: dict[str, int] = {}
        self._folds_done = 0
        self._started = progress.elapsed

    def _label(self, trial: Any) -> str:
        member = trial.config["member"]
        if trial.trial_id not in self._ordinal:
            self._counts[member] = self._counts.get(member, 0) + 1
            self._ordinal[trial.trial_id] = self._counts[member]
        return f"{member} trial {self._ordinal[trial.trial_id]}/{self._trials}"

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        """One line per validated fold, with the time tuning has left at the pace so far."""
        self._folds_done += 1
        total = self._trials * self._members * int(result["folds"])
        left = time_left(self._progress.elapsed - self._started, self._folds_done, total)
        self._progress(
            "tune",
            f"{self._label(trial)} fold {result['fold']}/{result['folds']} "
            f"rmse {result['rmse']:.5f} ({result['fold_seconds']:.1f}s)"
            + (f", tuning {left} left" if left else ""),
        )

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """The trial's pooled out-of-fold RMSE and its parameters."""
        rmse = (trial.last_result or {}).get("rmse", float("nan"))
        self._progress(
            "tune",
            f"{self._label(trial)} done: cv rmse {rmse:.5f} "
            f"{_short(trial.config[trial.config['member']])}",
        )

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        """Say which trial failed; the tuner raises the error itself."""
        self._progress("tune", f"{self._label(trial)} FAILED")


def time_left(elapsed_s: float, done: int, total: int) -> str:
    """`~1m 05s`: the rest of `total` steps at the pace of the `done` so far ('' when unknown)."""
    if done <= 0 or total <= done:
        return ""
    seconds = round(elapsed_s / done * (total - done))
    return f"~{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"~{seconds}s"


def _short(params: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )
