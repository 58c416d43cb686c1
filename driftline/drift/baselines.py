"""Each model version's baseline (reference, null model, evaluation), loaded once and cached.

The null model is looked up in this order: the version's own (computed by training at
registration and carried in the bundle as `drift_null`), the store (computed earlier by any
monitor), else calibrated here and saved to the store for the other processes.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from driftline.config import Settings
from driftline.drift.calibration import CalibrationError, NullModel, calibrate
from driftline.drift.window import Baseline
from driftline.store import Store, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class VersionData:
    """What the registry holds about a version that drift needs."""

    reference: pd.DataFrame
    evaluation: Mapping[str, Any] = field(default_factory=dict)
    null: Mapping[str, Any] | None = None
    # Columns to calibrate (the spec's features and `prediction`); None means every numeric one.
    columns: tuple[str, ...] | None = None


VersionSource = Callable[[str, str], VersionData]


def registry_source(settings: Settings) -> VersionSource:
    """Versions from `driftline.registry` (imported on first use: MLflow is slow to import)."""

    def load(model_name: str, version: str) -> VersionData:
        registry = importlib.import_module("driftline.registry").Registry(settings, name=model_name)
        bundle = registry.load_bundle(version)
        return VersionData(
            reference=bundle.reference,
            evaluation=dict(bundle.evaluation or {}),
            null=getattr(bundle, "drift_null", None),
            columns=(*bundle.spec.names, "prediction"),
        )

    return load


class Baselines:
    """Baselines by (model, version), cached for the life of the process."""

    def __init__(self, store: Store, source: VersionSource, settings: Settings) -> None:
        self.store = store
        self.source = source
        self.settings = settings
        self._cache: dict[tuple[str, str], Baseline] = {}
        self._lock = threading.Lock()

    def get(self, model_name: str, version: str) -> Baseline:
        """The baseline of `model_name` version `version` for the configured window."""
        key = (model_name, version)
        with self._lock:
            if key not in self._cache:
                self._cache[key] = self._load(model_name, version)
            return self._cache[key]

    def _load(self, model_name: str, version: str) -> Baseline:
        data = self.source(model_name, version)
        window = self.settings.drift.window
        null = _usable(data.null, window) or _usable(
            self.store.drift.load_null_model(model_name, version, window), window
        )
        if null is None:
            try:
                null = calibrate(
                    data.reference,
                    window,
                    bins=self.settings.drift.bins,
                    max_windows=self.settings.drift.null_windows,
                    columns=data.columns,
                )
            except CalibrationError as error:
                raise CalibrationError(f"{model_name} v{version}: {error}") from None
            self.store.drift.save_null_model(model_name, version, window, null.to_dict(), utcnow())
            log.info(
                "calibrated the drift null model",
                extra={"model": model_name, "version": version, "window": window},
            )
        return Baseline(reference=data.reference, null=null, evaluation=data.evaluation)


def _usable(payload: Mapping[str, Any] | None, window: int) -> NullModel | None:
    if payload is None:
        return None
    try:
        null = NullModel.from_dict(dict(payload))
    except (CalibrationError, KeyError, TypeError):
        return None
    return null if null.window == window else None
