"""Metric references parsed from PromQL, Grafana queries and scrapes."""

from __future__ import annotations

import pytest

from driftline.observability.references import (
    Reference,
    dashboard_references,
    expression_references,
    grafana_to_promql,
    missing_from_scrape,
    rules_references,
    unknown_names,
)


def test_names_come_from_selectors_not_strings_labels_or_functions() -> None:
    refs = expression_references(
        'sum by (code) (rate(driftline_requests_total{code=~"5..", model="driftline_fake"}[5m]))'
        ' / on (namespace) group_left histogram_quantile(0.9, rate(a_bucket{le="0.25"}[1m]))'
    )
    assert refs == {
        Reference("driftline_requests_total", frozenset()),
        Reference("a_bucket", frozenset({"0.25"})),
    }


def test_name_matcher_selectors_count_and_nameless_ones_fail() -> None:
    assert {r.name for r in expression_references('{__name__="x_total", job="a"}')} == {"x_total"}
    with pytest.raises(ValueError, match="without a metric name"):
        expression_references('{__name__=~"x.*"}')


def test_invalid_promql_is_refused() -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the parser's message varies by version
        expression_references("sum(rate(x[5m])")


def test_grafana_variables_become_parseable() -> None:
    expr = grafana_to_promql('rate(x_total{ns="$namespace", m="${model}"}[$__rate_interval])')
    assert expr == 'rate(x_total{ns="var", m="var"}[5m])'


def test_dashboards_and_rules_yield_their_selectors() -> None:
    dashboard = {
        "templating": {
            "list": [
                {"type": "datasource", "name": "datasource", "query": "prometheus"},
                {"type": "query", "name": "m", "query": {"query": "label_values(up_total, job)"}},
            ]
        },
        "panels": [{"targets": [{"expr": "sum(rate(y_total[$__rate_interval]))"}]}],
    }
    assert {r.name for r in dashboard_references(dashboard)} == {"up_total", "y_total"}
    used, recorded = rules_references(
        {"groups": [{"rules": [{"record": "job:z:rate5m", "expr": "rate(z_total[5m])"}]}]}
    )
    assert {r.name for r in used} == {"z_total"}
    assert recorded == {"job:z:rate5m"}
    assert unknown_names(used, {"z_total"}) == set()


def test_missing_from_scrape_checks_names_and_buckets() -> None:
    scrape = (
        "# TYPE h histogram\n"
        'h_bucket{le="0.25"} 1.0\nh_bucket{le="1.0"} 2.0\nh_bucket{le="+Inf"} 2.0\n'
        "h_sum 0.3\nh_count 2.0\n"
    )
    refs = {Reference("h_bucket", frozenset({"0.25", "1"})), Reference("h_count", frozenset())}
    assert missing_from_scrape(refs, scrape) == set()
    refs |= {Reference("h_bucket", frozenset({"0.5"})), Reference("gone_total", frozenset())}
    assert missing_from_scrape(refs, scrape) == {'h_bucket{le="0.5"}', "gone_total"}
