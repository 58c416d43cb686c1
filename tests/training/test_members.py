"""Every member: its search space builds an estimator that fits, and the registry can store it."""

from __future__ import annotations

import numpy as np
import pytest

from driftline.registry.flavours import flavour_of
from driftline.registry.onnx import OnnxSession
from training.members import MEMBERS, member_kind, native_importances


@pytest.mark.parametrize("name", sorted(MEMBERS))
def test_sampled_parameters_build_a_member_that_fits_and_converts(name: str) -> None:
    kind = member_kind(name)
    params = {key: domain.sample() for key, domain in kind.space().items()}
    params = {k: (v.item() if hasattr(v, "item") else v) for k, v in params.items()}
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 8))
    y = 0.01 * x[:, 0] + rng.normal(0, 0.01, 1000)
    estimator = kind.build(params, 0).fit(x, y)
    flavour = flavour_of(estimator)
    onnx = OnnxSession(flavour.to_onnx(estimator, 8)).predict(x)
    assert np.max(np.abs(onnx - estimator.predict(x))) < 1e-6
    importances = native_importances(estimator, [f"f{i}" for i in range(8)])
    if importances is not None:
        assert sum(importances.values()) == pytest.approx(1.0)


def test_an_unknown_member_is_named_with_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown member 'svm'; choose from rf, xgb, hgb"):
        member_kind("svm")
