"""The middleware on a real Starlette app (a mounted FastAPI router, a WebSocket) under uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi import APIRouter, FastAPI, Request
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, WebSocketRoute
from starlette.routing import Route as StarletteRoute
from starlette.types import ASGIApp
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from driftline.auth.asgi import SecurityMiddleware, WebSocketLimits, principal_of
from driftline.auth.audit import LOGGER, REFUSED_METRIC, SecurityAudit
from driftline.auth.guard import Authenticator, Guard
from driftline.auth.keys import KeyVerifier
from driftline.auth.oidc import JwksFile, JwtVerifier, OidcConfig
from driftline.auth.ratelimit import LocalLimiter, Rate
from driftline.auth.routes import PUBLIC, Route, RouteTable
from driftline.auth.scopes import Scope
from driftline.observability.logs import JsonFormatter
from driftline.store.keys import KeyStore
from tests.driftline.auth.jwts import AUDIENCE, ISSUER, SigningKey, sign

TABLE = RouteTable(
    [
        Route("GET", "/healthz", PUBLIC),
        Route("POST", "/v2/models/{model}/infer", Scope.PREDICT),
        Route("GET", "/metrics", Scope.READ),
        Route("POST", "/api/outcomes", Scope.OUTCOMES_WRITE),
        Route("WEBSOCKET", "/ws/predictions", Scope.STREAM),
    ]
)


async def healthz(request: Request) -> Response:
    return PlainTextResponse(f"ok {request.headers.get('x-request-id')}")


async def infer(request: Request) -> Response:
    principal = principal_of(request)
    return JSONResponse({"model": request.path_params["model"], "by": principal.name})


async def metrics(_request: Request) -> Response:
    return PlainTextResponse("# metrics")


async def predictions(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json({"by": principal_of(websocket).name})
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            message = await websocket.receive_text()
            if message == "quiet":
                await asyncio.sleep(3600)
            await websocket.send_text(message)


def drift_api() -> FastAPI:
    router = APIRouter()

    @router.post("/outcomes")
    def outcomes(request: Request) -> dict[str, str]:
        return {"recorded_by": principal_of(request).label}

    app = FastAPI()
    app.include_router(router)
    return app


class Served:
    """An ASGI app under a real uvicorn on loopback, with an HTTP client and WebSockets."""

    def __init__(self, app: ASGIApp) -> None:
        import uvicorn  # noqa: PLC0415

        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.http = httpx.Client(base_url=self.url, timeout=10)

    def request(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        return self.http.request(method, path, **kwargs)  # type: ignore[arg-type]

    def get(self, path: str, **kwargs: object) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: object) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def websocket(self, path: str, headers: dict[str, str] | None = None) -> ClientConnection:
        return ws_connect(
            self.url.replace("http", "ws") + path, additional_headers=headers, open_timeout=5
        )

    def close(self) -> None:
        self.http.close()
        self.server.should_exit = True
        self.thread.join(10)


def denied(served: Served, headers: dict[str, str] | None = None) -> httpx.Response:
    """The HTTP response a refused WebSocket handshake got."""
    with pytest.raises(InvalidStatus) as caught, served.websocket("/ws/predictions", headers):
        pass
    response = caught.value.response
    return httpx.Response(
        response.status_code,
        headers=dict(response.headers.raw_items()),
        content=bytes(response.body),
    )


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def build(
    key_store: KeyStore, registry: CollectorRegistry, tmp_path: Path, signing_key: SigningKey
) -> Iterator[Callable[..., Served]]:
    jwks = tmp_path / "jwks.json"
    jwks.write_bytes(orjson.dumps({"keys": [signing_key.jwk]}))

    started: list[Served] = []

    def make(
        rates: dict[Scope, Rate] | None = None, limits: WebSocketLimits | None = None
    ) -> Served:
        app = Starlette(
            routes=[
                StarletteRoute("/healthz", healthz),
                StarletteRoute("/v2/models/{model}/infer", infer, methods=["POST"]),
                StarletteRoute("/metrics", metrics),
                WebSocketRoute("/ws/predictions", predictions),
                Mount("/api", app=drift_api()),
            ]
        )
        authenticator = Authenticator(
            KeyVerifier(key_store, ttl_s=0),
            JwtVerifier(OidcConfig(issuer=ISSUER, audience=AUDIENCE), JwksFile(jwks)),
        )
        guard = Guard(TABLE, authenticator, LocalLimiter(rates or {}))
        secured = SecurityMiddleware(app, guard, websockets=limits, audit=SecurityAudit(registry))
        started.append(Served(secured))
        return started[-1]

    yield make
    for served in started:
        served.close()


@pytest.fixture
def client(build: Callable[..., Served]) -> Served:
    return build()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def refused(registry: CollectorRegistry, reason: str) -> float:
    return registry.get_sample_value(f"{REFUSED_METRIC}_total", {"reason": reason}) or 0.0


def test_public_routes_answer_without_a_credential(
    client: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    response = client.get("/healthz")
    assert response.status_code == 200
    # The app sees the audit line's correlation id as the request's id.
    (line,) = [r for r in caplog.records if r.name == LOGGER]
    assert response.text == f"ok {line.correlation_id}"  # type: ignore[attr-defined]
    assert client.get("/healthz", headers={"x-request-id": "mine"}).text == "ok mine"


def test_every_protected_route_is_401_without_a_credential(
    client: Served, registry: CollectorRegistry
) -> None:
    for method, path in [
        ("POST", "/v2/models/m/infer"),
        ("GET", "/metrics"),
        ("POST", "/api/outcomes"),
        ("GET", "/not/declared"),
    ]:
        response = client.request(method, path)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == 'Bearer realm="driftline"'
        assert response.json() == {"error": response.json()["error"]}
        assert "Authorization: Bearer" in response.json()["error"]
    assert refused(registry, "missing") == 4


def test_wrong_revoked_and_expired_keys_are_401(
    client: Served, key_store: KeyStore, issue: Callable[..., str], registry: CollectorRegistry
) -> None:
    revoked = issue(Scope.READ, name="gone")
    key_store.revoke("gone", datetime.now(UTC))
    expired = issue(
        Scope.READ, expires_in=timedelta(seconds=1), now=datetime.now(UTC) - timedelta(days=1)
    )
    for key, reason in [
        ("dl_0123456789ab_" + "x" * 43, "invalid"),
        (revoked, "revoked"),
        (expired, "expired"),
    ]:
        response = client.get("/metrics", headers=auth(key))
        assert response.status_code == 401
        assert 'error="invalid_token"' in response.headers["www-authenticate"]
        assert key not in response.text
        assert refused(registry, reason) == 1


def test_a_key_lacking_the_scope_is_403_and_one_holding_it_passes(
    client: Served, issue: Callable[..., str], registry: CollectorRegistry
) -> None:
    predictor = issue(Scope.PREDICT, name="predictor")
    response = client.post("/api/outcomes", headers=auth(predictor))
    assert response.status_code == 403
    assert (
        'error="insufficient_scope", scope="outcomes:write"' in response.headers["www-authenticate"]
    )
    assert refused(registry, "forbidden") == 1
    response = client.post("/v2/models/m/infer", headers=auth(predictor))
    assert response.json() == {"model": "m", "by": "predictor"}
    writer = issue(Scope.OUTCOMES_WRITE, name="writer")
    assert client.post("/api/outcomes", headers=auth(writer)).json() == {
        "recorded_by": "key:writer"
    }


def test_a_jwt_from_the_issuer_is_accepted_by_its_scopes(
    client: Served, signing_key: SigningKey
) -> None:
    token = sign(signing_key, scope="read")
    assert client.get("/metrics", headers=auth(token)).status_code == 200
    assert client.post("/v2/models/m/infer", headers=auth(token)).status_code == 403
    wrong = sign(signing_key, aud="another-service")
    assert client.get("/metrics", headers=auth(wrong)).status_code == 401


def test_the_rate_limit_answers_429_with_retry_after(
    build: Callable[..., Served], issue: Callable[..., str], registry: CollectorRegistry
) -> None:
    key = issue(Scope.PREDICT)
    client = build(rates={Scope.PREDICT: Rate(per_s=0.2, burst=2)})
    codes = [client.post("/v2/models/m/infer", headers=auth(key)) for _ in range(3)]
    assert [r.status_code for r in codes] == [200, 200, 429]
    assert codes[-1].headers["retry-after"] == "5"
    assert "rate limit" in codes[-1].json()["error"]
    # Another principal has its own bucket; public routes have none.
    assert client.post("/v2/models/m/infer", headers=auth(issue(Scope.PREDICT))).is_success
    assert all(client.get("/healthz").is_success for _ in range(5))
    assert refused(registry, "rate_limited") == 1


def test_a_websocket_handshake_needs_the_stream_scope(
    client: Served, issue: Callable[..., str]
) -> None:
    response = denied(client)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="driftline"'
    assert denied(client, auth(issue(Scope.PREDICT))).status_code == 403
    with client.websocket("/ws/predictions", auth(issue(Scope.STREAM, name="s"))) as ws:
        assert orjson.loads(ws.recv(timeout=5)) == {"by": "s"}
        ws.send("ping")
        assert ws.recv(timeout=5) == "ping"


def test_websockets_have_their_own_caps(
    build: Callable[..., Served], issue: Callable[..., str]
) -> None:
    first, second = auth(issue(Scope.STREAM)), auth(issue(Scope.STREAM))
    client = build(limits=WebSocketLimits(max_connections=3, max_per_principal=2))
    with contextlib.ExitStack() as held:
        for headers in (first, first):
            held.enter_context(client.websocket("/ws/predictions", headers)).recv(timeout=5)
        response = denied(client, first)
        assert (response.status_code, response.headers["retry-after"]) == (429, "5")
        held.enter_context(client.websocket("/ws/predictions", second)).recv(timeout=5)
        response = denied(client, second)
        assert response.status_code == 429
        assert "replica" in response.json()["error"]
        # HTTP is untouched by the WebSocket caps.
        assert client.get("/healthz").is_success
    # Closed connections give their slots back (the server notices the close promptly).
    deadline = time.monotonic() + 5
    while True:
        try:
            with client.websocket("/ws/predictions", first) as ws:
                assert orjson.loads(ws.recv(timeout=5))["by"]
            break
        except InvalidStatus:
            assert time.monotonic() < deadline, "slots were not given back"
            time.sleep(0.05)


def test_an_idle_websocket_is_closed(
    build: Callable[..., Served], issue: Callable[..., str]
) -> None:
    client = build(limits=WebSocketLimits(idle_timeout_s=0.3))
    with client.websocket("/ws/predictions", auth(issue(Scope.STREAM))) as ws:
        ws.recv(timeout=5)
        ws.send("quiet")  # the app now neither sends nor receives
        started = time.monotonic()
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert time.monotonic() - started < 2
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1001


def test_the_audit_trail_has_one_line_per_request_and_never_a_secret(
    client: Served,
    issue: Callable[..., str],
    signing_key: SigningKey,
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = issue(Scope.PREDICT, name="auditor")
    token = sign(signing_key, scope="read")
    caplog.set_level(logging.INFO, logger=LOGGER)
    agent = {"user-agent": "probe/1.0"}
    client.post("/v2/models/m/infer", headers={**auth(key), **agent, "x-request-id": "req-123"})
    client.get("/metrics", headers={**auth(token), **agent})
    client.post("/api/outcomes", headers={**auth(key), **agent})
    client.get("/metrics", headers={"Authorization": f"Bearer {key[:-3]}abc"})
    client.get("/healthz")
    with client.websocket("/ws/predictions", auth(issue(Scope.STREAM, name="streamer"))) as ws:
        ws.recv(timeout=5)
    deadline = time.monotonic() + 5
    while len([r for r in caplog.records if r.name == LOGGER]) < 6:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    lines = [orjson.loads(JsonFormatter().format(r)) for r in caplog.records if r.name == LOGGER]
    assert len(lines) == 6
    first = lines[0]
    assert first["principal"] == "key:auditor"
    assert first["client"] == "127.0.0.1"
    assert first["user_agent"] == "probe/1.0"
    assert first["route"] == "/v2/models/{model}/infer"
    assert first["method"] == "POST"
    assert first["status"] == 200
    assert first["correlation_id"] == "req-123"
    assert lines[1]["principal"] == "jwt:system:serviceaccount:driftline:monitor"
    assert lines[2]["principal"] == "key:auditor"
    assert (lines[2]["status"], lines[2]["reason"], lines[2]["level"]) == (
        403,
        "forbidden",
        "warning",
    )
    assert (lines[3]["status"], lines[3]["reason"]) == (401, "invalid")
    assert lines[4]["principal"] == "anonymous:anonymous"
    assert (lines[5]["principal"], lines[5]["status"]) == ("key:streamer", 101)
    assert all(len(line["correlation_id"]) > 0 for line in lines)
    text = "\n".join(orjson.dumps(line).decode() for line in lines)
    secret = key.split("_", 2)[2]  # dl_<id>_<secret>; the secret itself may hold "_"
    for leaked in (key, secret, secret[:16], token, token.split(".")[2][:16]):
        assert leaked not in text
    assert "Bearer" not in text


async def test_paths_are_matched_inside_the_proxy_prefix(
    key_store: KeyStore, issue: Callable[..., str]
) -> None:
    app = Starlette(routes=[StarletteRoute("/metrics", metrics)])
    guard = Guard(TABLE, Authenticator(KeyVerifier(key_store)))
    secured = SecurityMiddleware(app, guard, audit=SecurityAudit(CollectorRegistry()))
    transport = httpx.ASGITransport(app=secured, root_path="/driftline")
    key = await asyncio.to_thread(issue, Scope.READ)
    async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as http:
        assert (await http.get("/driftline/metrics")).status_code == 401
        response = await http.get("/driftline/metrics", headers=auth(key))
    assert (response.status_code, response.text) == (200, "# metrics")
