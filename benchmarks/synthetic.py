"""A real RandomForest + XGBoost pair on synthetic features, saved like a registry bundle.

Serving's benchmark and tests use it where a registered model is not needed: members are real
fitted models converted to ONNX (skl2onnx, onnxmltools at opset 15), the feature spec is
Driftline's default one, so raw-bar requests work too, and `load` returns the registry's own
`ModelBundle`, so the one runtime predicts it.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from driftline.config import Settings
from driftline.features import FeatureSpec, default_spec
from driftline.registry.bundle import MemberArtifact, ModelBundle
from driftline.registry.predictor import EnsemblePredictor

MANIFEST = "bundle.json"


def bundle_dir(settings: Settings, name: str, version: str) -> Path:
    """Where a synthetic bundle lives under the settings' home."""
    return settings.home / "synthetic" / name / version


def copy_bundle(settings: Settings, home: Path, version: str = "1") -> None:
    """Copy the synthetic bundle `make_bundle` saved under `settings.home` to another home."""
    name = settings.registry.model_name
    target = bundle_dir(settings.updated({"home": home}), name, version)
    shutil.copytree(bundle_dir(settings, name, version), target)


def make_bundle(
    settings: Settings,
    version: str = "1",
    *,
    trees: tuple[int, int] = (200, 300),
    depths: tuple[int, int] = (8, 6),
    rows: int = 3000,
    seed: int = 0,
    onnx: bool = True,
) -> ModelBundle:
    """Fit, convert and save a two-member ensemble; returns the loaded bundle."""
    import onnxmltools  # noqa: PLC0415  (conversion tools load slowly)
    import xgboost as xgb  # noqa: PLC0415
    from onnxmltools.convert.common.data_types import FloatTensorType as XgbFloat  # noqa: PLC0415
    from skl2onnx import convert_sklearn  # noqa: PLC0415
    from skl2onnx.common.data_types import FloatTensorType  # noqa: PLC0415
    from sklearn.ensemble import RandomForestRegressor  # noqa: PLC0415

    spec = default_spec()
    n = len(spec.features)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, n)).astype(np.float32)
    y = x[:, :5].sum(axis=1) * 0.01 + rng.normal(scale=0.01, size=rows)
    rf = RandomForestRegressor(
        n_estimators=trees[0], max_depth=depths[0], n_jobs=1, random_state=seed
    ).fit(x, y)
    booster = xgb.XGBRegressor(n_estimators=trees[1], max_depth=depths[1], n_jobs=1).fit(x, y)
    out = bundle_dir(settings, settings.registry.model_name, version)
    out.mkdir(parents=True, exist_ok=True)
    (out / "rf.pkl").write_bytes(pickle.dumps(rf))
    booster.save_model(out / "xgb.json")
    if onnx:
        rf_onnx = convert_sklearn(
            rf, initial_types=[("input", FloatTensorType([None, n]))], target_opset=15
        )
        (out / "rf.onnx").write_bytes(rf_onnx.SerializeToString())
        xgb_onnx = onnxmltools.convert_xgboost(
            booster, initial_types=[("input", XgbFloat([None, n]))], target_opset=15
        )
        (out / "xgb.onnx").write_bytes(xgb_onnx.SerializeToString())
    manifest = {
        "name": settings.registry.model_name,
        "version": version,
        "spec": spec.to_dict(),
        "members": [
            {
                "name": "rf",
                "flavour": "sklearn",
                "native": "rf.pkl",
                "onnx": "rf.onnx" if onnx else None,
            },
            {
                "name": "xgb",
                "flavour": "xgboost",
                "native": "xgb.json",
                "onnx": "xgb.onnx" if onnx else None,
            },
        ],
        "weights": {"rf": 0.5, "xgb": 0.5},
        "intercept": 0.0001,
        "evaluation": {"synthetic": True, "rows": rows},
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return load(settings, settings.registry.model_name, version)


def load(settings: Settings, name: str, version: str) -> ModelBundle:
    """Read a bundle `make_bundle` saved (the serving `loader` for synthetic models)."""
    root = bundle_dir(settings, name, version)
    manifest = json.loads((root / MANIFEST).read_text())
    return ModelBundle(
        name=manifest["name"],
        version=manifest["version"],
        spec=FeatureSpec.from_dict(manifest["spec"]),
        members=tuple(
            MemberArtifact(
                name=m["name"],
                flavour=m["flavour"],
                native_path=root / m["native"],
                onnx_path=root / m["onnx"] if m["onnx"] else None,
            )
            for m in manifest["members"]
        ),
        weights=manifest["weights"],
        intercept=manifest["intercept"],
        horizon=1,
        evaluation=manifest["evaluation"],
        data_window={},
        reference=pd.DataFrame(),
        importances={},
        local_dir=root,
    )


def native_predict(bundle: ModelBundle, rows: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The ensemble through the native models (the reference serving must match)."""
    prediction, _ = EnsemblePredictor(bundle, prefer_onnx=False).predict(rows)
    return prediction


LOADER = "benchmarks.synthetic:load"
