"""Naive forecasts a model must beat: zero return, previous return, and buy-and-hold."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from driftline.evaluation.financial import sign_positions

Array = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Forecast:
    """A named forecast series and the positions its strategy holds."""

    name: str
    prediction: Array
    positions: Array


def model_forecast(name: str, prediction: Array) -> Forecast:
    """A model's forecast, traded by its sign."""
    return Forecast(name, prediction, sign_positions(prediction))


def zero_return(n: int) -> Forecast:
    """Predict no change (the random walk); its strategy stays flat."""
    return Forecast("zero_return", np.zeros(n), np.zeros(n))


def previous_return(previous: Array) -> Forecast:
    """Predict that the last `horizon`-bar return repeats (momentum); trade its sign."""
    return Forecast("previous_return", previous, sign_positions(previous))


def buy_and_hold(n: int, training_mean: float) -> Forecast:
    """Predict the training period's mean return (the drift) and stay long throughout."""
    return Forecast("buy_and_hold", np.full(n, training_mean), np.ones(n))


def naive_baselines(previous: Array, training_mean: float) -> list[Forecast]:
    """The three baselines over a hold-out of `len(previous)` rows."""
    n = previous.size
    return [zero_return(n), previous_return(previous), buy_and_hold(n, training_mean)]
