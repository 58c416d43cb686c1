"""The drift monitor during a serving test: streamed predictions become reports and alerts.

Lives beside serving's tests to share their session's served system (`served`); skipped where
the serving package is absent.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

pytest.importorskip("serving.control")

import websockets

from driftline.data import load_bars
from driftline.drift.baselines import VersionData
from driftline.drift.service import build_monitor
from driftline.features import compute_matrix, default_spec

WINDOW = 40

pytestmark = [pytest.mark.ray, pytest.mark.postgres, pytest.mark.slow]


async def _stream(url: str, messages: int) -> list[dict[str, Any]]:
    import orjson  # noqa: PLC0415

    async with websockets.connect(url) as client:
        return [orjson.loads(await asyncio.wait_for(client.recv(), 30)) for _ in range(messages)]


async def test_monitor_reports_and_alerts_on_streamed_predictions(served: Any) -> None:
    url = served.base_url.replace("http://", "ws://") + "/ws/predictions"
    received = await _stream(url, WINDOW + 5)
    store = served.store
    model = received[0].get("model_name") or served.settings.model_name
    deadline = time.monotonic() + 30
    while len(store.latest_predictions(model, limit=WINDOW)) < WINDOW:
        assert time.monotonic() < deadline, "the ingress did not write the streamed predictions"
        await asyncio.sleep(0.2)

    spec = default_spec()
    bars = load_bars()
    # The monitor's baseline: a contiguous block of the same features from a calm period.
    reference = compute_matrix(bars.loc["2004-01-01":"2005-12-31"], spec)
    settings = served.settings.model_copy(
        update={
            "model_name": model,
            "drift_window": WINDOW,
            "drift_min_rows": 30,
            "drift_null_windows": 50,
            "drift_prefer_alibi": False,
            # Every report alerts, so that the alert path is exercised whatever the severity.
            "drift_alert_min_severity": "none",
        }
    )
    monitor = build_monitor(
        settings,
        store=store,
        source=lambda _m, _v: VersionData(reference=reference, columns=tuple(spec.names)),
    )
    run = await asyncio.to_thread(monitor.run_once)
    assert run.report is not None, run.skipped
    assert run.report.n_rows == WINDOW
    stored = store.latest_report(model)
    assert stored is not None
    assert stored.report_id == run.report.report_id
    assert run.alert is not None
    assert [a.alert_id for a in store.alerts(model_name=model, limit=1)] == [run.alert.alert_id]
    assert store.drift_scores(model_name=model, feature="rsi_14", method="ks")
