"""A component's own HTTP endpoints: /metrics (scope `read`), /healthz and /readyz (public).

The controller and the drift monitor each run one beside their work.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from driftline.auth.errors import SecurityError
from driftline.auth.guard import Guard
from driftline.auth.routes import Route, RouteTable
from driftline.auth.scopes import Scope
from driftline.config import Settings

Probe = Callable[[], tuple[bool, str]]
# What each route needs; the handler answers nothing else.
ROUTES: tuple[Route, ...] = (
    Route("GET", "/metrics", Scope.READ),
    Route("GET", "/healthz", "public"),
    Route("GET", "/readyz", "public"),
)


def server_guard(settings: Settings) -> Guard:
    """The guard of a metrics server: keys (and JWTs) from the configured store and issuer."""
    from driftline.auth.configure import guard_from_settings  # noqa: PLC0415
    from driftline.store.keys import KeyStore  # noqa: PLC0415

    return guard_from_settings(settings, RouteTable(ROUTES), KeyStore.from_settings(settings))


class MetricsServer:
    """A small threaded HTTP server; probes return (ok, message)."""

    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        *,
        live: Probe,
        ready: Probe,
        guard: Guard,
    ) -> None:
        handler = _handler(registry, live, ready, guard)
        self._server = ThreadingHTTPServer((host, port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        """The bound port (useful when 0 asked for a free one)."""
        return int(self._server.server_address[1])

    def start(self) -> MetricsServer:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()


def _handler(
    registry: CollectorRegistry, live: Probe, ready: Probe, guard: Guard
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            try:
                guard.admit_sync("GET", path, self.headers, self.client_address[0])
            except SecurityError as error:
                self._send(error.status, error.body(), "application/json", error.headers())
                return
            if path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path in {"/healthz", "/readyz"}:
                ok, message = (live if path == "/healthz" else ready)()
                self._send(200 if ok else 503, message.encode() + b"\n", "text/plain")
            else:
                self._send(404, b"not found\n", "text/plain")

        def _send(
            self, code: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
        ) -> None:
            self.send_response(code)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # probes every few seconds would drown the component's own log

    return Handler
