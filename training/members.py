"""Ensemble members by name: each one's Ray Tune search space and single-threaded estimator.

`rf` and `xgb` make the default ensemble; `hgb` (scikit-learn's histogram gradient boosting) is
available by name. Every member here stores and converts through a flavour the registry knows,
so serving runs any combination without code changes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Params = Mapping[str, Any]


class UnknownMemberError(ValueError):
    """A member name this code does not define."""


@dataclass(frozen=True, slots=True)
class MemberKind:
    """How to search and build one kind of member."""

    name: str
    space: Callable[[], dict[str, Any]]
    build: Callable[[Params, int], Any]


def _rf_space() -> dict[str, Any]:
    from ray import tune  # noqa: PLC0415  (fit workers need no Tune)

    return {
        "n_estimators": tune.qrandint(100, 300, 50),
        "max_depth": tune.randint(3, 11),
        # Daily returns are mostly noise: large leaves keep trees from memorising it.
        "min_samples_leaf": tune.lograndint(20, 300),
        "max_features": tune.uniform(0.2, 0.8),
    }


def _rf(params: Params, seed: int) -> Any:
    from sklearn.ensemble import RandomForestRegressor  # noqa: PLC0415

    return RandomForestRegressor(**params, n_jobs=1, random_state=seed)


def _xgb_space() -> dict[str, Any]:
    from ray import tune  # noqa: PLC0415  (fit workers need no Tune)

    return {
        "n_estimators": tune.qrandint(100, 400, 50),
        "max_depth": tune.randint(2, 7),
        "learning_rate": tune.loguniform(0.005, 0.1),
        "subsample": tune.uniform(0.5, 1.0),
        "colsample_bytree": tune.uniform(0.4, 1.0),
        "min_child_weight": tune.loguniform(10, 300),
        "reg_lambda": tune.loguniform(0.1, 100),
    }


def _xgb(params: Params, seed: int) -> Any:
    from xgboost import XGBRegressor  # noqa: PLC0415

    return XGBRegressor(**params, tree_method="hist", n_jobs=1, random_state=seed)


def _hgb_space() -> dict[str, Any]:
    from ray import tune  # noqa: PLC0415  (fit workers need no Tune)

    return {
        "max_iter": tune.qrandint(100, 400, 50),
        "learning_rate": tune.loguniform(0.005, 0.1),
        "max_leaf_nodes": tune.randint(4, 32),
        "min_samples_leaf": tune.lograndint(20, 300),
        "l2_regularization": tune.loguniform(1e-3, 10),
    }


def _hgb(params: Params, seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingRegressor  # noqa: PLC0415

    # Early stopping would carve its own validation split out of each fold: the folds decide.
    return HistGradientBoostingRegressor(**params, early_stopping=False, random_state=seed)


MEMBERS: dict[str, MemberKind] = {
    kind.name: kind
    for kind in (
        MemberKind("rf", _rf_space, _rf),
        MemberKind("xgb", _xgb_space, _xgb),
        MemberKind("hgb", _hgb_space, _hgb),
    )
}


def member_kind(name: str) -> MemberKind:
    """The member called `name`."""
    try:
        return MEMBERS[name]
    except KeyError:
        raise UnknownMemberError(
            f"unknown member {name!r}; choose from {', '.join(MEMBERS)}"
        ) from None


def native_importances(estimator: Any, names: list[str]) -> dict[str, float] | None:
    """The estimator's own importances (impurity or gain), normalised, when it has them."""
    values: npt.NDArray[np.float64] | None = getattr(estimator, "feature_importances_", None)
    if values is None:
        return None
    values = np.asarray(values, dtype=np.float64)
    total = values.sum()
    shares = values / total if total > 0 else values
    return {name: float(v) for name, v in zip(names, shares, strict=True)}
