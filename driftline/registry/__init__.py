"""Model versions in MLflow: bundles of ONNX/native members, the one inference path, aliases."""

from driftline.contracts import CHALLENGER, CHAMPION
from driftline.registry.bundle import (
    ArtifactIntegrityError,
    BundleContents,
    BundleError,
    MemberArtifact,
    ModelBundle,
    read_bundle,
    write_bundle,
)
from driftline.registry.flavours import UnknownFlavourError
from driftline.registry.onnx import OnnxParityError
from driftline.registry.outputs import PREDICTION, member_output, named_outputs, output_names
from driftline.registry.predictor import (
    EnsemblePredictor,
    FeatureInputError,
    MemberRuntime,
    NativeMemberRefusedError,
    combine,
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
    "PREDICTION",
    "ArtifactIntegrityError",
    "BundleContents",
    "BundleError",
    "EnsemblePredictor",
    "FeatureInputError",
    "MemberArtifact",
    "MemberRuntime",
    "ModelBundle",
    "ModelNotFoundError",
    "NativeMemberRefusedError",
    "OnnxParityError",
    "Registration",
    "Registry",
    "RegistryError",
    "UnknownFlavourError",
    "VersionInfo",
    "combine",
    "load_member",
    "load_native_member",
    "member_output",
    "named_outputs",
    "output_names",
    "read_bundle",
    "write_bundle",
]
