"""The environment a user's shell holds when they run `driftline serve`: this process's, without
the variables that point Ray clients at the test session's own head (`RAY_API_SERVER_ADDRESS`
outranks the address a client is given, so a command would deploy onto the session's cluster)."""

from __future__ import annotations

import os

SESSION_CLUSTER_ENV = (
    "RAY_ADDRESS",
    "RAY_DASHBOARD_ADDRESS",
    "RAY_API_SERVER_ADDRESS",
    "RAY_AUTH_MODE",
    "RAY_AUTH_TOKEN_PATH",
    "DRIFTLINE_RAY_ADDRESS",
)


def user_shell(**overrides: str) -> dict[str, str]:
    """This process's environment without the session's head, plus `overrides`."""
    env = {k: v for k, v in os.environ.items() if k not in SESSION_CLUSTER_ENV}
    return env | overrides
