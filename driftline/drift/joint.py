"""One test over the whole feature vector: the whitened distance of a window from the reference.

Rows are standardised by the reference's means and deviations and whitened by its correlation
matrix (eigenvalues floored, so near-identities such as CMO = 2 RSI - 100 stay finite); the
statistic is the median squared distance per feature. A window whose features keep their
marginals but break their joint structure (two features that moved together now move apart)
lands in directions the reference hardly used, which no per-feature test can see. The median
keeps a single extreme day from deciding; its null comes from blocks of the reference scored
against the rest, as `calibration` does for the per-feature tests.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]

# Smallest eigenvalue of the reference's correlation matrix used when whitening (of 1 on average).
EIGEN_FLOOR = 0.01


def joint_statistic(reference: Array, current: Array) -> float:
    """Median squared whitened distance of `current` rows from `reference`, per feature."""
    mean = reference.mean(axis=0)
    spread = reference.std(axis=0)
    spread = np.where(spread > 0, spread, 1.0)
    z = (reference - mean) / spread
    eigenvalues, vectors = np.linalg.eigh(z.T @ z / len(z))
    whiten = vectors / np.sqrt(np.maximum(eigenvalues, EIGEN_FLOOR))
    distance = np.square(((current - mean) / spread) @ whiten).sum(axis=1)
    return float(np.median(distance)) / reference.shape[1]


def joint_null(values: Array, window: int, starts: npt.NDArray[np.int_]) -> Array:
    """`joint_statistic` of each block `values[s:s+window]` against the rest of `values`."""
    inside = np.zeros(len(values), dtype=bool)
    out = np.empty(len(starts))
    for i, start in enumerate(starts):
        inside[:] = False
        inside[start : start + window] = True
        out[i] = joint_statistic(values[~inside], values[inside])
    return out
