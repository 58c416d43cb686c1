"""Ensemble weights learned from out-of-fold predictions: a convex combination of members."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize

Array = npt.NDArray[np.float64]
# Convex weights and no intercept: the ensemble is a weighted average of its members.
INTERCEPT = 0.0


def learn_weights(oof: Mapping[str, Array], target: Array) -> dict[str, float]:
    """Non-negative weights summing to one that minimise out-of-fold squared error.

    Only rows every member predicted out of fold count. A convex combination cannot amplify
    noise the way unconstrained stacking does, and stays interpretable as shares.
    """
    names = list(oof)
    if len(names) == 1:
        return {names[0]: 1.0}
    p = np.column_stack([oof[n] for n in names])
    rows = np.isfinite(p).all(axis=1) & np.isfinite(target)
    if rows.sum() < len(names):
        raise ValueError("too few out-of-fold rows to learn ensemble weights")
    p, y = p[rows], target[rows]
    # Rescaled so that the optimiser's tolerances suit daily-return magnitudes.
    scale = float(np.std(y)) or 1.0
    p, y = p / scale, y / scale
    k = len(names)
    result = minimize(
        lambda w: float(np.mean((y - p @ w) ** 2)),
        x0=np.full(k, 1.0 / k),
        jac=lambda w: -2.0 * p.T @ (y - p @ w) / len(y),
        bounds=[(0.0, 1.0)] * k,
        constraints=[{"type": "eq", "fun": lambda w: float(w.sum() - 1.0)}],
        method="SLSQP",
    )
    if not result.success:
        raise ValueError(f"ensemble weights did not converge: {result.message}")
    weights = np.clip(result.x, 0.0, None)
    weights /= weights.sum()
    return {n: float(w) for n, w in zip(names, weights, strict=True)}
