"""The route table: every route names the scope it needs, or is declared public on purpose.

Paths use Starlette's templates: `{name}` matches one segment, `{name:path}` the rest.
A WebSocket route's method is `WEBSOCKET`; `HEAD` is checked as `GET`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, Literal

from driftline.auth.scopes import Scope

PUBLIC: Final = "public"
Public = Literal["public"]
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "WEBSOCKET"})
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(:path)?\}")


class RouteDeclarationError(ValueError):
    """A route declared without a scope (or with a bad method, path or scope)."""


@dataclass(frozen=True, slots=True)
class Route:
    """One operation and what it needs: a `Scope`, or `PUBLIC` said out loud."""

    method: str
    path: str
    scope: Scope | Public
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise RouteDeclarationError(f"{self.method} {self.path}: unknown method")
        if not self.path.startswith("/"):
            raise RouteDeclarationError(f"{self.method} {self.path}: a path starts with '/'")
        if self.scope != PUBLIC and not isinstance(self.scope, Scope):
            raise RouteDeclarationError(
                f"{self.method} {self.path}: scope {self.scope!r} is neither a Scope nor PUBLIC; "
                "every route declares what it needs"
            )
        object.__setattr__(self, "pattern", _compile(self.path))

    @property
    def is_public(self) -> bool:
        return self.scope == PUBLIC

    @property
    def specificity(self) -> int:
        """Literal characters in the template: where two templates match, the longer wins."""
        return len(_PARAM.sub("", self.path))


class RouteTable:
    """The routes of one application; `match` finds the declaration a request falls under."""

    def __init__(self, routes: Iterable[Route] = ()) -> None:
        self._routes: list[Route] = []
        for route in routes:
            self._add(route)

    def add(self, method: str, path: str, scope: Scope | Public) -> Route:
        """Declare `method path` as needing `scope`; a missing scope raises."""
        return self._add(Route(method.upper(), path, scope))

    def public(self, method: str, path: str) -> Route:
        """Declare `method path` public (health, readiness, OpenAPI, static files)."""
        return self.add(method, path, PUBLIC)

    def extend(self, routes: Iterable[Route]) -> RouteTable:
        """Declare every route of `routes`; returns self."""
        for route in routes:
            self._add(route)
        return self

    @property
    def routes(self) -> tuple[Route, ...]:
        return tuple(self._routes)

    def match(self, method: str, path: str) -> Route | None:
        """The most specific route for `method path`, or None when none is declared."""
        wanted = "GET" if method.upper() == "HEAD" else method.upper()
        found = [r for r in self._routes if r.method == wanted and r.pattern.fullmatch(path)]
        return max(found, key=lambda r: r.specificity, default=None)

    def undeclared(self, operations: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """The `(method, path template)` pairs of an app that this table does not declare."""
        declared = {(r.method, r.path) for r in self._routes}
        return sorted({op for op in operations if op not in declared})

    def _add(self, route: Route) -> Route:
        if any(r.method == route.method and r.path == route.path for r in self._routes):
            raise RouteDeclarationError(f"{route.method} {route.path} is declared twice")
        self._routes.append(route)
        return route


def mounted(routes: Iterable[Route], prefix: str) -> list[Route]:
    """`routes` as declared by an app mounted at `prefix` (e.g. the drift API under /api)."""
    return [Route(r.method, prefix + r.path, r.scope) for r in routes]


def require_declared(table: RouteTable, operations: Iterable[tuple[str, str]]) -> None:
    """Raise unless `table` declares every `(method, path)` of an app: no route goes unscoped."""
    missing = table.undeclared(operations)
    if missing:
        listed = ", ".join(f"{m} {p}" for m, p in missing)
        raise RouteDeclarationError(f"routes without a declared scope: {listed}")


def _compile(template: str) -> re.Pattern[str]:
    parts: list[str] = []
    position = 0
    for param in _PARAM.finditer(template):
        parts.append(re.escape(template[position : param.start()]))
        name, rest = param.group(1), param.group(2)
        parts.append(f"(?P<{name}>.*)" if rest else f"(?P<{name}>[^/]+)")
        position = param.end()
    parts.append(re.escape(template[position:]))
    return re.compile("".join(parts))
