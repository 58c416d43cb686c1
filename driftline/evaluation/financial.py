"""A sign strategy with transaction costs and the figures traders judge it by."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


def sign_positions(forecast: Array) -> Array:
    """Long one unit on a positive forecast, short on a negative one, flat on zero."""
    positions: Array = np.sign(forecast).astype(np.float64)
    return positions


def strategy_returns(positions: Array, log_returns: Array, *, cost_bps: float) -> Array:
    """Per-bar simple returns of holding `positions[t]` over bar t+1, net of trading costs.

    `log_returns[t]` is the next bar's log return. Each unit of position change costs
    `cost_bps` basis points; the book starts flat, so the first position pays to open.
    """
    if positions.shape != log_returns.shape:
        raise ValueError("positions and returns must have the same length")
    turnover = np.abs(np.diff(positions, prepend=0.0))
    gross: Array = positions * np.expm1(log_returns)
    net: Array = gross - turnover * cost_bps / 1e4
    return net


def equity_curve(returns: Array) -> Array:
    """Growth of one unit invested, compounded bar by bar."""
    return np.cumprod(1.0 + returns)


def max_drawdown(returns: Array) -> float:
    """The deepest fall from a running peak of the equity curve, as a negative fraction."""
    equity = np.concatenate([[1.0], equity_curve(returns)])
    return float(np.min(equity / np.maximum.accumulate(equity) - 1.0))


def financial_metrics(
    positions: Array, log_returns: Array, *, cost_bps: float, periods_per_year: int
) -> dict[str, float]:
    """Annualised return, Sharpe, Sortino, max drawdown, hit rate and turnover of a strategy.

    Ratios use a zero risk-free rate; a strategy that never moves has Sharpe and Sortino 0.
    """
    returns = strategy_returns(positions, log_returns, cost_bps=cost_bps)
    n = returns.size
    final = float(equity_curve(returns)[-1]) if n else 1.0
    annualised = final ** (periods_per_year / n) - 1.0 if n and final > 0 else -1.0
    scale = np.sqrt(periods_per_year)
    std = float(np.std(returns, ddof=1)) if n > 1 else 0.0
    downside = float(np.sqrt(np.mean(np.minimum(returns, 0.0) ** 2))) if n else 0.0
    mean = float(np.mean(returns)) if n else 0.0
    invested = positions != 0
    gross = positions * log_returns
    return {
        "total_return": final - 1.0,
        "annualised_return": float(annualised),
        "annualised_volatility": std * scale,
        "sharpe": mean / std * scale if std > 0 else 0.0,
        "sortino": mean / downside * scale if downside > 0 else 0.0,
        "max_drawdown": max_drawdown(returns) if n else 0.0,
        "hit_rate": float(np.mean(gross[invested] > 0)) if invested.any() else 0.0,
        "turnover": float(np.mean(np.abs(np.diff(positions, prepend=0.0)))) if n else 0.0,
        "exposure": float(np.mean(invested)) if n else 0.0,
    }
