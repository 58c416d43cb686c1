"""The Serve REST client: the cluster's token on every call, and the dashboard's status kept."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from serving.serve_api import ServeApi, ServeApiError, auth_headers


class _Dashboard(BaseHTTPRequestHandler):
    calls: list[tuple[str, str, str | None, Any]] = []
    status = 200

    def _answer(self) -> None:
        size = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(size)) if size else None
        self.calls.append((self.command, self.path, self.headers.get("Authorization"), body))
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"applications": {}}' if self.status == 200 else b"refused")

    do_GET = do_PUT = do_DELETE = _answer  # noqa: N815 (http.server dispatches by these names)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def dashboard() -> Iterator[str]:
    _Dashboard.calls, _Dashboard.status = [], 200
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Dashboard)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_token_auth_reads_the_token_file(tmp_path: Path) -> None:
    token = tmp_path / "auth_token"
    token.write_text("abc123\n")
    environ = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    assert auth_headers(environ) == {"Authorization": "Bearer abc123"}
    assert auth_headers({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "t"}) == {
        "Authorization": "Bearer t"
    }
    assert auth_headers({"RAY_AUTH_TOKEN": "t"}) == {}


def test_calls_carry_the_token_and_the_config(
    dashboard: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = tmp_path / "auth_token"
    token.write_text("secret")
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token))
    api = ServeApi(dashboard)
    assert api.get_serve_details() == {"applications": {}}
    api.deploy_applications({"applications": []})
    api.delete_applications()
    assert _Dashboard.calls == [
        ("GET", "/api/serve/applications/", "Bearer secret", None),
        ("PUT", "/api/serve/applications/", "Bearer secret", {"applications": []}),
        ("DELETE", "/api/serve/applications/", "Bearer secret", None),
    ]


def test_a_refusal_keeps_its_status(dashboard: str) -> None:
    _Dashboard.status = 400
    with pytest.raises(ServeApiError, match="400 refused") as raised:
        ServeApi(dashboard).deploy_applications({})
    assert raised.value.status == 400
    with pytest.raises(ValueError, match="HTTP address"):
        ServeApi("127.0.0.1:8265")
