"""Shared drift fixtures: a synthetic autocorrelated market-like process and its baseline."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from scipy.signal import lfilter

from driftline.drift.calibration import NullModel, calibrate

N_FEATURES = 36
REFERENCE_ROWS = 1000
WINDOW = 250
# Persistence from independent draws to daily-indicator levels (a 200-day SMA ratio is ~0.99).
RHOS = np.linspace(0.0, 0.97, N_FEATURES)
NAMES = [f"f{j:02d}" for j in range(N_FEATURES)]


def ar_process(n: int, seed: int) -> npt.NDArray[np.float64]:
    """Stationary AR(1) features with unit variance sharing a persistent common factor."""
    rng = np.random.default_rng(seed)
    burn = 500
    common = lfilter([1.0], [1.0, -0.9], rng.standard_normal(n + burn)) * np.sqrt(1 - 0.81)
    out = np.empty((n + burn, N_FEATURES))
    for j, rho in enumerate(RHOS):
        shocks = rng.standard_normal(n + burn) * np.sqrt(1 - rho**2)
        out[:, j] = lfilter([1.0], [1.0, -rho], shocks) + 0.3 * common
    return out[burn:]


@pytest.fixture(scope="session")
def series() -> npt.NDArray[np.float64]:
    """1,000 reference rows followed by 130 windows' worth of the same stationary process."""
    return ar_process(REFERENCE_ROWS + 130 * WINDOW, seed=7)


@pytest.fixture(scope="session")
def reference(series: npt.NDArray[np.float64]) -> pd.DataFrame:
    """The reference block: the first 1,000 rows."""
    return pd.DataFrame(series[:REFERENCE_ROWS], columns=NAMES)


@pytest.fixture(scope="session")
def null(reference: pd.DataFrame) -> NullModel:
    """The reference's null model for 250-row windows (calibrated once per session)."""
    return calibrate(reference, WINDOW)
