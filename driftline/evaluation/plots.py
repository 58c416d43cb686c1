"""The equity-curve chart: the model's costed sign strategy against the baselines' strategies."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.figure import Figure

from driftline.evaluation.baselines import Forecast
from driftline.evaluation.financial import equity_curve, strategy_returns


def plot_equity_curves(
    path: Path,
    dates: pd.DatetimeIndex,
    forecasts: Sequence[Forecast],
    next_returns: npt.NDArray[np.float64],
    *,
    cost_bps: float,
    title: str,
) -> Path:
    """Write a PNG of each forecast's strategy equity (net of costs) over `dates`."""
    # A bare Figure renders with Agg and touches no pyplot global state (jobs run headless).
    figure = Figure(figsize=(9, 4.5), dpi=100)
    axes = figure.subplots()
    for forecast in forecasts:
        returns = strategy_returns(forecast.positions, next_returns, cost_bps=cost_bps)
        axes.plot(dates, equity_curve(returns), label=forecast.name, linewidth=1.2)
    axes.axhline(1.0, color="grey", linewidth=0.6)
    axes.set_title(title)
    axes.set_ylabel(f"growth of 1 (net of {cost_bps:g} bp per unit traded)")
    axes.legend(loc="upper left", frameon=False)
    axes.grid(alpha=0.3)
    figure.autofmt_xdate()
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path
