"""Forecast accuracy: RMSE, MAE, R², directional accuracy and the information coefficient."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import stats
from sklearn import metrics

Array = npt.NDArray[np.float64]


def rmse(actual: Array, predicted: Array) -> float:
    """Root mean squared error."""
    return float(metrics.root_mean_squared_error(actual, predicted))


def mae(actual: Array, predicted: Array) -> float:
    """Mean absolute error."""
    return float(metrics.mean_absolute_error(actual, predicted))


def r2(actual: Array, predicted: Array) -> float:
    """Coefficient of determination against the sample's own mean (negative when worse)."""
    return float(metrics.r2_score(actual, predicted))


def directional_accuracy(actual: Array, predicted: Array) -> float | None:
    """Share of rows whose predicted sign matches the realised sign; None if nothing is called.

    Rows with a zero realised return carry no direction and are left out; a zero prediction
    makes no call and counts as a miss.
    """
    moved = actual != 0
    if not np.any(predicted != 0) or not moved.any():
        return None
    return float(np.mean(np.sign(predicted[moved]) == np.sign(actual[moved])))


def information_coefficient(actual: Array, predicted: Array) -> float | None:
    """Spearman rank correlation of predictions with outcomes; None for a constant forecast."""
    if np.ptp(predicted) == 0 or np.ptp(actual) == 0:
        return None
    return float(stats.spearmanr(predicted, actual).statistic)


def statistical_metrics(actual: Array, predicted: Array) -> dict[str, float | None]:
    """Every accuracy metric of `predicted` against `actual`, keyed by name."""
    return {
        "rmse": rmse(actual, predicted),
        "mae": mae(actual, predicted),
        "r2": r2(actual, predicted),
        "directional_accuracy": directional_accuracy(actual, predicted),
        "information_coefficient": information_coefficient(actual, predicted),
    }
