"""Time-ordered splits: walk-forward folds with an expanding window and an embargo, and a hold-out.

Row t's label is the return over bars (t, t + horizon]; a training row whose label window reaches
into a validation row would leak it, so training stops `embargo >= horizon` rows before validation.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Indices = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Fold:
    """Positional row indices for one walk-forward step."""

    train: Indices
    validation: Indices


def holdout_split(
    n_rows: int, *, fraction: float, horizon: int, embargo: int | None = None
) -> tuple[Indices, Indices]:
    """Development rows, then an embargo gap, then the final `fraction` of rows as the hold-out."""
    embargo = _embargo(horizon, embargo)
    n_holdout = max(1, round(n_rows * fraction))
    start = n_rows - n_holdout
    if start - embargo < 1:
        raise ValueError(f"{n_rows} rows leave no development data before the hold-out")
    return np.arange(0, start - embargo), np.arange(start, n_rows)


def walk_forward_splits(
    n_rows: int,
    *,
    n_splits: int,
    horizon: int,
    embargo: int | None = None,
    min_train: int | None = None,
) -> list[Fold]:
    """Expanding-window folds: each validates on the next block, training on all rows before it."""
    embargo = _embargo(horizon, embargo)
    min_train = min_train if min_train is not None else n_rows // (n_splits + 1)
    first_validation = min_train + embargo
    if n_splits < 1 or n_rows - first_validation < n_splits:
        raise ValueError(
            f"{n_rows} rows cannot make {n_splits} folds after {min_train} training rows"
        )
    edges = np.linspace(first_validation, n_rows, n_splits + 1).round().astype(np.int64)
    return [
        Fold(train=np.arange(0, start - embargo), validation=np.arange(start, stop))
        for start, stop in itertools.pairwise(edges)
    ]


def _embargo(horizon: int, embargo: int | None) -> int:
    embargo = horizon if embargo is None else embargo
    if embargo < horizon:
        raise ValueError(f"embargo {embargo} is shorter than the target horizon {horizon}")
    return embargo
