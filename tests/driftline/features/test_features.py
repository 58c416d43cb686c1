"""One feature path for training and serving: bit-identical rows, no look-ahead, a stable spec."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.data import load_bars
from driftline.features import (
    FeatureSpec,
    InsufficientBarsError,
    UnsupportedFeatureSpecError,
    compute_matrix,
    compute_vector,
    default_spec,
)

SPEC = default_spec()


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    """Two years of real bars spanning the 2008 crash: volatile data exercises every indicator."""
    return load_bars().loc["2007-06-01":"2009-06-30"]


@pytest.fixture(scope="module")
def matrix(bars: pd.DataFrame) -> pd.DataFrame:
    return compute_matrix(bars, SPEC)


def test_spec_has_30_plus_scale_free_features_in_every_group() -> None:
    assert len(SPEC.features) >= 30
    assert {f.group for f in SPEC.features} == {
        "returns",
        "trend",
        "momentum",
        "volatility",
        "volume",
        "candle",
    }


def test_batch_rows_equal_window_vectors_bit_for_bit(
    bars: pd.DataFrame, matrix: pd.DataFrame
) -> None:
    positions = range(SPEC.window - 1, len(bars), 7)
    for end in positions:
        # Serving receives exactly the window that ends at t, possibly with older bars before it.
        start = max(0, end + 1 - SPEC.window - (end % 3) * 10)
        vector = compute_vector(bars.iloc[start : end + 1], SPEC)
        row = matrix.loc[bars.index[end]].to_numpy()
        assert vector.tobytes() == row.tobytes(), bars.index[end]


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cut=st.integers(min_value=300, max_value=480), seed=st.integers(0, 2**32 - 1))
def test_no_feature_at_t_changes_when_later_bars_change(
    bars: pd.DataFrame, matrix: pd.DataFrame, cut: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    altered = bars.copy()
    later = altered.index[cut + 1 :]
    scale = rng.uniform(0.5, 1.5, size=len(later))
    altered.loc[later, ["open", "high", "low", "close"]] = altered.loc[
        later, ["open", "high", "low", "close"]
    ].mul(scale, axis=0)
    altered.loc[later, "volume"] *= rng.uniform(0.1, 10.0, size=len(later))
    recomputed = compute_matrix(altered, SPEC)
    up_to_t = matrix.loc[: bars.index[cut]]
    assert recomputed.loc[: bars.index[cut]].to_numpy().tobytes() == up_to_t.to_numpy().tobytes()
    assert not recomputed.loc[later].equals(matrix.loc[later])


def test_spec_hash_is_stable_and_round_trips() -> None:
    # Pinned: a change here means every registered version's features would be computed anew.
    assert SPEC.hash == "cafd19dbe6fe" + SPEC.hash[12:]
    again = FeatureSpec.from_dict(SPEC.to_dict())
    assert again == SPEC
    assert again.hash == SPEC.hash
    reordered = FeatureSpec(features=tuple(reversed(SPEC.features)), window=SPEC.window)
    assert reordered.hash != SPEC.hash


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"indicator": "magic"}, "unknown indicator 'magic'"),
        (
            {"params": {"period": 5, "extra": 1}},
            "takes \\['period'\\], got \\['extra', 'period'\\]",
        ),
    ],
)
def test_specs_this_code_cannot_compute_are_refused(
    change: dict[str, object], message: str
) -> None:
    data = SPEC.to_dict()
    data["features"][11] = {**data["features"][11], **change}
    with pytest.raises(UnsupportedFeatureSpecError, match=message):
        FeatureSpec.from_dict(data)
    with pytest.raises(UnsupportedFeatureSpecError, match="implementation 99"):
        FeatureSpec.from_dict({**SPEC.to_dict(), "implementation": 99})


def test_too_few_bars_for_the_window_is_a_clear_error(bars: pd.DataFrame) -> None:
    with pytest.raises(
        InsufficientBarsError, match="100 bars given; the feature spec needs a window of 260"
    ):
        compute_vector(bars.iloc[:100], SPEC)


def test_features_are_finite_over_the_whole_default_history() -> None:
    full = compute_matrix(load_bars(), SPEC)
    assert np.isfinite(full.to_numpy()).all()
    assert len(full) == 5031 - SPEC.window + 1
