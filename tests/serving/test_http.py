"""The ingress's HTTP helpers: the protocol's error body, request ids and the body limit."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from serving.errors import NotReadyError, ServingError
from serving.http import BodyLimit, error_response, http_error, request_id_of


async def _echo(request: Request) -> Response:
    # Like the endpoints' wrapper: a limit crossed while reading is a ServingError to answer.
    try:
        body = await request.body()
    except ServingError as error:
        return error_response(error)
    return Response(f"{len(body)} {request_id_of(request)}")


def _client(limit: int) -> httpx.AsyncClient:
    app = Starlette(
        routes=[Route("/echo", _echo, methods=["POST"])],
        exception_handlers={HTTPException: http_error},
    )
    transport = httpx.ASGITransport(app=BodyLimit(app, limit))
    return httpx.AsyncClient(transport=transport, base_url="http://ingress")


async def test_bodies_within_the_limit_pass_with_the_callers_request_id() -> None:
    async with _client(10) as client:
        response = await client.post("/echo", content=b"x" * 10, headers={"x-request-id": "a" * 80})
    assert response.status_code == 200
    assert response.text == f"10 {'a' * 64}"


async def test_a_declared_length_over_the_limit_is_413_before_reading() -> None:
    async with _client(10) as client:
        response = await client.post("/echo", content=b"x" * 11)
    assert response.status_code == 413
    assert orjson.loads(response.content) == {
        "error": "request body of 11 bytes exceeds the limit of 10 bytes"
    }


async def test_a_streamed_body_over_the_limit_is_413() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b"x" * 6

    async with _client(10) as client:
        response = await client.post("/echo", content=chunks())
    assert response.status_code == 413
    assert "exceeds the limit of 10 bytes" in orjson.loads(response.content)["error"]


async def test_unknown_routes_answer_in_the_protocols_error_shape() -> None:
    async with _client(10) as client:
        response = await client.get("/nowhere")
    assert response.status_code == 404
    assert orjson.loads(response.content) == {"error": "Not Found"}


def test_unavailable_errors_say_when_to_retry() -> None:
    response = error_response(NotReadyError("no model version is active yet"), "cid", 7)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "7"
    assert response.headers["x-correlation-id"] == "cid"
    assert orjson.loads(response.body) == {"error": "no model version is active yet"}
