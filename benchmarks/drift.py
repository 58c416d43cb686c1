"""Drift detection cost: each method per window, the monitor per run, its share of serving CPU.

Windows are 250 rows of 45 features against a 1,000-row reference (a synthetic stationary
process with daily-indicator persistence; cost does not depend on the values). Figures are
medians of repeated runs inside one process, so they compare with each other; CPU is shared
and noisy on the 2-core machine, so absolute values move between runs.

Run standalone: `python -m benchmarks.drift` (prints JSON, writes benchmarks/results/drift.json).
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats
from scipy.signal import lfilter

from driftline.config import Settings
from driftline.drift import stats
from driftline.drift.baselines import VersionData
from driftline.drift.calibration import calibrate
from driftline.drift.concept import ConceptDrift
from driftline.drift.detectors import FeatureDrift, PredictionDrift
from driftline.drift.ks import alibi_ks_class
from driftline.drift.performance import PerformanceDrift, outcome_frame
from driftline.drift.service import build_monitor
from driftline.drift.window import Baseline, Window
from driftline.store import PredictionRecord, Store, utcnow
from driftline.store.drift_records import Outcome

FEATURES = 45
REFERENCE_ROWS = 1000
WINDOW = 250
REPEATS = 15
RESULTS = Path(__file__).with_name("results")
# The stack benchmark measures the CPU the served stack burns under load.
SERVING_RESULTS = RESULTS / "stack.json"


def run(repeats: int = REPEATS) -> dict[str, Any]:
    """Every figure of this benchmark as one JSON-ready dict."""
    data = _process(REFERENCE_ROWS + WINDOW, seed=1)
    names = [f"f{j:02d}" for j in range(FEATURES)]
    reference = pd.DataFrame(data[:REFERENCE_ROWS], columns=names)
    reference["prediction"] = 0.001 * reference["f00"]
    reference["target"] = reference["prediction"] + np.random.default_rng(2).normal(
        0, 0.01, REFERENCE_ROWS
    )
    current = pd.DataFrame(data[REFERENCE_ROWS:], columns=names)
    calibrate_s = _median(lambda: calibrate(reference, WINDOW), max(3, repeats // 5))
    null = calibrate(reference, WINDOW)
    baseline = Baseline(reference=reference, null=null)
    window = Window(
        features=current,
        predictions=0.001 * current["f00"].to_numpy(),
        outcomes=outcome_frame(
            0.001 * current["f00"].to_numpy(),
            0.001 * current["f00"].to_numpy() + np.random.default_rng(3).normal(0, 0.01, WINDOW),
        ),
    )
    ref_x = reference[names].to_numpy()
    cur_x = current.to_numpy()
    alibi = alibi_ks_class()
    per_window: dict[str, float | None] = {
        "ks_scipy_fdr": _median(lambda: _scipy_ks(ref_x, cur_x), repeats),
        "ks_alibi_fdr": (
            _median(lambda: alibi(ref_x, p_val=0.05, correction="fdr").predict(cur_x), repeats)
            if alibi is not None
            else None
        ),
        "ks_calibration_step": _median(lambda: _calibrated(null, cur_x), repeats),
        "psi_frozen_bins": _median(lambda: _binned(null, names, cur_x, stats.psi), repeats),
        "js_frozen_bins": _median(
            lambda: _binned(null, names, cur_x, stats.js_divergence), repeats
        ),
        "feature_detector_scipy": _median(
            lambda: FeatureDrift(prefer_alibi=False).detect(window, baseline), repeats
        ),
        "feature_detector_alibi": (
            _median(lambda: FeatureDrift(prefer_alibi=True).detect(window, baseline), repeats)
            if alibi is not None
            else None
        ),
        "prediction_detector": _median(
            lambda: PredictionDrift(prefer_alibi=False).detect(window, baseline), repeats
        ),
        "performance_detector": _median(
            lambda: PerformanceDrift().detect(window, baseline), repeats
        ),
        "concept_detector_adwin": _median(lambda: ConceptDrift().detect(window, baseline), repeats),
    }
    monitor = _monitor_run(reference, cur_x, max(3, repeats // 3))
    settings = Settings()
    duty = monitor["cpu_s_per_run"] / settings.drift.interval_s
    return {
        "title": "Drift detectors: cost per window, and the monitor's share of the stack's CPU",
        "shape": {"features": FEATURES, "window_rows": WINDOW, "reference_rows": REFERENCE_ROWS},
        "seconds_per_window": per_window,
        "calibrate_once_per_version_s": calibrate_s,
        "monitor": {
            **monitor,
            "interval_s": settings.drift.interval_s,
            "cores_used_at_interval": duty,
            "share_of_serving_cpu": _share_of_serving(duty),
        },
    }


def _share_of_serving(monitor_cores: float) -> dict[str, Any]:
    # Until the stack benchmark has run, the share cannot be stated and the result says so.
    if not SERVING_RESULTS.is_file():
        return {"value": None, "pending": f"needs {SERVING_RESULTS.name} from the stack benchmark"}
    serving = json.loads(SERVING_RESULTS.read_text())
    cores = serving.get("cpu_cores_under_load")
    if not isinstance(cores, int | float) or cores <= 0:
        return {"value": None, "pending": "the stack's results carry no cpu_cores_under_load"}
    return {"value": monitor_cores / cores, "serving_cores_under_load": cores}


def _monitor_run(
    reference: pd.DataFrame, rows: np.ndarray[Any, Any], repeats: int
) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="dl-bench-drift-") as home:
        settings = Settings(
            home=Path(home), drift={"window": WINDOW}, registry={"model_name": "bench"}
        )
        store = Store.from_settings(settings)
        store.upgrade()
        start = datetime(2010, 1, 4, tzinfo=UTC)
        store.predictions.record_predictions(
            [
                PredictionRecord(
                    request_id=f"r{i}",
                    model_name="bench",
                    model_version="1",
                    endpoint="stream",
                    prediction=[0.001 * float(row[0])],
                    member_outputs={"rf": [0.0], "xgb": [0.0]},
                    latency_ms=1.0,
                    features=row[None, :],
                    symbol="SPX",
                    as_of=start + timedelta(days=i),
                    created_at=utcnow(),
                )
                for i, row in enumerate(rows)
            ]
        )
        rng = np.random.default_rng(4)
        store.drift.record_outcomes(
            [
                Outcome("SPX", start + timedelta(days=i), float(rng.normal(0, 0.01)))
                for i in range(len(rows))
            ],
            late_after_s=settings.drift.outcome_late_s,
        )
        monitor = build_monitor(
            settings, store=store, source=lambda _m, _v: VersionData(reference=reference)
        )
        monitor.run_once()  # loads and calibrates the baseline once, as a live monitor does
        wall, cpu = [], []
        for _ in range(repeats):
            w0, c0 = time.perf_counter(), time.process_time()
            monitor.run_once()
            wall.append(time.perf_counter() - w0)
            cpu.append(time.process_time() - c0)
        store.close()
    return {"wall_s_per_run": statistics.median(wall), "cpu_s_per_run": statistics.median(cpu)}


def _scipy_ks(reference: np.ndarray[Any, Any], current: np.ndarray[Any, Any]) -> None:
    result = scipy_stats.ks_2samp(reference, current, axis=0, method="asymp")
    stats.benjamini_hochberg(np.asarray(result.pvalue), 0.05)


def _calibrated(null: Any, current: np.ndarray[Any, Any]) -> None:
    effective = np.array([c.ks_effective_n for c in null.columns[:FEATURES]])
    statistic = np.full(FEATURES, 0.1)
    stats.benjamini_hochberg(stats.kolmogorov_pvalue(statistic, effective), 0.05)


def _binned(
    null: Any,
    names: list[str],
    current: np.ndarray[Any, Any],
    score: Callable[[np.ndarray[Any, Any], np.ndarray[Any, Any]], float],
) -> None:
    for j, name in enumerate(names):
        column = null.column(name)
        actual = stats.proportions(current[:, j], np.asarray(column.edges))
        score(np.asarray(column.expected), actual)


def _median(action: Callable[[], object], repeats: int) -> float:
    action()  # warm caches and lazy imports outside the measurement
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _process(n: int, seed: int) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(seed)
    out = np.empty((n, FEATURES))
    for j, rho in enumerate(np.linspace(0.0, 0.97, FEATURES)):
        out[:, j] = lfilter([1.0], [1.0, -rho], rng.standard_normal(n) * np.sqrt(1 - rho**2))
    return out


def main() -> None:
    """Run, print and save the figures."""
    figures = run()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "drift.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
