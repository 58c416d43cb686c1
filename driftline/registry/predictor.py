"""The one inference runtime: load a version's members (ONNX Runtime first), combine by weight.

Serving (Ray members and combiner, the KServe predictor), the gates, training's evaluation and
the benchmarks all predict through here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd

from driftline.registry.bundle import BundleError, MemberArtifact, ModelBundle, verify_sha256
from driftline.registry.flavours import flavour
from driftline.registry.onnx import OnnxSession

Array = npt.NDArray[np.float64]


class FeatureInputError(ValueError):
    """Input rows do not match the model's features (names, width or finiteness)."""


class _Predict(Protocol):
    def __call__(self, x: Array, /) -> Array: ...


@dataclass(frozen=True, slots=True)
class MemberRuntime:
    """A loaded member: its name, which runtime runs it ("onnx" or "native"), and predict."""

    name: str
    runtime: str
    predict: _Predict


class NativeMemberRefusedError(BundleError):
    """A member would run natively (unpickling its model) where only ONNX artifacts may load."""


def runtime_of(
    member: MemberArtifact, *, prefer_onnx: bool = True, allow_native: bool = True
) -> str:
    """Which runtime runs `member`: "onnx" when it has an artifact that is preferred or required."""
    use_onnx = member.onnx_path is not None and (prefer_onnx or not allow_native)
    return "onnx" if use_onnx else "native"


def load_member(
    member: MemberArtifact, *, prefer_onnx: bool = True, allow_native: bool = True
) -> MemberRuntime:
    """The member in ONNX Runtime or natively (`runtime_of`), its file checked against its
    recorded SHA-256 first (ArtifactIntegrityError); NativeMemberRefusedError when it would
    have to run natively and `allow_native` is off (serving and the gates unless configured)."""
    if runtime_of(member, prefer_onnx=prefer_onnx, allow_native=allow_native) == "onnx":
        assert member.onnx_path is not None
        verify_sha256(member.onnx_path, member.onnx_sha256)
        return MemberRuntime(member.name, "onnx", OnnxSession(member.onnx_path).predict)
    if not allow_native:
        raise NativeMemberRefusedError(
            f"member {member.name} has no ONNX artifact and native (pickled) members may not "
            "be loaded here (DRIFTLINE_ALLOW_NATIVE_MEMBERS)"
        )
    verify_sha256(member.native_path, member.native_sha256)
    return MemberRuntime(member.name, "native", flavour(member.flavour).load(member.native_path))


def load_native_member(member: MemberArtifact) -> Any:
    """The member's native model object (a scikit-learn estimator or an XGBoost Booster)."""
    verify_sha256(member.native_path, member.native_sha256)
    return flavour(member.flavour).load_model(member.native_path)


def combine(outputs: Mapping[str, Array], weights: Mapping[str, float], intercept: float) -> Array:
    """Intercept plus the weighted sum of member outputs, summed in `weights` order."""
    total = np.full(len(next(iter(outputs.values()))), intercept, dtype=np.float64)
    for name, weight in weights.items():
        total = total + weight * np.asarray(outputs[name], dtype=np.float64)
    return total


MemberTimer = Callable[[str, float], None]


class EnsemblePredictor:
    """Predicts with every member of a bundle and combines them: intercept + sum(w * member)."""

    def __init__(
        self, bundle: ModelBundle, *, prefer_onnx: bool = True, allow_native: bool = True
    ) -> None:
        self.bundle = bundle
        self.members = [
            load_member(m, prefer_onnx=prefer_onnx, allow_native=allow_native)
            for m in bundle.members
        ]
        self._names = bundle.spec.names

    def predict(self, features: pd.DataFrame | npt.ArrayLike) -> tuple[Array, dict[str, Array]]:
        """The ensemble prediction per row and each member's prediction, keyed by member name."""
        return self.predict_rows(self.to_matrix(features))

    def predict_rows(
        self, x: Array, *, timer: MemberTimer | None = None
    ) -> tuple[Array, dict[str, Array]]:
        """`predict` for rows already validated; `timer(member, seconds)` hears each member."""
        outputs = {}
        for member in self.members:
            started = time.perf_counter()
            outputs[member.name] = member.predict(x)
            if timer is not None:
                timer(member.name, time.perf_counter() - started)
        return combine(outputs, self.bundle.weights, self.bundle.intercept), outputs

    def to_matrix(self, features: pd.DataFrame | npt.ArrayLike) -> Array:
        """Validated float64 rows in the model's feature order; FeatureInputError otherwise."""
        if isinstance(features, pd.DataFrame):
            missing = [n for n in self._names if n not in features.columns]
            if missing:
                raise FeatureInputError(
                    f"missing feature column(s): {', '.join(missing[:5])}"
                    + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
                )
            features = features.loc[:, self._names]
        try:
            x = np.asarray(features, dtype=np.float64)
        except (TypeError, ValueError):
            raise FeatureInputError("features must be numbers") from None
        if x.ndim == 1:
            x = x.reshape(1, -1)
        if x.ndim != 2 or x.shape[1] != len(self._names):
            raise FeatureInputError(
                f"expected rows of {len(self._names)} features, got shape {list(x.shape)}"
            )
        bad = ~np.isfinite(x)
        if bad.any():
            row, column = np.argwhere(bad)[0]
            raise FeatureInputError(f"row {row}: feature {self._names[column]} is not finite")
        return np.ascontiguousarray(x)
