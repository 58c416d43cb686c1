"""A synthetic-bundle loader whose first member answers late: overload and deadline faults.

Serve replicas import it by path (`LOADER`); the delay comes from their environment
(`DELAY_ENV`), so one deploy with that variable set makes the version slow.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from typing import Any

import joblib

from benchmarks import synthetic
from driftline.config import Settings
from driftline.registry import MemberArtifact, ModelBundle, load_native_member
from tests.e2e.faults import predict_native

LOADER = "tests.serving.faults:load"
DELAY_ENV = "DRIFTLINE_TEST_MEMBER_DELAY_S"


class Delayed:
    """A member model that answers correctly, `delay_s` late (pickled into the member file)."""

    def __init__(self, inner: Any, delay_s: float) -> None:
        self.inner, self.delay_s = inner, delay_s

    def predict(self, rows: Any) -> Any:
        time.sleep(self.delay_s)
        return predict_native(self.inner, rows)


def load(settings: Settings, name: str, version: str) -> ModelBundle:
    """The synthetic bundle; with `DELAY_ENV` set, its first member sleeps that long per call."""
    bundle = synthetic.load(settings, name, version)
    delay = float(os.environ.get(DELAY_ENV) or 0)
    if delay <= 0:
        return bundle
    first = bundle.members[0]
    slow = settings.home / "serving-faults" / version / f"{first.name}-{delay:g}.joblib"
    if not slow.is_file():
        slow.parent.mkdir(parents=True, exist_ok=True)
        scratch = slow.with_suffix(f".{os.getpid()}.tmp")
        native = MemberArtifact(first.name, first.flavour, first.native_path, None)
        joblib.dump(Delayed(load_native_member(native), delay), scratch)
        scratch.rename(slow)  # several replicas may load it at once
    member = MemberArtifact(first.name, "sklearn", slow, None)
    return replace(bundle, members=(member, *bundle.members[1:]))
