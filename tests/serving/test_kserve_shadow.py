"""The InferenceService predictor's shadow mirror (`serving.mirror`, whose own tests are in
test_mirror.py), two predictor processes as the chart runs them: the controller's stored route
decides which colour mirrors to which; the live colour's predictor stores the shadow's answer
under its own request id, and a shadow that fails or never answers costs the live caller
nothing."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.ensemble import RandomForestRegressor
from xgboost import XGBRegressor

from driftline.auth.keys import issue_key
from driftline.auth.scopes import Scope
from driftline.config import Settings
from driftline.features import default_spec
from driftline.raycluster import free_port
from driftline.registry import Registry
from driftline.store import PredictionRecord, Store
from driftline.store.keys import KeyStore
from operators.states import Phase, RolloutState
from tests.driftline.registry.conftest import make_contents
from tests.serving.stored_route import MODEL, in_rollout, set_route

REPO_ROOT = Path(__file__).resolve().parents[2]
N_FEATURES = len(default_spec().names)
# Shortened for the tests (5 s and 10 s by default): how often a predictor re-reads the
# controller's route, and the mirror's deadline.
POLL_S = 0.2
TIMEOUT_S = 3.0
START_TIMEOUT_S = 180.0

# MLflow warns, on registering a pyfunc with an untyped predict, that it cannot validate it.
QUIET = pytest.mark.filterwarnings("ignore:.*Any type hint is inferred as AnyType:UserWarning")


# --- two predictors, as the chart runs them, against one PostgreSQL store ----------------------


@dataclass
class Predictor:
    """A `python -m serving.kserve_server` process (on loopback) and its URL."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path


@dataclass
class Cluster:
    """What the two-predictor tests share: settings, store, keys and a way to start predictors."""

    settings: Settings
    store: Store
    client_key: str  # a user's: predict and read
    mirror_key: str  # DRIFTLINE_SERVE_SHADOW_KEY: predict
    start: Callable[..., Predictor]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.client_key}"}


def _register_versions(settings: Settings) -> list[str]:
    """Versions 1 and 2: small rf + xgb ensembles fitted on different draws (no Ray, no job)."""
    spec = default_spec()
    registry = Registry(settings)
    versions = []
    for seed in (0, 1):
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(300, len(spec.names)))
        y = 0.01 * (0.3 * x[:, 0] - 0.2 * x[:, 1] + rng.normal(size=300))
        estimators = {
            "rf": RandomForestRegressor(10, max_depth=4, n_jobs=1, random_state=seed).fit(x, y),
            "xgb": XGBRegressor(n_estimators=10, max_depth=3, n_jobs=1).fit(x, y),
        }
        contents = make_contents(spec, (x, y), estimators)
        registration = registry.register(
            contents, params={}, metrics={}, tags={}, input_example=contents.reference.iloc[:1]
        )
        versions.append(registration.version)
    return versions


def _start(
    settings: Settings, logs: Path, started: list[Predictor], port: int, **env: str
) -> Predictor:
    log = logs / f"predictor-{port}.log"
    variables = {
        **os.environ,
        "DRIFTLINE_HOME": str(settings.home),
        "DRIFTLINE_DATABASE_URL": settings.store_url,
        "DRIFTLINE_MODEL_NAME": MODEL,
        "DRIFTLINE_SERVING_PORT": str(port),
        "DRIFTLINE_SERVE_SHADOW_POLL_S": str(POLL_S),
        "DRIFTLINE_SERVE_WRITE_INTERVAL_S": "0.1",
        **env,
    }
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.serving.kserve_predictor"],
            cwd=REPO_ROOT,
            env=variables,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    predictor = Predictor(process, f"http://127.0.0.1:{port}", log)
    started.append(predictor)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the predictor never became ready:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{predictor.url}/v2/health/ready", timeout=2).status_code == 200:
                return predictor
        time.sleep(0.5)


