"""Small fitted members and bundle contents, built without MLflow or Ray."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor
from xgboost import XGBRegressor

from driftline.features import FeatureSpec, default_spec
from driftline.registry import BundleContents


@pytest.fixture(scope="module")
def spec() -> FeatureSpec:
    return default_spec()


@pytest.fixture(scope="module")
def xy(spec: FeatureSpec) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, len(spec.names)))
    y = 0.01 * (0.3 * x[:, 0] - 0.2 * x[:, 1] + rng.normal(size=400))
    return x, y


@pytest.fixture(scope="module")
def estimators(xy: tuple[np.ndarray, np.ndarray]) -> dict[str, Any]:
    x, y = xy
    return {
        "rf": RandomForestRegressor(30, max_depth=5, n_jobs=1, random_state=0).fit(x, y),
        "xgb": XGBRegressor(n_estimators=40, max_depth=3, n_jobs=1).fit(x, y),
        "hgb": HistGradientBoostingRegressor(max_iter=40, early_stopping=False).fit(x, y),
    }


def make_contents(
    spec: FeatureSpec,
    xy: tuple[np.ndarray, np.ndarray],
    estimators: dict[str, Any],
    **overrides: Any,
) -> BundleContents:
    x, y = xy
    index = pd.bdate_range("2020-01-01", periods=len(x), name="date")
    reference = pd.DataFrame(x, index=index, columns=spec.names)
    reference["prediction"] = 0.0
    reference["target"] = y
    options: dict[str, Any] = {
        "model_name": "market-ensemble",
        "spec": spec,
        "estimators": estimators,
        "weights": {name: 1.0 / len(estimators) for name in estimators},
        "intercept": 0.0,
        "horizon": 1,
        "evaluation": {"summary": "synthetic"},
        "importances": {"members": {}},
        "data_window": {"source": "synthetic", "rows": len(x)},
        "reference": reference,
        "equity_curve_png": b"\x89PNG\r\n\x1a\n",
        "parity_rows": x[:100],
    }
    options.update(overrides)
    return BundleContents(**options)
