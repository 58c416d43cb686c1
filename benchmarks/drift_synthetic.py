"""Drift grading on synthetic panels with known shifts: detection delay and false alarms.

The panel has ten features: `target_ar`, an AR(1) with rho = 0.9 and unit variance (the one
that shifts), its one-day lag (the same signal, so grading must count it once), and eight
AR(1) features with rho from 0 to 0.97. A 1,000-row reference calibrates the null for
250-row windows (the monitor's default). Delay: a mean shift of 0.25, 0.5 or 1 standard
deviation starts in the live stream; windows slide 10 rows at a time, and the delay is the
rows between the shift and the first window graded `low` or worse (and `medium` or worse),
over several seeds, up to 750 rows. False alarms: 200 non-overlapping stationary windows.

Run standalone: `python -m benchmarks.drift_synthetic` (writes results/drift_synthetic.json/.md).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.signal import lfilter

from benchmarks.harness import main_for
from driftline.contracts import Severity
from driftline.drift.calibration import calibrate
from driftline.drift.detectors import FeatureDrift, JointDrift
from driftline.drift.severity import grade
from driftline.drift.window import Baseline, Window

Array = npt.NDArray[np.float64]

RHO = 0.9
OTHER_RHOS = np.linspace(0.0, 0.97, 8)
NAMES = ["target_ar", "target_ar_lag1", *(f"ar_{rho:.2f}" for rho in OTHER_RHOS)]
REFERENCE_ROWS = 1000
WINDOW = 250
STEP = 10
HORIZON = 750
SHIFTS = (0.25, 0.5, 1.0)
STATIONARY_WINDOWS = 200


@dataclass(frozen=True, slots=True)
class Delay:
    """Rows from a shift's start to the first window graded `low`+ and `medium`+ (None: never)."""

    any_alarm: int | None
    medium: int | None


def panel(n: int, seed: int) -> pd.DataFrame:
    """`n` rows of the stationary panel."""
    rng = np.random.default_rng(seed)
    burn = 300
    target = _ar(rng, RHO, n + burn + 1)
    columns = {"target_ar": target[burn + 1 :], "target_ar_lag1": target[burn:-1]}
    for name, rho in zip(NAMES[2:], OTHER_RHOS, strict=True):
        columns[name] = _ar(rng, float(rho), n + burn)[burn:]
    return pd.DataFrame(columns)


def baseline_for(reference: pd.DataFrame) -> Baseline:
    """The reference's baseline for `WINDOW`-row windows."""
    return Baseline(reference=reference, null=calibrate(reference, WINDOW))


def severity(rows: pd.DataFrame, baseline: Baseline) -> Severity:
    """The grade of one window, by the detectors `driftline drift compare` runs."""
    window = Window(features=rows.reset_index(drop=True))
    return grade([FeatureDrift().detect(window, baseline), JointDrift().detect(window, baseline)])[
        0
    ]


def delay(shift: float, seed: int) -> Delay:
    """Detection delay of a `shift`-sigma mean shift in `target_ar` (and its lag)."""
    data = panel(REFERENCE_ROWS + WINDOW + HORIZON, seed)
    baseline = baseline_for(data.iloc[:REFERENCE_ROWS])
    at = REFERENCE_ROWS + WINDOW
    data.loc[at:, "target_ar"] += shift
    data.loc[at + 1 :, "target_ar_lag1"] += shift
    found: dict[str, int | None] = {"any": None, "medium": None}
    for after in range(STEP, HORIZON + 1, STEP):
        graded = severity(data.iloc[at + after - WINDOW : at + after], baseline)
        if found["any"] is None and graded >= Severity.LOW:
            found["any"] = after
        if graded >= Severity.MEDIUM:
            found["medium"] = after
            break
    return Delay(found["any"], found["medium"])


def false_alarms(seed: int = 1, windows: int = STATIONARY_WINDOWS) -> dict[str, float]:
    """Shares of stationary windows graded `low`+ and `medium`+."""
    data = panel(REFERENCE_ROWS + windows * WINDOW, seed)
    baseline = baseline_for(data.iloc[:REFERENCE_ROWS])
    grades = [
        severity(data.iloc[start : start + WINDOW], baseline)
        for start in range(REFERENCE_ROWS, REFERENCE_ROWS + windows * WINDOW, WINDOW)
    ]
    return {
        "windows": len(grades),
        "low_or_worse": float(np.mean([g >= Severity.LOW for g in grades])),
        "medium_or_worse": float(np.mean([g >= Severity.MEDIUM for g in grades])),
    }


def run(seeds: int = 10) -> dict[str, Any]:
    """Every figure of this benchmark as one JSON-ready dict."""
    delays: dict[str, Any] = {}
    alarms = false_alarms()
    for shift in SHIFTS:
        found = [delay(shift, seed) for seed in range(100, 100 + seeds)]
        delays[f"{shift:g}sigma"] = {
            "seeds": seeds,
            "detected_low_or_worse": sum(d.any_alarm is not None for d in found) / seeds,
            "median_rows_low_or_worse": _median([d.any_alarm for d in found]),
            "detected_medium_or_worse": sum(d.medium is not None for d in found) / seeds,
            "median_rows_medium_or_worse": _median([d.medium for d in found]),
        }
    return {
        "title": "Synthetic panel: delay to detect mean shifts in an AR(1) feature; false alarms",
        "setup": {
            "rho": RHO,
            "features": NAMES,
            "reference_rows": REFERENCE_ROWS,
            "window_rows": WINDOW,
            "step_rows": STEP,
            "horizon_rows": HORIZON,
        },
        "delay": delays,
        "false_alarms": alarms,
        "tables": _tables(delays, alarms),
        "notes": [
            f"AR(1) rho {RHO}; windows of {WINDOW} rows every {STEP} rows against a "
            f"{REFERENCE_ROWS}-row reference; a median of None: most seeds found nothing "
            f"within {HORIZON} rows.",
        ],
    }


def _tables(delays: dict[str, Any], alarms: dict[str, float]) -> list[dict[str, Any]]:
    return [
        {
            "title": "Detection delay, rows after the shift (median over seeds)",
            "columns": [
                "shift",
                "detected (low+)",
                "delay (low+)",
                "detected (medium+)",
                "delay (medium+)",
            ],
            "rows": [
                [
                    shift,
                    f"{d['detected_low_or_worse']:.0%}",
                    d["median_rows_low_or_worse"],
                    f"{d['detected_medium_or_worse']:.0%}",
                    d["median_rows_medium_or_worse"],
                ]
                for shift, d in delays.items()
            ],
        },
        {
            "title": f"False alarms on {alarms['windows']} stationary windows",
            "columns": ["low or worse", "medium or worse"],
            "rows": [[f"{alarms['low_or_worse']:.1%}", f"{alarms['medium_or_worse']:.1%}"]],
        },
    ]


def _median(values: list[int | None]) -> int | None:
    found = [v for v in values if v is not None]
    # Undetected runs count as later than any detection, so the median can be "none".
    if 2 * len(found) <= len(values):
        return None
    padded = sorted(found) + [HORIZON + STEP] * (len(values) - len(found))
    return int(statistics.median_low(padded))


def _ar(rng: np.random.Generator, rho: float, n: int) -> Array:
    shocks = rng.standard_normal(n) * np.sqrt(1 - rho**2)
    return np.asarray(lfilter([1.0], [1.0, -rho], shocks), dtype=np.float64)


if __name__ == "__main__":
    main_for(__name__, run)
