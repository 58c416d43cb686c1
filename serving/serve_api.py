"""A client of Serve's REST API on the Ray dashboard (`/api/serve/applications/`).

Ray's own client (`ServeSubmissionClient`) imports Ray and Serve, about 170 MiB in a process
that otherwise only sends JSON: `driftline up` and `serve` hold their control loop here instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests

APPLICATIONS = "/api/serve/applications/"


class ServeApiError(RuntimeError):
    """The dashboard refused or failed a Serve API call."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def auth_headers(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The bearer token a Ray cluster with token auth expects (RAY_AUTH_TOKEN or its file)."""
    if environ.get("RAY_AUTH_MODE", "").lower() != "token":
        return {}
    token = environ.get("RAY_AUTH_TOKEN")
    if not token and environ.get("RAY_AUTH_TOKEN_PATH"):
        token = Path(environ["RAY_AUTH_TOKEN_PATH"]).read_text().strip()
    return {"Authorization": f"Bearer {token}"} if token else {}


class ServeApi:
    """GET, PUT and DELETE of the declarative Serve config on one dashboard."""

    def __init__(self, dashboard_url: str, timeout_s: float = 30.0) -> None:
        if not dashboard_url.startswith(("http://", "https://")):
            raise ValueError(f"the Serve API needs the dashboard's HTTP address: {dashboard_url!r}")
        self.url = dashboard_url.rstrip("/") + APPLICATIONS
        self.timeout_s = timeout_s

    def get_serve_details(self) -> dict[str, Any]:
        """Serve's instance details: applications, statuses, target groups, http_options."""
        details: dict[str, Any] = self._call("GET").json()
        return details

    def deploy_applications(self, config: Mapping[str, Any]) -> None:
        """Replace every application with those of `config`."""
        self._call("PUT", json=config)

    def delete_applications(self) -> None:
        """Delete every application."""
        self._call("DELETE")

    def _call(self, method: str, **kwargs: Any) -> requests.Response:
        # Read per call: a test or a restarted head may present a new token.
        response = requests.request(
            method, self.url, headers=auth_headers(), timeout=self.timeout_s, **kwargs
        )
        if response.status_code != 200:
            message = f"{method} {self.url}: {response.status_code} {response.text[:500]}"
            raise ServeApiError(message, response.status_code)
        return response
