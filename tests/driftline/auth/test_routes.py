"""The route table: no route without a scope, templates match as Starlette's do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, WebSocketRoute
from starlette.routing import Route as StarletteRoute

from driftline.auth.asgi import starlette_operations
from driftline.auth.routes import PUBLIC, Route, RouteDeclarationError, RouteTable
from driftline.auth.scopes import Scope
from driftline.config import Settings
from driftline.drift.api import drift_app
from driftline.drift.outcomes import OutcomeRecorder
from driftline.store import Store


@pytest.mark.parametrize("scope", [None, "", "predict", "public-ish", 3])
def test_a_route_without_a_scope_cannot_be_registered(scope: Any) -> None:
    with pytest.raises(RouteDeclarationError, match="every route declares what it needs"):
        RouteTable().add("POST", "/api/outcomes", scope)
    with pytest.raises(RouteDeclarationError):
        Route("POST", "/api/outcomes", scope)


def test_public_routes_are_declared_explicitly() -> None:
    table = RouteTable()
    route = table.public("GET", "/healthz")
    assert route.is_public
    assert route.scope == PUBLIC
    assert table.match("GET", "/healthz") is route


@pytest.mark.parametrize(("method", "path"), [("FETCH", "/x"), ("GET", "x"), ("get", "no-slash")])
def test_bad_methods_and_paths_are_refused(method: str, path: str) -> None:
    with pytest.raises(RouteDeclarationError):
        RouteTable().add(method, path, Scope.READ)


def test_a_route_declared_twice_is_refused() -> None:
    table = RouteTable([Route("GET", "/metrics", Scope.READ)])
    with pytest.raises(RouteDeclarationError, match="declared twice"):
        table.add("GET", "/metrics", Scope.ADMIN)


def test_templates_match_one_segment_or_the_rest() -> None:
    table = RouteTable(
        [
            Route("POST", "/v2/models/{model}/infer", Scope.PREDICT),
            Route("POST", "/v2/models/{model}/versions/{version}/infer", Scope.PREDICT),
            Route("GET", "/v1/models/{model}", Scope.READ),
            Route("POST", "/v1/models/{model}:predict", Scope.PREDICT),
            Route("GET", "/ui/{file:path}", PUBLIC),
            Route("WEBSOCKET", "/ws/predictions", Scope.STREAM),
        ]
    )
    assert table.match("POST", "/v2/models/m/infer").path == "/v2/models/{model}/infer"  # type: ignore[union-attr]
    versioned = table.match("POST", "/v2/models/m/versions/3/infer")
    assert versioned is not None
    assert versioned.path.endswith("{version}/infer")
    assert table.match("POST", "/v2/models/a/b/infer") is None
    assert table.match("POST", "/v1/models/m:predict").scope == Scope.PREDICT  # type: ignore[union-attr]
    assert table.match("GET", "/v1/models/m").scope == Scope.READ  # type: ignore[union-attr]
    assert table.match("HEAD", "/v1/models/m").scope == Scope.READ  # type: ignore[union-attr]
    assert table.match("GET", "/ui/css/site.css").is_public  # type: ignore[union-attr]
    assert table.match("GET", "/ws/predictions") is None
    assert table.match("WEBSOCKET", "/ws/predictions").scope == Scope.STREAM  # type: ignore[union-attr]
    # Regex characters in a template are literal.
    assert table.match("GET", "/v1/models/m.json") is not None
    assert RouteTable([Route("GET", "/a.b", Scope.READ)]).match("GET", "/axb") is None


def test_the_most_specific_template_wins() -> None:
    table = RouteTable(
        [
            Route("GET", "/api/{rest:path}", Scope.ADMIN),
            Route("GET", "/api/drift/status", Scope.READ),
        ]
    )
    assert table.match("GET", "/api/drift/status").scope == Scope.READ  # type: ignore[union-attr]
    assert table.match("GET", "/api/other").scope == Scope.ADMIN  # type: ignore[union-attr]


def _ok(_request: Any) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def _ws(_websocket: Any) -> None:
    return None


def test_every_route_of_the_drift_api_and_a_starlette_app_can_be_checked(
    tmp_path: Path,
) -> None:
    # The real drift API router, mounted as the serving ingress mounts it.
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    drift = drift_app(store, OutcomeRecorder(store, Settings(home=tmp_path)), model_name="m")
    app = Starlette(
        routes=[
            StarletteRoute("/healthz", _ok),
            WebSocketRoute("/ws/predictions", _ws),
            Mount("/api", app=drift),
        ]
    )
    operations = starlette_operations(app.routes)
    assert ("POST", "/api/outcomes") in operations
    assert ("WEBSOCKET", "/ws/predictions") in operations
    table = RouteTable(
        [
            Route("GET", "/healthz", PUBLIC),
            Route("WEBSOCKET", "/ws/predictions", Scope.STREAM),
            Route("POST", "/api/outcomes", Scope.OUTCOMES_WRITE),
            Route("POST", "/api/drift/alerts/{alert_id}/acknowledge", Scope.ALERTS_WRITE),
            Route("POST", "/api/outcomes/conflicts/resolve", Scope.ADMIN),
        ]
    )
    assert table.undeclared(operations) == [
        ("GET", "/api/drift/alerts"),
        ("GET", "/api/drift/history"),
        ("GET", "/api/drift/reports"),
        ("GET", "/api/drift/reports/{report_id}"),
        ("GET", "/api/drift/reports/{report_id}.html"),
        ("GET", "/api/drift/status"),
        ("GET", "/api/outcomes/conflicts"),
    ]
    store.close()
