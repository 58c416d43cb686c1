"""The guard as ASGI middleware (Starlette, FastAPI, Ray Serve ingress, KServe's app).

HTTP refusals answer `{"error": "..."}` with 401/403/429 and their headers. A refused
WebSocket handshake gets the same status through the denial-response extension where the
server offers it, else a close (1008 policy, 1013 try later). Admitted WebSockets count
against a replica-wide and a per-principal cap and are closed after `idle_timeout_s` with no
message either way. Every request leaves one audit line.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from driftline.auth.audit import AuditEntry, SecurityAudit
from driftline.auth.errors import SecurityError, TooManyConnectionsError
from driftline.auth.guard import BEARER_SUBPROTOCOL, WEBSOCKET_SUBPROTOCOL, Access, Guard
from driftline.auth.principal import ANONYMOUS, Principal
from driftline.ids import new_id

CORRELATION_HEADERS = ("x-request-id", "x-correlation-id")
PRINCIPAL_STATE = "principal"
_WS_CLOSE_CODES = {401: 1008, 403: 1008, 429: 1013}


@dataclass(frozen=True, slots=True)
class WebSocketLimits:
    """Caps of one replica's WebSockets, apart from HTTP's concurrency."""

    max_connections: int = 64
    max_per_principal: int = 4
    idle_timeout_s: float = 300.0


def principal_of(connection: HTTPConnection) -> Principal:
    """The principal the middleware admitted this request or WebSocket as."""
    found = connection.scope.get("state", {}).get(PRINCIPAL_STATE)
    return found if isinstance(found, Principal) else ANONYMOUS


class SecurityMiddleware:
    """Admits requests through `guard`, enforces WebSocket caps and writes the audit trail."""

    def __init__(
        self,
        app: ASGIApp,
        guard: Guard,
        *,
        websockets: WebSocketLimits | None = None,
        audit: SecurityAudit | None = None,
    ) -> None:
        self.app = app
        self.guard = guard
        self.websockets = websockets or WebSocketLimits()
        self.audit = audit or SecurityAudit()
        self._open: Counter[str] = Counter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        cid = _correlation_id(scope, headers)
        client = _client(scope)
        method, path = scope["method"], _path(scope)
        try:
            access = await self.guard.admit(method, path, headers, client)
        except SecurityError as error:
            await _refuse_http(send, error, cid)
            self._record(
                scope,
                headers,
                cid=cid,
                principal=error.principal or "-",
                status=error.status,
                reason=error.reason,
            )
            return
        _remember(scope, access.principal)
        status = 500

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            self._record(
                scope,
                headers,
                cid=cid,
                principal=access.principal.label,
                access=access,
                status=status,
            )

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        cid = _correlation_id(scope, headers)
        try:
            access = await self.guard.admit("WEBSOCKET", _path(scope), headers, _client(scope))
            self._check_caps(access.principal)
        except SecurityError as error:
            await _refuse_websocket(scope, receive, send, error)
            self._record(
                scope,
                headers,
                cid=cid,
                principal=error.principal or "-",
                status=error.status,
                reason=error.reason,
            )
            return
        _remember(scope, access.principal)
        label = access.principal.label
        self._open[label] += 1
        try:
            await self._run_websocket(scope, receive, send)
        finally:
            self._open[label] -= 1
            if self._open[label] <= 0:
                del self._open[label]
            self._record(scope, headers, cid=cid, principal=label, access=access, status=101)

    def _check_caps(self, principal: Principal) -> None:
        limits = self.websockets
        error = None
        if sum(self._open.values()) >= limits.max_connections:
            error = TooManyConnectionsError("this replica holds its most WebSockets", 5.0)
        elif self._open[principal.label] >= limits.max_per_principal:
            error = TooManyConnectionsError(f"{principal.label} holds its most WebSockets", 5.0)
        if error is not None:
            error.principal = principal.label
            raise error

    async def _run_websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        last = [time.monotonic()]
        state = {"accepted": False, "closed": False}

        async def touched_receive() -> Message:
            message = await receive()
            last[0] = time.monotonic()
            return message

        offered = _offered_subprotocols(scope)

        async def touched_send(message: Message) -> None:
            if message["type"] == "websocket.accept":
                message = _select_subprotocol(message, offered)
            state["accepted"] |= message["type"] == "websocket.accept"
            state["closed"] |= message["type"] == "websocket.close"
            last[0] = time.monotonic()
            await send(message)

        task = asyncio.ensure_future(self.app(scope, touched_receive, touched_send))
        try:
            while not task.done():
                remaining = last[0] + self.websockets.idle_timeout_s - time.monotonic()
                if remaining <= 0:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                    if state["accepted"] and not state["closed"]:
                        await send({"type": "websocket.close", "code": 1001, "reason": "idle"})
                    return
                await asyncio.wait({task}, timeout=remaining)
            task.result()
        finally:
            if not task.done():
                task.cancel()

    def _record(
        self,
        scope: Scope,
        headers: Headers,
        *,
        cid: str,
        principal: str,
        status: int,
        access: Access | None = None,
        reason: str | None = None,
    ) -> None:
        route = access.route_label if access is not None else _declared(self.guard, scope)
        self.audit.record(
            AuditEntry(
                principal=principal,
                client=_client(scope),
                user_agent=headers.get("user-agent"),
                method=scope.get("method", "WEBSOCKET"),
                route=route,
                status=status,
                correlation_id=cid,
                reason=reason,
            )
        )


def starlette_operations(routes: Iterable[Any], prefix: str = "") -> list[tuple[str, str]]:
    """`(method, path template)` of every route of a Starlette/FastAPI app, mounts included."""
    from starlette.routing import Mount, Route, WebSocketRoute  # noqa: PLC0415

    found: list[tuple[str, str]] = []
    for route in routes:
        if isinstance(route, Mount):
            found += starlette_operations(route.routes, prefix + route.path)
        elif isinstance(route, WebSocketRoute):
            found.append(("WEBSOCKET", prefix + route.path))
        elif isinstance(route, Route):
            found += [(m, prefix + route.path) for m in route.methods or () if m != "HEAD"]
        elif hasattr(route, "original_router"):
            # FastAPI (0.16x) includes a router lazily, as a route holding the router.
            context = getattr(route, "include_context", None)
            inner = prefix + str(getattr(context, "prefix", ""))
            found += starlette_operations(route.original_router.routes, inner)
    return found


def _offered_subprotocols(scope: Scope) -> list[str]:
    return [str(p) for p in scope.get("subprotocols", ())]


def _select_subprotocol(message: Message, offered: list[str]) -> Message:
    """The accept with `driftline.v1` selected when the client offered it; never a credential.

    A browser that offered subprotocols fails a handshake that selects none, and the
    `bearer.<key>` entry must never be echoed back.
    """
    chosen = message.get("subprotocol")
    if chosen and not str(chosen).startswith(BEARER_SUBPROTOCOL):
        return message
    selected = WEBSOCKET_SUBPROTOCOL if WEBSOCKET_SUBPROTOCOL in offered else None
    return {**message, "subprotocol": selected}


def _declared(guard: Guard, scope: Scope) -> str:
    route = guard.table.match(scope.get("method", "WEBSOCKET"), _path(scope))
    return "<undeclared>" if route is None else route.path


def _path(scope: Scope) -> str:
    # Route tables name paths inside the app; a proxy's prefix (root_path) is not part of them.
    path, root = str(scope["path"]), str(scope.get("root_path", ""))
    if root and path.startswith(root):
        return path[len(root) :] or "/"
    return path


def _remember(scope: Scope, principal: Principal) -> None:
    scope.setdefault("state", {})[PRINCIPAL_STATE] = principal


def _client(scope: Scope) -> str | None:
    client = scope.get("client")
    return None if not client else str(client[0])


def _correlation_id(scope: Scope, headers: Headers) -> str:
    for name in CORRELATION_HEADERS:
        value = headers.get(name)
        if value:
            return value[:64]
    # Handed on as the request's own id, so the app's log lines carry the audit line's id.
    cid = new_id()
    scope["headers"] = [*scope["headers"], (CORRELATION_HEADERS[0].encode(), cid.encode())]
    return cid


def _response_headers(error: SecurityError, cid: str | None = None) -> list[tuple[bytes, bytes]]:
    headers = {"content-type": "application/json", **error.headers()}
    if cid is not None:
        headers["x-correlation-id"] = cid
    return [(k.lower().encode(), v.encode()) for k, v in headers.items()]


async def _refuse_http(send: Send, error: SecurityError, cid: str) -> None:
    body = error.body()
    headers = [*_response_headers(error, cid), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _refuse_websocket(
    scope: Scope, receive: Receive, send: Send, error: SecurityError
) -> None:
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    if "websocket.http.response" in scope.get("extensions", {}):
        await send(
            {
                "type": "websocket.http.response.start",
                "status": error.status,
                "headers": _response_headers(error),
            }
        )
        await send({"type": "websocket.http.response.body", "body": error.body()})
        return
    code = _WS_CLOSE_CODES.get(error.status, 1008)
    await send({"type": "websocket.close", "code": code, "reason": error.reason})
