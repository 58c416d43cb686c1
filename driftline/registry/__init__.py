"""Model versions in MLflow: bundles of ONNX/native members, the one inference path, aliases."""

from driftline.contracts import CHALLENGER, CHAMPION
from driftline.registry.bundle import (
    BundleContents,
    BundleError,
    MemberArtifact,
    ModelBundle,
    read_bundle,
    write_bundle,
)
from driftline.registry.flavours import UnknownFlavourError
from driftline.registry.onnx import OnnxParityError
from driftline.registry.predictor import (
    EnsemblePredictor,
    FeatureInputError,
    MemberRuntime,
    load_member,
    load_native_member,
)
from driftline.registry.registry import (
    ModelNotFoundError,
    Registration,
    Registry,
    RegistryError,
    VersionInfo,
)

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "BundleContents",
    "BundleError",
    "EnsemblePredictor",
    "FeatureInputError",
    "MemberArtifact",
    "MemberRuntime",
    "ModelBundle",
    "ModelNotFoundError",
    "OnnxParityError",
    "Registration",
    "Registry",
    "RegistryError",
    "UnknownFlavourError",
    "VersionInfo",
    "load_member",
    "load_native_member",
    "read_bundle",
    "write_bundle",
]
