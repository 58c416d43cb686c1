"""Authentication, authorization and rate limiting of one request, framework-free.

`Authenticator.authenticate(headers)` turns an `Authorization: Bearer` header into a
`Principal`; `authorize(principal, scope)` checks a scope; `Guard` applies both and the rate
limit to a request from the route table. HTTP servers of any kind (Starlette, FastAPI,
KServe's, `http.server`) call it; `driftline.auth.asgi` wraps it as ASGI middleware.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from driftline.auth.errors import (
    ForbiddenError,
    InvalidCredentialsError,
    MissingCredentialsError,
    RateLimitedError,
)
from driftline.auth.keys import KeyVerifier, looks_like_key
from driftline.auth.oidc import JwtVerifier
from driftline.auth.principal import ANONYMOUS, Principal
from driftline.auth.ratelimit import LOOKUPS, Decision, Limiter, LocalLimiter
from driftline.auth.routes import Route, RouteTable
from driftline.auth.scopes import Scope

MAX_TOKEN_CHARS = 8192
BEARER_SUBPROTOCOL = "bearer."
WEBSOCKET_SUBPROTOCOL = "driftline.v1"


class Headers(Protocol):
    """Anything with `get(name)`: Starlette's Headers, `http.server`'s message, a dict."""

    def get(self, key: str, /) -> str | None: ...


def subprotocol_token(headers: Headers | Mapping[str, str]) -> str | None:
    """The credential of a `bearer.<credential>` WebSocket subprotocol, if one is offered.

    Browsers cannot set headers on a WebSocket, so the status page offers
    `["driftline.v1", "bearer." + key]`; the server selects `driftline.v1`, never the key.
    """
    offered = headers.get("sec-websocket-protocol") or headers.get("Sec-WebSocket-Protocol")
    for item in (offered or "").split(","):
        name = item.strip()
        if name.startswith(BEARER_SUBPROTOCOL):
            return name[len(BEARER_SUBPROTOCOL) :]
    return None


def _presented(headers: Headers | Mapping[str, str]) -> str | None:
    value = headers.get("authorization") or headers.get("Authorization")
    if value:
        return value
    token = subprotocol_token(headers)
    return None if token is None else f"Bearer {token}"


def bearer_token(headers: Headers | Mapping[str, str]) -> str:
    """The bearer credential of `headers` (or of a WebSocket's `bearer.` subprotocol)."""
    value = _presented(headers)
    if not value:
        raise MissingCredentialsError("this route needs `Authorization: Bearer <key or token>`")
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise InvalidCredentialsError("the Authorization header must be `Bearer <credential>`")
    if len(token) > MAX_TOKEN_CHARS:
        raise InvalidCredentialsError("credential too long")
    return token


def authorize(principal: Principal, scope: Scope) -> None:
    """Raise `ForbiddenError` unless `principal` holds `scope` (or admin)."""
    if not principal.allows(scope):
        error = ForbiddenError(f"{principal.label} lacks the scope {scope.value!r}", scope.value)
        error.principal = principal.label
        raise error


class Authenticator:
    """Verifies API keys and, when an issuer is configured, JWTs."""

    def __init__(self, keys: KeyVerifier | None, jwts: JwtVerifier | None = None) -> None:
        self.keys = keys
        self.jwts = jwts

    def authenticate(self, headers: Headers | Mapping[str, str]) -> Principal:
        """The principal behind `headers`' bearer credential; refusals raise."""
        token = bearer_token(headers)
        if looks_like_key(token):
            if self.keys is None:
                raise InvalidCredentialsError("API keys are not accepted here")
            return self.keys.verify(token)
        if self.jwts is None:
            raise InvalidCredentialsError("not an API key, and no token issuer is configured")
        return self.jwts.verify(token)

    def is_cached(self, headers: Headers | Mapping[str, str]) -> bool:
        """Whether `authenticate` would answer without I/O (so it may run on an event loop)."""
        token = (_presented(headers) or "").partition(" ")[2].strip()
        if looks_like_key(token):
            return self.keys is None or self.keys.is_cached(token)
        return self.jwts is None or self.jwts.is_cached()

    def is_known(self, headers: Headers | Mapping[str, str]) -> bool:
        """Whether the credential verified before (a lookup now only refreshes it)."""
        token = (_presented(headers) or "").partition(" ")[2].strip()
        if looks_like_key(token):
            return self.keys is not None and self.keys.is_known(token)
        return self.jwts is None or self.jwts.is_cached()


@dataclass(frozen=True, slots=True)
class Access:
    """An admitted request: the route it matched (None: undeclared) and who sent it."""

    route: Route | None
    principal: Principal

    @property
    def route_label(self) -> str:
        return "<undeclared>" if self.route is None else self.route.path

    @property
    def route_is_public(self) -> bool:
        return self.route is not None and self.route.is_public


class Guard:
    """Admits or refuses requests to one application from its route table."""

    def __init__(
        self,
        table: RouteTable,
        authenticator: Authenticator,
        limiter: Limiter | None = None,
        *,
        enabled: bool = True,
    ) -> None:
        self.table = table
        self.authenticator = authenticator
        self.limiter = limiter
        self.enabled = enabled

    def check(
        self, method: str, path: str, headers: Headers | Mapping[str, str], client: str | None
    ) -> Access:
        """Authenticate and authorize (no rate limit); refusals raise a `SecurityError`."""
        return self._check(self.table.match(method, path), headers, client)

    def _check(
        self, route: Route | None, headers: Headers | Mapping[str, str], client: str | None
    ) -> Access:
        if route is not None and route.is_public:
            return Access(route, ANONYMOUS)
        if not self.enabled:
            return Access(route, _anonymous(client))
        principal = self.authenticator.authenticate(headers)
        # An undeclared path needs a valid credential and no scope: the app answers 404.
        if route is not None:
            authorize(principal, Scope(route.scope))
        return Access(route, principal)

    async def admit(
        self, method: str, path: str, headers: Headers | Mapping[str, str], client: str | None
    ) -> Access:
        """`check`, off the event loop when it needs the store or the issuer, then the limit."""
        route = self.table.match(method, path)
        if route is not None and route.is_public:
            return Access(route, ANONYMOUS)
        if self.authenticator.is_cached(headers) or not self.enabled:
            access = self._check(route, headers, client)
        else:
            # A store query or a JWKS fetch: random keys from one address must not flood them.
            # A key that verified before is refreshed uncharged: when its entry expires, every
            # request then in flight misses together and would be refused as a flood.
            if self.limiter is not None and not self.authenticator.is_known(headers):
                _raise_if_slow(await self.limiter.acquire(f"client:{client}", LOOKUPS), client)
            access = await asyncio.to_thread(self._check, route, headers, client)
        if self.limiter is not None:
            decision = await self.limiter.acquire(access.principal.label, _bucket(access))
            _raise_if_limited(decision, access)
        return access

    def admit_sync(
        self, method: str, path: str, headers: Headers | Mapping[str, str], client: str | None
    ) -> Access:
        """`admit` for threaded servers; only an in-memory limiter applies here."""
        route = self.table.match(method, path)
        limiter = self.limiter if isinstance(self.limiter, LocalLimiter) else None
        public = route is not None and route.is_public
        known = self.authenticator.is_cached(headers) or self.authenticator.is_known(headers)
        if limiter and not public and self.enabled and not known:
            _raise_if_slow(limiter.take(f"client:{client}", LOOKUPS), client)
        access = self._check(route, headers, client)
        if limiter is not None and not access.route_is_public:
            _raise_if_limited(limiter.take(access.principal.label, _bucket(access)), access)
        return access


def _anonymous(client: str | None) -> Principal:
    # With auth off, rate limits still apply per client address.
    return Principal(name=client or "unknown", kind="anonymous", scopes=frozenset(Scope))


def _bucket(access: Access) -> Scope:
    route = access.route
    return Scope.READ if route is None or route.is_public else Scope(route.scope)


def _raise_if_slow(decision: Decision, client: str | None) -> None:
    if not decision.allowed:
        error = RateLimitedError(
            f"too many credential checks from {client or 'this client'}; retry later",
            decision.retry_after_s,
        )
        error.principal = f"client:{client}"
        raise error


def _raise_if_limited(decision: Decision, access: Access) -> None:
    if not decision.allowed:
        error = RateLimitedError(
            f"rate limit of {access.principal.label} for {_bucket(access).value!r} reached",
            decision.retry_after_s,
        )
        error.principal = access.principal.label
        raise error
