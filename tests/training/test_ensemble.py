"""Convex ensemble weights learned from out-of-fold predictions."""

from __future__ import annotations

import numpy as np
import pytest

from driftline.registry import combine
from training.ensemble import INTERCEPT, learn_weights


def test_known_convex_weights_are_recovered() -> None:
    rng = np.random.default_rng(0)
    a, b, c = (rng.normal(0, 0.01, 2000) for _ in range(3))
    target = 0.6 * a + 0.3 * b + 0.1 * c + rng.normal(0, 1e-4, 2000)
    weights = learn_weights({"a": a, "b": b, "c": c}, target)
    assert weights == pytest.approx({"a": 0.6, "b": 0.3, "c": 0.1}, abs=0.01)
    assert sum(weights.values()) == pytest.approx(1.0)


def test_a_useless_member_gets_no_weight_and_weights_stay_non_negative() -> None:
    rng = np.random.default_rng(1)
    signal = rng.normal(0, 0.01, 1000)
    anti = -signal + rng.normal(0, 0.001, 1000)
    weights = learn_weights({"good": signal, "anti": anti}, signal)
    assert weights["good"] == pytest.approx(1.0, abs=1e-6)
    assert weights["anti"] == pytest.approx(0.0, abs=1e-6)


def test_rows_some_member_did_not_predict_are_ignored() -> None:
    rng = np.random.default_rng(2)
    a = rng.normal(0, 0.01, 500)
    b = rng.normal(0, 0.01, 500)
    a[:100] = np.nan
    weights = learn_weights({"a": a, "b": b}, np.nan_to_num(a))
    assert weights["a"] > 0.99


def test_one_member_takes_all_the_weight_and_combine_sums() -> None:
    assert learn_weights({"rf": np.zeros(3)}, np.zeros(3)) == {"rf": 1.0}
    combined = combine(
        {"a": np.array([1.0, 2.0]), "b": np.array([3.0, 5.0])}, {"a": 0.25, "b": 0.75}, INTERCEPT
    )
    assert combined.tolist() == [2.5, 4.25]
