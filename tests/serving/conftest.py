"""One served system per session: two small real model versions, Serve on the shared Ray head."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from benchmarks import synthetic
from driftline.auth.keys import issue_key
from driftline.auth.scopes import Scope
from driftline.config import Settings
from driftline.contracts import forwarded_env
from driftline.raycluster import LocalRayCluster, free_port
from driftline.registry import ModelBundle
from driftline.store import Store, migrate
from driftline.store.keys import KeyStore
from serving.control import ServingControl
from serving.kserve_contract import PredictionLog, mount_api
from serving.kserve_server import build_model
from serving.metrics import metrics

if TYPE_CHECKING:
    from tests.conftest import RegisteredModel

# Small limits so that the limit tests stay small.
SERVING_ENV = {
    "DRIFTLINE_STREAM_INTERVAL_S": "0.5",
    "DRIFTLINE_STREAM_CLIENT_QUEUE": "4",
    "DRIFTLINE_SERVE_MAX_ROWS": "2048",
    "DRIFTLINE_SERVE_MAX_BODY_BYTES": str(2 * 1024 * 1024),
    "DRIFTLINE_SERVE_WRITE_INTERVAL_S": "0.1",
    "DRIFTLINE_SERVE_MAX_REPLICAS": "1",
    "DRIFTLINE_LOG_JSON": "true",
    # A colour out of routing is retired this long after the switch (15 s in production).
    "DRIFTLINE_CONTROLLER_DRAIN_S": "3",
}


@dataclass
class Served:
    """A running serving system and what the tests need to talk to it."""

    settings: Settings
    control: ServingControl
    store: Store
    base_url: str
    bundles: dict[str, ModelBundle]
    key: str = ""

    @property
    def headers(self) -> dict[str, str]:
        """`Authorization` for every scope a serving client uses (auth is on, as in production)."""
        return {"Authorization": f"Bearer {self.key}"}


def client_key(settings: Settings) -> str:
    """A key with a serving client's scopes, issued as `driftline keys create` does."""
    migrate.upgrade(settings.store_url)
    keys = KeyStore.from_settings(settings)
    try:
        scopes = frozenset({Scope.PREDICT, Scope.STREAM, Scope.READ, Scope.OUTCOMES_WRITE})
        return issue_key(keys, f"tests-{uuid.uuid4().hex[:8]}", scopes).key
    finally:
        keys.close()


@pytest.fixture(scope="session")
def serving_settings(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str
) -> Iterator[Settings]:
    """Settings for the served system: its own home, PostgreSQL store, small limits."""
    home = tmp_path_factory.mktemp("serving-home")
    saved = dict(os.environ)
    os.environ.update(SERVING_ENV)
    settings = Settings(home=home, store={"database_url": postgres_url})
    yield settings
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def bundles(serving_settings: Settings) -> dict[str, ModelBundle]:
    """Two small real versions (RandomForest + XGBoost with ONNX twins)."""
    return {
        v: synthetic.make_bundle(
            serving_settings, v, trees=(20, 30), depths=(4, 4), rows=400, seed=int(v)
        )
        for v in ("1", "2")
    }


@pytest.fixture(scope="session")
def served(
    ray_cluster: LocalRayCluster, serving_settings: Settings, bundles: dict[str, ModelBundle]
) -> Iterator[Served]:
    """Version 1 served on blue through Serve's proxy on a free port; removed at the end."""
    store = Store(serving_settings.store_url)
    store.upgrade()
    port = free_port()
    env = {**forwarded_env(serving_settings), **SERVING_ENV}
    control = ServingControl(
        serving_settings,
        ray_cluster.dashboard_url,
        http_port=port,
        loader=synthetic.LOADER,
        env=env,
    )
    control.deploy("1")
    key = client_key(serving_settings)
    try:
        yield Served(serving_settings, control, store, f"http://127.0.0.1:{port}", bundles, key)
    finally:
        # The e2e modules, last, stop the shared head before this ends: its apps went with it.
        if ray_cluster.running:
            control.shutdown()
        store.close()


@pytest.fixture(scope="session")
def kserve_app(registered_model: RegisteredModel, postgres_url: str) -> Any:
    """The InferenceService predictor over the registered version: KServe's own REST application
    (endpoints, data plane, error handlers) with `serving.kserve_server`'s model, in process.

    Assembled as `serving.kserve_server.main` does: its prediction log writes to the PostgreSQL
    store the Serve graphs here write to, and the drift and outcomes API is under `/api`.
    KServe builds its one module-level FastAPI app, so the session shares one.
    """
    import kserve.model_server  # noqa: PLC0415
    from kserve import ModelServer  # noqa: PLC0415
    from kserve.protocol.rest.server import RESTServer  # noqa: PLC0415

    settings = registered_model.settings.updated({"store": {"database_url": postgres_url}})
    store = Store.from_settings(settings)
    store.upgrade()
    bundle = registered_model.bundle
    prediction_log = PredictionLog(
        store,
        settings,
        model_name=bundle.name,
        version=bundle.version,
        metrics=metrics(),
    )
    mount_api(kserve.model_server.app, prediction_log)
    server = ModelServer(enable_grpc=False, enable_latency_logging=False)
    server.register_model(build_model(settings, bundle, prediction_log))
    rest = RESTServer(
        "kserve.model_server:app",
        server.dataplane,
        server.model_repository_extension,
        http_port=free_port(),
    )
    rest.create_application()
    return kserve.model_server.app
