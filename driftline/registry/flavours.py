"""How each kind of member is stored natively, loaded back, and converted to ONNX.

A member's flavour is decided by its estimator type; adding a member of a known flavour (any
scikit-learn regressor, any XGBoost regressor) needs no change here or in serving.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
Predict = Callable[[Array], Array]


class UnknownFlavourError(ValueError):
    """A member's estimator or stored flavour has no saver, loader or converter here."""


@dataclass(frozen=True, slots=True)
class Flavour:
    """Save, load and convert one kind of estimator."""

    name: str
    native_file: str
    save: Callable[[Any, Path], None]
    load_model: Callable[[Path], Any]
    predict: Callable[[Any, Array], Array]
    to_onnx: Callable[[Any, int], bytes]

    def load(self, path: Path) -> Predict:
        """A float64-in, float64-out predict function for the model stored at `path`."""
        model = self.load_model(path)
        return lambda x: self.predict(model, x)


# --- scikit-learn ---------------------------------------------------------------------------
def _save_sklearn(estimator: Any, path: Path) -> None:
    import joblib  # noqa: PLC0415

    joblib.dump(estimator, path)


def _load_sklearn(path: Path) -> Any:
    import joblib  # noqa: PLC0415

    # Bundles come only from our own registry; joblib (pickle) is what scikit-learn persists with.
    return joblib.load(path)


def _predict_sklearn(estimator: Any, x: Array) -> Array:
    return np.asarray(estimator.predict(x), dtype=np.float64)


def _sklearn_to_onnx(estimator: Any, n_features: int) -> bytes:
    from skl2onnx import to_onnx  # noqa: PLC0415

    # Float32 input: scikit-learn trees compare float32 features too, so routing matches.
    model = to_onnx(
        estimator,
        np.zeros((1, n_features), dtype=np.float32),
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    return bytes(model.SerializeToString())


# --- XGBoost --------------------------------------------------------------------------------
def _save_xgboost(estimator: Any, path: Path) -> None:
    estimator.get_booster().save_model(str(path))


def _load_xgboost(path: Path) -> Any:
    import xgboost  # noqa: PLC0415

    booster = xgboost.Booster(model_file=str(path))
    booster.set_param({"nthread": 1})
    return booster


def _predict_xgboost(booster: Any, x: Array) -> Array:
    return np.asarray(booster.inplace_predict(x), dtype=np.float64)


def _xgboost_to_onnx(estimator: Any, n_features: int) -> bytes:
    from onnxmltools import convert_xgboost  # noqa: PLC0415
    from onnxmltools.convert.common.data_types import FloatTensorType  # noqa: PLC0415

    # onnxmltools 1.16 refuses opset 17 for XGBoost; 15 is the newest it converts to.
    model = convert_xgboost(
        estimator, initial_types=[("X", FloatTensorType([None, n_features]))], target_opset=15
    )
    return bytes(model.SerializeToString())


FLAVOURS: dict[str, Flavour] = {
    "sklearn": Flavour(
        "sklearn", "model.joblib", _save_sklearn, _load_sklearn, _predict_sklearn, _sklearn_to_onnx
    ),
    "xgboost": Flavour(
        "xgboost", "model.ubj", _save_xgboost, _load_xgboost, _predict_xgboost, _xgboost_to_onnx
    ),
}


def flavour_of(estimator: Any) -> Flavour:
    """The flavour that stores `estimator`."""
    module = type(estimator).__module__.split(".")[0]
    if module == "xgboost":
        return FLAVOURS["xgboost"]
    if module == "sklearn":
        return FLAVOURS["sklearn"]
    raise UnknownFlavourError(f"no flavour stores {type(estimator).__qualname__}")


def flavour(name: str) -> Flavour:
    """The flavour called `name`."""
    try:
        return FLAVOURS[name]
    except KeyError:
        raise UnknownFlavourError(
            f"unknown member flavour {name!r}; this code knows {sorted(FLAVOURS)}"
        ) from None
