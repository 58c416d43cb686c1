"""Accuracy metrics against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from driftline.evaluation import statistical_metrics

ACTUAL = np.array([0.01, -0.02, 0.03, 0.0, -0.01])
PREDICTED = np.array([0.02, -0.01, 0.005, 0.01, 0.0])


def test_metrics_match_hand_computation() -> None:
    m = statistical_metrics(ACTUAL, PREDICTED)
    errors = ACTUAL - PREDICTED  # [-0.01, -0.01, 0.025, -0.01, -0.01]
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean(errors**2)))
    assert m["mae"] == pytest.approx(0.013)
    ss_tot = np.sum((ACTUAL - ACTUAL.mean()) ** 2)
    assert m["r2"] == pytest.approx(1 - np.sum(errors**2) / ss_tot)
    # Rows that moved: 0.01 (+ vs +), -0.02 (- vs -), 0.03 (+ vs +), -0.01 (- vs 0: no call).
    assert m["directional_accuracy"] == pytest.approx(3 / 4)
    # Ranks of predicted [5, 1, 3, 4, 2] vs actual [4, 1, 5, 3, 2]: d^2 sum = 1+0+4+1+0 = 6.
    assert m["information_coefficient"] == pytest.approx(1 - 6 * 6 / (5 * 24))


def test_a_forecast_that_makes_no_call_has_no_direction_or_rank_correlation() -> None:
    m = statistical_metrics(ACTUAL, np.zeros_like(ACTUAL))
    assert m["directional_accuracy"] is None
    assert m["information_coefficient"] is None
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean(ACTUAL**2)))
