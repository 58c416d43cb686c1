"""Schemathesis over the serving port's own OpenAPI document (`/openapi.json`), in process and
without Ray: the port as `serving.ingress.assemble` builds it for a replica (guard, docs, KServe
endpoints, the drift and controller API under /api), authentication on, an admin key sent.
Every operation, generated requests valid and invalid, no server error.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from driftline.auth.keys import issue_key
from driftline.auth.scopes import Scope
from driftline.config import Settings
from driftline.store import Store
from driftline.store.keys import KeyStore
from tests.serving.ingress_harness import serving_port

pytestmark = pytest.mark.slow

EXAMPLES = 60
MIN_REQUESTS = 1000
SENT: dict[str, int] = {}
STATUSES: dict[int, int] = {}

# The schema must exist when tests are collected, so the port is built at import; the module
# fixture below closes its stores.
HOME = Path(tempfile.mkdtemp(prefix="dl-ingress-fuzz-"))
SETTINGS = Settings(home=HOME).updated(
    # Authentication on; rate limits high enough that the fuzzer reaches the handlers.
    {"auth": {"enabled": True, "rate_limits": {s.value: (1e6, 10**6) for s in Scope}}}
)
STORE = Store(f"sqlite:///{HOME / 'fuzz.db'}")
STORE.upgrade()
KEYS = KeyStore(STORE.url)
ADMIN = issue_key(KEYS, "fuzz-admin", frozenset({Scope.ADMIN})).key
APP = serving_port(SETTINGS, STORE, KEYS)


async def _document() -> dict[str, Any]:
    transport = httpx.ASGITransport(app=APP)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingress") as client:
        response = await client.get("/openapi.json")  # public, as on a running replica
    response.raise_for_status()
    document: dict[str, Any] = response.json()
    return document


schema = schemathesis.openapi.from_dict(asyncio.run(_document()))


@pytest.fixture(scope="module", autouse=True)
def _stores() -> Iterator[None]:
    yield
    KEYS.close()
    STORE.close()


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_the_serving_port_never_answers_a_server_error(case: Any) -> None:
    response = case.call(app=APP, headers={"authorization": f"Bearer {ADMIN}"})
    key = f"{case.method} {case.path}"
    SENT[key] = SENT.get(key, 0) + 1
    STATUSES[response.status_code] = STATUSES.get(response.status_code, 0) + 1
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
    )


def test_the_fuzzer_sent_enough_requests_through_the_guard() -> None:
    # Runs after the fuzz test in file order; alone (-k) it has nothing to count.
    if not SENT:
        pytest.skip("run with the fuzz test of this module")
    total = sum(SENT.values())
    print(f"schemathesis sent {total} requests, {len(SENT)} method+path keys: {STATUSES}")
    assert total >= MIN_REQUESTS
    assert any(path.startswith(("POST /v2", "POST /v1")) for path in SENT)
    assert any(path.startswith("GET /api/") for path in SENT)
    # The admin key passed the guard: handlers answered (schemathesis also sends cases without
    # the credential the document declares, and the guard answers those 401).
    assert sum(n for code, n in STATUSES.items() if 200 <= code < 300) > total / 10
    assert not any(code >= 500 for code in STATUSES)
