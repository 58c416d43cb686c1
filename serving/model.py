"""What serving needs from a registered model version, and one member's predict runtime."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from driftline.features import FeatureSpec

Array = npt.NDArray[np.float64]


class BundleMember(Protocol):
    """A member as `driftline.registry.ModelBundle.members` describes it."""

    name: str
    flavour: str
    native_path: Any
    onnx_path: Any


@dataclass(frozen=True)
class ServedMember:
    """One ensemble member: its name, flavour and where its artifacts lie."""

    name: str
    flavour: str
    native_path: Path | None
    onnx_path: Path | None


@dataclass(frozen=True)
class ServedModel:
    """A model version as serving sees it: spec, members and the linear combination."""

    name: str
    version: str
    spec: FeatureSpec
    members: tuple[ServedMember, ...]
    weights: Mapping[str, float]
    intercept: float
    evaluation: Mapping[str, Any] = field(default_factory=dict)

    @property
    def member_names(self) -> list[str]:
        """Member names in bundle order."""
        return [m.name for m in self.members]

    def combine(self, outputs: Mapping[str, Array]) -> Array:
        """The ensemble output: intercept plus the weighted sum of member outputs."""
        return combine(outputs, self.weights, self.intercept)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready description for the models endpoint and metadata."""
        return {
            "name": self.name,
            "version": self.version,
            "members": [
                {"name": m.name, "flavour": m.flavour, "runtime": _runtime_name(m)}
                for m in self.members
            ],
            "weights": dict(self.weights),
            "intercept": self.intercept,
            "spec_hash": self.spec.hash,
            "n_features": len(self.spec.features),
            "window": self.spec.window,
            "evaluation": dict(self.evaluation),
        }


def combine(outputs: Mapping[str, Array], weights: Mapping[str, float], intercept: float) -> Array:
    """Intercept plus the weighted sum of member outputs (in `weights` order)."""
    first = next(iter(weights))
    total = np.full(len(outputs[first]), intercept, dtype=np.float64)
    for name, weight in weights.items():
        total = total + weight * outputs[name]
    return total


def served_model(bundle: Any) -> ServedModel:
    """Adapt a registry `ModelBundle` (or anything shaped like one) for serving."""
    members = tuple(
        ServedMember(
            name=str(m.name),
            flavour=str(m.flavour),
            native_path=Path(m.native_path) if m.native_path else None,
            onnx_path=Path(m.onnx_path) if m.onnx_path else None,
        )
        for m in bundle.members
    )
    return ServedModel(
        name=str(bundle.name),
        version=str(bundle.version),
        spec=bundle.spec,
        members=members,
        weights=_weights(bundle.weights, [m.name for m in members]),
        intercept=float(bundle.intercept),
        evaluation=dict(getattr(bundle, "evaluation", None) or {}),
    )


def _weights(weights: Any, names: Sequence[str]) -> dict[str, float]:
    if isinstance(weights, Mapping):
        return {name: float(weights[name]) for name in names}
    values = [float(w) for w in weights]
    if len(values) != len(names):
        raise ValueError(f"{len(values)} weights for {len(names)} members")
    return dict(zip(names, values, strict=True))


def _runtime_name(member: ServedMember) -> str:
    return "onnx" if member.onnx_path else "native"


class MemberRuntime:
    """One member's predict: ONNX Runtime when an artifact exists, else the native model."""

    def __init__(self, member: ServedMember, *, prefer_onnx: bool = True, threads: int = 1):
        self.member = member
        self.runtime = "onnx" if prefer_onnx and member.onnx_path else "native"
        self._predict = (
            _onnx_predictor(member.onnx_path, threads)
            if self.runtime == "onnx" and member.onnx_path
            else _native_predictor(member)
        )

    def predict(self, rows: Array) -> Array:
        """Predictions for `rows` (n x features) as float64, one per row."""
        return np.asarray(self._predict(rows), dtype=np.float64).reshape(-1)


def _onnx_predictor(path: Path, threads: int) -> Callable[[Array], Any]:
    import onnxruntime as ort  # noqa: PLC0415  (heavy; only member replicas need it)

    options = ort.SessionOptions()
    # Replicas share a few cores: one thread each avoids oversubscription and tail spikes.
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    spec = session.get_inputs()[0]
    dtype = np.float64 if spec.type == "tensor(double)" else np.float32
    name = spec.name

    def predict(rows: Array) -> Any:
        return session.run(None, {name: rows.astype(dtype, copy=False)})[0]

    return predict


def _native_predictor(member: ServedMember) -> Callable[[Array], Any]:
    # The registry owns artifact formats (and MLflow); it loads native members for us.
    registry = importlib.import_module("driftline.registry")
    model = registry.load_native_member(member)
    method: Callable[[Array], Any] = (
        model.inplace_predict
        if member.flavour == "xgboost" and hasattr(model, "inplace_predict")
        else model.predict
    )
    return method


@dataclass(frozen=True)
class ModelRef:
    """Which version to serve and which function loads its bundle (`module:function`)."""

    name: str
    version: str
    loader: str = "serving.model:registry_bundle"

    def load(self, settings: Any) -> ServedModel:
        """Load the bundle (downloading it if needed) and adapt it for serving."""
        module_name, function = self.loader.split(":")
        load = getattr(importlib.import_module(module_name), function)
        return served_model(load(settings, self.name, self.version))


def registry_bundle(settings: Any, name: str, ref: str) -> Any:
    """The bundle of version or alias `ref` of model `name` from the MLflow registry."""
    registry = importlib.import_module("driftline.registry")
    # By `name`, not the replica's configured model: one Serve cluster can serve several.
    return registry.Registry(settings, name=name).load_bundle(ref)
