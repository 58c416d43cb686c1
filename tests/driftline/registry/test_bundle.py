"""Bundles on disk: written with ONNX parity checked, read back whole, refused when inconsistent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from driftline.config import Settings
from driftline.features import FeatureSpec
from driftline.registry import BundleError, OnnxParityError, Registry, read_bundle, write_bundle
from driftline.registry import flavours as flavours_module
from driftline.registry.flavours import Flavour

from .conftest import make_contents


def test_a_bundle_round_trips_with_every_member_native_and_onnx(
    tmp_path: Path, spec: FeatureSpec, xy: Any, estimators: dict[str, Any]
) -> None:
    parity = write_bundle(tmp_path, make_contents(spec, xy, estimators), onnx_tolerance=1e-5)
    assert set(parity) == {"rf", "xgb", "hgb"}
    assert max(parity.values()) < 1e-6
    bundle = read_bundle(tmp_path, name="m", version="7")
    assert (bundle.name, bundle.version, bundle.spec.hash) == ("m", "7", spec.hash)
    assert [(m.name, m.flavour) for m in bundle.members] == [
        ("rf", "sklearn"),
        ("xgb", "xgboost"),
        ("hgb", "sklearn"),
    ]
    assert all(m.onnx_path and m.onnx_path.is_file() for m in bundle.members)
    assert bundle.reference.index.is_monotonic_increasing
    assert bundle.evaluation == {"summary": "synthetic"}


def test_registration_is_refused_when_onnx_differs_from_native(
    tmp_path: Path,
    spec: FeatureSpec,
    xy: Any,
    estimators: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sklearn = flavours_module.FLAVOURS["sklearn"]
    other = estimators["hgb"]

    def wrong_model(estimator: Any, n_features: int) -> bytes:
        return sklearn.to_onnx(other, n_features)  # a different model's graph

    monkeypatch.setitem(
        flavours_module.FLAVOURS,
        "sklearn",
        Flavour(
            "sklearn",
            sklearn.native_file,
            sklearn.save,
            sklearn.load_model,
            sklearn.predict,
            wrong_model,
        ),
    )
    contents = make_contents(spec, xy, {"rf": estimators["rf"]})
    with pytest.raises(OnnxParityError, match="member rf: ONNX predictions differ from native"):
        write_bundle(tmp_path, contents, onnx_tolerance=1e-5)
    assert not (tmp_path / "bundle.json").exists()


def test_a_bundle_whose_spec_hash_does_not_match_is_refused(
    tmp_path: Path, spec: FeatureSpec, xy: Any, estimators: dict[str, Any]
) -> None:
    write_bundle(tmp_path, make_contents(spec, xy, {"rf": estimators["rf"]}), onnx_tolerance=1e-5)
    manifest = json.loads((tmp_path / "bundle.json").read_text())
    manifest["spec_hash"] = "0" * 64
    (tmp_path / "bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="does not match the manifest"):
        read_bundle(tmp_path)


def test_a_bundle_missing_a_member_file_is_refused(
    tmp_path: Path, spec: FeatureSpec, xy: Any, estimators: dict[str, Any]
) -> None:
    write_bundle(tmp_path, make_contents(spec, xy, {"xgb": estimators["xgb"]}), onnx_tolerance=1e-5)
    (tmp_path / "members" / "xgb" / "model.onnx").unlink()
    with pytest.raises(BundleError, match=r"member xgb is missing model\.onnx"):
        read_bundle(tmp_path)


@pytest.mark.parametrize(
    ("members", "change", "message"),
    [
        (["rf"], {"weights": {"rf": 1.0, "extra": 0.0}}, "weights"),
        ([], {"weights": {}}, "at least one member"),
    ],
)
def test_inconsistent_contents_are_refused_before_anything_is_written(  # noqa: PLR0917
    tmp_path: Path,
    spec: FeatureSpec,
    xy: Any,
    estimators: dict[str, Any],
    members: list[str],
    change: dict[str, Any],
    message: str,
) -> None:
    contents = make_contents(spec, xy, {m: estimators[m] for m in members}, **change)
    with pytest.raises(BundleError, match=message):
        write_bundle(tmp_path / "b", contents, onnx_tolerance=1e-5)
    assert not (tmp_path / "b").exists()


def test_a_reference_out_of_time_order_is_refused(
    tmp_path: Path, spec: FeatureSpec, xy: Any, estimators: dict[str, Any]
) -> None:
    contents = make_contents(spec, xy, {"rf": estimators["rf"]})
    shuffled = contents.reference.iloc[np.random.default_rng(1).permutation(len(xy[0]))]
    with pytest.raises(BundleError, match="time order"):
        write_bundle(
            tmp_path,
            make_contents(spec, xy, {"rf": estimators["rf"]}, reference=shuffled),
            onnx_tolerance=1e-5,
        )


def test_a_refused_version_never_reaches_mlflow(
    tmp_path: Path,
    spec: FeatureSpec,
    xy: Any,
    estimators: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    xgboost = flavours_module.FLAVOURS["xgboost"]
    broken = Flavour(
        "xgboost",
        xgboost.native_file,
        xgboost.save,
        xgboost.load_model,
        lambda model, x: xgboost.predict(model, x) + 1e-3,  # native drifts from ONNX
        xgboost.to_onnx,
    )
    monkeypatch.setitem(flavours_module.FLAVOURS, "xgboost", broken)
    settings = Settings(home=tmp_path / "home")
    contents = make_contents(spec, xy, {"xgb": estimators["xgb"]})
    with pytest.raises(OnnxParityError, match="member xgb"):
        Registry(settings).register(
            contents, params={}, metrics={}, tags={}, input_example=contents.reference.iloc[:1]
        )
    assert not (settings.home / "mlflow.db").exists()
