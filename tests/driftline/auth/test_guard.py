"""Authenticate, authorize and limit a request without any web framework (as http.server needs)."""

from __future__ import annotations

import asyncio
import email.message
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from driftline.auth.errors import (
    ExpiredCredentialsError,
    ForbiddenError,
    InvalidCredentialsError,
    MissingCredentialsError,
    RateLimitedError,
    RevokedCredentialsError,
    SecurityError,
)
from driftline.auth.guard import Authenticator, Guard, authorize, bearer_token
from driftline.auth.keys import KeyVerifier, new_key
from driftline.auth.principal import Principal
from driftline.auth.ratelimit import LOOKUPS, LocalLimiter, Rate
from driftline.auth.routes import PUBLIC, Route, RouteTable
from driftline.auth.scopes import Scope
from driftline.store.keys import KeyStore, StoredKey

TABLE = RouteTable(
    [
        Route("GET", "/healthz", PUBLIC),
        Route("GET", "/metrics", Scope.READ),
        Route("POST", "/api/outcomes", Scope.OUTCOMES_WRITE),
    ]
)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def guard(key_store: KeyStore) -> Guard:
    return Guard(TABLE, Authenticator(KeyVerifier(key_store, ttl_s=0)))


def refusal(guard: Guard, path: str, headers: dict[str, str], method: str = "GET") -> SecurityError:
    with pytest.raises(SecurityError) as caught:
        guard.check(method, path, headers, "10.0.0.1")
    return caught.value


def test_public_routes_need_no_credential(guard: Guard) -> None:
    assert guard.check("GET", "/healthz", {}, None).principal.kind == "anonymous"


def test_a_missing_credential_is_401_with_a_bare_bearer_challenge(guard: Guard) -> None:
    error = refusal(guard, "/metrics", {})
    assert isinstance(error, MissingCredentialsError)
    assert error.status == 401
    assert error.headers() == {"WWW-Authenticate": 'Bearer realm="driftline"'}