def _stop(predictor: Predictor) -> None:
    if predictor.process.poll() is None:
        predictor.process.terminate()
        try:
            predictor.process.wait(60)
        except subprocess.TimeoutExpired:
            predictor.process.kill()
            predictor.process.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[Cluster]:
    """A home with versions 1 and 2 registered, a PostgreSQL store, keys issued as
    `driftline keys create` does, and the predictors each test starts (stopped at the end)."""
    home = tmp_path_factory.mktemp("kserve-shadow-home")
    settings = Settings(home=home, store={"database_url": postgres_url})
    assert _register_versions(settings) == ["1", "2"]
    store = Store.from_settings(settings)
    store.upgrade()
    keys = KeyStore.from_settings(settings)
    # Named apart: the session's database holds other modules' keys too.
    suffix = uuid.uuid4().hex[:8]
    client = issue_key(keys, f"tests-client-{suffix}", frozenset({Scope.PREDICT, Scope.READ})).key
    mirror = issue_key(keys, f"shadow-mirror-{suffix}", frozenset({Scope.PREDICT})).key
    keys.close()
    started: list[Predictor] = []

    def start(port: int | None = None, **env: str) -> Predictor:
        port = port or free_port()
        return _start(settings, home, started, port, DRIFTLINE_SERVE_SHADOW_KEY=mirror, **env)

    yield Cluster(settings, store, client, mirror, start)
    for predictor in started:
        _stop(predictor)
    store.close()


@pytest.fixture(scope="module")
def pair(cluster: Cluster) -> tuple[Predictor, Predictor]:
    """Blue serving version 1 and green serving version 2, each told the other's URL (the chart
    gives both colours the preview Service's): the controller's route decides who mirrors."""
    green_port = free_port()
    blue = cluster.start(
        DRIFTLINE_COLOUR="blue",
        DRIFTLINE_MODEL_VERSION="1",
        DRIFTLINE_SERVE_SHADOW_URL=f"http://127.0.0.1:{green_port}",
    )
    green = cluster.start(
        DRIFTLINE_COLOUR="green",
        DRIFTLINE_MODEL_VERSION="2",
        port=green_port,
        DRIFTLINE_SERVE_SHADOW_URL=blue.url,
    )
    return blue, green


def _v2(rows: int, *, with_id: bool = True) -> dict[str, Any]:
    data = np.random.default_rng(rows).normal(size=rows * N_FEATURES).tolist()
    body: dict[str, Any] = {
        "inputs": [
            {"name": "features", "shape": [rows, N_FEATURES], "datatype": "FP64", "data": data}
        ]
    }
    return {"id": f"body-{rows}", **body} if with_id else body


def _stored(store: Store, since: datetime, count: int, slot: str | None = None) -> list[Any]:
    """The predictions stored since `since`, once at least `count` are there (10 s at most)."""
    deadline = time.monotonic() + 10
    while True:
        found = store.predictions.predictions(since=since, slot=slot)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


@pytest.mark.slow
@pytest.mark.postgres
@QUIET
def test_each_answer_of_the_live_colour_is_stored_live_and_in_shadow_under_one_id(
    cluster: Cluster, pair: tuple[Predictor, Predictor]
) -> None:
    blue, _green = pair
    set_route(cluster.store, in_rollout(Phase.DEPLOYING, "blue"))
    time.sleep(POLL_S * 5)  # both predictors have read the route
    since = datetime.now(UTC)
    infer = f"{blue.url}/v2/models/{MODEL}/infer"
    calls = [
        (infer, _v2(1), {"X-Request-ID": "shadow-a"}),
        (infer, _v2(3, with_id=False), {"X-Request-ID": "shadow-b"}),
        (infer, _v2(2, with_id=False), {}),  # the predictor names the request itself
        (f"{blue.url}/v1/models/{MODEL}:predict", {"instances": [[0.1] * N_FEATURES]}, {}),
    ]
    for url, body, headers in calls:
        response = httpx.post(url, json=body, headers={**cluster.headers, **headers}, timeout=30)
        assert response.status_code == 200, response.text
    stored = _stored(cluster.store, since, 2 * len(calls))
    by_id: dict[str, dict[str, PredictionRecord]] = {}
    for record in stored:
        by_id.setdefault(record.request_id, {})[record.slot] = record
    assert len(by_id) == len(calls)
    assert {"shadow-a", "shadow-b"} <= set(by_id)
    for request_id, slots in by_id.items():
        assert set(slots) == {"live", "shadow"}, request_id
        live, shadow = slots["live"], slots["shadow"]
        assert (live.model_version, live.colour) == ("1", "blue")
        # Green answered the mirror and stored nothing of its own: blue stored green's answer.
        assert (shadow.model_version, shadow.colour) == ("2", "green")
        assert shadow.endpoint == live.endpoint
        assert live.features is not None
        assert shadow.features is not None
        np.testing.assert_array_equal(shadow.features, live.features)
        assert len(shadow.prediction) == len(live.prediction)
        assert set(shadow.member_outputs) == set(live.member_outputs) == {"rf", "xgb"}
    # The two versions are different models: the shadow's numbers are its own.
    assert not np.allclose(
        by_id["shadow-b"]["shadow"].prediction, by_id["shadow-b"]["live"].prediction
    )
    assert {r.endpoint for r in stored} == {"v2_infer", "v1_predict"}


