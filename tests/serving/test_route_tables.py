"""Every route of every application is declared, and the guard answers each as declared.

Walks the serving ingress (KServe V1/V2, the domain API, /api drift and controller routes,
the stream, docs and /ui), KServe's predictor app and the controller's HTTP server: without a
credential 401, with a wrong, revoked or expired key 401, with a valid key lacking the scope
403; public routes answer without one. A route added without a declaration fails here.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from openapi_spec_validator import validate
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route as StarletteRoute
from starlette.websockets import WebSocket
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from driftline.auth.asgi import starlette_operations
from driftline.auth.keys import issue_key
from driftline.auth.routes import Route, RouteDeclarationError, RouteTable
from driftline.auth.scopes import Scope
from driftline.config import Settings
from driftline.controller_api import controller_router
from driftline.drift.api import drift_app
from driftline.drift.outcomes import OutcomeRecorder
from driftline.store import Store, migrate
from driftline.store.keys import KeyStore
from serving import endpoints, ingress
from serving.kserve_server import PREDICTOR_ROUTES, guard_kserve_app, predictor_guard
from tests.driftline.auth.test_asgi import Served

_SAMPLE = {"path": "index.html"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = Settings(home=tmp_path)
    migrate.upgrade(settings.store_url)
    return settings


@pytest.fixture
def keys(settings: Settings) -> Iterator[KeyStore]:
    store = KeyStore.from_settings(settings)
    yield store
    store.close()


@pytest.fixture
def issue(keys: KeyStore) -> Callable[..., str]:
    def make(*scopes: Scope, **kwargs: Any) -> str:
        name = kwargs.pop("name", f"k-{uuid.uuid4().hex[:8]}")
        return issue_key(keys, name, frozenset(scopes), **kwargs).key

    return make


async def _answer(request: Request) -> Response:
    return PlainTextResponse(f"answered {request.url.path}")


async def _stream(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json({"stream": True})
    await websocket.close()


def _ingress_app(settings: Settings, keys: KeyStore) -> Any:
    """The serving port as `build_app` assembles it; handlers answer without Ray behind them."""
    store = Store(settings.store_url)
    api = drift_app(store, OutcomeRecorder(store, settings), model_name="m")
    api.include_router(controller_router(store, model_name="m"))
    handlers = [
        StarletteRoute(path, _answer, methods=[method])
        for path, _name, _fn, method, _scope in endpoints.routes()
    ]
    return ingress.assemble(settings, handlers=handlers, stream=_stream, api=api, keys=keys)


def _kserve_app(settings: Settings) -> Any:
    """KServe's REST app with every route it registers, on a fresh FastAPI app, guarded."""
    import fastapi  # noqa: PLC0415
    from kserve import Model, ModelServer  # noqa: PLC0415
    from kserve.protocol.rest.server import RESTServer  # noqa: PLC0415

    class Ready(Model):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__("m")
            self.ready = True

    server = ModelServer(enable_grpc=False, enable_latency_logging=False)
    server.register_model(Ready())
    rest = RESTServer(
        "kserve.model_server:app", server.dataplane, server.model_repository_extension, 0
    )
    # As KServe builds its own (`--enable_docs_url` on: the most routes).
    app = fastapi.FastAPI(redoc_url=None)
    rest._register_endpoints(app)
    rest._add_exception_handlers(app)
    operations = starlette_operations(app.routes)
    assert RouteTable(PREDICTOR_ROUTES).undeclared(operations) == []
    guard_kserve_app(app, settings, predictor_guard(settings))
    return app


def _concrete(template: str) -> str:
    return re.sub(r"\{([a-z_]+)(:path)?\}", lambda m: _SAMPLE.get(m.group(1), "1"), template)


def _lacking(route: Route) -> Scope:
    return Scope.STREAM if route.scope != Scope.STREAM else Scope.READ


def _check_http(client: Any, table: RouteTable, issue: Callable[..., str], bad: list[str]) -> int:
    # One key per scope: each fresh key costs a store lookup, which the guard rate-limits.
    held = {scope: issue(scope) for scope in Scope}
    checked = 0
    for route in table.routes:
        if route.method == "WEBSOCKET":
            continue
        path = _concrete(route.path)
        if route.is_public:
            response = client.request(route.method, path)
            assert response.status_code not in {401, 403}, (route, response.text)
            continue
        assert client.request(route.method, path).status_code == 401, route
        for key in bad:
            wrong = {"Authorization": f"Bearer {key}"}
            assert client.request(route.method, path, headers=wrong).status_code == 401, route
        lacking = {"Authorization": f"Bearer {held[_lacking(route)]}"}
        assert client.request(route.method, path, headers=lacking).status_code == 403, route
        holding = {"Authorization": f"Bearer {held[Scope(route.scope)]}"}
        assert client.request(route.method, path, headers=holding).status_code not in {401, 403}
        checked += 1
    return checked


