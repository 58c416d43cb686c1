"""The report names every metric and baseline and says plainly which baselines are beaten."""

from __future__ import annotations

import json

import numpy as np
import pytest

from driftline.evaluation import EvaluationSettings, evaluate, model_forecast, naive_baselines

SETTINGS = EvaluationSettings(
    cost_bps=2.0, periods_per_year=252, horizon=1, significance_level=0.05
)


@pytest.fixture
def market() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    returns = rng.normal(0.0003, 0.01, size=600)
    previous = np.concatenate([[0.0], returns[:-1]])
    return returns, previous


def test_an_informed_forecast_beats_every_baseline(market: tuple[np.ndarray, np.ndarray]) -> None:
    returns, previous = market
    noisy_oracle = returns + np.random.default_rng(2).normal(0, 0.004, size=returns.size)
    report = evaluate(
        model_forecast("ensemble", noisy_oracle),
        naive_baselines(previous, training_mean=0.0003),
        returns,
        returns,
        SETTINGS,
    )
    assert report["baselines_beaten"] == ["zero_return", "previous_return", "buy_and_hold"]
    assert report["beats_all_baselines"] is True
    assert "BEATS zero_return" in report["summary"]
    json.dumps(report, allow_nan=False)


def test_noise_beats_nothing_and_the_report_says_so(market: tuple[np.ndarray, np.ndarray]) -> None:
    returns, previous = market
    noise = np.random.default_rng(5).normal(0, 0.01, size=returns.size)
    report = evaluate(
        model_forecast("ensemble", noise),
        naive_baselines(previous, training_mean=0.0003),
        returns,
        returns,
        SETTINGS,
        members=[model_forecast("rf", noise)],
    )
    assert "zero_return" in report["baselines_not_beaten"]
    assert report["beats_all_baselines"] is False
    assert "does NOT beat zero_return" in report["summary"]
    for section in (report["model"], report["members"]["rf"], *report["baselines"].values()):
        assert set(section["statistical"]) == {
            "rmse", "mae", "r2", "directional_accuracy", "information_coefficient"
        }  # fmt: skip
        assert {
            "annualised_return", "sharpe", "sortino", "max_drawdown", "hit_rate", "turnover"
        } <= set(section["financial"])  # fmt: skip
    dm = report["comparisons"]["zero_return"]["diebold_mariano"]
    assert 0.0 <= dm["pvalue"] <= 1.0
    json.dumps(report, allow_nan=False)
