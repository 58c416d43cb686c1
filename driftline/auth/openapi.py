"""The route table in an OpenAPI document: the bearer scheme, and each operation's scope."""

from __future__ import annotations

import copy
from typing import Any

from driftline.auth.routes import RouteTable

SCHEME = "bearer"
_METHODS = ("get", "put", "post", "delete", "options", "patch")
_REFUSALS = {
    "401": "No credential, or one that is invalid, expired or revoked.",
    "403": "The credential lacks the operation's scope.",
    "429": "The principal's rate limit for this scope is spent; see Retry-After.",
}


def with_security(document: dict[str, Any], table: RouteTable) -> dict[str, Any]:
    """A copy of `document` whose operations name the bearer scheme and their scope.

    Public operations get an empty `security`; an operation the table does not declare
    raises, so a served document cannot describe a route the guard does not know.
    """
    secured = copy.deepcopy(document)
    components = secured.setdefault("components", {}).setdefault("securitySchemes", {})
    components[SCHEME] = {
        "type": "http",
        "scheme": "bearer",
        "description": "A Driftline API key (`dl_...`) or a JWT from the configured issuer.",
    }
    undeclared = []
    for path, item in secured.get("paths", {}).items():
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            route = table.match(method.upper(), path)
            if route is None or route.path != path:
                undeclared.append(f"{method.upper()} {path}")
                continue
            if route.is_public:
                operation["security"] = []
                continue
            operation["security"] = [{SCHEME: []}]
            operation["x-driftline-scope"] = str(route.scope)
            responses = operation.setdefault("responses", {})
            for status, description in _REFUSALS.items():
                responses.setdefault(status, {"description": description})
    if undeclared:
        raise ValueError(f"operations missing from the route table: {', '.join(undeclared)}")
    return secured
