"""Who a request comes from, once its credential is verified."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from driftline.auth.scopes import Scope, grants

PrincipalKind = Literal["key", "jwt", "anonymous"]


@dataclass(frozen=True, slots=True)
class Principal:
    """A verified caller: an API key's name or a JWT's subject, with its scopes."""

    name: str
    kind: PrincipalKind
    scopes: frozenset[Scope]
    expires: datetime | None = None

    def allows(self, scope: Scope) -> bool:
        """Whether this principal may use a route that needs `scope`."""
        return grants(self.scopes, scope)

    @property
    def label(self) -> str:
        """`kind:name`, as logs and rate-limit buckets name the principal."""
        return f"{self.kind}:{self.name}"


# What public routes see when auth is off or the route needs none; it holds no scope.
ANONYMOUS = Principal(name="anonymous", kind="anonymous", scopes=frozenset())
