"""The controller's state and audit trail, read over HTTP from a SQLite store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from driftline.controller_api import controller_router
from driftline.store import Store, utcnow
from driftline.store.records import AuditEvent


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(f"sqlite:///{tmp_path / 'api.db'}")
    store.upgrade()
    yield store
    store.close()


@pytest.fixture
async def client(store: Store) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(controller_router(store, model_name="m"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


async def test_before_any_round_the_state_is_404_with_a_reason(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/controller/state")
    assert response.status_code == 404
    assert response.json() == {"detail": "no controller round for model 'm' yet"}


async def test_the_stored_state_is_served_as_the_controller_wrote_it(
    store: Store, client: httpx.AsyncClient
) -> None:
    now = utcnow()
    assert store.controller.acquire_controller_lease("m", "c1", ttl_s=30, now=now)
    revision = store.controller.controller_state("m").revision  # type: ignore[union-attr]
    state = {"phase": "shadowing", "reason": "shadow: 3 of 20 pairs", "rollout": None}
    store.controller.save_controller_state(
        "m", state, phase="shadowing", revision=revision, holder="c1", now=now
    )
    body = (await client.get("/controller/state")).json()
    assert body["phase"] == "shadowing"
    assert body["reason"] == "shadow: 3 of 20 pairs"
    assert body["lease_holder"] == "c1"


async def test_audit_returns_the_newest_events_oldest_first(
    store: Store, client: httpx.AsyncClient
) -> None:
    start = utcnow() - timedelta(minutes=10)
    store.controller.record_audit(
        *(
            AuditEvent("m", "decision", f"step {i}", created_at=start + timedelta(seconds=i))
            for i in range(5)
        ),
        AuditEvent("other", "decision", "not this model"),
    )
    body = (await client.get("/audit", params={"limit": 2})).json()
    assert [e["reason"] for e in body] == ["step 3", "step 4"]
    assert (await client.get("/audit", params={"limit": 0})).status_code == 422
