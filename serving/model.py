"""Which model version a colour serves, how its bundle is loaded, and how it describes itself.

Predicting is the registry's one runtime (`driftline.registry.predictor`); this module only
names the version and loads its bundle.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from driftline.config import Settings
from driftline.registry.bundle import ModelBundle
from driftline.registry.predictor import runtime_of


@dataclass(frozen=True)
class ModelRef:
    """Which version to serve and which function loads its bundle (`module:function`)."""

    name: str
    version: str
    loader: str = "serving.model:registry_bundle"

    def load(self, settings: Settings) -> ModelBundle:
        """The version's bundle, downloaded if needed."""
        module_name, function = self.loader.split(":")
        load = getattr(importlib.import_module(module_name), function)
        bundle: ModelBundle = load(settings, self.name, self.version)
        return bundle


def registry_bundle(settings: Settings, name: str, ref: str) -> ModelBundle:
    """The bundle of version or alias `ref` of model `name` from the MLflow registry."""
    from driftline.registry import Registry  # noqa: PLC0415  (MLflow imports slowly)

    # By `name`, not the replica's configured model: one Serve cluster can serve several.
    return Registry(settings, name=name).load_bundle(ref)


def summary(bundle: ModelBundle, settings: Settings) -> dict[str, Any]:
    """A JSON-ready description of a served version for the models endpoint and metadata."""
    return {
        "name": bundle.name,
        "version": bundle.version,
        "members": [
            {
                "name": m.name,
                "flavour": m.flavour,
                "runtime": runtime_of(
                    m,
                    prefer_onnx=settings.serving.prefer_onnx,
                    allow_native=settings.registry.allow_native_members,
                ),
            }
            for m in bundle.members
        ],
        "weights": dict(bundle.weights),
        "intercept": bundle.intercept,
        "spec_hash": bundle.spec.hash,
        "n_features": len(bundle.spec.features),
        "window": bundle.spec.window,
        "evaluation": dict(bundle.evaluation),
    }
