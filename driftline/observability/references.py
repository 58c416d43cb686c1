"""Metric names that alert rules and dashboards reference, checked against the catalogue or scrapes.

PromQL is parsed with promql-parser (the Rust parser Prometheus-compatible databases use), so a
name inside a string, a label value or a function name is never mistaken for a metric.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import promql_parser
import yaml
from prometheus_client.parser import text_string_to_metric_families

from driftline.observability.catalog import CATALOG, MetricSpec

# Grafana expands these before a query reaches Prometheus; any duration parses the same way.
_GRAFANA_RANGES = re.compile(
    r"\$(__rate_interval|__interval|__range)\b|\$\{(__rate_interval|__interval|__range)\}"
)
_GRAFANA_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
_LABEL_VALUES = re.compile(r"label_values\((.+),\s*\w+\s*\)")


@dataclass(frozen=True, slots=True)
class Reference:
    """One series selector: the metric name and the `le` bucket bounds it pins, if any."""

    name: str
    buckets: frozenset[str]


def expression_references(expr: str) -> set[Reference]:
    """Series selectors of a PromQL expression (recording-rule names included)."""
    found: set[Reference] = set()

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = list(node.matchers.matchers)
            name = node.name or next(
                (
                    m.value
                    for m in matchers
                    if m.name == "__name__" and m.op == promql_parser.MatchOp.Equal
                ),
                None,
            )
            if name is None:
                raise ValueError(f"selector without a metric name in: {expr}")
            buckets = frozenset(
                m.value for m in matchers if m.name == "le" and m.op == promql_parser.MatchOp.Equal
            )
            found.add(Reference(name, buckets))
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def grafana_to_promql(expr: str) -> str:
    """A dashboard query with Grafana's variables replaced so that it parses as PromQL."""
    expr = _GRAFANA_RANGES.sub("5m", expr)
    return _GRAFANA_VARIABLE.sub("var", expr)


def rules_references(rules_file: Mapping[str, Any]) -> tuple[set[Reference], set[str]]:
    """Selectors used by a Prometheus rules file, and the names its recording rules define."""
    used: set[Reference] = set()
    recorded: set[str] = set()
    for group in rules_file.get("groups", []):
        for rule in group["rules"]:
            used |= expression_references(str(rule["expr"]))
            if "record" in rule:
                recorded.add(rule["record"])
    return used, recorded


def dashboard_references(dashboard: Mapping[str, Any]) -> set[Reference]:
    """Selectors used by every panel target and query variable of a Grafana dashboard."""
    queries: list[str] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            # A data-source variable's `query` names a plugin type, not a metric.
            if node.get("type") == "datasource" and "name" in node:
                return
            for key in ("expr", "query"):
                value = node.get(key)
                if isinstance(value, str) and value.strip():
                    queries.append(value)
            for child in node.values():
                collect(child)
        elif isinstance(node, list):
            for child in node:
                collect(child)

    collect(dashboard)
    refs: set[Reference] = set()
    for query in queries:
        refs |= expression_references(grafana_to_promql(_label_values_selector(query)))
    return refs


def _label_values_selector(query: str) -> str:
    # Grafana's `label_values(selector, label)` variable query: only the selector is PromQL.
    match = _LABEL_VALUES.fullmatch(query.strip())
    return match.group(1) if match else query


def catalogue_series(catalog: Iterable[MetricSpec] = CATALOG) -> set[str]:
    """Every sample name the catalogue's metrics show in a scrape."""
    return {series for spec in catalog for series in spec.series_names()}


def unknown_names(refs: Iterable[Reference], known: Iterable[str]) -> set[str]:
    """Referenced names that are not among `known` sample names."""
    known_set = set(known)
    return {ref.name for ref in refs} - known_set


def scrape_series(scrape: str) -> dict[str, set[str]]:
    """Sample names in a `/metrics` scrape, each with the `le` bounds it shows."""
    series: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(scrape):
        for sample in family.samples:
            bounds = series.setdefault(sample.name, set())
            if "le" in sample.labels:
                bounds.add(_normalise_bound(sample.labels["le"]))
    return series


def missing_from_scrape(refs: Iterable[Reference], scrape: str) -> set[str]:
    """Referenced names (or `name{le=...}` buckets) that a live scrape does not show."""
    shown = scrape_series(scrape)
    missing: set[str] = set()
    for ref in refs:
        if ref.name not in shown:
            missing.add(ref.name)
            continue
        for bound in ref.buckets:
            if _normalise_bound(bound) not in shown[ref.name]:
                missing.add(f'{ref.name}{{le="{bound}"}}')
    return missing


def _normalise_bound(bound: str) -> str:
    # prometheus_client writes 0.25 as "0.25" but 1 as "1.0"; compare as numbers.
    return repr(float(bound))


def monitored_references(monitoring: Path) -> tuple[set[Reference], set[str]]:
    """Selectors used by `monitoring/alerts.yaml` and every dashboard, and the recording rules'
    own names."""
    used, recorded = rules_references(yaml.safe_load((monitoring / "alerts.yaml").read_text()))
    for path in sorted((monitoring / "dashboards").glob("*.json")):
        used |= dashboard_references(json.loads(path.read_text()))
    return used, recorded


# Series Prometheus writes itself for every target (DriftlineDriftMonitorAbsent reads `up`): in no
# scrape and no catalogue.
PROMETHEUS_SERIES = frozenset({"up"})


def exported_references(monitoring: Path) -> set[Reference]:
    """The references a scrape must satisfy (recording rules and Prometheus's own series are
    computed by Prometheus)."""
    used, recorded = monitored_references(monitoring)
    return {ref for ref in used if ref.name not in recorded | PROMETHEUS_SERIES}
