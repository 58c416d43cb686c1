"""The labelled matrix: targets look exactly `horizon` bars ahead, splits never leak."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from driftline.features import default_spec
from training.dataset import build_dataset


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    rng = np.random.default_rng(4)
    n = 700
    close = 100 * np.exp(np.cumsum(rng.normal(0.0003, 0.01, n)))
    open_ = close * np.exp(rng.normal(0, 0.002, n))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, n))
    volume = rng.uniform(1e6, 2e6, n)
    index = pd.bdate_range("2010-01-04", periods=n, name="date")
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index
    )


@pytest.mark.parametrize("horizon", [1, 3])
def test_targets_returns_and_splits_line_up(bars: pd.DataFrame, horizon: int) -> None:
    spec = default_spec()
    data = build_dataset(bars, spec, horizon=horizon, holdout_fraction=0.2, cv_splits=3)
    log_close = np.log(bars["close"])
    first = data.features.index[0]
    assert first == bars.index[spec.window - 1]
    # Every labelled row: the target is the next `horizon` bars, the strategy earns the next one.
    t = bars.index.get_loc(data.features.index[10])
    assert data.target.iloc[10] == pytest.approx(log_close.iloc[t + horizon] - log_close.iloc[t])
    assert data.next_return.iloc[10] == pytest.approx(log_close.iloc[t + 1] - log_close.iloc[t])
    assert data.previous_return.iloc[10] == pytest.approx(
        log_close.iloc[t] - log_close.iloc[t - horizon]
    )
    assert data.features.index[-1] == bars.index[-1 - horizon]
    assert not data.target.isna().any()
    # The hold-out follows development after an embargo of at least the horizon.
    assert data.holdout[0] - data.development[-1] > horizon
    assert data.holdout[-1] == len(data.features) - 1
    for fold in data.folds:
        assert fold.train.max() + horizon < fold.validation.min()
        assert fold.validation.max() <= data.development[-1]
