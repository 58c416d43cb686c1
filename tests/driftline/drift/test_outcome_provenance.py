"""Outcomes no stranger can forge: who recorded each, unclosed bars refused, conflicts held
out of the shadow gate, through the drift API behind the real guard and API keys."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import sqlalchemy as sa

from driftline.auth.configure import guard_from_settings, secure
from driftline.auth.keys import issue_key
from driftline.auth.routes import RouteTable
from driftline.auth.scopes import Scope
from driftline.config import Settings
from driftline.drift.api import drift_app
from driftline.drift.outcomes import OutcomeRecorder
from driftline.rollout_policy import RolloutPolicy
from driftline.store import PredictionRecord, Store, utcnow
from driftline.store.keys import KeyStore
from driftline.store.tables import outcomes
from operators.decide import quality_gate
from operators.quality import paired_evidence
from operators.sources import StorePairedLosses

DAY = datetime(2009, 1, 1, tzinfo=UTC)
PAIRS = 40
SETTLED = 30


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'outcomes.db'}")
    store.upgrade()
    yield store
    store.close()


@dataclass
class Keys:
    feed: str
    predict: str
    admin: str
    rogue_feed: str


def _routes() -> RouteTable:
    # The drift API's declarations (the guard engineer's table declares the same).
    table = RouteTable()
    table.add("POST", "/outcomes", Scope.OUTCOMES_WRITE)
    table.add("GET", "/outcomes/conflicts", Scope.READ)
    table.add("POST", "/outcomes/conflicts/resolve", Scope.ADMIN)
    return table


@pytest.fixture
async def api(store: Store, settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Keys]]:
    keys = KeyStore(store.url)
    issued = Keys(
        feed=issue_key(keys, "feed", frozenset({Scope.OUTCOMES_WRITE})).key,
        predict=issue_key(keys, "attacker", frozenset({Scope.PREDICT})).key,
        admin=issue_key(keys, "ops", frozenset({Scope.ADMIN})).key,
        rogue_feed=issue_key(keys, "rogue", frozenset({Scope.OUTCOMES_WRITE})).key,
    )
    app = drift_app(store, OutcomeRecorder(store, settings), model_name="m")
    guarded = secure(app, settings, guard_from_settings(settings, _routes(), keys))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=guarded), base_url="http://drift"
    ) as client:
        yield client, issued
    keys.close()


def _scored(store: Store) -> tuple[list[float], list[float], list[float]]:
    """Champion 1 live, worse candidate 2 in shadow, on PAIRS daily bars; and the truth."""
    rng = np.random.default_rng(7)
    truth = rng.normal(0.0, 0.01, PAIRS)
    champion = truth + rng.normal(0.0, 0.002, PAIRS)
    candidate = truth + rng.normal(0.0, 0.02, PAIRS)
    records = []
    for day in range(PAIRS):
        common: dict[str, Any] = {"endpoint": "stream", "member_outputs": {}, "latency_ms": 1.0}
        records += [
            PredictionRecord(
                f"r{day}", "m", "1", prediction=[float(champion[day])], slot="live",
                symbol="SPX", as_of=DAY + timedelta(days=day), **common,
            ),
            PredictionRecord(
                f"r{day}", "m", "2", prediction=[float(candidate[day])], slot="shadow", **common
            ),
        ]  # fmt: skip
    store.predictions.record_predictions(records)
    return list(truth), list(champion), list(candidate)


def _verdict(store: Store, since: datetime) -> tuple[str, dict[str, float | None]]:
    """The shadow gate as the controller computes it: paired losses from the store, the
    paired test, then the minimum-pairs rule and the quality gate of operators.decide."""
    policy = RolloutPolicy()
    cand, champ = StorePairedLosses(store.controller).losses("m", "2", "1", since)
    paired = paired_evidence(cand, champ, policy.gates.test)
    if paired.pairs < policy.shadow.min_paired_outcomes:
        return "hold", {"pairs": float(paired.pairs)}
    gate = quality_gate("shadow_quality", paired, policy.gates.alpha, "shadow")
    return ("pass" if gate.passed else "reject"), gate.figures


def _body(values: list[float], days: range) -> dict[str, Any]:
    return {
        "outcomes": [
            {"symbol": "SPX", "as_of": (DAY + timedelta(days=d)).isoformat(), "value": values[d]}
            for d in days
        ]
    }


def _auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def test_a_predict_key_cannot_move_the_shadow_gate_with_forged_outcomes(
    api: tuple[httpx.AsyncClient, Keys], store: Store
) -> None:
    client, keys = api
    since = utcnow() - timedelta(minutes=1)
    truth, _champion, candidate = _scored(store)
    honest = await client.post(
        "/outcomes", json=_body(truth, range(SETTLED)), headers=_auth(keys.feed)
    )
    assert honest.status_code == 200, honest.text
    before = _verdict(store, since)
    assert before[0] == "reject"

    # Outcomes equal to the candidate's predictions, for settled and unsettled bars alike.
    for days in (range(SETTLED), range(SETTLED, PAIRS), range(PAIRS)):
        forged = await client.post(
            "/outcomes", json=_body(candidate, days), headers=_auth(keys.predict)
        )
        assert forged.status_code == 403, forged.text
    assert _verdict(store, since) == before

    # A second writer's conflicting values (the candidate's) hold those pairs out of the gate;
    # the candidate is still not passed, and the first value is not silently kept as truth.
    rogue = await client.post(
        "/outcomes", json=_body(candidate, range(10)), headers=_auth(keys.rogue_feed)
    )
    assert rogue.status_code == 200
    assert rogue.json()["conflicting"] == 10
    assert len(rogue.json()["conflicts"]) == 10
    verdict, figures = _verdict(store, since)
    assert verdict != "pass"
    assert figures["pairs"] == SETTLED - 10

    # An admin resolves the conflicts with the true values; the gate sees the same evidence.
    conflicts = await client.get("/outcomes/conflicts", headers=_auth(keys.admin))
    assert {c["conflict_by"] for c in conflicts.json()} == {"key:rogue"}
    for conflict, value in zip(conflicts.json(), truth, strict=False):
        denied = await client.post(
            "/outcomes/conflicts/resolve",
            json={"symbol": "SPX", "as_of": conflict["as_of"], "value": value},
            headers=_auth(keys.feed),
        )
        assert denied.status_code == 403
        resolved = await client.post(
            "/outcomes/conflicts/resolve",
            json={"symbol": "SPX", "as_of": conflict["as_of"], "value": value},
            headers=_auth(keys.admin),
        )
        assert resolved.status_code == 200, resolved.text
    assert _verdict(store, since) == before


async def test_each_outcome_names_who_recorded_it(
    api: tuple[httpx.AsyncClient, Keys], store: Store
) -> None:
    client, keys = api
    truth, *_ = _scored(store)
    await client.post("/outcomes", json=_body(truth, range(3)), headers=_auth(keys.feed))
    with store.engine.connect() as conn:
        who = set(conn.execute(sa.select(outcomes.c.recorded_by)).scalars())
    assert who == {"key:feed"}


async def test_an_outcome_for_a_bar_not_yet_closed_is_refused(
    api: tuple[httpx.AsyncClient, Keys], store: Store
) -> None:
    client, keys = api
    today = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    store.predictions.record_predictions(
        [PredictionRecord("t", "m", "1", "forecast", [0.0], {}, 1.0, symbol="SPX", as_of=today)]
    )
    body = {"outcomes": [{"symbol": "SPX", "as_of": today.isoformat(), "value": 0.01}]}
    response = await client.post("/outcomes", json=body, headers=_auth(keys.feed))
    assert response.status_code == 422
    assert "has not closed yet" in response.json()["error"]
    assert store.drift.count_outcomes() == 0


@pytest.mark.parametrize("symbol", ["S\x00X", "SPX\n", "\udc80", "S" * 33, ""])
async def test_outcomes_with_bad_symbols_are_422s(
    api: tuple[httpx.AsyncClient, Keys], symbol: str
) -> None:
    client, keys = api
    body = {"outcomes": [{"symbol": symbol, "as_of": DAY.isoformat(), "value": 0.01}]}
    content = (
        httpx.Request("POST", "/", json=body).content
        if symbol != "\udc80"
        else (b'{"outcomes": [{"symbol": "\\udc80", "as_of": "2009-01-01T00:00:00Z", "value": 1}]}')
    )
    response = await client.post(
        "/outcomes",
        content=content,
        headers={**_auth(keys.feed), "content-type": "application/json"},
    )
    assert 400 <= response.status_code < 500, response.text
    assert "error" in response.json()
