"""A model version on disk: members (native and ONNX), weights, feature spec and its evidence.

Layout of a bundle directory (the `bundle` artifact of the MLflow pyfunc model):

    bundle.json               manifest: members, weights, intercept, spec hash, horizon, and
                              the SHA-256 of every other file (checked before anything is read)
    feature_spec.json         the FeatureSpec, readable by `FeatureSpec.from_dict`
    data_window.json          source, first/last date, rows, file sha256
    evaluation.json           the hold-out evaluation report
    feature_importances.json  per-member and permutation importances
    equity_curve.png          costed strategy equity against the baselines
    reference.parquet         contiguous feature rows from the end of training + prediction, target
    members/<name>/model.*    native member; members/<name>/model.onnx when converted
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from driftline.features import FeatureSpec
from driftline.registry.flavours import flavour, flavour_of
from driftline.registry.onnx import OnnxSession, check_parity

BUNDLE_FORMAT = 1
MANIFEST = "bundle.json"
SPEC_FILE = "feature_spec.json"
WINDOW_FILE = "data_window.json"
EVALUATION_FILE = "evaluation.json"
IMPORTANCES_FILE = "feature_importances.json"
EQUITY_FILE = "equity_curve.png"
REFERENCE_FILE = "reference.parquet"
ONNX_FILE = "model.onnx"
SHA256_KEY = "sha256"

Array = npt.NDArray[np.float64]


class BundleError(ValueError):
    """A bundle directory is incomplete or inconsistent."""


class ArtifactIntegrityError(BundleError):
    """A bundle file differs from the SHA-256 recorded when its version was registered."""


@dataclass(frozen=True, slots=True)
class MemberArtifact:
    """One ensemble member as stored: flavour, native and ONNX files (None if absent), each
    file's SHA-256 and the ONNX-versus-native difference, as recorded at registration."""

    name: str
    flavour: str
    native_path: Path
    onnx_path: Path | None
    native_sha256: str | None = None
    onnx_sha256: str | None = None
    onnx_max_abs_diff: float | None = None


@dataclass(frozen=True)
class ModelBundle:
    """Everything one model version needs to predict and to be judged."""

    name: str
    version: str
    spec: FeatureSpec
    members: tuple[MemberArtifact, ...]
    weights: dict[str, float]
    intercept: float
    horizon: int
    evaluation: dict[str, Any]
    data_window: dict[str, Any]
    reference: pd.DataFrame
    importances: dict[str, Any]
    local_dir: Path
    sha256: dict[str, str] = field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        """Feature columns in the order members expect them."""
        return self.spec.names


@dataclass(frozen=True)
class BundleContents:
    """What training hands over to be written as a bundle."""

    model_name: str
    spec: FeatureSpec
    estimators: Mapping[str, Any]
    weights: Mapping[str, float]
    intercept: float
    horizon: int
    evaluation: Mapping[str, Any]
    importances: Mapping[str, Any]
    data_window: Mapping[str, Any]
    reference: pd.DataFrame
    equity_curve_png: bytes
    parity_rows: Array


def write_bundle(
    directory: Path, contents: BundleContents, *, onnx_tolerance: float
) -> dict[str, float]:
    """Write `contents` to `directory`, converting members to ONNX and checking parity.

    Returns each member's largest ONNX-versus-native difference on `parity_rows`; raises
    OnnxParityError (and leaves the directory unusable) when one exceeds `onnx_tolerance`.
    """
    _check_contents(contents)
    directory.mkdir(parents=True, exist_ok=True)
    members, parity = [], {}
    n_features = len(contents.spec.names)
    for name, estimator in contents.estimators.items():
        kind = flavour_of(estimator)
        member_dir = directory / "members" / name
        member_dir.mkdir(parents=True, exist_ok=True)
        kind.save(estimator, member_dir / kind.native_file)
        (member_dir / ONNX_FILE).write_bytes(kind.to_onnx(estimator, n_features))
        # Compare what was written, loaded back the way inference loads it.
        native = kind.load(member_dir / kind.native_file)(contents.parity_rows)
        onnx = OnnxSession(member_dir / ONNX_FILE).predict(contents.parity_rows)
        parity[name] = check_parity(name, native, onnx, onnx_tolerance)
        members.append(
            {
                "name": name,
                "flavour": kind.name,
                "native": f"members/{name}/{kind.native_file}",
                "onnx": f"members/{name}/{ONNX_FILE}",
                "onnx_max_abs_diff": parity[name],
            }
        )
    manifest = {
        "format": BUNDLE_FORMAT,
        "model_name": contents.model_name,
        "spec_hash": contents.spec.hash,
        "feature_names": contents.spec.names,
        "horizon": contents.horizon,
        "members": members,
        "weights": {k: float(v) for k, v in contents.weights.items()},
        "intercept": float(contents.intercept),
        "onnx_tolerance": onnx_tolerance,
    }
    _write_json(directory / SPEC_FILE, contents.spec.to_dict())
    _write_json(directory / WINDOW_FILE, contents.data_window)
    _write_json(directory / EVALUATION_FILE, contents.evaluation)
    _write_json(directory / IMPORTANCES_FILE, contents.importances)
    (directory / EQUITY_FILE).write_bytes(contents.equity_curve_png)
    contents.reference.to_parquet(directory / REFERENCE_FILE)
    manifest[SHA256_KEY] = artifact_hashes(directory)
    _write_json(directory / MANIFEST, manifest)
    return parity


