"""A request's trace through the ingress: its server span, the coalesced scoring, each member's
call (over the members' real Unix sockets), the combine and the prediction log's write to a real
store, as one trace that continues the client's; batched requests are linked, not lost."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind
from starlette.applications import Starlette
from starlette.routing import Route

from driftline.config import Settings
from driftline.observability import tracing
from driftline.store import Store
from serving import endpoints
from serving.channel import MemberEndpoint, MemberServer, socket_dir, socket_path
from serving.metrics import metrics
from serving.routing import ColourRoute, Router, Routing
from serving.writer import PredictionWriter
from tests.serving.ingress_harness import N_FEATURES, colour_info

CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
URL = "/v2/models/m/infer"


class _NoServe:
    """Members answer over their sockets; a call through Serve would mean the test is wrong."""

    class predict:  # noqa: N801 - the attribute a Serve handle has
        @staticmethod
        async def remote(rows: Any) -> Any:
            raise AssertionError("the member was asked through Serve, not its socket")


def _member(factor: float) -> Any:
    def predict(rows: np.ndarray) -> np.ndarray:
        return rows.sum(axis=1).astype(np.float64) * factor

    return predict


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Store, Router]]:
    settings = Settings(home=tmp_path / "home")
    directory = socket_dir(settings)
    assert directory is not None
    servers = {
        name: MemberServer(socket_path(directory, "blue", f"member_{name}", "r1"), _member(f))
        for name, f in (("rf", 1.0), ("xgb", 2.0))
    }
    for server in servers.values():
        server.start()
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    store.upgrade()
    writer = PredictionWriter(store.predictions, batch_size=100, interval_s=0.01, max_buffer=1000)
    router = Router("m", settings, metrics(), writer)
    info = colour_info(settings, {"rf": 0.5, "xgb": 0.5})
    members = {
        name: MemberEndpoint(name, _NoServe(), lambda s=server: [s.path])
        for name, server in servers.items()
    }
    route = ColourRoute("blue", None, info, members)  # type: ignore[arg-type]
    router.routing = Routing(active=route, by_version={"1": route})
    app = Starlette(
        routes=[
            Route(path, endpoints.wrap(router, name, fn), methods=[method])
            for path, name, fn, method, _scope in endpoints.routes()
        ]
    )
    writer.start()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingress") as client:
        yield client, store, router
    await writer.close()
    for member in members.values():
        await member.close()
    for server in servers.values():
        server.close()
    store.close()
    shutil.rmtree(directory, ignore_errors=True)


def _body(value: float) -> dict[str, Any]:
    data = [value] * N_FEATURES
    return {
        "inputs": [{"name": "features", "shape": [1, N_FEATURES], "datatype": "FP64", "data": data}]
    }


def _by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, list[ReadableSpan]]:
    found: dict[str, list[ReadableSpan]] = {}
    for span in spans:
        found.setdefault(span.name, []).append(span)
    return found


def _parent(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


async def test_one_request_is_one_trace_from_ingress_to_the_log_write(
    served: tuple[httpx.AsyncClient, Store, Router], spans: InMemorySpanExporter
) -> None:
    client, store, router = served
    traceparent = f"00-{CLIENT_TRACE}-b7ad6b7169203331-01"
    response = await client.post(URL, json=_body(1.0), headers={"traceparent": traceparent})
    assert response.status_code == 200, response.text
    await router.writer.close()  # flush: the write span ends with the batch
    assert store.predictions.count_predictions() == 1

    found = _by_name(spans.get_finished_spans())
    (server,) = found["v2_infer"]
    (score,) = found["score"]
    (combine,) = found["combine"]
    (write,) = found["prediction_log.write"]
    rf, xgb = found["member rf"], found["member xgb"]
    everything = [server, score, combine, write, *rf, *xgb]
    assert {s.context.trace_id for s in everything} == {int(CLIENT_TRACE, 16)}
    assert server.kind is SpanKind.SERVER
    assert _parent(server) == 0xB7AD6B7169203331
    assert _parent(score) == _parent(write) == server.context.span_id
    assert {_parent(s) for s in (*rf, *xgb, combine)} == {score.context.span_id}
    assert rf[0].attributes is not None
    assert rf[0].attributes["driftline.member"] == "rf"
    assert server.attributes is not None
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["driftline.correlation_id"] == response.headers["x-correlation-id"]


async def test_requests_batched_together_are_each_linked_to_the_shared_scoring(
    served: tuple[httpx.AsyncClient, Store, Router], spans: InMemorySpanExporter
) -> None:
    client, store, router = served
    responses = await asyncio.gather(*(client.post(URL, json=_body(float(i))) for i in range(16)))
    assert [r.status_code for r in responses] == [200] * 16
    await router.writer.close()
    assert store.predictions.count_predictions() == 16

    found = _by_name(spans.get_finished_spans())
    requests = {s.context.span_id for s in found["v2_infer"]}
    assert len(requests) == 16
    # Every request's scoring is its own span's child or a link of a shared batch's span.
    scored = {_parent(s) for s in found["score"]} | {
        link.context.span_id for s in found["score"] for link in s.links
    }
    assert scored == requests
    assert len(found["score"]) < 16, "the coalescer never batched: nothing here was tested"
    written = {_parent(s) for s in found["prediction_log.write"]} | {
        link.context.span_id for s in found["prediction_log.write"] for link in s.links
    }
    assert written == requests


async def test_untraced_requests_record_no_spans_and_still_log(
    served: tuple[httpx.AsyncClient, Store, Router],
) -> None:
    client, store, router = served
    response = await client.post(URL, json=_body(1.0))
    assert response.status_code == 200
    await router.writer.close()
    assert store.predictions.count_predictions() == 1


@pytest.fixture(params=["driftline_ratio", "otel_sampler"])
def none_sampled(request: pytest.FixtureRequest) -> Iterator[InMemorySpanExporter]:
    """Tracing on with a ratio of 0, Driftline's own or the SDK's sampler (what
    OTEL_TRACES_SAMPLER sets): only traces a caller sampled are recorded."""
    exporter = InMemorySpanExporter()
    if request.param == "driftline_ratio":
        provider, root_ratio = TracerProvider(), 0.0
    else:
        provider, root_ratio = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.0))), None
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider, root_ratio=root_ratio)
    yield exporter
    tracing.uninstall()


async def test_a_request_the_sampler_leaves_out_records_nothing_downstream(
    served: tuple[httpx.AsyncClient, Store, Router], none_sampled: InMemorySpanExporter
) -> None:
    client, store, router = served
    assert (await client.post(URL, json=_body(1.0))).status_code == 200
    await router.writer.close()
    assert store.predictions.count_predictions() == 1
    assert none_sampled.get_finished_spans() == ()


async def test_a_trace_the_caller_sampled_is_recorded_whatever_the_ratio(
    served: tuple[httpx.AsyncClient, Store, Router], none_sampled: InMemorySpanExporter
) -> None:
    client, _store, router = served
    unsampled = f"00-{CLIENT_TRACE}-b7ad6b7169203331-00"
    response = await client.post(URL, json=_body(1.0), headers={"traceparent": unsampled})
    assert response.status_code == 200
    sampled = f"00-{CLIENT_TRACE}-b7ad6b7169203331-01"
    response = await client.post(URL, json=_body(2.0), headers={"traceparent": sampled})
    assert response.status_code == 200
    await router.writer.close()
    names = sorted(s.name for s in none_sampled.get_finished_spans())
    assert names == sorted(
        ["v2_infer", "score", "member rf", "member xgb", "combine", "prediction_log.write"]
    )


async def test_under_a_ratio_every_span_belongs_to_a_sampled_request(
    served: tuple[httpx.AsyncClient, Store, Router],
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider, root_ratio=0.5)
    try:
        client, _store, router = served
        for i in range(40):
            assert (await client.post(URL, json=_body(float(i)))).status_code == 200
        await router.writer.close()
    finally:
        tracing.uninstall()
    found = _by_name(exporter.get_finished_spans())
    requests = {s.context.trace_id for s in found["v2_infer"]}
    assert 0 < len(requests) < 40, "a ratio of one half sampled all or none of 40 requests"
    # A request left out starts nothing further down: no orphan combine or member spans.
    assert {s.context.trace_id for s in exporter.get_finished_spans()} == requests
    assert len(found["combine"]) == len(found["score"]) == len(requests)
