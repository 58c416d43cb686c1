"""The MLflow pyfunc face of a bundle: stock `mlflow.pyfunc.load_model` predicts from features."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.models import ModelSignature
from mlflow.pyfunc.model import PythonModel
from mlflow.types import ColSpec, Schema

from driftline.registry.bundle import read_bundle
from driftline.registry.outputs import named_outputs, output_names
from driftline.registry.predictor import EnsemblePredictor

BUNDLE_ARTIFACT = "bundle"


class EnsemblePyfunc(PythonModel):
    """Loads the bundle artifact and predicts through EnsemblePredictor (ONNX Runtime first)."""

    def load_context(self, context: Any) -> None:
        """Read the bundle MLflow unpacked next to the model."""
        bundle = read_bundle(Path(context.artifacts[BUNDLE_ARTIFACT]))
        self._predictor = EnsemblePredictor(bundle)

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        """A `prediction` column and one `member_<name>` column per member, row for row."""
        # MLflow reads these type hints: a DataFrame hint keeps it from re-validating rows.
        ensemble, members = self._predictor.predict(model_input)
        return pd.DataFrame(named_outputs(ensemble, members), index=model_input.index)


def signature(feature_names: list[str], member_names: list[str]) -> ModelSignature:
    """Float64 feature columns in; the ensemble and member predictions out."""
    return ModelSignature(
        inputs=Schema([ColSpec("double", name) for name in feature_names]),
        outputs=Schema([ColSpec("double", name) for name in output_names(member_names)]),
    )
