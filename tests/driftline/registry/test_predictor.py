"""EnsemblePredictor: ONNX and native agree, any member mix serves, bad rows get clear errors."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from driftline.features import FeatureSpec
from driftline.registry import (
    EnsemblePredictor,
    FeatureInputError,
    NativeMemberRefusedError,
    load_member,
    load_native_member,
    read_bundle,
    write_bundle,
)
from driftline.registry.onnx import check_parity

from .conftest import make_contents


@pytest.fixture(scope="module")
def predictor(
    tmp_path_factory: pytest.TempPathFactory, spec: FeatureSpec, xy: Any, estimators: Any
) -> EnsemblePredictor:
    directory = tmp_path_factory.mktemp("bundle")
    weights = {"rf": 0.5, "xgb": 0.3, "hgb": 0.2}
    contents = make_contents(spec, xy, estimators, weights=weights, intercept=0.001)
    write_bundle(directory, contents, onnx_tolerance=1e-5)
    return EnsemblePredictor(read_bundle(directory))


def test_three_members_of_two_flavours_serve_through_onnx_and_natively(
    predictor: EnsemblePredictor, xy: Any, estimators: dict[str, Any]
) -> None:
    x = xy[0][:50]
    ensemble, members = predictor.predict(x)
    assert [m.runtime for m in predictor.members] == ["onnx", "onnx", "onnx"]
    native = EnsemblePredictor(predictor.bundle, prefer_onnx=False)
    assert [m.runtime for m in native.members] == ["native", "native", "native"]
    native_ensemble, _ = native.predict(x)
    assert np.max(np.abs(ensemble - native_ensemble)) < 1e-6
    expected = 0.001 + sum(
        w * estimators[n].predict(x) for n, w in {"rf": 0.5, "xgb": 0.3, "hgb": 0.2}.items()
    )
    assert ensemble == pytest.approx(expected, abs=1e-6)
    assert set(members) == {"rf", "xgb", "hgb"}


def test_a_member_without_onnx_falls_back_to_native(
    tmp_path: Path, spec: FeatureSpec, xy: Any, estimators: dict[str, Any]
) -> None:
    write_bundle(tmp_path, make_contents(spec, xy, {"rf": estimators["rf"]}), onnx_tolerance=1e-5)
    (tmp_path / "members" / "rf" / "model.onnx").unlink()
    manifest = json.loads((tmp_path / "bundle.json").read_text())
    manifest["members"][0]["onnx"] = None
    del manifest["sha256"]["members/rf/model.onnx"]
    (tmp_path / "bundle.json").write_text(json.dumps(manifest))
    predictor = EnsemblePredictor(read_bundle(tmp_path))
    assert predictor.members[0].runtime == "native"
    assert predictor.predict(xy[0][:3])[0].shape == (3,)


def test_native_members_load_as_their_library_objects(predictor: EnsemblePredictor) -> None:
    loaded = {m.name: load_native_member(m) for m in predictor.bundle.members}
    assert type(loaded["rf"]).__name__ == "RandomForestRegressor"
    assert type(loaded["xgb"]).__name__ == "Booster"
    assert type(loaded["hgb"]).__name__ == "HistGradientBoostingRegressor"


def test_dataframe_columns_are_matched_by_name_in_any_order(
    predictor: EnsemblePredictor, xy: Any, spec: FeatureSpec
) -> None:
    frame = pd.DataFrame(xy[0][:5], columns=spec.names)
    reordered = frame[list(reversed(spec.names))].assign(extra=1.0)
    assert predictor.predict(reordered)[0] == pytest.approx(predictor.predict(frame)[0])


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (lambda names: pd.DataFrame([[0.0] * 3], columns=names[:3]), "missing feature column"),
        (lambda names: np.zeros((2, 3)), "expected rows of 45 features"),
        (lambda names: np.full((1, 45), np.nan), "row 0: feature ret_1 is not finite"),
        (lambda names: [["a"] * 45], "features must be numbers"),
    ],
)
def test_bad_rows_get_a_one_line_error(
    predictor: EnsemblePredictor, spec: FeatureSpec, rows: Any, message: str
) -> None:
    with pytest.raises(FeatureInputError, match=message):
        predictor.predict(rows(spec.names))


def test_parity_check_refuses_differences_and_nan() -> None:
    native = np.array([0.01, 0.02])
    assert check_parity("m", native, native + 5e-6, 1e-5) == pytest.approx(5e-6)
    with pytest.raises(ValueError, match="differ from native by 2e-05"):
        check_parity("m", native, native + 2e-5, 1e-5)
    with pytest.raises(ValueError, match="nan"):
        check_parity("m", native, np.array([0.01, np.nan]), 1e-5)


def test_native_members_are_refused_where_only_onnx_may_load(
    tmp_path: Path, spec: FeatureSpec, xy: Any, estimators: dict[str, Any]
) -> None:
    write_bundle(tmp_path, make_contents(spec, xy, {"rf": estimators["rf"]}), onnx_tolerance=1e-5)
    bundle = read_bundle(tmp_path)
    (member,) = bundle.members
    assert load_member(member, prefer_onnx=False, allow_native=False).runtime == "onnx"
    without_onnx = replace(member, onnx_path=None)
    assert load_member(without_onnx).runtime == "native"
    with pytest.raises(NativeMemberRefusedError, match="member rf has no ONNX artifact"):
        load_member(without_onnx, allow_native=False)
