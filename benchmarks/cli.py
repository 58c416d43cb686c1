"""CLI start-up: wall time of `driftline --help`, a subcommand's `--help` and `driftline status`
(on a fresh store, before any controller round), each run as a user runs it, in a new process.

Commands alternate round by round so the shared host's drift hits each alike; figures are the
medians of every run. Target (issue 16): `driftline --help` median at most 0.5 s.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import main_for

ROUNDS = 11
TARGET_S = 0.5
COMMANDS = {
    "driftline --help": ["--help"],
    "driftline serve --help": ["serve", "--help"],
    "driftline status": ["status"],
}


def run() -> dict[str, Any]:
    """Time each command ROUNDS times, interleaved."""
    executable = str(Path(sys.executable).with_name("driftline"))
    with tempfile.TemporaryDirectory(prefix="dl-bench-cli-") as home:
        env = {**os.environ, "DRIFTLINE_HOME": home}
        env.pop("DRIFTLINE_DATABASE_URL", None)  # a fresh SQLite store under the home
        _timed([executable, "status"], env)  # creates and migrates the store once
        times: dict[str, list[float]] = {name: [] for name in COMMANDS}
        for _ in range(ROUNDS):
            for name, args in COMMANDS.items():
                times[name].append(_timed([executable, *args], env))
    medians = {name: statistics.median(runs) for name, runs in times.items()}
    help_s = medians["driftline --help"]
    return {
        "title": "CLI start-up: wall time of a new `driftline` process",
        "rounds": ROUNDS,
        "median_s": {k: round(v, 3) for k, v in medians.items()},
        "runs_s": {k: [round(t, 3) for t in v] for k, v in times.items()},
        "targets": {
            "help_median_s": round(help_s, 3),
            "met": {"help_median_s": help_s <= TARGET_S},
        },
        "tables": [
            {
                "title": f"Median of {ROUNDS} runs each, interleaved",
                "columns": ["command", "median s", "min s", "max s"],
                "rows": [
                    [name, round(medians[name], 3), round(min(t), 3), round(max(t), 3)]
                    for name, t in times.items()
                ],
            }
        ],
        "notes": [f"target: `driftline --help` median at most {TARGET_S} s"],
    }


def _timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[1:])} exited {done.returncode}: {done.stderr[-2000:]}")
    return elapsed


if __name__ == "__main__":
    main_for(__name__, run)
