"""HTTP helpers of the ingress and the predictor: the error body, request ids, the body limit
and the infer-body check in front of KServe's server."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from driftline.ids import new_id
from driftline.observability.logs import bound_correlation_id
from serving import protocol
from serving.errors import BadInputError, PayloadTooLargeError, ServingError

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
    return new_id()


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


class InferBodyCheck:
    """Refuses malformed V1/V2 infer bodies with 400 before an app that trusts them.

    KServe's own server decodes a V2 body with few checks (a string `inputs`, binary bytes
    that do not fit their shape end as 500s); in front of it, this parses every infer body
    with `serving.protocol` first and passes only what that accepts, unchanged.
    """

    def __init__(self, app: ASGIApp, model_name: str) -> None:
        self.app = app
        self.model_name = model_name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        kind = _infer_kind(path) if scope["type"] == "http" and scope["method"] == "POST" else None
        if kind is None:
            await self.app(scope, receive, send)
            return
        try:
            body = await _read_body(receive)
            await asyncio.to_thread(self._check, kind, body, Headers(scope=scope))
        except ServingError as error:
            await send_error(send, error)
            return
        await self.app(scope, _replay(body), send)

    def _check(self, kind: str, body: bytes, headers: Headers) -> None:
        if kind == "v1":
            document = protocol.loads(body)
            if not isinstance(document, dict) or not isinstance(document.get("instances"), list):
                raise BadInputError('V1 body must be a JSON object with an "instances" list')
            return
        length = protocol.json_length_of(headers.get(protocol.JSON_LENGTH_HEADER), len(body))
        request = protocol.parse_v2(body, length, self.model_name)
        # A bad symbol or as_of is the ingress's 400 here too, not KServe's 422 for a null.
        protocol.outcome_key(request.parameters)


def _infer_kind(path: str) -> str | None:
    if path.startswith("/v2/models/") and path.endswith("/infer"):
        return "v2"
    if path.startswith("/v1/models/") and path.endswith(":predict"):
        return "v1"
    return None


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive
