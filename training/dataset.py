"""From validated bars to the labelled feature matrix, its walk-forward folds and the hold-out."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from driftline.features import FeatureSpec, compute_matrix
from driftline.splits import Fold, holdout_split, walk_forward_splits
from driftline.targets import forward_log_return

Indices = npt.NDArray[np.int64]
Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Dataset:
    """Labelled feature rows in time order, with positional development/hold-out indices.

    `target` is the `horizon`-bar forward log return; `next_return` the one-bar forward return
    the daily sign strategy earns; `previous_return` the last `horizon`-bar return, known at t.
    """

    features: pd.DataFrame
    target: pd.Series
    next_return: pd.Series
    previous_return: pd.Series
    development: Indices
    holdout: Indices
    folds: list[Fold]

    def x(self, rows: Indices) -> Array:
        """Feature rows as a contiguous float64 matrix."""
        return np.ascontiguousarray(self.features.to_numpy(dtype=np.float64)[rows])

    def y(self, rows: Indices) -> Array:
        """Targets of `rows`."""
        return self.target.to_numpy(dtype=np.float64)[rows]


def build_dataset(
    bars: pd.DataFrame,
    spec: FeatureSpec,
    *,
    horizon: int,
    holdout_fraction: float,
    cv_splits: int,
) -> Dataset:
    """Features and targets for every bar with a full window and a known label, then splits."""
    features = compute_matrix(bars, spec)
    close = bars["close"]
    target = forward_log_return(close, horizon).reindex(features.index)
    labelled = target.notna().to_numpy()
    features = features.loc[labelled]
    log_close = np.log(close)
    previous = (log_close - log_close.shift(horizon)).reindex(features.index)
    development, holdout = holdout_split(len(features), fraction=holdout_fraction, horizon=horizon)
    folds = walk_forward_splits(len(development), n_splits=cv_splits, horizon=horizon)
    return Dataset(
        features=features,
        target=target.loc[labelled],
        next_return=forward_log_return(close, 1).reindex(features.index),
        previous_return=previous,
        development=development,
        holdout=holdout,
        folds=folds,
    )
