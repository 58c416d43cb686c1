"""A dead member replica: one retry on another, then a 503, never a 500."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from ray.exceptions import ActorDiedError

from driftline.config import Settings
from serving.errors import ReplicaUnavailableError
from serving.metrics import metrics
from serving.routing import ColourRoute, Router, Scored
from serving.writer import PredictionWriter


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
