"""Serving faults the end-to-end tests inject: a bundle loader that can make chosen versions slow.

Serve replicas import the loader by path (`LOADER`), so a fault reaches them the way a real one
would: the version's members answer correctly, only late. Which versions are slow, and by how
much, is a JSON file under the platform's home. A version listed there when it deploys is
*armed*: one member reads its delay from the file on every call, so a test can make a running
version regress at the moment it chooses (after a switch) and heal it again.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import joblib
import numpy as np

from driftline.config import Settings
from driftline.registry import MemberArtifact, ModelBundle, load_native_member
from serving.model import registry_bundle

LOADER = "tests.e2e.faults:load"
FAULTS_FILE = "e2e-faults.json"


class SlowModel:
    """A member model that waits the delay its version's fault names before every prediction."""

    def __init__(self, inner: Any, faults: Path, key: str) -> None:
        self.inner, self.faults, self.key = inner, faults, key

    def predict(self, rows: Any) -> Any:
        delay_s = fault_delay(self.faults, self.key)
        if delay_s > 0:
            time.sleep(delay_s)
        return predict_native(self.inner, rows)


def predict_native(model: Any, rows: Any) -> Any:
    """What a native member file's model predicts for `rows`."""
    if hasattr(model, "inplace_predict"):  # an XGBoost Booster
        return model.inplace_predict(np.asarray(rows))
    return model.predict(rows)


def set_delay(home: Path, model: str, version: str, delay_s: float | None) -> None:
    """Make `model` version `version` slow by `delay_s` (0: armed but healthy; None: disarmed).

    A serving armed version changes speed at once (disarmed: healthy again); whether a version
    is armed at all is decided when it deploys.
    """
    path = home / FAULTS_FILE
    faults = _read(path)
    key = f"{model}/{version}"
    if delay_s is None:
        faults.pop(key, None)
    else:
        faults[key] = {"delay_s": delay_s}
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps(faults))
    scratch.replace(path)  # replicas read it on every call: never let them see half a file


def fault_delay(path: Path, key: str) -> float:
    """The delay the faults file names for `key` now (0 when none)."""
    return float(_read(path).get(key, {}).get("delay_s", 0.0))


def load(settings: Settings, name: str, version: str) -> ModelBundle:
    """The registry's bundle; for an armed version, one member wrapped in SlowModel."""
    bundle: ModelBundle = registry_bundle(settings, name, version)
    path = settings.home / FAULTS_FILE
    key = f"{name}/{bundle.version}"
    if key not in _read(path):
        return bundle
    # The wrapped member runs natively (no ONNX): XGBoost's native predict is about as fast as
    # ONNX Runtime, so an armed version serves at its normal speed until it is made slow.
    target = next((m for m in bundle.members if m.flavour == "xgboost"), bundle.members[0])
    slow = settings.home / "e2e-faults" / name / bundle.version / f"{target.name}.joblib"
    if not slow.is_file():
        slow.parent.mkdir(parents=True, exist_ok=True)
        scratch = slow.with_suffix(".tmp")
        joblib.dump(SlowModel(load_native_member(target), path, key), scratch)
        scratch.rename(slow)  # replicas of several deployments load this concurrently
    # The sklearn flavour loads any joblib file; no ONNX artifact, so serving runs it natively.
    member = MemberArtifact(target.name, "sklearn", slow, None)
    members = tuple(member if m.name == target.name else m for m in bundle.members)
    return replace(bundle, members=members)


def _read(path: Path) -> dict[str, Any]:
    faults: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    return faults
