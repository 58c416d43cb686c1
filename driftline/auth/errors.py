"""Typed refusals, each with its HTTP status, the reason counted in metrics, and its headers.

Messages never contain the presented credential: they are returned to clients and logged.
"""

from __future__ import annotations

import math
from typing import ClassVar

import orjson

REALM = "driftline"


class SecurityError(Exception):
    """A refused request: `status` and `reason` are what the client and the metrics see."""

    status: ClassVar[int] = 401
    reason: ClassVar[str] = "invalid"
    # Who was refused, when known (403, 429): the audit line names them.
    principal: str | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> bytes:
        """The `{"error": "..."}` body every Driftline API answers errors with."""
        return orjson.dumps({"error": self.message})

    def headers(self) -> dict[str, str]:
        """Response headers RFC 6750 asks for on this refusal."""
        return {"WWW-Authenticate": f'Bearer realm="{REALM}", error="invalid_token"'}


class MissingCredentialsError(SecurityError):
    """No `Authorization: Bearer` header; RFC 6750 says to name no error code then."""

    reason = "missing"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": f'Bearer realm="{REALM}"'}


class InvalidCredentialsError(SecurityError):
    """Malformed, unknown or badly signed credential."""

    reason = "invalid"


class ExpiredCredentialsError(SecurityError):
    """A key or token past its expiry."""

    reason = "expired"


class RevokedCredentialsError(SecurityError):
    """A key that was revoked."""

    reason = "revoked"


class ForbiddenError(SecurityError):
    """A valid principal without the scope the route needs."""

    status = 403
    reason = "forbidden"

    def __init__(self, message: str, scope: str) -> None:
        super().__init__(message)
        self.scope = scope

    def headers(self) -> dict[str, str]:
        return {
            "WWW-Authenticate": (
                f'Bearer realm="{REALM}", error="insufficient_scope", scope="{self.scope}"'
            )
        }


class RateLimitedError(SecurityError):
    """The principal's token bucket for this scope is empty."""

    status = 429
    reason = "rate_limited"

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        # Retry-After takes whole seconds; rounding down would invite a retry that fails again.
        return {"Retry-After": str(max(1, math.ceil(self.retry_after_s)))}


class KeyStoreUnavailableError(SecurityError):
    """The key store is unreachable and this replica has not verified the key before."""

    status = 503
    reason = "store_unavailable"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


class TooManyConnectionsError(RateLimitedError):
    """A WebSocket over the replica's or the principal's connection cap."""

    reason = "ws_cap"
