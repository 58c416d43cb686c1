"""The empirical null: what it stores, how it shrinks sample sizes, and what it refuses."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from driftline.drift import stats
from driftline.drift.calibration import CalibrationError, NullModel, calibrate


def test_null_model_round_trips_through_json(null: NullModel) -> None:
    again = NullModel.from_dict(json.loads(json.dumps(null.to_dict())))
    assert again == null


def test_persistent_features_get_smaller_effective_samples(null: NullModel) -> None:
    effective = np.array([c.ks_effective_n for c in null.columns])
    nominal = stats.nominal_n(null.window, null.n_reference)
    assert (effective <= nominal + 1e-9).all()
    # Features are ordered from independent (rho 0) to very persistent (rho 0.97).
    assert effective[0] > 5 * effective[-1]
    assert np.corrcoef(np.arange(len(effective)), effective)[0, 1] < -0.8


def test_prediction_is_calibrated_and_target_is_not() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"a": rng.normal(size=200), "prediction": rng.normal(size=200), "target": 0.0}
    )
    assert calibrate(frame, 50).names == ["a", "prediction"]


@pytest.mark.parametrize(
    ("rows", "window", "message"),
    [(100, 90, "too short for windows of 90"), (100, 1, "too short to calibrate")],
)
def test_too_short_references_and_windows_are_refused(rows: int, window: int, message: str) -> None:
    frame = pd.DataFrame({"a": np.arange(rows, dtype=float)})
    with pytest.raises(CalibrationError, match=message):
        calibrate(frame, window)


def test_non_finite_reference_values_are_refused() -> None:
    frame = pd.DataFrame({"a": [1.0, np.nan] * 100, "b": 1.0})
    with pytest.raises(CalibrationError, match="non-finite values in a"):
        calibrate(frame, 50)


def test_other_formats_are_refused(null: NullModel) -> None:
    with pytest.raises(CalibrationError, match="format"):
        NullModel.from_dict({**null.to_dict(), "format": 99})


def test_the_vectorised_null_equals_block_by_block_ks() -> None:
    from driftline.drift.calibration import _null_ks  # noqa: PLC0415  (private, tested directly)

    rng = np.random.default_rng(9)
    values = np.column_stack([rng.normal(size=300), rng.integers(0, 4, size=300).astype(float)])
    starts = np.array([0, 17, 150, 200])
    expected = [
        [
            stats.ks_statistic(
                values[s : s + 100, j], np.concatenate([values[:s, j], values[s + 100 :, j]])
            )
            for j in range(2)
        ]
        for s in starts
    ]
    assert _null_ks(values, 100, starts) == pytest.approx(np.array(expected))
