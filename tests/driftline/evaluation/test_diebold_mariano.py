"""Diebold-Mariano with the HLN correction: exact at horizon 1, correct size and power beyond."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from driftline.evaluation import diebold_mariano


@pytest.mark.parametrize("alternative", ["less", "greater", "two-sided"])
def test_horizon_one_is_the_one_sample_t_test_of_the_loss_differential(alternative: str) -> None:
    rng = np.random.default_rng(1)
    a, b = rng.gamma(2.0, size=250), rng.gamma(2.1, size=250)
    result = diebold_mariano(a, b, horizon=1, alternative=alternative)  # type: ignore[arg-type]
    expected = stats.ttest_1samp(a - b, 0.0, alternative=alternative)
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert result.pvalue == pytest.approx(expected.pvalue, rel=1e-12)


def test_longer_horizons_add_autocovariances_and_the_hln_factor() -> None:
    d = np.array([1.0, 1.2, 0.8, -0.3, -0.5, 0.2, 1.1, 0.9, 0.4, -0.2])
    n, h = d.size, 3
    c = d - d.mean()
    gamma = [c[k:] @ c[: n - k] / n for k in range(h)]
    variance = gamma[0] + 2 * (gamma[1] + gamma[2])
    assert variance > 0  # the rectangular estimate applies
    dm = d.mean() / np.sqrt(variance / n)
    expected = dm * np.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    result = diebold_mariano(d, np.zeros(n), horizon=h, alternative="greater")
    assert result.statistic == pytest.approx(expected, rel=1e-12)
    assert result.pvalue == pytest.approx(stats.t(df=n - 1).sf(expected), rel=1e-12)


def test_size_is_close_to_nominal_for_overlapping_two_step_losses() -> None:
    # Under the null the loss differential of 2-step forecasts is MA(1): the HAC term must
    # keep false rejections near 5 %, where ignoring it over-rejects.
    rng = np.random.default_rng(7)
    sims, n = 1000, 300
    e = rng.normal(size=(sims, n + 1))
    d = e[:, 1:] + 0.8 * e[:, :-1]
    rejected = [diebold_mariano(row, np.zeros(n), horizon=2).pvalue < 0.05 for row in d]
    naive = [diebold_mariano(row, np.zeros(n), horizon=1).pvalue < 0.05 for row in d]
    assert 0.025 < np.mean(rejected) < 0.08
    assert np.mean(naive) > np.mean(rejected) + 0.02


def test_a_clearly_better_forecast_is_detected() -> None:
    rng = np.random.default_rng(3)
    truth = rng.normal(size=500)
    good = (truth - (truth + rng.normal(scale=0.3, size=500))) ** 2
    bad = (truth - rng.normal(size=500)) ** 2
    assert diebold_mariano(good, bad).pvalue < 1e-6
    assert diebold_mariano(bad, good).pvalue > 0.999


def test_a_negative_truncated_variance_falls_back_to_bartlett_weights() -> None:
    d = np.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0, 1.0, 0.0])  # strongly negative lag-1
    n, h = d.size, 2
    c = d - d.mean()
    gamma = [c[k:] @ c[: n - k] / n for k in range(h)]
    assert gamma[0] + 2 * gamma[1] <= 0
    bartlett = gamma[0] + 2 * 0.5 * gamma[1]
    expected = d.mean() / np.sqrt(bartlett / n) * np.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    result = diebold_mariano(d, np.zeros(n), horizon=h, alternative="two-sided")
    assert result.statistic == pytest.approx(expected, rel=1e-12)


def test_identical_losses_give_no_evidence() -> None:
    loss = np.linspace(0, 1, 50)
    result = diebold_mariano(loss, loss.copy())
    assert (result.statistic, result.pvalue) == (0.0, 1.0)


@pytest.mark.parametrize(
    ("a", "b", "horizon", "message"),
    [
        (np.ones(10), np.ones(9), 1, "equal length"),
        (np.ones(10), np.ones(10), 0, "horizon"),
        (np.array([1.0, np.nan, 2.0, 3.0]), np.ones(4), 1, "finite"),
        (np.ones(5), np.ones(5), 3, "too few"),
    ],
)
def test_bad_input_is_refused_with_a_reason(
    a: np.ndarray, b: np.ndarray, horizon: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        diebold_mariano(a, b, horizon=horizon)
