"""How good a forecast is: accuracy, a costed sign strategy, naive baselines and the DM test."""

from driftline.evaluation.baselines import (
    Forecast,
    buy_and_hold,
    model_forecast,
    naive_baselines,
    previous_return,
    zero_return,
)
from driftline.evaluation.diebold_mariano import TestResult, diebold_mariano
from driftline.evaluation.financial import (
    equity_curve,
    financial_metrics,
    max_drawdown,
    sign_positions,
    strategy_returns,
)
from driftline.evaluation.report import EvaluationSettings, compare, evaluate, score
from driftline.evaluation.statistical import (
    directional_accuracy,
    information_coefficient,
    mae,
    r2,
    rmse,
    statistical_metrics,
)

__all__ = [
    "EvaluationSettings",
    "Forecast",
    "TestResult",
    "buy_and_hold",
    "compare",
    "diebold_mariano",
    "directional_accuracy",
    "equity_curve",
    "evaluate",
    "financial_metrics",
    "information_coefficient",
    "mae",
    "max_drawdown",
    "model_forecast",
    "naive_baselines",
    "previous_return",
    "r2",
    "rmse",
    "score",
    "sign_positions",
    "statistical_metrics",
    "strategy_returns",
    "zero_return",
]