@pytest.mark.parametrize(
    "header",
    ["Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "dl_abc", "Token x", "Bearer " + "a" * 9000],
)
def test_other_schemes_and_malformed_headers_are_401(guard: Guard, header: str) -> None:
    error = refusal(guard, "/metrics", {"authorization": header})
    assert isinstance(error, InvalidCredentialsError)
    assert error.status == 401
    assert 'error="invalid_token"' in error.headers()["WWW-Authenticate"]


def test_wrong_revoked_and_expired_keys_are_401(
    guard: Guard, key_store: KeyStore, issue: Callable[..., str]
) -> None:
    key = issue(Scope.READ, name="revoked")
    key_store.revoke("revoked", datetime.now(UTC))
    old = issue(
        Scope.READ,
        name="old",
        expires_in=timedelta(minutes=1),
        now=datetime.now(UTC) - timedelta(hours=1),
    )
    cases = {
        "dl_000000000000_" + "A" * 43: InvalidCredentialsError,
        key: RevokedCredentialsError,
        old: ExpiredCredentialsError,
        "eyJhbGciOi.not.ajwt": InvalidCredentialsError,  # no issuer configured
    }
    for credential, kind in cases.items():
        error = refusal(guard, "/metrics", bearer(credential))
        assert isinstance(error, kind)
        assert error.status == 401
        assert credential not in error.message


def test_a_valid_key_without_the_scope_is_403(guard: Guard, issue: Callable[..., str]) -> None:
    error = refusal(guard, "/api/outcomes", bearer(issue(Scope.PREDICT)), method="POST")
    assert isinstance(error, ForbiddenError)
    assert error.status == 403
    assert error.headers()["WWW-Authenticate"].endswith('scope="outcomes:write"')


def test_a_key_with_the_scope_or_admin_is_admitted(guard: Guard, issue: Callable[..., str]) -> None:
    for scope in (Scope.OUTCOMES_WRITE, Scope.ADMIN):
        access = guard.check("POST", "/api/outcomes", bearer(issue(scope)), None)
        assert access.principal.kind == "key"
        assert access.route is not None
        assert access.route.scope == Scope.OUTCOMES_WRITE


def test_an_undeclared_path_needs_a_credential_but_no_scope(
    guard: Guard, issue: Callable[..., str]
) -> None:
    assert isinstance(refusal(guard, "/nowhere", {}), MissingCredentialsError)
    access = guard.check("GET", "/nowhere", bearer(issue(Scope.PREDICT)), None)
    assert access.route is None
    assert access.route_label == "<undeclared>"


def test_http_server_headers_work_as_they_come(guard: Guard, issue: Callable[..., str]) -> None:
    # `http.server` hands handlers an email.message.Message (case-insensitive `get`).
    headers = email.message.Message()
    headers["AUTHORIZATION"] = f"bearer {issue(Scope.READ)}"
    assert guard.admit_sync("GET", "/metrics", headers, "127.0.0.1").principal.kind == "key"  # type: ignore[arg-type]


def test_admit_sync_applies_an_in_memory_limit(
    key_store: KeyStore, issue: Callable[..., str]
) -> None:
    limiter = LocalLimiter({Scope.READ: Rate(per_s=0.5, burst=2)})
    guard = Guard(TABLE, Authenticator(KeyVerifier(key_store)), limiter)
    headers = bearer(issue(Scope.READ))
    guard.admit_sync("GET", "/metrics", headers, None)
    guard.admit_sync("GET", "/metrics", headers, None)
    with pytest.raises(RateLimitedError) as caught:
        guard.admit_sync("GET", "/metrics", headers, None)
    assert caught.value.status == 429
    assert caught.value.headers() == {"Retry-After": "2"}
    # Public routes are never limited.
    for _ in range(5):
        guard.admit_sync("GET", "/healthz", {}, None)


def test_with_auth_off_every_caller_is_an_anonymous_client(key_store: KeyStore) -> None:
    guard = Guard(TABLE, Authenticator(KeyVerifier(key_store)), enabled=False)
    access = guard.check("POST", "/api/outcomes", {}, "10.1.2.3")
    assert access.principal.label == "anonymous:10.1.2.3"
    assert access.principal.allows(Scope.OUTCOMES_WRITE)


def test_bearer_token_and_authorize_stand_alone() -> None:
    assert bearer_token({"authorization": "Bearer  abc "}) == "abc"
    reader = Principal("r", "jwt", frozenset({Scope.READ}))
    authorize(reader, Scope.READ)
    with pytest.raises(ForbiddenError):
        authorize(reader, Scope.PREDICT)


def test_a_threaded_http_server_uses_the_guard_as_the_controller_would(
    guard: Guard, issue: Callable[..., str]
) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            try:
                access = guard.admit_sync("GET", self.path, self.headers, self.client_address[0])  # type: ignore[arg-type]
            except SecurityError as error:
                self._send(error.status, error.body(), error.headers())
                return
            self._send(200, access.principal.label.encode(), {})

        def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert httpx.get(f"{base}/healthz").status_code == 200
        refused = httpx.get(f"{base}/metrics")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == 'Bearer realm="driftline"'
        assert refused.json()["error"].startswith("this route needs")
        key = issue(Scope.READ, name="prometheus")
        admitted = httpx.get(f"{base}/metrics", headers=bearer(key))
        assert (admitted.status_code, admitted.text) == (200, "key:prometheus")
    finally:
        server.shutdown()
        server.server_close()


async def test_credential_checks_that_miss_the_cache_are_limited_per_client(
    key_store: KeyStore, issue: Callable[..., str]
) -> None:
    queries: list[str] = []

    class CountingStore:
        def by_key_id(self, key_id: str) -> StoredKey | None:
            queries.append(key_id)
            return key_store.by_key_id(key_id)

    limiter = LocalLimiter({LOOKUPS: Rate(per_s=0.01, burst=3)})
    guard = Guard(TABLE, Authenticator(KeyVerifier(CountingStore(), ttl_s=60)), limiter)
    valid = bearer(await asyncio.to_thread(issue, Scope.READ))
    await guard.admit("GET", "/metrics", valid, "10.0.0.9")  # one lookup, then cached
    for _ in range(2):
        with pytest.raises(InvalidCredentialsError):
            await guard.admit("GET", "/metrics", bearer(new_key()[1]), "10.0.0.9")
    with pytest.raises(RateLimitedError, match="too many credential checks") as caught:
        await guard.admit("GET", "/metrics", bearer(new_key()[1]), "10.0.0.9")
    assert caught.value.principal == "client:10.0.0.9"
    assert len(queries) == 3  # the refused guess never reached the store
    # A cached key from the same address, and other addresses, are unaffected.
    assert (await guard.admit("GET", "/metrics", valid, "10.0.0.9")).principal.kind == "key"
    with pytest.raises(InvalidCredentialsError):
        await guard.admit("GET", "/metrics", bearer(new_key()[1]), "10.0.0.10")
    with pytest.raises(RateLimitedError):
        guard.admit_sync("GET", "/metrics", bearer(new_key()[1]), "10.0.0.9")


def test_a_websocket_subprotocol_carries_the_key_browsers_cannot_put_in_a_header() -> None:
    offered = {"sec-websocket-protocol": "driftline.v1, bearer.dl_0123456789ab_secret"}
    assert bearer_token(offered) == "dl_0123456789ab_secret"
    # The header wins where both are sent; a subprotocol list without a key is no credential.
    both = {**offered, "authorization": "Bearer dl_header"}
    assert bearer_token(both) == "dl_header"
    with pytest.raises(MissingCredentialsError):
        bearer_token({"sec-websocket-protocol": "driftline.v1"})


async def test_a_busy_keys_expired_entry_is_refreshed_once_and_refuses_no_request(
    key_store: KeyStore, issue: Callable[..., str]
) -> None:
    # The soak benchmark's 429s: every request in flight missed the expired entry together and
    # was charged to its address's lookup bucket.
    queries: list[str] = []
    clock = [1000.0]

    class SlowStore:
        def by_key_id(self, key_id: str) -> StoredKey | None:
            queries.append(key_id)
            time.sleep(0.05)  # a store query under load
            return key_store.by_key_id(key_id)

    limiter = LocalLimiter({LOOKUPS: Rate(per_s=0.01, burst=2)})
    verifier = KeyVerifier(SlowStore(), ttl_s=5, clock=lambda: clock[0])
    guard = Guard(TABLE, Authenticator(verifier), limiter)
    key = await asyncio.to_thread(issue, Scope.READ, name="busy")
    await guard.admit("GET", "/metrics", bearer(key), "10.0.0.9")
    clock[0] += 5  # the entry expires with 64 requests in flight
    admitted = await asyncio.gather(
        *(guard.admit("GET", "/metrics", bearer(key), "10.0.0.9") for _ in range(64))
    )
    assert all(a.principal.kind == "key" for a in admitted)
    assert len(queries) == 2  # the first verification, and one refresh for all 64
    # Revoked meanwhile: refused once the entry has expired again, known key or not.
    key_store.revoke("busy", datetime.now(UTC))
    clock[0] += 5
    with pytest.raises(RevokedCredentialsError):
        await guard.admit("GET", "/metrics", bearer(key), "10.0.0.9")
