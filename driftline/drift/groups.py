"""Features that carry one signal, found in the reference's own correlation structure.

A return and its lags are one series seen at different days, the volatility family moves as
one and the oscillators nearly so; counting each member as separate evidence would let one
signal decide a grade. Two features belong together when the rank correlation of one with the
other, at some lag up to `max_lag` days, reaches `min_correlation`; groups are the clusters of
average-linkage clustering on 1 - that correlation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform
from scipy.stats import rankdata

Array = npt.NDArray[np.float64]

MAX_LAG = 5
MIN_CORRELATION = 0.5


def feature_groups(
    values: Array,
    names: Sequence[str],
    *,
    max_lag: int = MAX_LAG,
    min_correlation: float = MIN_CORRELATION,
) -> tuple[tuple[str, ...], ...]:
    """Groups of `names` (columns of time-ordered `values`), in the order of their first member."""
    if len(names) < 2:
        return tuple((name,) for name in names)
    strength = lagged_correlation(values, max_lag)
    distance = squareform(1.0 - strength, checks=False)
    labels = fcluster(linkage(distance, "average"), 1.0 - min_correlation, "distance")
    groups: dict[int, list[str]] = {}
    for label, name in zip(labels, names, strict=True):
        groups.setdefault(int(label), []).append(name)
    return tuple(tuple(members) for members in groups.values())


def lagged_correlation(values: Array, max_lag: int) -> Array:
    """Largest |rank correlation| of each column pair over lags 0..max_lag, either direction."""
    ranks = np.asarray(rankdata(values, axis=0), dtype=np.float64)
    spread = ranks.std(axis=0)
    # A constant column correlates with nothing; it stays a group of its own.
    z = np.divide(ranks - ranks.mean(axis=0), spread, out=np.zeros_like(ranks), where=spread > 0)
    n = len(z)
    strength = np.abs(z.T @ z) / n
    for lag in range(1, min(max_lag, n - 2) + 1):
        lagged = np.abs(z[lag:].T @ z[:-lag]) / (n - lag)
        strength = np.maximum(strength, np.maximum(lagged, lagged.T))
    strength = np.clip(strength, 0.0, 1.0)
    np.fill_diagonal(strength, 1.0)
    return np.asarray(strength, dtype=np.float64)
