"""The ingress deployment as Serve runs it: room for HTTP requests beside every open stream."""

from __future__ import annotations

import pytest

from driftline.config import Settings
from serving.app import _ingress, ingress_slots


@pytest.mark.parametrize(("http", "streams"), [(64, 64), (8, 1000)])
def test_open_streams_leave_every_http_slot_free(http: int, streams: int) -> None:
    # Serve counts each open WebSocket as an ongoing request of the replica until it closes; the
    # stream middleware admits at most `ws_max_connections` of them.
    settings = Settings(
        serving={"max_ongoing_requests": http}, auth={"ws_max_connections": streams}
    )
    config = _ingress(settings)._deployment_config
    assert config.max_ongoing_requests == ingress_slots(settings) == http + streams
