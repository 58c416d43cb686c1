"""Targets and walk-forward splits: no training label window ever reaches a validation row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from driftline.splits import holdout_split, walk_forward_splits
from driftline.targets import forward_log_return


def test_forward_log_return_looks_exactly_horizon_bars_ahead() -> None:
    close = pd.Series([100.0, 110.0, 99.0, 120.0])
    target = forward_log_return(close, horizon=2)
    assert target.iloc[0] == pytest.approx(np.log(99.0 / 100.0))
    assert target.iloc[1] == pytest.approx(np.log(120.0 / 110.0))
    assert target.iloc[2:].isna().all()


@given(
    n_rows=st.integers(min_value=60, max_value=3000),
    n_splits=st.integers(min_value=2, max_value=8),
    horizon=st.integers(min_value=1, max_value=10),
    extra_embargo=st.integers(min_value=0, max_value=5),
)
def test_no_training_label_window_overlaps_a_validation_row(
    n_rows: int, n_splits: int, horizon: int, extra_embargo: int
) -> None:
    folds = walk_forward_splits(
        n_rows, n_splits=n_splits, horizon=horizon, embargo=horizon + extra_embargo
    )
    assert len(folds) == n_splits
    previous_stop = None
    for fold in folds:
        label_ends = fold.train + horizon  # row t's label uses bars up to t + horizon
        assert label_ends.max() < fold.validation.min()
        assert np.array_equal(
            fold.validation, np.arange(fold.validation[0], fold.validation[-1] + 1)
        )
        assert fold.train[0] == 0  # expanding window
        if previous_stop is not None:
            assert fold.validation[0] == previous_stop
        previous_stop = fold.validation[-1] + 1
    assert previous_stop == n_rows
    sizes = [len(f.train) for f in folds]
    assert sizes == sorted(sizes)


@given(
    n_rows=st.integers(min_value=50, max_value=5000),
    fraction=st.floats(min_value=0.05, max_value=0.45),
    horizon=st.integers(min_value=1, max_value=10),
)
def test_holdout_is_last_and_embargoed(n_rows: int, fraction: float, horizon: int) -> None:
    development, holdout = holdout_split(n_rows, fraction=fraction, horizon=horizon)
    assert holdout[-1] == n_rows - 1
    assert development.max() + horizon < holdout.min()


def test_an_embargo_shorter_than_the_horizon_is_refused() -> None:
    with pytest.raises(ValueError, match="embargo 1 is shorter than the target horizon 5"):
        walk_forward_splits(1000, n_splits=3, horizon=5, embargo=1)
