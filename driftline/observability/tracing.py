"""OpenTelemetry spans: exported over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, and
no work at all on the request path when it is not.

Driftline keeps its own provider rather than the process-global one: the global can be set
once per process, and tests (and a replica restarted in place) install theirs more than once.
The SDK reads the rest of its configuration (`OTEL_SERVICE_NAME`, `OTEL_EXPORTER_OTLP_HEADERS`,
and `OTEL_TRACES_SAMPLER`, which replaces Driftline's ratio sampler) from the environment.
Python spans cost 10-30 us each, so traces are sampled at the root (a share of new traces, every
trace a caller sampled) and a trace left out costs its children nothing.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Link, Span, SpanContext, SpanKind

_NO_SPAN = contextlib.nullcontext()
SAMPLER_ENV = "OTEL_TRACES_SAMPLER"


class _Installed:
    """This process's provider and tracer; None until tracing is configured."""

    provider: TracerProvider | None = None
    tracer: trace.Tracer | None = None
    # Share of new traces recorded, decided here before the SDK is asked; None: its sampler.
    root_ratio: float | None = None


_installed = _Installed()


def configure_tracing(service: str, endpoint: str | None, ratio: float = 1.0) -> bool:
    """Export this process's spans as `service` when an OTLP `endpoint` is configured, tracing
    a `ratio` of new traces (`OTEL_TRACES_SAMPLER`, when set, decides instead)."""
    if not endpoint or _installed.provider is not None:
        return _installed.provider is not None
    # The exporter's import pulls requests and protobuf: only a process that exports pays it.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter,
    )

    # The SDK's default sampler follows a caller's traceparent (ParentBased) and records every
    # root it is asked for; `span` asks for `ratio` of them.
    resource = Resource.create({"service.name": service})
    provider = TracerProvider(resource=resource)
    # OTLP/HTTP's rule: a base endpoint gets the signal's path appended.
    exporter = OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(exporter))
    install(provider, root_ratio=None if SAMPLER_ENV in os.environ else ratio)
    return True


def install(provider: TracerProvider, root_ratio: float | None = None) -> None:
    """Record spans through `provider` from now on (tests pass one with an in-memory exporter),
    starting `root_ratio` of new traces (None: every one the provider's sampler takes)."""
    _installed.provider = provider
    _installed.tracer = provider.get_tracer("driftline")
    _installed.root_ratio = root_ratio


def uninstall() -> None:
    """Stop recording spans; flushes and shuts down the provider."""
    provider = _installed.provider
    _installed.provider = _installed.tracer = _installed.root_ratio = None
    if provider is not None:
        provider.shutdown()


def flush(timeout_ms: int = 5_000) -> None:
    """Export every span ended so far (a replica about to stop: atexit may never run)."""
    provider = _installed.provider
    if provider is not None:
        provider.force_flush(timeout_ms)


def enabled() -> bool:
    """Whether spans are recorded in this process."""
    return _installed.tracer is not None


def span(
    name: str,
    *,
    root: bool = False,
    kind: SpanKind = SpanKind.INTERNAL,
    parent: otel_context.Context | None = None,
    links: Sequence[Link] = (),
    attributes: Mapping[str, Any] | None = None,
) -> contextlib.AbstractContextManager[Span | None]:
    """A current span named `name` (a no-op when tracing is off). Only a `root` span (a request,
    a controller round) starts a trace; any other is recorded only inside a recorded one."""
    tracer = _installed.tracer
    if tracer is None:
        return _NO_SPAN
    if parent is None and not _sampled(trace.get_current_span(), root=root):
        return _NO_SPAN
    return tracer.start_as_current_span(
        name, context=parent, kind=kind, links=links, attributes=attributes
    )


def _sampled(current: Span, *, root: bool) -> bool:
    # Asking the SDK only to hear "not sampled" costs about 10 us a span: a trace left out
    # leaves its children out here, and a new trace is drawn here.
    if current.is_recording():
        return True
    if not root or current.get_span_context().is_valid:
        return False
    ratio = _installed.root_ratio
    return ratio is None or random.random() < ratio  # noqa: S311 - sampling, not secrecy


def recording() -> bool:
    """Whether a span is being recorded in the current context."""
    return _installed.tracer is not None and trace.get_current_span().is_recording()


def batch_span(
    name: str, contexts: Sequence[SpanContext | None], attributes: Mapping[str, Any]
) -> contextlib.AbstractContextManager[Span | None]:
    """A span for work done once for many requests: a child of the first traced one, linked to
    the others (OpenTelemetry's pattern for batches); a no-op when none was traced."""
    traced = [c for c in contexts if c is not None]
    if not traced:
        return _NO_SPAN
    links = [Link(c) for c in traced[1:]]
    return span(name, parent=child_of(traced[0]), links=links, attributes=attributes)


def current_span_context() -> SpanContext | None:
    """The current span's context, if it is being recorded (sampled)."""
    if _installed.tracer is None:
        return None
    context = trace.get_current_span().get_span_context()
    return context if context.is_valid and context.trace_flags.sampled else None


def current_trace_id() -> str | None:
    """The current trace id as 32 hex digits (as OTLP back ends show it), or None."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def current_span_id() -> str | None:
    """The current span id as 16 hex digits, or None."""
    context = trace.get_current_span().get_span_context()
    return format(context.span_id, "016x") if context.is_valid else None


def incoming(headers: Mapping[str, str]) -> otel_context.Context | None:
    """The caller's trace context from W3C `traceparent`/`tracestate` headers, if sent."""
    if _installed.tracer is None or "traceparent" not in headers:
        return None
    return extract(headers)


def outgoing() -> dict[str, str]:
    """The current trace context as W3C headers, to carry it into another process."""
    carrier: MutableMapping[str, str] = {}
    if _installed.tracer is not None:
        inject(carrier)
    return dict(carrier)


def child_of(span_context: SpanContext) -> otel_context.Context:
    """A context whose parent is `span_context` (a span that may already have ended)."""
    return trace.set_span_in_context(trace.NonRecordingSpan(span_context))


@contextlib.contextmanager
def continued(carrier: Mapping[str, str] | None, name: str) -> Iterator[None]:
    """A span named `name` continuing the trace `carrier` came with (from `outgoing`)."""
    if not carrier or _installed.tracer is None:
        yield  # the caller's trace was not recorded: neither is this part of it
        return
    with span(name, kind=SpanKind.SERVER, parent=extract(carrier)):
        yield
