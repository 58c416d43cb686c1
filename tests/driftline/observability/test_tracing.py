"""Spans: nothing recorded without a collector, W3C context in and out, trace ids in JSON log
lines, and real OTLP/HTTP export to a local collector that decodes what it receives."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import orjson
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from benchmarks.otlp import OtlpCollector
from driftline.observability import tracing
from driftline.observability.logs import JsonFormatter

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_TRACEPARENT = f"00-{CLIENT_TRACE}-00f067aa0ba902b7-01"


def test_without_a_collector_nothing_is_recorded_or_propagated() -> None:
    assert not tracing.enabled()
    with tracing.span("anything", root=True) as span:
        assert span is None
        assert tracing.current_trace_id() is None
        assert tracing.current_span_context() is None
        assert tracing.outgoing() == {}
    assert tracing.incoming({"traceparent": CLIENT_TRACEPARENT}) is None


def test_a_span_continues_the_callers_trace_and_hands_it_on(spans: InMemorySpanExporter) -> None:
    parent = tracing.incoming({"traceparent": CLIENT_TRACEPARENT})
    with tracing.span("outer", parent=parent):
        carrier = tracing.outgoing()
        assert tracing.current_trace_id() == CLIENT_TRACE
    assert carrier["traceparent"].split("-")[1] == CLIENT_TRACE
    with tracing.continued(carrier, "in another process"):
        pass
    outer, inner = sorted(spans.get_finished_spans(), key=lambda s: s.name != "outer")
    assert inner.context.trace_id == outer.context.trace_id == int(CLIENT_TRACE, 16)
    assert inner.parent is not None
    assert inner.parent.span_id == outer.context.span_id


def test_json_log_lines_carry_the_trace_and_span_ids(spans: InMemorySpanExporter) -> None:
    formatter = JsonFormatter()
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "inside", None, None)
    assert "trace_id" not in orjson.loads(formatter.format(record))
    with tracing.span("work", root=True):
        line = orjson.loads(formatter.format(record))
        trace_id, span_id = tracing.current_trace_id(), tracing.current_span_id()
    assert line["trace_id"] == trace_id
    assert len(trace_id or "") == 32
    assert line["span_id"] == span_id


@pytest.fixture
def collector() -> Iterator[OtlpCollector]:
    with OtlpCollector() as collector:
        yield collector


def test_spans_are_exported_over_otlp_http_when_an_endpoint_is_set(
    collector: OtlpCollector,
) -> None:
    assert tracing.configure_tracing("driftline-test", collector.url)
    try:
        with tracing.span("exported", root=True, attributes={"driftline.model": "m"}):
            pass
    finally:
        tracing.uninstall()  # shutdown flushes the batch processor
    (request,) = collector.exports
    (resource_spans,) = request.resource_spans
    service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert service["service.name"] == "driftline-test"
    (span,) = resource_spans.scope_spans[0].spans
    assert span.name == "exported"
    assert {a.key: a.value.string_value for a in span.attributes} == {"driftline.model": "m"}


def test_no_endpoint_configures_nothing() -> None:
    assert not tracing.configure_tracing("driftline-test", None)
    assert not tracing.enabled()


def test_only_a_root_span_starts_a_trace(spans: InMemorySpanExporter) -> None:
    with tracing.span("inner work") as span:
        assert span is None
    with tracing.span("request", root=True), tracing.span("inner work") as inner:
        assert inner is not None
    assert sorted(s.name for s in spans.get_finished_spans()) == ["inner work", "request"]
