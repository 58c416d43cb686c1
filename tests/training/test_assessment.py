"""The reference sample and MLflow metric names derived from a run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from driftline.splits import Fold
from training.assessment import metrics_for_mlflow, reference_sample
from training.dataset import Dataset


def _dataset(n: int = 120) -> Dataset:
    index = pd.bdate_range("2015-01-01", periods=n, name="date")
    features = pd.DataFrame({"f1": np.arange(n, dtype=float), "f2": 1.0}, index=index)
    target = pd.Series(np.linspace(-0.01, 0.01, n), index=index)
    development, holdout = np.arange(0, 99), np.arange(100, n)
    folds = [Fold(np.arange(0, 40), np.arange(41, 70)), Fold(np.arange(0, 69), np.arange(70, 99))]
    return Dataset(features, target, target, target, development, holdout, folds)


def test_the_reference_is_the_contiguous_out_of_fold_tail_of_development() -> None:
    data = _dataset()
    oof = np.full(99, np.nan)
    oof[41:99] = np.arange(58) / 1000
    reference = reference_sample(data, {"rf": oof, "xgb": oof}, {"rf": 0.5, "xgb": 0.5}, 30)
    assert len(reference) == 30
    assert reference.index[-1] == data.features.index[98]
    assert reference["f1"].tolist() == list(np.arange(69, 99, dtype=float))
    assert reference["prediction"].to_numpy() == pytest.approx(oof[69:99])
    assert reference["target"].to_numpy() == pytest.approx(data.target.iloc[69:99].to_numpy())
    assert len(reference_sample(data, {"rf": oof}, {"rf": 1.0}, 1000)) == 58


def test_a_gap_in_the_out_of_fold_tail_is_refused() -> None:
    oof = np.full(99, np.nan)
    oof[41:99] = 0.001
    oof[80] = np.nan
    with pytest.raises(ValueError, match="not contiguous"):
        reference_sample(_dataset(), {"rf": oof}, {"rf": 1.0}, 50)


def test_mlflow_metrics_skip_undefined_values() -> None:
    section = {
        "statistical": {"rmse": 0.01, "directional_accuracy": None},
        "financial": {"sharpe": 0.5},
    }
    report = {
        "model": section,
        "members": {"rf": section},
        "baselines": {"zero_return": section},
        "comparisons": {
            "zero_return": {"diebold_mariano": {"statistic": 1.0, "pvalue": 0.2}, "beaten": False}
        },
    }
    flat = metrics_for_mlflow(report)
    assert flat["holdout/ensemble/rmse"] == 0.01
    assert flat["holdout/member/rf/sharpe"] == 0.5
    assert flat["holdout/baseline/zero_return/rmse"] == 0.01
    assert flat["dm_pvalue/zero_return"] == 0.2
    assert flat["beaten/zero_return"] == 0.0
    assert not any("directional_accuracy" in k for k in flat)
