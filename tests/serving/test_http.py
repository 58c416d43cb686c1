"""The ingress's HTTP helpers: the protocol's error body, request ids and the body limit."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from serving.errors import NotReadyError, ServingError
from serving.http import BodyLimit, InferBodyCheck, error_response, http_error, request_id_of


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


LENGTH = "inference-header-content-length"
BINARY = (
    b'{"inputs": [{"name": "features", "shape": [1, 3], "datatype": "FP64", '
    b'"parameters": {"binary_data_size": 20}}]}'
)

KEYED = (
    b'{"parameters": {"symbol": %s}, '
    b'"inputs": [{"name": "f", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}]}'
)


def _checked(limit: int = 1 << 20) -> httpx.AsyncClient:
    async def downstream(request: Request) -> Response:
        return Response(f"reached {len(await request.body())}")

    app = Starlette(
        routes=[
            Route("/v2/models/m/infer", downstream, methods=["POST"]),
            Route("/v1/models/m:predict", downstream, methods=["POST"]),
            Route("/v2/health/live", downstream, methods=["POST"]),
        ]
    )
    transport = httpx.ASGITransport(app=BodyLimit(InferBodyCheck(app, "m"), limit))
    return httpx.AsyncClient(transport=transport, base_url="http://predictor")


@pytest.mark.parametrize(
    ("path", "body", "headers", "message"),
    [
        ("/v2/models/m/infer", b'{"inputs": "abc"}', {}, '"inputs" must be a non-empty list'),
        ("/v2/models/m/infer", b"[" * 5000 + b"]" * 5000, {}, "depth limit"),
        ("/v2/models/m/infer", b"\xff\xfe", {}, "UTF-8"),
        ("/v2/models/m/infer", BINARY + b"x" * 20, {LENGTH: str(len(BINARY))}, "does not fit"),
        ("/v1/models/m:predict", b'{"instances": 5}', {}, '"instances" list'),
        # KServe's own decoder would answer 422 for a null parameter: the ingress's 400 instead.
        ("/v2/models/m/infer", KEYED % b'null, "as_of": "2024-03-01"', {}, 'parameter "symbol"'),
        ("/v2/models/m/infer", KEYED % b'"SPX", "as_of": "March"', {}, 'parameter "as_of"'),
    ],
)
async def test_the_predictors_infer_bodies_are_checked_before_kserve_sees_them(
    path: str, body: bytes, headers: dict[str, str], message: str
) -> None:
    async with _checked() as client:
        response = await client.post(path, content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert message in orjson.loads(response.content)["error"]


async def test_good_bodies_and_other_routes_reach_kserve_unchanged() -> None:
    good = b'{"inputs": [{"name": "f", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}]}'
    async with _checked() as client:
        infer = await client.post("/v2/models/m/infer", content=good)
        other = await client.post("/v2/health/live", content=b"\xff")
        large = await client.post("/v2/models/m/infer", content=b"x" * (2 << 20))
    assert (infer.status_code, infer.text) == (200, f"reached {len(good)}")
    assert (other.status_code, other.text) == (200, "reached 1")
    assert large.status_code == 413
