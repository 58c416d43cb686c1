"""Schemathesis over the drift and controller APIs, in process, with authentication on: every
operation of their OpenAPI documents, generated requests valid and invalid, no server error.

The apps run behind the real guard with a real admin key from the KeyStore; the document is
each FastAPI app's own `openapi()`. The number of requests sent is counted and must reach
`MIN_REQUESTS` across the module.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings

from driftline.auth.configure import guard_from_settings, secure
from driftline.auth.keys import issue_key
from driftline.auth.routes import RouteTable
from driftline.auth.scopes import Scope
from driftline.config import Settings
from driftline.controller_api import controller_router
from driftline.drift.api import drift_app
from driftline.drift.outcomes import OutcomeRecorder
from driftline.store import PredictionRecord, Store
from driftline.store.keys import KeyStore

pytestmark = pytest.mark.slow

EXAMPLES = 90
MIN_REQUESTS = 1000
DAY = datetime(2009, 1, 1, tzinfo=UTC)
SENT: dict[str, int] = {}
STATUSES: dict[int, int] = {}


def drift_routes() -> RouteTable:
    """The drift API's scopes (what the served route table declares for these paths)."""
    table = RouteTable()
    for path in ("/drift/status", "/drift/reports", "/drift/reports/{report_id}"):
        table.add("GET", path, Scope.READ)
    for path in ("/drift/history", "/drift/alerts", "/outcomes/conflicts"):
        table.add("GET", path, Scope.READ)
    table.add("POST", "/drift/alerts/{alert_id}/acknowledge", Scope.ALERTS_WRITE)
    table.add("POST", "/outcomes", Scope.OUTCOMES_WRITE)
    table.add("POST", "/outcomes/conflicts/resolve", Scope.ADMIN)
    table.add("GET", "/controller/state", Scope.READ)
    table.add("GET", "/audit", Scope.READ)
    return table


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = Path(tmp_path_factory.mktemp("fuzz"))
    store = Store(f"sqlite:///{home / 'fuzz.db'}")
    store.upgrade()
    store.predictions.record_predictions(
        [
            PredictionRecord(
                f"r{d}", "m", "1", "stream", [0.001], {}, 1.0, features=np.zeros((1, 2)),
                symbol="SPX", as_of=DAY + timedelta(days=d),
            )
            for d in range(5)
        ]
    )  # fmt: skip
    keys = KeyStore(store.url)
    admin = issue_key(keys, "fuzz-admin", frozenset({Scope.ADMIN})).key
    # Authentication on; rate limits high enough that the fuzzer reaches the handlers.
    config = Settings().updated(
        {"auth": {"enabled": True, "rate_limits": {s.value: (1e6, 10**6) for s in Scope}}}
    )
    guard = guard_from_settings(config, drift_routes(), keys)
    drift = drift_app(store, OutcomeRecorder(store, config), model_name="m")
    controller = FastAPI(title="Driftline controller")
    controller.include_router(controller_router(store, model_name="m"))
    yield {
        "drift": (drift, secure(drift, config, guard)),
        "controller": (controller, secure(controller, config, guard)),
        "headers": {"authorization": f"Bearer {admin}"},
    }
    keys.close()
    store.close()


def _documents() -> dict[str, dict[str, Any]]:
    # The documents describe routes only: an unmigrated in-memory store builds the apps.
    store = Store("sqlite://")
    settings_ = Settings()
    drift = drift_app(store, OutcomeRecorder(store, settings_), model_name="m")
    controller = FastAPI(title="Driftline controller")
    controller.include_router(controller_router(store, model_name="m"))
    documents = {"drift": drift.openapi(), "controller": controller.openapi()}
    store.close()
    return documents


DOCUMENTS = _documents()
drift_schema = schemathesis.openapi.from_dict(DOCUMENTS["drift"])
controller_schema = schemathesis.openapi.from_dict(DOCUMENTS["controller"])

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _check(case: Any, world: dict[str, Any], name: str) -> None:
    response = case.call(app=world[name][1], headers=world["headers"])
    key = f"{case.method} {case.path}"
    SENT[key] = SENT.get(key, 0) + 1
    STATUSES[response.status_code] = STATUSES.get(response.status_code, 0) + 1
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
    )


@drift_schema.parametrize()
@FUZZ
def test_drift_api_never_answers_a_server_error(case: Any, world: dict[str, Any]) -> None:
    _check(case, world, "drift")


@controller_schema.parametrize()
@FUZZ
def test_controller_api_never_answers_a_server_error(case: Any, world: dict[str, Any]) -> None:
    _check(case, world, "controller")


def test_the_fuzzers_sent_enough_requests(request: pytest.FixtureRequest) -> None:
    # Runs after the fuzz tests in file order; alone (-k) it has nothing to count.
    if not SENT:
        pytest.skip("run with the fuzz tests of this module")
    total = sum(SENT.values())
    print(f"schemathesis sent {total} requests over {len(SENT)} operations; {STATUSES}")
    assert total >= MIN_REQUESTS
    # Authentication was on and the admin key passed it: the handlers, not the guard, answered.
    assert sum(n for code, n in STATUSES.items() if 200 <= code < 300) > total / 10
    assert not any(code >= 500 for code in STATUSES)
