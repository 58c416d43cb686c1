"""The declarative Serve config of one local serving system (`PUT /api/serve/applications/`).

It names the builders in `serving.app` by import path only: the control loop that sends it
(`serving.control`) never imports Ray or Serve.
"""

from __future__ import annotations

from typing import Any

from driftline.config import Settings
from driftline.contracts import (
    COLOUR_IMPORT_PATH,
    INGRESS_APP,
    INGRESS_DEPLOYMENT,
    INGRESS_IMPORT_PATH,
    RoutingConfig,
)


def serve_config(
    settings: Settings,
    *,
    colours: dict[str, str],
    active: str | None,
    shadow: str | None = None,
    http_port: int,
    loader: str | None = None,
    outcome_hook: str | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The declarative Serve config (the body of `PUT /api/serve/applications/`).

    `env` reaches every replica as its runtime environment: that is how settings such as the
    store URL travel to a cluster that was started without them.
    """
    runtime_env = {"env_vars": dict(env)} if env else {}
    applications: list[dict[str, Any]] = [
        {
            "name": colour,
            "import_path": COLOUR_IMPORT_PATH,
            "route_prefix": None,
            "runtime_env": runtime_env,
            "args": {
                "model": settings.registry.model_name,
                "version": version,
                "colour": colour,
                **({"loader": loader} if loader else {}),
            },
        }
        for colour, version in sorted(colours.items())
    ]
    applications.append(
        {
            "name": INGRESS_APP,
            "import_path": INGRESS_IMPORT_PATH,
            "route_prefix": "/",
            "runtime_env": runtime_env,
            "args": {
                "model": settings.registry.model_name,
                **({"outcome_hook": outcome_hook} if outcome_hook else {}),
            },
            "deployments": [
                {
                    "name": INGRESS_DEPLOYMENT,
                    "user_config": RoutingConfig(colours, active, shadow).to_config(),
                }
            ],
        }
    )
    return {
        "proxy_location": "HeadOnly",
        # No proxy request timeout: it would also cut WebSocket streams; the ingress enforces
        # DRIFTLINE_SERVE_REQUEST_TIMEOUT_S on every model call itself.
        "http_options": http_options(settings, http_port),
        "applications": applications,
    }


def http_options(settings: Settings, port: int) -> dict[str, Any]:
    """Serve's `http_options`: the proxy's address, and the certificate that the proxy and
    every direct-ingress replica present when TLS is on (Serve applies them to both)."""
    options: dict[str, Any] = {"host": settings.serving.host, "port": port}
    tls = settings.serving.tls
    if tls is not None:
        cert, key = tls
        options |= {"ssl_certfile": str(cert.resolve()), "ssl_keyfile": str(key.resolve())}
    return options
