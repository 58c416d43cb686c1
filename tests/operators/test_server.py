"""The controller's /metrics, /healthz and /readyz on loopback."""

from __future__ import annotations

import contextlib
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from driftline.auth.keys import issue_key
from driftline.auth.scopes import Scope
from driftline.breakers import Breaker
from driftline.config import Settings
from driftline.observability.catalog import CATALOG
from driftline.observability.server import MetricsServer, server_guard
from driftline.store import migrate
from driftline.store.keys import KeyStore
from operators.metrics import ControllerMetrics


def test_endpoints_and_the_catalogued_metrics(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    migrate.upgrade(settings.store_url)
    keys = KeyStore.from_settings(settings)
    reader = issue_key(keys, "prometheus", frozenset({Scope.READ})).key
    predictor = issue_key(keys, "client", frozenset({Scope.PREDICT})).key
    keys.close()
    metrics = ControllerMetrics()
    metrics.state.labels("m", "stable").set(1)
    metrics.rollouts.labels("m", "promoted").inc()
    metrics.jobs.labels("m", "succeeded").inc()
    # The controller's calls to the store and MLflow go through breakers: their state shows.
    breaker = Breaker("controller-test", threshold=1, reset_s=60.0)
    with contextlib.suppress(ConnectionError), breaker:
        raise ConnectionError("store down")
    ready = {"ok": False}
    server = MetricsServer(
        "127.0.0.1",
        0,
        metrics.registry,
        live=lambda: (True, "alive"),
        ready=lambda: (ready["ok"], "ready" if ready["ok"] else "store unreachable"),
        guard=server_guard(settings),
    ).start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert httpx.get(f"{base}/metrics").status_code == 401
        wrong = {"Authorization": "Bearer dl_000000000000_nope"}
        assert httpx.get(f"{base}/metrics", headers=wrong).status_code == 401
        lacking = {"Authorization": f"Bearer {predictor}"}
        assert httpx.get(f"{base}/metrics", headers=lacking).status_code == 403
        scrape = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {reader}"}).text
        names = {s.name for f in text_string_to_metric_families(scrape) for s in f.samples}
        for spec in CATALOG:
            if spec.exported_by("controller"):
                assert set(spec.series_names()) <= names, spec.name
        assert 'driftline_circuit_breaker_state{breaker="controller-test"} 2.0' in scrape
        assert 'driftline_circuit_breaker_opens_total{breaker="controller-test"} 1.0' in scrape
        assert httpx.get(f"{base}/healthz").status_code == 200
        not_ready = httpx.get(f"{base}/readyz")
        assert (not_ready.status_code, not_ready.text.strip()) == (503, "store unreachable")
        ready["ok"] = True
        assert httpx.get(f"{base}/readyz").status_code == 200
        assert httpx.get(f"{base}/nope").status_code == 401
        assert httpx.get(f"{base}/nope", headers=lacking).status_code == 404
    finally:
        server.stop()
