"""Registered versions the end-to-end tests derive from a trained one, through the real registry.

Each goes through `Registry.register` (bundle written, ONNX converted and parity checked, MLflow
run and version), exactly as the training job registers: only the members' source differs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import pandas as pd

from driftline.config import Settings
from driftline.registry import BundleContents, MemberArtifact, ModelBundle, Registry


def register_variant(
    settings: Settings,
    bundle: ModelBundle,
    *,
    model_name: str,
    why: str,
    intercept_shift: float = 0.0,
) -> str:
    """Register `bundle`'s members under `model_name`, every forecast plus `intercept_shift`."""
    names = bundle.spec.names
    reference = bundle.reference.copy()
    # The reference's predictions are the version's own: shift them like it.
    reference["prediction"] = reference["prediction"] + intercept_shift
    contents = BundleContents(
        model_name=model_name,
        spec=bundle.spec,
        estimators={m.name: _estimator(m) for m in bundle.members},
        weights=dict(bundle.weights),
        intercept=bundle.intercept + intercept_shift,
        horizon=bundle.horizon,
        evaluation=bundle.evaluation,
        importances=bundle.importances,
        data_window=bundle.data_window,
        reference=reference,
        equity_curve_png=(bundle.local_dir / "equity_curve.png").read_bytes(),
        parity_rows=reference[names].to_numpy(dtype="float64")[-200:],
    )
    registration = Registry(settings, name=model_name).register(
        contents,
        params={
            "derived_from": f"{bundle.name}/{bundle.version}",
            "intercept_shift": intercept_shift,
        },
        metrics={},
        tags={"driftline.e2e": why},
        input_example=pd.DataFrame(reference[names].head(5)),
        run_name=f"e2e-{why.split(maxsplit=1)[0]}",
    )
    return registration.version


def artifact_files(settings: Settings, model_name: str) -> set[Path]:
    """Every member artifact file of `model_name` in the local artifact store."""
    root = settings.artifact_root / model_name
    return {p for p in root.rglob("members/*/*") if p.is_file()}


def corrupt(paths: set[Path]) -> None:
    """Damage stored artifacts the way a torn upload or a bad disk would: truncated garbage."""
    for path in paths:
        data = path.read_bytes()
        path.write_bytes(b"\x00corrupt\x00" + data[: len(data) // 3])


def _estimator(member: MemberArtifact) -> Any:
    if member.flavour == "xgboost":
        from xgboost import XGBRegressor  # noqa: PLC0415

        regressor = XGBRegressor()
        regressor.load_model(member.native_path)
        return regressor
    return joblib.load(member.native_path)