@pytest.fixture
def bad_keys(keys: KeyStore, issue: Callable[..., str]) -> list[str]:
    revoked = issue(Scope.ADMIN, name="revoked")
    keys.revoke("revoked", datetime.now(UTC))
    expired = issue(
        Scope.ADMIN, expires_in=timedelta(seconds=1), now=datetime.now(UTC) - timedelta(days=1)
    )
    return ["dl_0123456789ab_" + "x" * 43, revoked, expired]


def test_every_ingress_route_is_declared_and_guarded_as_declared(
    settings: Settings, keys: KeyStore, issue: Callable[..., str], bad_keys: list[str]
) -> None:
    app = _ingress_app(settings, keys)
    table = ingress.ingress_table()
    starlette = app.app.app  # BodyLimit -> SecurityMiddleware -> Starlette
    assert table.undeclared(starlette_operations(starlette.routes)) == []
    served = Served(app)
    try:
        assert _check_http(served, table, issue, bad_keys) >= 15
        for key in ("", *bad_keys):
            assert _ws_status(served, {"Authorization": f"Bearer {key}"} if key else {}) == 401
        assert _ws_status(served, {"Authorization": f"Bearer {issue(Scope.PREDICT)}"}) == 403
    finally:
        served.close()


def test_every_predictor_route_is_declared_and_guarded_as_declared(
    settings: Settings, issue: Callable[..., str], bad_keys: list[str]
) -> None:
    app = _kserve_app(settings)
    served = Served(app)
    try:
        assert _check_http(served, RouteTable(PREDICTOR_ROUTES), issue, bad_keys) >= 10
    finally:
        served.close()


def test_a_route_without_a_declaration_cannot_be_served(settings: Settings, keys: KeyStore) -> None:
    store = Store(settings.store_url)
    api = drift_app(store, OutcomeRecorder(store, settings), model_name="m")
    api.add_api_route("/drift/new", _answer, methods=["GET"])
    with pytest.raises(RouteDeclarationError, match="GET /api/drift/new"):
        ingress.assemble(settings, handlers=[], stream=_stream, api=api, keys=keys)


def _ws_status(served: Served, headers: dict[str, str]) -> int:
    url = served.url.replace("http", "ws") + ingress.STREAM_PATH
    with pytest.raises(InvalidStatus) as caught, ws_connect(url, additional_headers=headers):
        pass
    return int(caught.value.response.status_code)


def test_the_stream_takes_a_bearer_header_or_the_browser_subprotocol(
    settings: Settings, keys: KeyStore, issue: Callable[..., str]
) -> None:
    served = Served(_ingress_app(settings, keys))
    url = served.url.replace("http", "ws") + ingress.STREAM_PATH
    key = issue(Scope.STREAM)
    try:
        with ws_connect(url, additional_headers={"Authorization": f"Bearer {key}"}) as ws:
            assert orjson.loads(ws.recv(timeout=5)) == {"stream": True}
        # What the status page does: new WebSocket(url, ["driftline.v1", "bearer." + key]).
        with ws_connect(url, subprotocols=["driftline.v1", f"bearer.{key}"]) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == "driftline.v1"
            assert key not in str(ws.response.headers)
            assert orjson.loads(ws.recv(timeout=5)) == {"stream": True}
        wrong = ["driftline.v1", "bearer.dl_0123456789ab_" + "x" * 43]
        with pytest.raises(InvalidStatus) as caught, ws_connect(url, subprotocols=wrong):  # type: ignore[arg-type]
            pass
        assert caught.value.response.status_code == 401
        lacking = ["driftline.v1", f"bearer.{issue(Scope.READ)}"]
        with pytest.raises(InvalidStatus) as caught, ws_connect(url, subprotocols=lacking):  # type: ignore[arg-type]
            pass
        assert caught.value.response.status_code == 403
    finally:
        served.close()


def test_the_openapi_document_is_valid_and_lists_every_operation(
    settings: Settings, keys: KeyStore
) -> None:
    app = _ingress_app(settings, keys)
    served = Served(app)
    try:
        document = served.get("/openapi.json").json()
        docs = served.get("/docs")
        assert docs.status_code == 200
        assert "cdn" not in docs.text.lower()
        for asset in re.findall(r'(?:src|href)="([^"]+)"', docs.text):
            assert served.get(asset).status_code == 200, asset
    finally:
        served.close()
    validate(document)
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    listed = {(m.upper(), p) for p, item in document["paths"].items() for m in item}
    starlette = app.app.app
    http = {op for op in starlette_operations(starlette.routes) if op[0] != "WEBSOCKET"}
    assert http <= listed
    table = ingress.ingress_table()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            route = table.match(method.upper(), path)
            assert route is not None
            if route.is_public:
                assert operation["security"] == []
            else:
                assert operation["x-driftline-scope"] == route.scope
                assert operation["security"] == [{"bearer": []}]
    infer = document["paths"]["/v2/models/{model}/infer"]["post"]
    assert infer["x-driftline-scope"] == "predict"
    assert document["paths"]["/api/outcomes"]["post"]["x-driftline-scope"] == "outcomes:write"
