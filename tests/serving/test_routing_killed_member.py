"""A SIGKILLed member replica as the ingress meets it: its socket refuses, the Serve handle's
call dies under it; one retry on another replica, then a 503, never a 500."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from ray.exceptions import ActorDiedError

from serving.channel import MemberEndpoint
from serving.errors import ReplicaUnavailableError
from serving.routing import ColourRoute
from tests.serving.test_routing_replicas import router


class DyingHandle:
    """A member's Serve handle whose first `deaths` calls reach a replica that died under them."""

    def __init__(self, deaths: int) -> None:
        self.deaths, self.calls = deaths, 0
        self.predict = self

    def remote(self, rows: Any) -> Any:
        self.calls += 1
        dead = self.calls <= self.deaths

        async def answer() -> Any:
            if dead:
                raise ActorDiedError()
            return rows[:, 0].astype(np.float64)

        return answer()


def member_route(tmp_path: Any, deaths: int) -> tuple[ColourRoute, DyingHandle]:
    """A colour whose one member is reached as in production: its socket (a SIGKILLed replica
    leaves the file, nothing listens) and then its Serve handle."""
    dead_socket = tmp_path / "m.member_rf.dead.sock"
    dead_socket.touch()
    handle = DyingHandle(deaths)
    members = {"rf": MemberEndpoint("rf", handle, lambda: [dead_socket])}
    info = {"weights": {"rf": 1.0}, "intercept": 0.0}
    return ColourRoute("blue", handle=None, info=info, members=members), handle  # type: ignore[arg-type]


async def test_a_killed_member_replica_is_retried_through_serve_then_answers(
    tmp_path: Any,
) -> None:
    route, handle = member_route(tmp_path, deaths=1)
    ensemble, _members = await router(tmp_path).predict_rows(route, np.full((2, 3), 0.5))
    assert ensemble.tolist() == [0.5, 0.5]
    assert handle.calls == 2


async def test_a_killed_member_replica_with_no_live_peer_is_a_503_not_a_500(
    tmp_path: Any,
) -> None:
    route, handle = member_route(tmp_path, deaths=2)
    with pytest.raises(ReplicaUnavailableError) as raised:
        await router(tmp_path).predict_rows(route, np.ones((1, 3)))
    assert raised.value.status == 503
    assert handle.calls == 2
