"""Issue 14: every bundle file's SHA-256 is recorded at registration and checked before loading;
an altered artifact is refused with ArtifactIntegrityError by serving and by the gates, which
also load ONNX artifacts only unless native members are allowed."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from driftline.config import Settings
from driftline.features import FeatureSpec
from driftline.registry import (
    ArtifactIntegrityError,
    EnsemblePredictor,
    NativeMemberRefusedError,
    Registry,
    load_member,
    read_bundle,
    write_bundle,
)
from driftline.registry import registry as registry_module
from driftline.registry.bundle import MANIFEST, file_sha256
from driftline.registry.registry import RegistryUnavailableError
from operators.gate_runner import OfflineGates
from operators.spec import GatePolicy
from serving.kserve_server import build_model
from serving.model import ModelRef

from .conftest import make_contents

pytestmark = [
    pytest.mark.slow,  # registers a version in a local MLflow
    pytest.mark.filterwarnings("ignore:.*Any type hint is inferred as AnyType:UserWarning"),
]

ONNX = "members/rf/model.onnx"


def _tamper(path: Path) -> None:
    path.write_bytes(path.read_bytes() + b"\0")


@contextlib.contextmanager
def _restored(*paths: Path) -> Iterator[None]:
    """Put the files back afterwards: the registered version is shared by this module."""
    saved = {p: p.read_bytes() for p in paths}
    try:
        yield
    finally:
        for path, data in saved.items():
            path.write_bytes(data)


def test_every_file_is_hashed_and_an_altered_one_refused_on_read(
    tmp_path: Path, spec: FeatureSpec, xy: Any, estimators: dict[str, Any]
) -> None:
    contents = make_contents(spec, xy, {"rf": estimators["rf"]})
    write_bundle(tmp_path, contents, onnx_tolerance=1e-5)
    recorded = json.loads((tmp_path / MANIFEST).read_text())["sha256"]
    files = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert set(recorded) == files - {MANIFEST}
    assert recorded[ONNX] == file_sha256(tmp_path / ONNX)
    _tamper(tmp_path / ONNX)
    with pytest.raises(ArtifactIntegrityError, match=r"model\.onnx: SHA-256 .* differs"):
        read_bundle(tmp_path)


def test_a_member_altered_after_reading_is_refused_by_the_runtime(
    tmp_path: Path, spec: FeatureSpec, xy: Any, estimators: dict[str, Any]
) -> None:
    write_bundle(tmp_path, make_contents(spec, xy, {"rf": estimators["rf"]}), onnx_tolerance=1e-5)
    bundle = read_bundle(tmp_path)
    _tamper(tmp_path / "members" / "rf" / "model.joblib")
    assert load_member(bundle.members[0]).runtime == "onnx"  # the ONNX file is intact
    with pytest.raises(ArtifactIntegrityError, match=r"model\.joblib"):
        EnsemblePredictor(bundle, prefer_onnx=False)


def test_serving_runs_a_member_without_onnx_only_when_allowed(
    tmp_path: Path, spec: FeatureSpec, xy: Any, estimators: dict[str, Any]
) -> None:
    write_bundle(tmp_path, make_contents(spec, xy, {"rf": estimators["rf"]}), onnx_tolerance=1e-5)
    bundle = read_bundle(tmp_path)
    native_only = replace(bundle, members=tuple(replace(m, onnx_path=None) for m in bundle.members))
    settings = Settings(home=tmp_path / "home")
    assert not settings.registry.allow_native_members
    build_model(settings, bundle)
    with pytest.raises(NativeMemberRefusedError, match="DRIFTLINE_ALLOW_NATIVE_MEMBERS"):
        build_model(settings, native_only)
    build_model(settings.updated({"registry": {"allow_native_members": True}}), native_only)


@pytest.fixture(scope="module")
def registered(
    tmp_path_factory: pytest.TempPathFactory,
    spec: FeatureSpec,
    xy: Any,
    estimators: dict[str, Any],
) -> tuple[Settings, str]:
    """A small rf + xgb version registered in a local MLflow (no Ray, no training job)."""
    settings = Settings(home=tmp_path_factory.mktemp("integrity-home"))
    contents = make_contents(spec, xy, {"rf": estimators["rf"], "xgb": estimators["xgb"]})
    registration = Registry(settings).register(
        contents, params={}, metrics={}, tags={}, input_example=contents.reference.iloc[:1]
    )
    return settings, registration.version


def _stored(settings: Settings, relative: str) -> Path:
    """The file as the artifact store keeps it (not the per-version download cache)."""
    return next(p for p in settings.artifact_root.rglob(relative) if "bundles" not in p.parts)


def test_registration_records_the_hashes_as_version_tags(registered: tuple[Settings, str]) -> None:
    settings, version = registered
    tags = next(v.tags for v in Registry(settings).versions() if v.version == version)
    bundle = Registry(settings).load_bundle(version)
    assert {k.removeprefix("sha256/"): v for k, v in tags.items() if k.startswith("sha256/")} == (
        bundle.sha256
    )


def test_an_artifact_altered_after_registration_is_refused_by_serving_and_the_gates(
    registered: tuple[Settings, str], tmp_path: Path
) -> None:
    settings, version = registered
    # A fresh home shares the registry and artifact store but has no download cache yet.
    fresh = settings.updated(
        {"home": tmp_path, "registry": {"mlflow_tracking_uri": settings.tracking_uri}}
    )
    stored = _stored(settings, ONNX)
    with _restored(stored):
        _tamper(stored)
        with pytest.raises(ArtifactIntegrityError, match=r"model\.onnx"):
            ModelRef(settings.registry.model_name, version).load(fresh)
        gates = OfflineGates(fresh, GatePolicy(), bars=lambda: pytest.fail("bars read"))
        (artifact,) = gates.run(version, version)
    assert not artifact.passed
    assert "SHA-256" in artifact.detail


def test_a_bundle_rewritten_with_its_own_hashes_is_refused_by_the_registry(
    registered: tuple[Settings, str], tmp_path: Path
) -> None:
    # Altering the files and the manifest's hashes together still differs from the tags.
    settings, version = registered
    fresh = settings.updated(
        {"home": tmp_path, "registry": {"mlflow_tracking_uri": settings.tracking_uri}}
    )
    manifest_path = _stored(settings, MANIFEST)
    target = _stored(settings, "members/xgb/model.onnx")
    with _restored(manifest_path, target):
        _tamper(target)
        manifest = json.loads(manifest_path.read_text())
        manifest["sha256"]["members/xgb/model.onnx"] = file_sha256(target)
        manifest_path.write_text(json.dumps(manifest))
        with pytest.raises(ArtifactIntegrityError, match="registry recorded"):
            Registry(fresh).load_bundle(version)


def test_with_mlflow_down_a_verified_local_copy_loads_and_the_circuit_opens(
    registered: tuple[Settings, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, version = registered
    verified = Registry(settings).load_bundle(version)  # checked against the tags: recorded
    # Nothing listens on port 9. MLflow's client would retry each call for minutes: off here,
    # so each failure is quick; this process's breakers are restored afterwards.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setattr(registry_module, "_BREAKERS", {})
    down = settings.updated({"registry": {"mlflow_tracking_uri": "http://127.0.0.1:9"}})
    registry = Registry(down)
    for _ in range(down.breakers.threshold):
        assert registry.load_bundle(version).sha256 == verified.sha256
    assert registry_module.mlflow_breaker(down).state == "opened"
    with pytest.raises(RegistryUnavailableError, match="circuit mlflow open"):
        registry.versions()
    # Open: the local copy still loads, now without trying MLflow at all.
    assert registry.load_bundle(version).sha256 == verified.sha256
    # An alias cannot be resolved without MLflow; a version with no verified copy neither.
    with pytest.raises(RegistryUnavailableError):
        registry.load_bundle("champion")
    with pytest.raises(RegistryUnavailableError):
        registry.load_bundle("999")
    # A local copy rewritten with its own hashes differs from the digests recorded for it.
    cache = settings.home / "bundles" / settings.registry.model_name / version
    manifest_path, target = cache / MANIFEST, cache / "members/xgb/model.onnx"
    with _restored(manifest_path, target):
        _tamper(target)
        manifest = json.loads(manifest_path.read_text())
        manifest["sha256"]["members/xgb/model.onnx"] = file_sha256(target)
        manifest_path.write_text(json.dumps(manifest))
        with pytest.raises(ArtifactIntegrityError, match="local copy differs"):
            registry.load_bundle(version)