def read_bundle(directory: Path, *, name: str | None = None, version: str = "local") -> ModelBundle:
    """The bundle in `directory`, refusing one whose spec this code cannot compute."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError) as error:
        raise BundleError(f"{directory}: not a readable model bundle ({error})") from None
    hashes = {str(k): str(v) for k, v in (manifest.get(SHA256_KEY) or {}).items()}
    for relative, expected in hashes.items():
        if (directory / relative).is_file():  # a missing file is named by the checks below
            verify_sha256(directory / relative, expected)
    try:
        spec_data = json.loads((directory / SPEC_FILE).read_text())
        evaluation = json.loads((directory / EVALUATION_FILE).read_text())
        window = json.loads((directory / WINDOW_FILE).read_text())
        importances = json.loads((directory / IMPORTANCES_FILE).read_text())
        reference = pd.read_parquet(directory / REFERENCE_FILE)
    except (OSError, ValueError) as error:
        raise BundleError(f"{directory}: not a readable model bundle ({error})") from None
    if manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{directory}: bundle format {manifest.get('format')} is not supported")
    spec = FeatureSpec.from_dict(spec_data)
    if spec.hash != manifest["spec_hash"]:
        raise BundleError(
            f"{directory}: feature spec hash {spec.hash[:12]} does not match the manifest's "
            f"{str(manifest['spec_hash'])[:12]}"
        )
    members = tuple(_member(directory, m, hashes) for m in manifest["members"])
    weights = {str(k): float(v) for k, v in manifest["weights"].items()}
    if set(weights) != {m.name for m in members}:
        raise BundleError(f"{directory}: weights {sorted(weights)} do not match the members")
    return ModelBundle(
        name=name or str(manifest["model_name"]),
        version=version,
        spec=spec,
        members=members,
        weights=weights,
        intercept=float(manifest["intercept"]),
        horizon=int(manifest["horizon"]),
        evaluation=evaluation,
        data_window=window,
        reference=reference,
        importances=importances,
        local_dir=directory,
        sha256=hashes,
    )


def artifact_hashes(directory: Path) -> dict[str, str]:
    """The SHA-256 of every file under `directory` but the manifest, by relative path."""
    return {
        path.relative_to(directory).as_posix(): file_sha256(path)
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }


def file_sha256(path: Path) -> str:
    """The hex SHA-256 of the file at `path`."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str | None) -> None:
    """Refuse (ArtifactIntegrityError) a file whose SHA-256 is not the `expected` one."""
    if expected is None:
        return
    if not path.is_file():
        raise ArtifactIntegrityError(f"{path}: recorded at registration but missing")
    actual = file_sha256(path)
    if actual != expected:
        raise ArtifactIntegrityError(
            f"{path}: SHA-256 {actual[:12]}... differs from the {expected[:12]}... recorded at "
            "registration; refusing to load it"
        )


def _member(directory: Path, entry: Mapping[str, Any], hashes: Mapping[str, str]) -> MemberArtifact:
    kind = flavour(str(entry["flavour"]))
    native_file, onnx_file = str(entry["native"]), entry.get("onnx")
    native = directory / native_file
    onnx = directory / str(onnx_file) if onnx_file else None
    for path in (native, onnx):
        if path is not None and not path.is_file():
            raise BundleError(f"{directory}: member {entry['name']} is missing {path.name}")
    return MemberArtifact(
        str(entry["name"]),
        kind.name,
        native,
        onnx,
        native_sha256=hashes.get(native_file),
        onnx_sha256=hashes.get(str(onnx_file)) if onnx_file else None,
        onnx_max_abs_diff=_float_or_none(entry.get("onnx_max_abs_diff")),
    )


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def _check_contents(contents: BundleContents) -> None:
    names: Sequence[str] = list(contents.estimators)
    if not names:
        raise BundleError("an ensemble needs at least one member")
    if set(contents.weights) != set(names):
        raise BundleError(f"weights {sorted(contents.weights)} do not match members {names}")
    missing = {"prediction", "target", *contents.spec.names} - set(contents.reference.columns)
    if missing:
        raise BundleError(f"reference sample lacks column(s) {sorted(missing)[:5]}")
    if not contents.reference.index.is_monotonic_increasing:
        raise BundleError("reference sample must be in time order")


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False, allow_nan=False, default=str))
