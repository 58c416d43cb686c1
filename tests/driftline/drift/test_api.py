"""The drift and outcomes API over a SQLite store, through FastAPI's test client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest

from driftline.config import Settings
from driftline.drift.api import drift_app
from driftline.drift.outcomes import OutcomeRecorder
from driftline.store import PredictionRecord, Store, utcnow
from driftline.store.drift_records import Alert, ScoreRow, StoredReport

DAY = datetime(2008, 10, 1, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'api.db'}")
    store.upgrade()
    yield store
    store.close()


@pytest.fixture
async def client(store: Store, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    # httpx's ASGI transport: starlette's TestClient warns that its httpx support is deprecated.
    app = drift_app(store, OutcomeRecorder(store, settings), model_name="m")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://drift") as client:
        yield client


def _predictions(store: Store, days: int) -> None:
    store.predictions.record_predictions(
        [
            PredictionRecord(
                request_id=f"r{d}",
                model_name="m",
                model_version="1",
                endpoint="stream",
                prediction=[0.001],
                member_outputs={},
                latency_ms=1.0,
                features=np.zeros((1, 2)),
                symbol="SPX",
                as_of=DAY + timedelta(days=d),
            )
            for d in range(days)
        ]
    )


def _report(store: Store, report_id: str, severity: str, level: int, at: datetime) -> None:
    store.drift.record_report(
        StoredReport(
            report_id,
            at,
            "m",
            "1",
            severity,
            level,
            "retrain",
            250,
            None,
            None,
            {"reasons": ["r"], "drifted_features": ["rsi_14"], "features": {"rsi_14": {}}},
        ),
        [ScoreRow(report_id, at, "m", "feature", "rsi_14", "ks", 0.3, 0.001, 0.2, True)],
    )


async def test_outcomes_are_counted_and_unknown_ones_change_nothing(
    client: httpx.AsyncClient, store: Store
) -> None:
    _predictions(store, 2)
    body = {"outcomes": [{"symbol": "SPX", "as_of": "2008-10-01", "value": 0.01}]}
    assert (await client.post("/outcomes", json=body)).json()["stored"] == 1
    again = (await client.post("/outcomes", json=body)).json()
    assert again == {
        "stored": 0,
        "late": 0,
        "duplicate": 1,
        "conflicting": 0,
        "unknown": 0,
        "conflicts": [],
    }
    unknown = {
        "outcomes": [
            {"symbol": "SPX", "as_of": "2008-10-02T00:00:00Z", "value": 0.02},
            {"symbol": "SPX", "as_of": "2009-01-01", "value": 0.02},
        ]
    }
    response = await client.post("/outcomes", json=unknown)
    assert response.status_code == 404
    assert "1 outcome(s) match no stored prediction" in response.json()["error"]
    assert store.drift.count_outcomes() == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"outcomes": []}, "outcomes: List should have at least 1 item"),
        ({"outcomes": [{"symbol": "SPX", "as_of": "soon", "value": 1}]}, "outcomes.0.as_of"),
        ({"outcomes": [{"symbol": "SPX", "as_of": "2008-10-01", "value": "NaN"}]}, "finite"),
        ({"outcome": []}, "outcomes: Field required"),
    ],
)
async def test_bad_outcome_bodies_are_one_line_422s(
    client: httpx.AsyncClient, body: object, message: str
) -> None:
    response = await client.post("/outcomes", json=body)
    assert response.status_code == 422
    assert message in response.json()["error"]


async def test_status_history_and_alerts(client: httpx.AsyncClient, store: Store) -> None:
    assert (await client.get("/drift/status")).status_code == 404
    t0 = utcnow()
    _report(store, "a", "low", 1, t0)
    _report(store, "b", "high", 3, t0 + timedelta(seconds=1))
    alert = Alert("m", "1", "high", 3, "retrain", "high drift", report_id="b")
    store.drift.record_alert(alert)

    status = (await client.get("/drift/status")).json()
    assert (status["severity"], status["recommendation"]) == ("high", "retrain")
    assert [a["alert_id"] for a in status["open_alerts"]] == [alert.alert_id]

    assert [r["report_id"] for r in (await client.get("/drift/reports")).json()] == ["b", "a"]
    assert [
        r["report_id"] for r in (await client.get("/drift/reports?min_severity=high")).json()
    ] == ["b"]
    assert (await client.get("/drift/reports?min_severity=severe")).status_code == 422
    assert (await client.get("/drift/reports/a")).json()["drifted_features"] == ["rsi_14"]
    assert (await client.get("/drift/reports/zzz")).status_code == 404

    history = (
        await client.get("/drift/history", params={"feature": "rsi_14", "method": "ks"})
    ).json()
    assert len(history) == 2
    since = (t0 + timedelta(milliseconds=500)).isoformat()
    assert len((await client.get("/drift/history", params={"since": since})).json()) == 1
    unknown = await client.get("/drift/history?feature=nope")
    assert unknown.status_code == 404
    assert unknown.json() == {"error": "unknown feature 'nope' for model 'm'"}
    assert (await client.get("/drift/history?method=magic")).status_code == 422

    acked = await client.post(f"/drift/alerts/{alert.alert_id}/acknowledge", json={"by": "ops"})
    assert acked.json()["acknowledged_by"] == "ops"
    assert (await client.get("/drift/alerts?acknowledged=false")).json() == []
    assert len((await client.get("/drift/alerts?acknowledged=true")).json()) == 1
    assert (
        await client.post("/drift/alerts/nope/acknowledge", json={"by": "ops"})
    ).status_code == 404
    assert (
        await client.post(f"/drift/alerts/{alert.alert_id}/acknowledge", json={})
    ).status_code == 422


async def test_a_report_as_a_page(client: httpx.AsyncClient, store: Store) -> None:
    t0 = utcnow()
    _report(store, "a", "low", 1, t0)
    _report(store, "b", "high", 3, t0 + timedelta(seconds=1))

    page = await client.get("/drift/reports/b.html")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<title>Drift report: m v1</title>" in page.text
    assert ">high</span>" in page.text
    # Two reports make a history: its chart is the page's one chart (the payloads have no bins).
    assert page.text.count("<svg") == 1
    assert "drift score over time" in page.text
    assert (await client.get("/drift/reports/a.html")).text.count("<svg") == 0
    missing = await client.get("/drift/reports/zzz.html")
    assert (missing.status_code, missing.json()) == (404, {"error": "no drift report 'zzz'"})
