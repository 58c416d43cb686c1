"""Every metric a dashboard or alert references is one Driftline exports (catalogue and scrape)."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from driftline.observability import references
from driftline.observability.catalog import CATALOG
from driftline.observability.references import (
    Reference,
    catalogue_series,
    missing_from_scrape,
    unknown_names,
)

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"
PROMETHEUS_SERIES = references.PROMETHEUS_SERIES


def monitored_references() -> tuple[set[Reference], set[str]]:
    used, recorded = references.monitored_references(MONITORING)
    return {ref for ref in used if ref.name not in PROMETHEUS_SERIES}, recorded


def exported_references() -> set[Reference]:
    return {
        ref
        for ref in references.exported_references(MONITORING)
        if ref.name not in PROMETHEUS_SERIES
    }


def test_the_monitor_absent_alert_reads_prometheus_up() -> None:
    used, _ = references.monitored_references(MONITORING)
    assert {ref.name for ref in used} & PROMETHEUS_SERIES == PROMETHEUS_SERIES


def catalogue_scrape() -> str:
    """Every catalogue metric as prometheus_client writes it (with a 0.25 s bucket)."""
    registry = CollectorRegistry()
    for spec in CATALOG:
        labels = list(spec.labels)
        if spec.kind == "counter":
            metric: Counter | Gauge | Histogram = Counter(
                spec.name, spec.help, labels, registry=registry
            )
        elif spec.kind == "gauge":
            metric = Gauge(spec.name, spec.help, labels, registry=registry)
        else:
            metric = Histogram(
                spec.name, spec.help, labels, registry=registry, buckets=(0.05, 0.25, 1.0)
            )
        (metric.labels(*("x" for _ in labels)) if labels else metric)
    return generate_latest(registry).decode()


def test_every_referenced_metric_is_in_the_catalogue() -> None:
    used, recorded = monitored_references()
    assert unknown_names(used, catalogue_series() | recorded) == set()
    assert len({ref.name for ref in used}) >= 15


def test_every_catalogue_metric_is_watched_somewhere() -> None:
    used, _ = monitored_references()
    names = {ref.name for ref in used}
    unwatched = {s.name for s in CATALOG if not set(s.series_names()) & names}
    assert unwatched == set()


def test_a_scrape_of_the_catalogue_satisfies_every_reference() -> None:
    assert missing_from_scrape(exported_references(), catalogue_scrape()) == set()


def test_a_scrape_without_the_slo_bucket_is_caught() -> None:
    scrape = catalogue_scrape().replace('le="0.25"', 'le="0.3"')
    missing = missing_from_scrape(exported_references(), scrape)
    assert 'driftline_request_duration_seconds_bucket{le="0.25"}' in missing


def test_live_scrape_exports_every_referenced_metric() -> None:
    """Point DRIFTLINE_METRICS_URLS (comma-separated /metrics URLs) at running components."""
    urls = [u for u in os.environ.get("DRIFTLINE_METRICS_URLS", "").split(",") if u]
    if not urls:
        pytest.skip(
            "no live scrape: set DRIFTLINE_METRICS_URLS to serving/drift/controller /metrics"
        )
    scrape = "\n".join(httpx.get(url, timeout=10).raise_for_status().text for url in urls)
    assert missing_from_scrape(exported_references(), scrape) == set()
