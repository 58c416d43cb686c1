"""Final member fits on all development rows, one Ray task per member, run in parallel."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import ray

from training.members import member_kind

Array = npt.NDArray[np.float64]


def _fit(member: str, params: dict[str, Any], seed: int, x: Array, y: Array) -> Any:
    return member_kind(member).build(params, seed).fit(x, y)


def fit_members(
    params: Mapping[str, dict[str, Any]], x: Array, y: Array, *, seed: int, cpus: float
) -> dict[str, Any]:
    """Each member fitted with its parameters; the fits run as concurrent Ray tasks."""
    fit = ray.remote(_fit).options(num_cpus=cpus)
    x_ref, y_ref = ray.put(np.ascontiguousarray(x)), ray.put(y)
    refs = [fit.remote(name, p, seed, x_ref, y_ref) for name, p in params.items()]
    return dict(zip(params, ray.get(refs), strict=True))
