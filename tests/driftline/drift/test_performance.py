"""Performance drift (metrics, HAC tests) and concept drift (ADWIN) on known error streams."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from driftline.drift.calibration import calibrate
from driftline.drift.concept import ConceptDrift
from driftline.drift.performance import PerformanceDrift, hac_mean_test, metrics, outcome_frame
from driftline.drift.window import Baseline, Window


def test_metrics_match_the_hand_computation() -> None:
    prediction = np.array([0.01, -0.02, 0.03, 0.0])
    target = np.array([0.02, -0.01, -0.01, 0.01])
    m = metrics(prediction, target)
    errors = np.array([0.01, 0.01, -0.04, 0.01])
    assert m.rmse == pytest.approx(np.sqrt(np.mean(errors**2)))
    assert m.mae == pytest.approx(0.0175)
    # sum e^2 = 0.0019; target mean 0.0025, sum (y - mean)^2 = 0.000675 -> R^2 = 1 - 0.0019/0.000675
    assert m.r2 == pytest.approx(1 - 0.0019 / 0.000675)
    # signs: + vs +, - vs -, + vs -, 0 vs + -> 2 of 4
    assert m.directional_accuracy == 0.5


def test_hac_test_is_one_sided() -> None:
    rng = np.random.default_rng(1)
    sample = rng.normal(1.0, 1.0, size=400)
    assert hac_mean_test(sample, 0.0)[1] < 1e-6
    assert hac_mean_test(sample, 2.0)[1] > 0.99
    assert hac_mean_test(sample, 2.0, alternative="less")[1] < 1e-6


def _baseline(rng: np.random.Generator, scale: float = 0.01) -> Baseline:
    n = 600
    prediction = rng.normal(0, 0.002, size=n)
    reference = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "prediction": prediction,
            "target": prediction + rng.normal(0, scale, size=n),
        }
    )
    return Baseline(reference=reference, null=calibrate(reference, 100))


def _window(rng: np.random.Generator, n: int, scale: float) -> Window:
    prediction = rng.normal(0, 0.002, size=n)
    target = prediction + rng.normal(0, scale, size=n)
    return Window(
        pd.DataFrame({"a": rng.normal(size=n)}), outcomes=outcome_frame(prediction, target)
    )


def test_performance_drift_needs_a_significant_fall() -> None:
    rng = np.random.default_rng(4)
    baseline = _baseline(rng)
    detector = PerformanceDrift(min_outcomes=30)
    same = detector.detect(_window(rng, 250, 0.01), baseline)
    worse = detector.detect(_window(rng, 250, 0.02), baseline)
    assert not same.drifted
    assert worse.drifted
    assert worse.summary["baseline_source"] == "reference"
    rmse = next(s for s in worse.scores if s.method == "rmse")
    assert rmse.drifted
    assert rmse.pvalue is not None
    assert rmse.pvalue < 0.05


def test_without_reference_outcomes_the_evaluation_report_is_the_baseline() -> None:
    rng = np.random.default_rng(5)
    base = _baseline(rng)
    statistical = {"rmse": 0.001, "mae": 0.0008, "r2": 0.0, "directional_accuracy": 0.6}
    evaluation = {"model": {"statistical": {**statistical, "information_coefficient": 0.1}}}
    reference = base.reference.drop(columns=["target"])
    baseline = Baseline(reference=reference, null=base.null, evaluation=evaluation)
    result = PerformanceDrift().detect(_window(rng, 250, 0.01), baseline)
    assert result.summary["baseline_source"] == "evaluation"
    assert result.summary["evaluation"] == statistical
    assert result.drifted


def test_performance_and_concept_skip_without_enough_outcomes() -> None:
    rng = np.random.default_rng(6)
    baseline = _baseline(rng)
    window = _window(rng, 10, 0.01)
    assert PerformanceDrift().detect(window, baseline).skipped == "10 outcomes; 30 needed"
    assert ConceptDrift().detect(window, baseline).skipped == "10 outcomes; 30 needed"


def test_concept_drift_detects_growing_errors_and_ignores_steady_ones() -> None:
    rng = np.random.default_rng(8)
    baseline = _baseline(rng)
    steady = _window(rng, 400, 0.01)
    prediction = rng.normal(0, 0.002, size=400)
    noise = np.concatenate([rng.normal(0, 0.01, 250), rng.normal(0, 0.03, 150)])
    growing = Window(
        pd.DataFrame({"a": rng.normal(size=400)}),
        outcomes=outcome_frame(prediction, prediction + noise),
    )
    assert not ConceptDrift().detect(steady, baseline).drifted
    found = ConceptDrift().detect(growing, baseline)
    assert found.drifted
    # ADWIN needs some evidence after the change at row 250 before it cuts.
    assert 250 <= found.summary["increases_at"][0] < 400
