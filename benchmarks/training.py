"""Training benchmark: wall time of `driftline train --trials 2` on the default data, then each
member's in-process predict cost natively and through ONNX Runtime, 1 row and 1,000 rows.

The predict timings alternate blocks of calls of every (member, runtime, rows) case round by round
in one process, so machine noise hits all cases alike; figures are medians of all calls and
ratios within this one run. Within a block calls run back to back, as a busy replica's would.
"""

from __future__ import annotations

import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import main_for

TRIALS = 2
ROUNDS = 10
BLOCK = {1: 30, 1000: 4}  # calls per case per round; 1-row calls are cheap, so more of them
_TIMINGS = re.compile(r"^\[\s*[\d.]+s\] timings\s+(.*)$", re.MULTILINE)


def run() -> dict[str, Any]:
    """Train once, then time predictions of the version it registered."""
    with tempfile.TemporaryDirectory(prefix="dl-bench-training-") as scratch:
        home = Path(scratch) / "home"
        training = _train(home)
        latency = _predict_costs(home)
    rows = [
        [
            c["member"],
            c["rows"],
            _ms(c["native_s"]),
            _ms(c["onnx_s"]),
            f"{c['native_s'] / c['onnx_s']:.1f}x",
        ]
        for c in latency
    ]
    return {
        "title": "Training: driftline train wall time; member predict cost, native vs ONNX Runtime",
        "train": training,
        "predict": latency,
        "tables": [
            {
                "title": f"`driftline train --trials {TRIALS}` on the default S&P 500 data",
                "columns": ["figure", "value"],
                "rows": [
                    ["wall time, command start to exit (s)", round(training["wall_s"], 1)],
                    ["of which the Ray job, submit to finish (s)", training["job_s"]],
                    *([f"job stage `{k}` (s)", v] for k, v in training["stage_s"].items()),
                    ["registered version", training["version"]],
                ],
            },
            {
                "title": "In-process predict cost per call (median), same run, interleaved",
                "columns": ["member", "rows", "native", "ONNX Runtime", "speedup"],
                "rows": rows,
            },
        ],
        "environment": _environment(),
        "notes": [
            "ONNX Runtime sessions are single-threaded (intra/inter-op 1 thread); native "
            "members run with n_jobs/nthread 1, as serving runs them.",
            "The machine is shared and noisy: compare ratios within this run, not across runs.",
            f"{ROUNDS} rounds; per round and case one untimed warm-up call, then "
            f"{BLOCK[1]} timed calls (1 row) or {BLOCK[1000]} (1,000 rows).",
        ],
    }


def _train(home: Path) -> dict[str, Any]:
    from driftline.raycluster import free_port  # noqa: PLC0415

    env = {k: v for k, v in os.environ.items() if k not in {"RAY_ADDRESS", "MLFLOW_TRACKING_URI"}}
    env.update(
        {
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
            "DRIFTLINE_HOME": str(home),
            # A port of our own: other clusters may hold the default dashboard port.
            "DRIFTLINE_RAY_DASHBOARD_PORT": str(free_port()),
        }
    )
    command = [str(Path(sys.executable).with_name("driftline")), "train", "--trials", str(TRIALS)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - started
    sys.stdout.write(done.stdout)
    if done.returncode != 0:
        raise RuntimeError(f"driftline train failed ({done.returncode}): {done.stderr[-2000:]}")
    timings = _TIMINGS.search(done.stdout)
    stages = {
        stage: float(seconds.rstrip("s"))
        for stage, seconds in (
            part.split() for part in (timings.group(1) if timings else "").split(", ") if part
        )
    }
    job = re.search(r"succeeded in (\d+)s", done.stdout)
    version = re.search(r"done\s+version (\d+)", done.stdout)
    return {
        "command": " ".join(["driftline", *command[1:]]),
        "wall_s": wall,
        "job_s": int(job.group(1)) if job else None,
        "stage_s": stages,
        "version": version.group(1) if version else None,
    }


def _predict_costs(home: Path) -> list[dict[str, Any]]:
    from driftline.config import Settings  # noqa: PLC0415
    from driftline.contracts import CHALLENGER  # noqa: PLC0415
    from driftline.registry import Registry  # noqa: PLC0415
    from driftline.registry.predictor import load_member  # noqa: PLC0415

    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    settings = Settings(home=home)
    bundle = Registry(settings).load_bundle(CHALLENGER)
    features = bundle.reference.loc[:, bundle.spec.names].to_numpy(dtype=np.float64)
    batches = {1: features[-1:], 1000: np.resize(features, (1000, features.shape[1]))}
    runtimes = {
        m.name: {
            "native": load_member(m, prefer_onnx=False).predict,
            "onnx": load_member(m, prefer_onnx=True).predict,
        }
        for m in bundle.members
    }
    samples: dict[tuple[str, str, int], list[float]] = {}
    for _ in range(ROUNDS):
        for rows, batch in batches.items():
            for member, kinds in runtimes.items():
                for kind, predict in kinds.items():
                    predict(batch)  # the block's first call warms caches; not timed
                    for _ in range(BLOCK[rows]):
                        started = time.perf_counter()
                        predict(batch)
                        elapsed = time.perf_counter() - started
                        samples.setdefault((member, kind, rows), []).append(elapsed)
    return [
        {
            "member": member,
            "rows": rows,
            "native_s": statistics.median(samples[(member, "native", rows)]),
            "onnx_s": statistics.median(samples[(member, "onnx", rows)]),
        }
        for rows in batches
        for member in runtimes
    ]


def _ms(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} µs" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms"


def _environment() -> dict[str, Any]:
    versions = {}
    for package in ("ray", "mlflow", "scikit-learn", "xgboost", "onnxruntime", "skl2onnx"):
        versions[package] = metadata.version(package)
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "packages": versions,
    }


if __name__ == "__main__":
    main_for(__name__, run)
