"""Overload and deadlines: a full queue answers a fast 503 with Retry-After, a slow model a 504.

Each test deploys the synthetic version with its first member made slow (tests.serving.faults)
and tight limits, on the session's Serve port, and removes it afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import numpy as np
import orjson
import pytest

from driftline.raycluster import LocalRayCluster
from serving.control import ServingControl
from tests.serving import faults

if TYPE_CHECKING:
    from tests.serving.conftest import Served

pytestmark = [pytest.mark.ray, pytest.mark.postgres, pytest.mark.slow]

INFER = "/v2/models/market-ensemble/infer"
BODY = orjson.dumps(
    {
        "id": "overload",
        "inputs": [
            {"name": "features", "shape": [1, 45], "datatype": "FP64", "data": [[0.1] * 45]}
        ],
    }
)


@contextlib.contextmanager
def deployed(
    served: Served, cluster: LocalRayCluster, env: dict[str, str]
) -> Iterator[dict[str, str]]:
    """Version 1 with `env` on top of the session's, reached by proxy and direct ingress."""
    control = ServingControl(
        served.settings,
        cluster.dashboard_url,
        http_port=served.control.http_port,
        loader=faults.LOADER,
        # The slow member is a wrapped native model: serving may load it only when allowed.
        env={**served.control.env, "DRIFTLINE_ALLOW_NATIVE_MEMBERS": "true", **env},
    )
    control.deploy("1")
    try:
        urls = {"proxy": f"http://127.0.0.1:{control.http_port}"}
        direct = control.direct_urls()
        if direct:
            urls["direct"] = direct[0]
        yield urls
    finally:
        control.shutdown()


async def timed_post(client: httpx.AsyncClient, url: str) -> tuple[httpx.Response, float]:
    start = time.perf_counter()
    response = await client.post(url, content=BODY)
    return response, time.perf_counter() - start


async def burst(url: str, n: int, headers: dict[str, str]) -> list[tuple[httpx.Response, float]]:
    """`n` requests at once, each on its own connection."""
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=30, limits=limits, headers=headers) as client:
        return await asyncio.gather(*(timed_post(client, url + INFER) for _ in range(n)))


def test_a_full_queue_answers_503_with_retry_after_at_once(
    served: Served, ray_cluster: LocalRayCluster
) -> None:
    # One request at a time, one waiting: a 0.5 s member turns a burst of 12 into overload.
    env = {
        faults.DELAY_ENV: "0.5",
        "DRIFTLINE_SERVE_MAX_ONGOING_REQUESTS": "1",
        "DRIFTLINE_SERVE_MAX_QUEUED_REQUESTS": "1",
        "DRIFTLINE_SERVE_RETRY_AFTER_S": "2",
    }
    with deployed(served, ray_cluster, env) as urls:
        for path, url in urls.items():
            results = asyncio.run(burst(url, 12, served.headers))
            statuses = sorted(r.status_code for r, _ in results)
            assert set(statuses) == {200, 503}, (path, statuses)
            rejected = [(r, s) for r, s in results if r.status_code == 503]
            assert len(rejected) >= 6, (path, statuses)
            assert all(r.headers["retry-after"] == "2" for r, _ in rejected), path
            # Refused without waiting for the model: well under one member call.
            assert float(np.median([s for _, s in rejected])) < 0.25, (path, rejected)
            answered = [r for r, _ in results if r.status_code == 200]
            assert all(r.json()["outputs"][0]["name"] == "prediction" for r in answered)


def test_a_request_past_its_deadline_answers_504(
    served: Served, ray_cluster: LocalRayCluster
) -> None:
    env = {faults.DELAY_ENV: "3", "DRIFTLINE_SERVE_REQUEST_TIMEOUT_S": "0.5"}
    with (
        deployed(served, ray_cluster, env) as urls,
        httpx.Client(timeout=30, headers=served.headers) as client,
    ):
        start = time.perf_counter()
        response = client.post(urls["proxy"] + INFER, content=BODY)
        elapsed = time.perf_counter() - start
    assert response.status_code == 504, response.text
    assert response.json() == {"error": "no answer within 0.5s"}
    assert elapsed < 2.0
