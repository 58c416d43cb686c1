"""Traces across processes, as a user runs `driftline serve` with a collector set: a bar window
request's trace goes from the ingress replica into the colour's combiner (features, scoring), both
exported over OTLP/HTTP to a local collector, under the trace id the client sent."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from benchmarks import synthetic
from benchmarks.otlp import OtlpCollector
from benchmarks.serving import create_key, driftline_serve
from driftline.config import Settings
from driftline.data import load_bars
from driftline.raycluster import free_port
from tests.serving.shell import user_shell

pytestmark = [pytest.mark.ray, pytest.mark.slow]

MODEL = "market-ensemble"
CLIENT_TRACE = "5b8efff798038103d269b633813fc60c"


def _spans(collector: OtlpCollector) -> list[tuple[str, str, str]]:
    """(service, span name, trace id) of every span received."""
    return [
        (
            next(a.value.string_value for a in r.resource.attributes if a.key == "service.name"),
            span.name,
            span.trace_id.hex(),
        )
        for export in list(collector.exports)
        for r in export.resource_spans
        for scope in r.scope_spans
        for span in scope.spans
    ]


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[tuple[str, str, str]]]:
    """Spans from one traced bar-window request to `driftline serve`, received once it stops."""
    home = tmp_path_factory.mktemp("traced-home")
    synthetic.make_bundle(Settings(home=home), "1", trees=(10, 10), depths=(3, 3), rows=300)
    with OtlpCollector() as collector:
        env = user_shell(
            DRIFTLINE_HOME=str(home),
            DRIFTLINE_SERVE_PORT=str(free_port()),
            OTEL_EXPORTER_OTLP_ENDPOINT=collector.url,
        )
        with driftline_serve("1", env, home / "serve.log", extra=("--no-follow",)) as url:
            key = create_key(env, "traced-client")
            response = httpx.post(
                f"{url}/v2/models/{MODEL}/infer",
                json={"inputs": _bar_inputs(300)},
                headers={
                    "authorization": f"Bearer {key}",
                    "traceparent": f"00-{CLIENT_TRACE}-a3ce929d0e0e4736-01",
                },
                timeout=60,
            )
            assert response.status_code == 200, response.text
            # Each replica's batch processor exports on its own schedule (5 s by default).
            deadline = time.monotonic() + 60
            while not {"driftline-ingress", "driftline-combiner"} <= _services(collector):
                assert time.monotonic() < deadline, _spans(collector)
                time.sleep(0.5)
        yield _spans(collector)


def _services(collector: OtlpCollector) -> set[str]:
    return {service for service, _name, trace in _spans(collector) if trace == CLIENT_TRACE}


def _bar_inputs(n: int) -> list[dict[str, Any]]:
    bars = load_bars().iloc[:n]
    return [
        {"name": c, "shape": [n], "datatype": "FP64", "data": bars[c].tolist()}
        for c in ("open", "high", "low", "close", "volume")
    ]


def test_a_bar_window_is_one_trace_from_the_ingress_into_the_combiner(
    traced: list[tuple[str, str, str]],
) -> None:
    ours = {(service, name) for service, name, trace in traced if trace == CLIENT_TRACE}
    assert {
        ("driftline-ingress", "v2_infer"),
        ("driftline-ingress", "colour.predict_bars"),
        ("driftline-combiner", "combiner.predict_bars"),
        ("driftline-combiner", "features"),
        ("driftline-combiner", "score"),
        ("driftline-ingress", "prediction_log.write"),
    } <= ours
