"""Synthetic panels with known shifts: false alarms, detection, and a joint shift (issue 17)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from scipy.signal import lfilter

from benchmarks import drift_synthetic as synthetic
from driftline.contracts import Severity
from driftline.drift.calibration import calibrate
from driftline.drift.detectors import FeatureDrift, JointDrift
from driftline.drift.severity import findings_of, grade
from driftline.drift.window import Baseline, Window


@pytest.mark.slow
def test_at_most_5_percent_of_200_stationary_windows_raise_an_alarm() -> None:
    figures = synthetic.false_alarms(seed=3, windows=200)
    assert figures["windows"] == 200
    assert figures["low_or_worse"] <= 0.05
    assert figures["medium_or_worse"] <= 0.05


@pytest.mark.slow
def test_a_one_sigma_shift_in_a_persistent_feature_is_found_within_the_horizon() -> None:
    delays = [synthetic.delay(1.0, seed) for seed in (100, 101, 102)]
    found = [d.any_alarm for d in delays if d.any_alarm is not None]
    assert len(found) >= 2, delays


def test_the_shifted_feature_and_its_lag_form_one_group() -> None:
    reference = synthetic.panel(synthetic.REFERENCE_ROWS, seed=5)
    groups = calibrate(reference, synthetic.WINDOW).groups
    assert ("target_ar", "target_ar_lag1") in groups
    assert sum(len(g) for g in groups) == len(synthetic.NAMES)


def _ar(n: int, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    return np.asarray(lfilter([1.0], [1.0, -0.5], rng.standard_normal(n)) * np.sqrt(0.75))


def _pairs(n: int, correlation: float, rng: np.random.Generator) -> pd.DataFrame:
    # Three pairs with the given correlation and four loners; every marginal stays N(0, 1).
    columns = {}
    for j in range(3):
        x, noise = _ar(n, rng), _ar(n, rng)
        columns[f"x{j}"] = x
        columns[f"y{j}"] = correlation * x + np.sqrt(1 - correlation**2) * noise
    for j in range(4):
        columns[f"z{j}"] = _ar(n, rng)
    return pd.DataFrame(columns)


def test_a_joint_shift_no_single_feature_shows_is_caught_by_the_joint_test() -> None:
    rng = np.random.default_rng(8)
    reference = _pairs(1000, 0.9, rng)
    baseline = Baseline(reference=reference, null=calibrate(reference, 250))
    calm = Window(_pairs(250, 0.9, rng))
    broken = Window(_pairs(250, -0.9, rng))
    results = [FeatureDrift().detect(broken, baseline), JointDrift().detect(broken, baseline)]
    assert results[0].summary["n_drifted"] == 0, "the marginals did not move"
    assert findings_of(results).joint_ratio >= 2.0
    assert grade(results)[0] is Severity.MEDIUM
    calm_results = [FeatureDrift().detect(calm, baseline), JointDrift().detect(calm, baseline)]
    assert grade(calm_results)[0] <= Severity.LOW
