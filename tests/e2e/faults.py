"""Serving faults the end-to-end tests inject: a bundle loader that makes chosen versions slow.

Serve replicas import the loader by path (`LOADER`), so a fault reaches them the way a real one
would: the version's members answer correctly, only late. Which versions are slow, and by how
much, is a JSON file under the platform's home that the test writes before the version deploys.
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
    """A member model that waits `delay_s` before every prediction (a regressed runtime)."""

    def __init__(self, inner: Any, delay_s: float) -> None:
        self.inner, self.delay_s = inner, delay_s

    def predict(self, rows: Any) -> Any:
        time.sleep(self.delay_s)
        if hasattr(self.inner, "inplace_predict"):  # an XGBoost Booster
            return self.inner.inplace_predict(np.asarray(rows))
        return self.inner.predict(rows)


def set_delay(home: Path, model: str, version: str, delay_s: float | None) -> None:
    """Make `model` version `version` slow by `delay_s` when it next deploys (None: healthy)."""
    path = home / FAULTS_FILE
    faults = json.loads(path.read_text()) if path.is_file() else {}
    key = f"{model}/{version}"
    if delay_s is None:
        faults.pop(key, None)
    else:
        faults[key] = {"delay_s": delay_s}
    path.write_text(json.dumps(faults))


def load(settings: Settings, name: str, version: str) -> ModelBundle:
    """The registry's bundle; for a version marked slow, its first member wrapped in SlowModel."""
    bundle: ModelBundle = registry_bundle(settings, name, version)
    path = settings.home / FAULTS_FILE
    fault = json.loads(path.read_text()).get(f"{name}/{bundle.version}") if path.is_file() else None
    if not fault:
        return bundle
    first = bundle.members[0]
    slow = settings.home / "e2e-faults" / name / bundle.version / f"{first.name}.joblib"
    if not slow.is_file():
        slow.parent.mkdir(parents=True, exist_ok=True)
        scratch = slow.with_suffix(".tmp")
        joblib.dump(SlowModel(load_native_member(first), float(fault["delay_s"])), scratch)
        scratch.rename(slow)  # replicas of several deployments load this concurrently
    # The sklearn flavour loads any joblib file; no ONNX artifact, so serving runs it natively.
    member = MemberArtifact(first.name, "sklearn", slow, None)
    return replace(bundle, members=(member, *bundle.members[1:]))
