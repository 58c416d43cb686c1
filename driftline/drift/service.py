"""Builds a drift monitor for its own process (`driftline drift monitor`) or another one."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from driftline.config import Settings
from driftline.drift.baselines import Baselines, VersionSource, registry_source
from driftline.drift.metrics import DriftMetrics
from driftline.drift.monitor import DriftMonitor
from driftline.store import Store


def build_monitor(
    settings: Settings,
    *,
    store: Store | None = None,
    source: VersionSource | None = None,
    registry: CollectorRegistry | None = None,
) -> DriftMonitor:
    """A monitor over the configured store and registry.

    Embedding it elsewhere: pass that process's store and Prometheus registry, then call
    `monitor.start()` for a daemon thread.
    """
    store = store or Store.from_settings(settings)
    baselines = Baselines(store, source or registry_source(settings), settings)
    metrics = DriftMetrics(registry) if registry is not None else DriftMetrics()
    return DriftMonitor(settings, store, baselines, metrics=metrics)
