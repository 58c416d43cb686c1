"""Who may call what: API keys and OIDC JWTs, scopes from a route table, rate limits, audit."""

from driftline.auth.asgi import SecurityMiddleware, WebSocketLimits, principal_of
from driftline.auth.errors import (
    ExpiredCredentialsError,
    ForbiddenError,
    InvalidCredentialsError,
    MissingCredentialsError,
    RateLimitedError,
    RevokedCredentialsError,
    SecurityError,
    TooManyConnectionsError,
)
from driftline.auth.guard import Access, Authenticator, Guard, authorize, bearer_token
from driftline.auth.principal import ANONYMOUS, Principal
from driftline.auth.routes import PUBLIC, Route, RouteDeclarationError, RouteTable
from driftline.auth.scopes import Scope

__all__ = [
    "ANONYMOUS",
    "PUBLIC",
    "Access",
    "Authenticator",
    "ExpiredCredentialsError",
    "ForbiddenError",
    "Guard",
    "InvalidCredentialsError",
    "MissingCredentialsError",
    "Principal",
    "RateLimitedError",
    "RevokedCredentialsError",
    "Route",
    "RouteDeclarationError",
    "RouteTable",
    "Scope",
    "SecurityError",
    "SecurityMiddleware",
    "TooManyConnectionsError",
    "WebSocketLimits",
    "authorize",
    "bearer_token",
    "principal_of",
]
