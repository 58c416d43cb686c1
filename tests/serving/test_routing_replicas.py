"""A dead member replica: one retry on another, then a 503, never a 500; repeated failures open
the member's circuit, which answers 503 at once until a trial call succeeds."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from ray.exceptions import ActorDiedError

from driftline.config import Settings
from serving.channel import endpoints, socket_path
from serving.errors import ReplicaUnavailableError
from serving.metrics import exposition, metrics
from serving.routing import ColourRoute, Router, Scored
from serving.writer import PredictionWriter
from tests.serving.ingress_harness import N_FEATURES, ingress_app


class DyingRoute(ColourRoute):
    """A colour whose first `deaths` calls hit a replica that died under them."""

    deaths: int = 0
    calls: int = 0

    async def score(self, rows: Any) -> Scored:
        type(self).calls += 1
        if type(self).calls <= type(self).deaths:
            raise ActorDiedError()
        return rows[:, 0], {"rf": rows[:, 0]}


class NoStore:
    def record_predictions(self, records: Any) -> int:
        return len(records)

    def quarantine(self, records: Any, error: str) -> None:
        raise AssertionError("nothing is refused here")


def router(tmp_path: Any) -> Router:
    settings = Settings(home=tmp_path)
    writer = PredictionWriter(NoStore(), batch_size=10, interval_s=0.1, max_buffer=100)
    return Router("m", settings, metrics(), writer)


def route(deaths: int) -> DyingRoute:
    DyingRoute.deaths, DyingRoute.calls = deaths, 0
    return DyingRoute("blue", handle=None, info={})  # type: ignore[arg-type]


async def test_a_call_that_hit_a_dead_replica_is_retried_once(tmp_path: Any) -> None:
    rows = np.ones((2, 3))
    ensemble, _members = await router(tmp_path).predict_rows(route(deaths=1), rows)
    assert ensemble.tolist() == [1.0, 1.0]
    assert DyingRoute.calls == 2


async def test_a_second_dead_replica_is_a_503(tmp_path: Any) -> None:
    with pytest.raises(ReplicaUnavailableError) as raised:
        await router(tmp_path).predict_rows(route(deaths=2), np.ones((1, 3)))
    assert raised.value.status == 503
    assert DyingRoute.calls == 2


# --- a member's circuit breaker, through the ingress app --------------------------------------
BREAKER_RESET_S = 0.3  # shortened so the test waits little; the threshold is the product's


class MemberHandle:
    """A member's Serve handle whose replicas are dead (ActorDiedError) until revived."""

    def __init__(self) -> None:
        self.calls = 0
        self.dead = True
        self.predict = self

    async def remote(self, rows: Any) -> Any:
        self.calls += 1
        if self.dead:
            raise ActorDiedError()
        return np.asarray(rows, dtype=np.float64).sum(axis=1)


async def test_an_open_member_circuit_answers_503_at_once_and_closes_after_a_trial(
    tmp_path: Any,
) -> None:
    settings = Settings(home=tmp_path, breakers={"reset_s": BREAKER_RESET_S})
    threshold = settings.breakers.threshold
    # The member's only replica on this node has died: its socket file is left, not listening.
    directory = tmp_path / "sockets"
    directory.mkdir(mode=0o700)
    socket_path(directory, "blue", "member_rf", "dead").touch()
    handle = MemberHandle()
    members = endpoints({"rf": handle}, directory, "blue", settings.breakers)
    app, _ = ingress_app(settings, members)
    body = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "features",
                    "shape": [1, N_FEATURES],
                    "datatype": "FP64",
                    "data": [[0.5] * N_FEATURES],
                }
            ]
        }
    )
    url = "/v2/models/m/infer"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://ingress"
    ) as client:
        # Each request tries the member twice (once more on another replica), then 503.
        answers = [await client.post(url, content=body) for _ in range(threshold)]
        assert [a.status_code for a in answers] == [503] * threshold
        assert handle.calls >= threshold
        assert members["rf"].breaker.state == "opened"
        # Open: refused at once, the member not called, a 503 that says why, never a 500.
        calls = handle.calls
        refused = await client.post(url, content=body)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == str(settings.serving.retry_after_s)
        assert "member rf: circuit blue.member_rf open" in refused.json()["error"]
        assert handle.calls == calls
        text, _ = exposition()
        assert 'driftline_circuit_breaker_state{breaker="blue.member_rf"} 2.0' in text.decode()
        # The member recovers: after the reset time a trial call goes through and closes it.
        handle.dead = False
        await asyncio.sleep(BREAKER_RESET_S * 1.5)
        answered = await client.post(url, content=body)
        assert answered.status_code == 200, answered.text
        assert members["rf"].breaker.state == "closed"
    text, _ = exposition()
    assert 'driftline_circuit_breaker_state{breaker="blue.member_rf"} 0.0' in text.decode()
    assert 'driftline_circuit_breaker_opens_total{breaker="blue.member_rf"} 1.0' in text.decode()
