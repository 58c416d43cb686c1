"""The evaluation report: a model against the naive baselines, said plainly."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from driftline.evaluation.baselines import Forecast
from driftline.evaluation.diebold_mariano import diebold_mariano
from driftline.evaluation.financial import financial_metrics
from driftline.evaluation.statistical import statistical_metrics

Array = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class EvaluationSettings:
    """How forecasts are judged: trading cost, calendar, horizon and significance level."""

    cost_bps: float
    periods_per_year: int
    horizon: int
    significance_level: float


def score(
    forecast: Forecast, target: Array, next_returns: Array, settings: EvaluationSettings
) -> dict[str, dict[str, float | None]]:
    """Statistical metrics against `target` and the strategy's figures over `next_returns`."""
    return {
        "statistical": statistical_metrics(target, forecast.prediction),
        "financial": dict(
            financial_metrics(
                forecast.positions,
                next_returns,
                cost_bps=settings.cost_bps,
                periods_per_year=settings.periods_per_year,
            )
        ),
    }


def compare(
    model: Forecast, baseline: Forecast, target: Array, next_returns: Array, s: EvaluationSettings
) -> dict[str, Any]:
    """Whether `model` beats `baseline`: lower squared error by a one-sided Diebold-Mariano test
    at the significance level, and a higher net Sharpe ratio. Both must hold to count as beaten."""
    loss_model = (target - model.prediction) ** 2
    loss_base = (target - baseline.prediction) ** 2
    test = diebold_mariano(loss_model, loss_base, horizon=s.horizon, alternative="less")
    model_sharpe = _sharpe(model, next_returns, s)
    base_sharpe = _sharpe(baseline, next_returns, s)
    accurate = bool(test.pvalue < s.significance_level)
    profitable = bool(model_sharpe > base_sharpe)
    return {
        "mse_model": float(loss_model.mean()),
        "mse_baseline": float(loss_base.mean()),
        "diebold_mariano": {"statistic": test.statistic, "pvalue": test.pvalue},
        "more_accurate": accurate,
        "sharpe_model": model_sharpe,
        "sharpe_baseline": base_sharpe,
        "higher_sharpe": profitable,
        "beaten": accurate and profitable,
    }


def evaluate(
    model: Forecast,
    baselines: Sequence[Forecast],
    target: Array,
    next_returns: Array,
    settings: EvaluationSettings,
    *,
    members: Sequence[Forecast] = (),
) -> dict[str, Any]:
    """The full report: scores of the model, its members and each baseline, and the verdict."""
    comparisons = {b.name: compare(model, b, target, next_returns, settings) for b in baselines}
    beaten = [name for name, c in comparisons.items() if c["beaten"]]
    not_beaten = [name for name, c in comparisons.items() if not c["beaten"]]
    return {
        "settings": {
            "cost_bps": settings.cost_bps,
            "periods_per_year": settings.periods_per_year,
            "horizon": settings.horizon,
            "significance_level": settings.significance_level,
            "beaten_means": (
                "lower squared error by a one-sided Diebold-Mariano test (HLN-corrected) at "
                "the significance level AND a higher Sharpe ratio net of costs"
            ),
        },
        "rows": int(target.size),
        "model": score(model, target, next_returns, settings),
        "members": {m.name: score(m, target, next_returns, settings) for m in members},
        "baselines": {b.name: score(b, target, next_returns, settings) for b in baselines},
        "comparisons": comparisons,
        "baselines_beaten": beaten,
        "baselines_not_beaten": not_beaten,
        "beats_all_baselines": not not_beaten,
        "summary": summary(comparisons),
    }


def _sharpe(forecast: Forecast, next_returns: Array, s: EvaluationSettings) -> float:
    figures = financial_metrics(
        forecast.positions,
        next_returns,
        cost_bps=s.cost_bps,
        periods_per_year=s.periods_per_year,
    )
    return figures["sharpe"]


def summary(comparisons: dict[str, dict[str, Any]]) -> str:
    """One plain sentence per baseline: beaten or not, and why."""
    parts = []
    for name, c in comparisons.items():
        p = c["diebold_mariano"]["pvalue"]
        accuracy = "more accurate" if c["more_accurate"] else "not significantly more accurate"
        sharpe = "higher" if c["higher_sharpe"] else "not higher"
        verdict = "BEATS" if c["beaten"] else "does NOT beat"
        parts.append(
            f"The model {verdict} {name}: {accuracy} (DM p={p:.3g}), "
            f"Sharpe {c['sharpe_model']:.2f} vs {c['sharpe_baseline']:.2f} ({sharpe})."
        )
    return " ".join(parts)
