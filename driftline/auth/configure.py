"""The guard and middleware of one application, built from the settings."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.types import ASGIApp

from driftline.auth.asgi import SecurityMiddleware, WebSocketLimits, starlette_operations
from driftline.auth.audit import SecurityAudit
from driftline.auth.guard import Authenticator, Guard
from driftline.auth.keys import KeyLookup, KeyVerifier
from driftline.auth.oidc import JwksFile, JwksUrl, JwtVerifier, KeySource, OidcConfig
from driftline.auth.ratelimit import limiter_for, rates_from
from driftline.auth.routes import RouteTable, require_declared
from driftline.config import Settings

DEFAULT_AUDIENCE = "driftline"


def jwt_verifier(settings: Settings) -> JwtVerifier | None:
    """The JWT verifier the settings describe, or None when no issuer is set."""
    if settings.auth.oidc_issuer is None:
        return None
    keys: KeySource
    if settings.auth.jwks_file is not None:
        keys = JwksFile(settings.auth.jwks_file)
    elif settings.auth.jwks_url is not None:
        keys = JwksUrl(settings.auth.jwks_url, refresh_s=settings.auth.jwks_refresh_s)
    else:
        raise ValueError(
            "DRIFTLINE_AUTH_OIDC_ISSUER is set but neither DRIFTLINE_AUTH_JWKS_URL "
            "nor DRIFTLINE_AUTH_JWKS_FILE says where its keys are"
        )
    config = OidcConfig(
        issuer=settings.auth.oidc_issuer,
        audience=settings.auth.oidc_audience or DEFAULT_AUDIENCE,
        algorithms=tuple(a.strip() for a in settings.auth.jwt_algorithms.split(",") if a.strip()),
        scope_claim=settings.auth.scope_claim,
        leeway_s=settings.auth.jwt_leeway_s,
    )
    return JwtVerifier(config, keys)


def guard_from_settings(settings: Settings, table: RouteTable, keys: KeyLookup) -> Guard:
    """A guard for `table` that looks keys up in `keys` (a `KeyStore`, usually)."""
    authenticator = Authenticator(
        KeyVerifier(keys, ttl_s=settings.auth.key_cache_ttl_s), jwt_verifier(settings)
    )
    rates = rates_from(settings.auth.rate_limits, lookups=settings.auth.lookup_rate)
    limiter = limiter_for(rates, settings.auth.rate_limit_redis_url)
    return Guard(table, authenticator, limiter, enabled=settings.auth.enabled)


def protect(
    app: Starlette, table: RouteTable, settings: Settings, keys: KeyLookup
) -> SecurityMiddleware:
    """`app` behind a guard of `table`; a route of `app` that `table` does not declare raises."""
    require_declared(table, starlette_operations(app.routes))
    return secure(app, settings, guard_from_settings(settings, table, keys))


def secure(
    app: ASGIApp, settings: Settings, guard: Guard, audit: SecurityAudit | None = None
) -> SecurityMiddleware:
    """`app` behind `guard`, with the WebSocket caps of the settings."""
    return SecurityMiddleware(app, guard, websockets=websocket_limits(settings), audit=audit)


def websocket_limits(settings: Settings) -> WebSocketLimits:
    """The WebSocket caps of the settings."""
    return WebSocketLimits(
        max_connections=settings.auth.ws_max_connections,
        max_per_principal=settings.auth.ws_max_per_principal,
        idle_timeout_s=settings.auth.ws_idle_timeout_s,
    )
