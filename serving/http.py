"""HTTP helpers of the ingress: the error body, request ids, and the body-limit middleware."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from driftline.observability.logs import bound_correlation_id
from serving.errors import PayloadTooLargeError, ServingError

JSON = "application/json"
REQUEST_ID_HEADERS = (b"x-request-id", b"x-correlation-id")


def json_response(document: Any, status: int = 200) -> Response:
    """`document` as JSON (numpy arrays included)."""
    return Response(
        orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status,
        media_type=JSON,
    )


def error_response(
    error: ServingError, correlation_id: str | None = None, retry_after_s: int = 1
) -> Response:
    """The protocol's `{"error": "..."}` body with the error's status."""
    headers = {}
    if error.status == 503:
        headers["retry-after"] = str(retry_after_s)
    if correlation_id:
        headers["x-correlation-id"] = correlation_id
    return Response(
        orjson.dumps({"error": error.message}),
        status_code=error.status,
        media_type=JSON,
        headers=headers,
    )


async def http_error(_request: Request, error: Exception) -> Response:
    """Starlette's own errors (unknown routes and methods) in the protocol's error shape."""
    assert isinstance(error, HTTPException)
    return Response(
        orjson.dumps({"error": f"{error.detail}"}), status_code=error.status_code, media_type=JSON
    )


async def send_error(send: Send, error: ServingError) -> None:
    """Send `error` as a complete JSON response."""
    response = error_response(error)
    await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


def request_id_of(request: Request) -> str:
    """The caller's request id header (trimmed to the store's 64 chars) or a new one."""
    for name in REQUEST_ID_HEADERS:
        value = request.headers.get(name.decode())
        if value:
            return value[:64]
    return uuid.uuid4().hex


def correlation(request: Request) -> contextlib.AbstractContextManager[str]:
    """Bind the request's correlation id to every log line of the handler."""
    return bound_correlation_id(request_id_of(request))


class BodyLimit:
    """Refuses bodies over `limit` bytes with 413, by header or while streaming."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await send_error(send, PayloadTooLargeError(self._message(int(value))))
                return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise PayloadTooLargeError(self._message(received))
            return message

        await self.app(scope, limited, send)

    def _message(self, size: int) -> str:
        return f"request body of {size} bytes exceeds the limit of {self.limit} bytes"
