"""Serving's Prometheus metrics, shared by every replica on a node through multiprocess files.

Each Serve replica is its own process and a scrape reaches one ingress replica at random, so
every replica writes its samples to memory-mapped files in one directory per node
(prometheus_client's multiprocess mode) and `/metrics` on any ingress replica merges them all.
Names and labels come from `driftline.observability.catalog`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from driftline import breakers
from driftline.observability.catalog import MetricSpec, by_name

if TYPE_CHECKING:
    # The writer imports the store (SQLAlchemy, psycopg: about 25 MiB); member and combiner
    # replicas import these metrics and never write predictions.
    from serving.writer import WriterStatus

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
# Used when multiprocess mode is off (unit tests, a single process).
_LOCAL = CollectorRegistry()


class ServingMetrics:
    """Every serving metric of the catalogue, created once per process."""

    def __init__(self) -> None:
        spec = by_name()
        self.request_duration = _histogram(
            spec["driftline_request_duration_seconds"], LATENCY_BUCKETS
        )
        self.requests = _counter(spec["driftline_requests"])
        self.errors = _counter(spec["driftline_request_errors"])
        self.member_duration = _histogram(
            spec["driftline_member_duration_seconds"], LATENCY_BUCKETS
        )
        self.member_calls = _counter(spec["driftline_member_calls"])
        self.batch_size = _histogram(spec["driftline_batch_size"], BATCH_BUCKETS)
        # Gauges from several replicas add up (backlog, clients) or take the worst (degraded).
        self.store_backlog = _gauge(spec["driftline_store_backlog"], "livesum")
        self.store_degraded = _gauge(spec["driftline_store_degraded"], "livemax")
        self.store_dropped = _counter(spec["driftline_store_dropped"])
        self.store_quarantined = _counter(spec["driftline_store_quarantined"])
        self.store_spooled = _gauge(spec["driftline_store_spooled"], "livesum")
        self.stream_clients = _gauge(spec["driftline_stream_clients"], "livesum")
        self.stream_dropped = _counter(spec["driftline_stream_dropped_messages"])
        self.model_info = _gauge(spec["driftline_model_info"], "livemax")
        # Breakers of the same name in several replicas: the worst state shows.
        self.breaker_state = _gauge(spec["driftline_circuit_breaker_state"], "livemax")
        self.breaker_opens = _counter(spec["driftline_circuit_breaker_opens"])
        self.breaker_rejected = _counter(spec["driftline_circuit_breaker_rejected_calls"])
        breakers.observe(
            breakers.metrics_observer(self.breaker_state, self.breaker_opens, self.breaker_rejected)
        )


def writer_gauges(m: ServingMetrics) -> Callable[[WriterStatus], None]:
    """The prediction writer's change callback: backlog, degradation, spool, drops and
    quarantined rows as metrics."""
    dropped = quarantined = 0

    def changed(status: WriterStatus) -> None:
        nonlocal dropped, quarantined
        m.store_backlog.set(status.backlog)
        m.store_degraded.set(1 if status.degraded else 0)
        m.store_spooled.set(status.spooled)
        if status.dropped > dropped:
            m.store_dropped.inc(status.dropped - dropped)
            dropped = status.dropped
        if status.quarantined > quarantined:
            m.store_quarantined.inc(status.quarantined - quarantined)
            quarantined = status.quarantined

    return changed


def enable_multiprocess(directory: Path) -> None:
    """Make this process write its metrics under `directory` (call before `metrics()`)."""
    directory.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(directory)
    # prometheus_client picks its value class when it is imported, which in a Ray worker may
    # have happened before our environment variable was set: choose it explicitly.
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


@cache
def metrics() -> ServingMetrics:
    """This process's metrics (multiprocess when `enable_multiprocess` ran first)."""
    return ServingMetrics()


def exposition() -> tuple[bytes, str]:
    """The Prometheus text exposition of every process on this node, and its content type."""
    registry = CollectorRegistry()
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(_LOCAL), CONTENT_TYPE_LATEST


def process_exiting() -> None:
    """Drop this process's live gauges from the shared directory."""
    if os.environ.get(MULTIPROC_ENV):
        mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def _histogram(spec: MetricSpec, buckets: tuple[float, ...]) -> Histogram:
    return Histogram(spec.name, spec.help, spec.labels, buckets=buckets, registry=_LOCAL)


def _counter(spec: MetricSpec) -> Counter:
    return Counter(spec.name, spec.help, spec.labels, registry=_LOCAL)


def _gauge(spec: MetricSpec, mode: str) -> Gauge:
    return Gauge(
        spec.name,
        spec.help,
        spec.labels,
        registry=_LOCAL,
        multiprocess_mode=mode,  # type: ignore[arg-type]
    )
