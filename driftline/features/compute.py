"""One path from bars to features: the training matrix is the serving vector, window by window."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from driftline.data import COLUMNS
from driftline.features.indicators import INDICATORS, Window
from driftline.features.spec import FeatureSpec


class InsufficientBarsError(ValueError):
    """Fewer bars than the spec's window."""


class FeatureComputationError(ValueError):
    """A feature came out NaN or infinite."""


def compute_vector(bars: pd.DataFrame, spec: FeatureSpec) -> npt.NDArray[np.float64]:
    """The feature vector at the last bar, computed from the last `spec.window` bars."""
    if len(bars) < spec.window:
        raise InsufficientBarsError(
            f"{len(bars)} bars given; the feature spec needs a window of {spec.window}"
        )
    columns = _columns(bars)
    vector = _vector(columns[:, -spec.window :], spec)
    _require_finite(vector, spec, bars.index[-1] if len(bars.index) else None)
    return vector


def compute_matrix(bars: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """One feature row per bar that has a full window behind it, indexed by that bar's date."""
    columns = _columns(bars)
    n = columns.shape[1]
    if n < spec.window:
        raise InsufficientBarsError(f"{n} bars given; the feature spec needs {spec.window}")
    rows = np.empty((n - spec.window + 1, len(spec.features)), dtype=np.float64)
    for i, end in enumerate(range(spec.window, n + 1)):
        rows[i] = _vector(columns[:, end - spec.window : end], spec)
    index = bars.index[spec.window - 1 :]
    for i in np.flatnonzero(~np.isfinite(rows).all(axis=1))[:1]:
        _require_finite(rows[i], spec, index[i])
    return pd.DataFrame(rows, index=index, columns=spec.names)


def _columns(bars: pd.DataFrame) -> npt.NDArray[np.float64]:
    # Feature-major layout so that every window slice of a column is C-contiguous for TA-Lib.
    return np.ascontiguousarray(bars.loc[:, list(COLUMNS)].to_numpy(dtype=np.float64).T)


def _vector(window: npt.NDArray[np.float64], spec: FeatureSpec) -> npt.NDArray[np.float64]:
    w = Window(*(np.ascontiguousarray(window[j]) for j in range(len(COLUMNS))))
    out = np.empty(len(spec.features), dtype=np.float64)
    for j, feature in enumerate(spec.features):
        out[j] = INDICATORS[feature.indicator](w, **feature.params)[-1]
    return out


def _require_finite(vector: npt.NDArray[np.float64], spec: FeatureSpec, when: Any) -> None:
    bad = ~np.isfinite(vector)
    if bad.any():
        names = ", ".join(np.asarray(spec.names)[bad][:5])
        at = f" at {pd.Timestamp(when).date()}" if when is not None else ""
        raise FeatureComputationError(f"non-finite feature(s) {names}{at}")
