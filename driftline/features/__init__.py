"""Scale-free technical indicators from OHLCV bars, declared once for training and serving."""

from driftline.features.compute import (
    FeatureComputationError,
    InsufficientBarsError,
    compute_matrix,
    compute_vector,
)
from driftline.features.spec import (
    Feature,
    FeatureSpec,
    UnsupportedFeatureSpecError,
    default_spec,
)

__all__ = [
    "Feature",
    "FeatureComputationError",
    "FeatureSpec",
    "InsufficientBarsError",
    "UnsupportedFeatureSpecError",
    "compute_matrix",
    "compute_vector",
    "default_spec",
]
