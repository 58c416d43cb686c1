"""The drift monitor during a serving test: streamed predictions become reports and alerts.

Lives beside serving's tests to share their session's served system (`served`); skipped where
the serving package is absent.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("serving.control")

import httpx
import numpy as np
import websockets
from prometheus_client import CollectorRegistry, generate_latest

from driftline.data import load_bars
from driftline.drift.baselines import VersionData
from driftline.drift.service import build_monitor
from driftline.features import compute_matrix, default_spec
from driftline.observability.references import exported_references, missing_from_scrape
from driftline.observability.server import MetricsServer, server_guard
from operators.metrics import ControllerMetrics

WINDOW = 40
MONITORING = Path(__file__).resolve().parents[2] / "monitoring"

pytestmark = [pytest.mark.ray, pytest.mark.postgres, pytest.mark.slow]


async def _stream(url: str, messages: int, headers: dict[str, str]) -> list[dict[str, Any]]:
    import orjson  # noqa: PLC0415

    async with websockets.connect(url, additional_headers=headers) as client:
        return [orjson.loads(await asyncio.wait_for(client.recv(), 30)) for _ in range(messages)]


async def test_monitor_reports_and_alerts_on_streamed_predictions(served: Any) -> None:
    url = served.base_url.replace("http://", "ws://") + "/ws/predictions"
    received = await _stream(url, WINDOW + 5, served.headers)
    store = served.store
    model = received[0].get("model_name") or served.settings.registry.model_name
    deadline = time.monotonic() + 30
    while len(store.drift.latest_predictions(model, limit=WINDOW)) < WINDOW:
        assert time.monotonic() < deadline, "the ingress did not write the streamed predictions"
        await asyncio.sleep(0.2)

    spec = default_spec()
    bars = load_bars()
    realised = np.log(bars["close"].shift(-1) / bars["close"])
    # Realised next-day returns of the streamed bars, through the drift API the ingress mounts.
    outcomes = [
        {"symbol": m["symbol"], "as_of": m["timestamp"], "value": float(realised[m["timestamp"]])}
        for m in received
    ]
    posted = httpx.post(
        f"{served.base_url}/api/outcomes",
        json={"outcomes": outcomes},
        headers=served.headers,
        timeout=30,
    )
    assert posted.status_code == 200, posted.text
    # The monitor's baseline: a contiguous block of the same features from a calm period, with
    # realised returns and a stand-in model's out-of-fold predictions.
    reference = compute_matrix(bars.loc["2004-01-01":"2005-12-31"], spec)
    reference["target"] = realised.reindex(reference.index)
    noise = np.random.default_rng(0).normal(0.0, 0.002, len(reference))
    reference["prediction"] = 0.1 * reference["target"].fillna(0.0) + noise
    reference = reference.dropna()
    settings = served.settings.updated(
        {
            "registry": {"model_name": model},
            "drift": {
                "window": WINDOW,
                "min_rows": 30,
                "null_windows": 50,
                "prefer_alibi": False,
                # Every report alerts, so that the alert path is exercised whatever the severity.
                "alert_min_severity": "none",
            },
        }
    )
    drift_registry = CollectorRegistry()
    monitor = build_monitor(
        settings,
        store=store,
        source=lambda _m, _v: VersionData(reference=reference, columns=(*spec.names, "prediction")),
        registry=drift_registry,
    )
    run = await asyncio.to_thread(monitor.run_once)
    assert run.report is not None, run.skipped
    assert run.report.n_rows == WINDOW
    stored = store.drift.latest_report(model)
    assert stored is not None
    assert stored.report_id == run.report.report_id
    assert run.alert is not None
    assert [a.alert_id for a in store.drift.alerts(model_name=model, limit=1)] == [
        run.alert.alert_id
    ]
    assert store.drift.drift_scores(model_name=model, feature="rsi_14", method="ks")
    _every_referenced_metric_is_scraped(served, generate_latest(drift_registry).decode())


def _every_referenced_metric_is_scraped(served: Any, drift_scrape: str) -> None:
    """Issue 6: each metric the alerts and dashboards reference is in a live scrape of serving
    (after traffic, a refused request and the stream above), the drift monitor's registry (after
    its run) and the controller's /metrics endpoint."""
    bad = httpx.post(
        f"{served.base_url}/v2/models/market-ensemble/infer", content=b"{}", headers=served.headers
    )
    assert bad.status_code == 400
    serving_scrape = httpx.get(
        f"{served.base_url}/metrics", headers=served.headers, timeout=30
    ).text
    controller = ControllerMetrics()
    # The series a controller's first rounds create (tests/operators cover when each moves).
    controller.state.labels("market-ensemble", "stable").set(1)
    controller.rollouts.labels("market-ensemble", "promoted").inc(0)
    controller.jobs.labels("market-ensemble", "succeeded").inc(0)
    server = MetricsServer(
        "127.0.0.1",
        0,
        controller.registry,
        live=lambda: (True, ""),
        ready=lambda: (True, ""),
        guard=server_guard(served.settings),
    ).start()
    try:
        scrape_url = f"http://127.0.0.1:{server.port}/metrics"
        controller_scrape = httpx.get(scrape_url, headers=served.headers).text
    finally:
        server.stop()
    scrape = "\n".join((serving_scrape, drift_scrape, controller_scrape))
    assert missing_from_scrape(exported_references(MONITORING), scrape) == set()
