"""The scopes a credential can hold; `admin` implies every other."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Scope(StrEnum):
    """What a route needs and a credential grants."""

    PREDICT = "predict"
    STREAM = "stream"
    READ = "read"
    OUTCOMES_WRITE = "outcomes:write"
    ALERTS_WRITE = "alerts:write"
    ADMIN = "admin"


def parse_scopes(value: str | Iterable[str]) -> frozenset[Scope]:
    """Scopes from a comma- or space-separated string or an iterable; unknown names raise."""
    names = value.replace(",", " ").split() if isinstance(value, str) else list(value)
    unknown = sorted({n for n in names if n not in Scope.__members__.values()})
    if unknown:
        known = ", ".join(s.value for s in Scope)
        raise ValueError(f"unknown scope(s) {', '.join(unknown)}; known: {known}")
    return frozenset(Scope(n) for n in names)


def known_scopes(names: Iterable[str]) -> frozenset[Scope]:
    """The Driftline scopes among `names`; an issuer's scopes for other services are ignored."""
    values = {s.value for s in Scope}
    return frozenset(Scope(n) for n in names if n in values)


def grants(held: frozenset[Scope], needed: Scope) -> bool:
    """Whether scopes `held` allow a route that needs `needed`."""
    return needed in held or Scope.ADMIN in held


def format_scopes(scopes: Iterable[Scope]) -> str:
    """Scopes as one sorted, comma-separated string."""
    return ",".join(sorted(s.value for s in scopes))
