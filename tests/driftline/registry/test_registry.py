"""A real version registered by the training job: aliases, evidence, reference sample, loading."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from driftline.features import default_spec
from driftline.registry import (
    CHALLENGER,
    CHAMPION,
    EnsemblePredictor,
    ModelNotFoundError,
    Registry,
)

pytestmark = [pytest.mark.ray, pytest.mark.slow]

STATISTICAL = {"rmse", "mae", "r2", "directional_accuracy", "information_coefficient"}
FINANCIAL = {"annualised_return", "sharpe", "sortino", "max_drawdown", "hit_rate", "turnover"}
BASELINES = {"zero_return", "previous_return", "buy_and_hold"}


def test_first_version_is_champion_and_challenger(registered_model: Any) -> None:
    registry = Registry(registered_model.settings)
    info = {v.version: v for v in registry.versions()}[registered_model.version]
    if registered_model.version == "1":  # the session's first version takes both aliases
        assert {CHAMPION, CHALLENGER} <= set(info.aliases)
    assert registry.resolve(registered_model.version) == registered_model.version
    assert info.tags["spec_hash"] == default_spec().hash
    assert info.tags["beats_baselines"] in {"true", "false"}
    assert info.run_id


def test_the_report_lists_every_metric_and_baseline_and_a_verdict(registered_model: Any) -> None:
    report = registered_model.bundle.evaluation
    sections = [report["model"], *report["members"].values(), *report["baselines"].values()]
    for section in sections:
        assert set(section["statistical"]) == STATISTICAL
        assert set(section["financial"]) >= FINANCIAL
    assert set(report["baselines"]) == BASELINES
    assert set(report["members"]) == {"rf", "xgb"}
    for comparison in report["comparisons"].values():
        assert 0.0 <= comparison["diebold_mariano"]["pvalue"] <= 1.0
    assert set(report["baselines_beaten"]) | set(report["baselines_not_beaten"]) == BASELINES
    assert report["summary"].count("The model") == 3
    versions = Registry(registered_model.settings).versions()
    tags = next(v.tags for v in versions if v.version == registered_model.version)
    assert tags["beats_baselines"] == str(report["beats_all_baselines"]).lower()


def test_the_bundle_carries_spec_window_importances_and_chart(registered_model: Any) -> None:
    bundle = registered_model.bundle
    assert bundle.spec.hash == default_spec().hash
    window = bundle.data_window
    assert window["source"] == "arch:sp500"
    assert window["first"] == "2011-01-03"
    assert window["last"] == "2018-12-31"
    assert len(window["file_sha256"]) == 64
    assert set(bundle.importances["permutation_holdout"]["features"]) == set(bundle.spec.names)
    assert (bundle.local_dir / "equity_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    manifest = json.loads((bundle.local_dir / "bundle.json").read_text())
    for member in manifest["members"]:
        assert member["onnx_max_abs_diff"] <= 1e-5
    assert {m.flavour for m in bundle.members} == {"sklearn", "xgboost"}
    assert all(m.onnx_path is not None and m.onnx_path.is_file() for m in bundle.members)
    assert sum(bundle.weights.values()) == pytest.approx(1.0)


def test_the_reference_sample_is_a_contiguous_block_ending_the_development_period(
    registered_model: Any,
) -> None:
    bundle = registered_model.bundle
    reference = bundle.reference
    assert 900 <= len(reference) <= 1000
    assert {"prediction", "target", *bundle.spec.names} <= set(reference.columns)
    assert reference.index.is_monotonic_increasing
    # Contiguous: consecutive trading days of the source data, no rows skipped.
    trading_days = pd.read_csv(bundle.data_window["path"], parse_dates=["Date"])["Date"]
    positions = np.searchsorted(trading_days.to_numpy(), reference.index.to_numpy())
    assert np.array_equal(np.diff(positions), np.ones(len(positions) - 1))
    development = bundle.evaluation["development"]
    assert reference.index[-1].date().isoformat() == development["last"]
    assert reference["prediction"].notna().all()
    assert reference["target"].notna().all()


def test_load_bundle_by_alias_and_predict_through_onnx_and_natively(registered_model: Any) -> None:
    registry = Registry(registered_model.settings)
    bundle = registry.load_bundle(registered_model.version)
    rows = bundle.reference.loc[:, bundle.spec.names].iloc[-200:]
    onnx, members = EnsemblePredictor(bundle).predict(rows)
    native, _ = EnsemblePredictor(bundle, prefer_onnx=False).predict(rows)
    assert set(members) == {"rf", "xgb"}
    assert np.max(np.abs(onnx - native)) <= 1e-5
    weighted = sum(bundle.weights[n] * members[n] for n in members)
    assert onnx == pytest.approx(weighted, abs=1e-12)


def test_unknown_references_fail_with_a_clear_error(registered_model: Any) -> None:
    registry = Registry(registered_model.settings)
    with pytest.raises(ModelNotFoundError, match="no version with alias 'nope'"):
        registry.load_bundle("nope")
    with pytest.raises(ModelNotFoundError, match="no version 999"):
        registry.load_bundle(999)
