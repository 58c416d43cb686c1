"""What a trained ensemble is judged and remembered by: hold-out report, importances, reference."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.base import BaseEstimator, RegressorMixin

from driftline.config import Settings
from driftline.evaluation import (
    EvaluationSettings,
    Forecast,
    evaluate,
    model_forecast,
    naive_baselines,
)
from driftline.evaluation.plots import plot_equity_curves
from driftline.registry.predictor import combine
from training.dataset import Dataset
from training.ensemble import INTERCEPT
from training.members import native_importances

Array = npt.NDArray[np.float64]


def evaluation_settings(settings: Settings) -> EvaluationSettings:
    """The evaluation part of the settings."""
    return EvaluationSettings(
        cost_bps=settings.training.cost_bps,
        periods_per_year=settings.training.periods_per_year,
        horizon=settings.training.horizon,
        significance_level=settings.training.significance_level,
    )


def holdout_forecasts(
    data: Dataset, estimators: Mapping[str, Any], weights: Mapping[str, float]
) -> tuple[Forecast, list[Forecast], list[Forecast]]:
    """The ensemble's, each member's and each baseline's forecasts over the hold-out."""
    x = data.x(data.holdout)
    members = {name: np.asarray(e.predict(x), dtype=np.float64) for name, e in estimators.items()}
    ensemble = model_forecast("ensemble", combine(members, weights, INTERCEPT))
    training_mean = float(np.mean(data.y(data.development)))
    previous = data.previous_return.to_numpy(dtype=np.float64)[data.holdout]
    baselines = naive_baselines(previous, training_mean)
    return ensemble, [model_forecast(n, p) for n, p in members.items()], baselines


def evaluation_report(
    data: Dataset,
    estimators: Mapping[str, Any],
    weights: Mapping[str, float],
    settings: Settings,
) -> tuple[dict[str, Any], bytes]:
    """The hold-out evaluation report and its equity-curve PNG."""
    ensemble, members, baselines = holdout_forecasts(data, estimators, weights)
    target = data.y(data.holdout)
    next_returns = data.next_return.to_numpy(dtype=np.float64)[data.holdout]
    judged = evaluation_settings(settings)
    report = evaluate(ensemble, baselines, target, next_returns, judged, members=members)
    dates = data.features.index[data.holdout]
    report["holdout"] = _span(dates)
    report["development"] = _span(data.features.index[data.development])
    with tempfile.TemporaryDirectory() as scratch:
        path = plot_equity_curves(
            Path(scratch) / "equity.png",
            pd.DatetimeIndex(dates),
            [ensemble, *(b for b in baselines if b.name != "zero_return")],
            next_returns,
            cost_bps=settings.training.cost_bps,
            title=f"Hold-out {report['holdout']['first']} to {report['holdout']['last']}",
        )
        png = path.read_bytes()
    return report, png


def feature_importances(
    data: Dataset,
    estimators: Mapping[str, Any],
    weights: Mapping[str, float],
    *,
    seed: int,
    repeats: int = 3,
) -> dict[str, Any]:
    """Each member's own importances, and the ensemble's permutation importance on the hold-out.

    Permutation importance is the rise in hold-out MSE when one feature's column is shuffled:
    model-agnostic, and measured on data no member saw.
    """
    from sklearn.inspection import permutation_importance  # noqa: PLC0415

    names = list(data.features.columns)
    ensemble = _Ensemble(estimators, weights)
    result = permutation_importance(
        ensemble,
        data.x(data.holdout),
        data.y(data.holdout),
        scoring="neg_mean_squared_error",
        n_repeats=repeats,
        random_state=seed,
    )
    ranked = sorted(
        zip(names, result.importances_mean, result.importances_std, strict=True),
        key=lambda item: -item[1],
    )
    return {
        "permutation_holdout": {
            "metric": "increase in hold-out MSE when the feature is shuffled",
            "repeats": repeats,
            "features": {n: {"mean": float(m), "std": float(s)} for n, m, s in ranked},
        },
        "members": {n: native_importances(e, names) for n, e in estimators.items()},
    }


def reference_sample(
    data: Dataset, oof: Mapping[str, Array], weights: Mapping[str, float], rows: int
) -> pd.DataFrame:
    """The last `rows` development rows that every member predicted out of fold, in time order.

    `prediction` is the out-of-fold ensemble prediction: made by models that had not seen the
    row, so its spread and errors are what a deployed model shows on new data. In-sample
    predictions of the final fit would understate both and make drift checks fire.
    """
    ensemble = combine(oof, weights, INTERCEPT)
    covered = np.flatnonzero(np.isfinite(ensemble))
    if covered.size == 0:
        raise ValueError("no development row has out-of-fold predictions")
    # Validation blocks tile the end of the development period, so the tail is contiguous.
    tail = covered[-rows:]
    if not np.array_equal(tail, np.arange(tail[0], tail[-1] + 1)):
        raise ValueError("out-of-fold rows at the end of development are not contiguous")
    positions = data.development[tail]
    frame: pd.DataFrame = data.features.iloc[positions].copy()
    frame["prediction"] = ensemble[tail]
    frame["target"] = data.target.iloc[positions].to_numpy()
    return frame


def metrics_for_mlflow(report: Mapping[str, Any]) -> dict[str, float]:
    """Hold-out figures flattened to `holdout/<who>/<metric>` names; undefined ones left out."""
    flat: dict[str, float] = {}
    sections = {
        "ensemble": report["model"],
        **{f"member/{n}": s for n, s in report["members"].items()},
        **{f"baseline/{n}": s for n, s in report["baselines"].items()},
    }
    for who, section in sections.items():
        for group in ("statistical", "financial"):
            for metric, value in section[group].items():
                if value is not None:
                    flat[f"holdout/{who}/{metric}"] = float(value)
    for name, comparison in report["comparisons"].items():
        flat[f"dm_pvalue/{name}"] = float(comparison["diebold_mariano"]["pvalue"])
        flat[f"beaten/{name}"] = float(comparison["beaten"])
    return flat


def _span(index: pd.Index) -> dict[str, Any]:
    return {
        "first": pd.Timestamp(index[0]).date().isoformat(),
        "last": pd.Timestamp(index[-1]).date().isoformat(),
        "rows": len(index),
    }


class _Ensemble(RegressorMixin, BaseEstimator):  # type: ignore[misc]
    """The weighted member sum behind the estimator interface permutation_importance expects."""

    def __init__(self, estimators: Mapping[str, Any], weights: Mapping[str, float]) -> None:
        self.estimators = estimators
        self.weights = weights

    def fit(self, x: Array, y: Array) -> _Ensemble:
        return self

    def predict(self, x: Array) -> Array:
        members = {n: e.predict(x) for n, e in self.estimators.items()}
        return combine(members, self.weights, INTERCEPT)
