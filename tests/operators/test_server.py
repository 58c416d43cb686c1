"""The controller's /metrics, /healthz and /readyz on loopback."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from driftline.observability.catalog import CATALOG
from operators.metrics import ControllerMetrics
from operators.server import ControllerServer


def test_endpoints_and_the_catalogued_metrics() -> None:
    metrics = ControllerMetrics()
    metrics.state.labels("m", "stable").set(1)
    metrics.rollouts.labels("m", "promoted").inc()
    metrics.jobs.labels("m", "succeeded").inc()
    ready = {"ok": False}
    server = ControllerServer(
        "127.0.0.1",
        0,
        metrics.registry,
        live=lambda: (True, "alive"),
        ready=lambda: (ready["ok"], "ready" if ready["ok"] else "store unreachable"),
    ).start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        scrape = httpx.get(f"{base}/metrics").text
        names = {s.name for f in text_string_to_metric_families(scrape) for s in f.samples}
        for spec in CATALOG:
            if spec.component == "controller":
                assert set(spec.series_names()) <= names, spec.name
        assert httpx.get(f"{base}/healthz").status_code == 200
        not_ready = httpx.get(f"{base}/readyz")
        assert (not_ready.status_code, not_ready.text.strip()) == (503, "store unreachable")
        ready["ok"] = True
        assert httpx.get(f"{base}/readyz").status_code == 200
        assert httpx.get(f"{base}/nope").status_code == 404
    finally:
        server.stop()
