"""The costed sign strategy, checked bar by bar."""

from __future__ import annotations

import numpy as np
import pytest

from driftline.evaluation import financial_metrics, max_drawdown, sign_positions, strategy_returns

LOG_RETURNS = np.log(np.array([1.10, 0.95, 1.02, 0.90]))


def test_positions_pay_costs_on_every_unit_traded() -> None:
    positions = sign_positions(np.array([0.3, 0.1, -0.2, 0.0]))
    assert positions.tolist() == [1.0, 1.0, -1.0, 0.0]
    returns = strategy_returns(positions, LOG_RETURNS, cost_bps=10.0)
    # Open long (1 unit), hold, flip to short (2 units), close (1 unit); 10 bp per unit.
    expected = [0.10 - 0.001, -0.05, -0.02 - 0.002, 0.0 - 0.001]
    assert returns == pytest.approx(expected)


def test_figures_of_a_known_path() -> None:
    positions = np.array([1.0, 1.0, -1.0, 0.0])
    m = financial_metrics(positions, LOG_RETURNS, cost_bps=0.0, periods_per_year=4)
    r = np.array([0.10, -0.05, -0.02, 0.0])
    equity = np.cumprod(1 + r)
    assert m["total_return"] == pytest.approx(equity[-1] - 1)
    assert m["annualised_return"] == pytest.approx(equity[-1] - 1)  # 4 bars = one "year"
    assert m["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * 2)
    assert m["sortino"] == pytest.approx(r.mean() / np.sqrt(np.mean(np.minimum(r, 0) ** 2)) * 2)
    assert m["max_drawdown"] == pytest.approx(equity[2] / equity[0] - 1)
    assert m["hit_rate"] == pytest.approx(1 / 3)  # right on bar 0 only; flat bar 3 not counted
    assert m["turnover"] == pytest.approx((1 + 0 + 2 + 1) / 4)
    assert m["exposure"] == pytest.approx(3 / 4)


def test_buy_and_hold_earns_the_price_change_less_one_entry_cost() -> None:
    m = financial_metrics(np.ones(4), LOG_RETURNS, cost_bps=0.0, periods_per_year=252)
    assert m["total_return"] == pytest.approx(np.exp(LOG_RETURNS.sum()) - 1)


def test_a_flat_book_earns_nothing_and_has_zero_ratios() -> None:
    m = financial_metrics(np.zeros(4), LOG_RETURNS, cost_bps=5.0, periods_per_year=252)
    assert m["total_return"] == 0.0
    assert (m["sharpe"], m["sortino"], m["max_drawdown"], m["turnover"]) == (0, 0, 0, 0)


def test_max_drawdown_counts_a_loss_on_the_first_bar() -> None:
    assert max_drawdown(np.array([-0.5, 0.2])) == pytest.approx(-0.5)