@pytest.mark.slow
@pytest.mark.postgres
@QUIET
def test_with_no_shadow_in_the_route_nothing_is_mirrored(
    cluster: Cluster, pair: tuple[Predictor, Predictor]
) -> None:
    blue, _green = pair
    set_route(cluster.store, RolloutState(MODEL, phase=Phase.STABLE, active_colour="blue"))
    time.sleep(POLL_S * 5)
    since = datetime.now(UTC)
    for i in range(3):
        response = httpx.post(
            f"{blue.url}/v2/models/{MODEL}/infer",
            json=_v2(1),
            headers={**cluster.headers, "X-Request-ID": f"alone-{i}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
    assert len(_stored(cluster.store, since, 3, slot="live")) == 3
    time.sleep(1.0)  # a mirror would have answered by now
    stored = cluster.store.predictions.predictions(since=since, slot=None)
    assert sorted((r.request_id, r.slot) for r in stored) == [
        (f"alone-{i}", "live") for i in range(3)
    ]


@contextlib.contextmanager
def black_hole() -> Iterator[tuple[str, list[socket.socket]]]:
    """A shadow that accepts connections and never answers; its URL and what it accepted."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                accepted.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}", accepted
    finally:
        server.close()
        for connection in accepted:
            connection.close()


def _metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.slow
@pytest.mark.postgres
@QUIET
def test_a_shadow_that_never_answers_neither_fails_nor_delays_the_live_answer(
    cluster: Cluster,
) -> None:
    with black_hole() as (url, accepted):
        live = cluster.start(
            DRIFTLINE_COLOUR="blue",
            DRIFTLINE_MODEL_VERSION="1",
            DRIFTLINE_SERVE_SHADOW_URL=url,
            DRIFTLINE_SERVE_REQUEST_TIMEOUT_S=str(TIMEOUT_S),
        )
        set_route(cluster.store, in_rollout(Phase.DEPLOYING, "blue"))
        time.sleep(POLL_S * 5)
        ids = [f"hole-{i}" for i in range(10)]
        latencies = []
        for request_id in ids:
            started = time.perf_counter()
            response = httpx.post(
                f"{live.url}/v2/models/{MODEL}/infer",
                json=_v2(1),
                headers={**cluster.headers, "X-Request-ID": request_id},
                timeout=30,
            )
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
        # A live answer that waited for its mirror would take the mirror's whole deadline.
        assert max(latencies) < TIMEOUT_S / 2, latencies
        assert accepted, "no mirror was attempted: the test would prove nothing"
        time.sleep(TIMEOUT_S + 1)  # every mirror has met its deadline
        text = httpx.get(f"{live.url}/metrics", headers=cluster.headers, timeout=10).text
    assert _metric(text, "driftline_request_errors_total", endpoint="shadow", kind="timeout") == 10
    stored = cluster.store.predictions.predictions(slot=None)
    mine = sorted((r.request_id, r.slot) for r in stored if r.request_id in ids)
    assert mine == [(i, "live") for i in sorted(ids)]
