"""Hostile bodies against the ingress's HTTP layer, without Ray: every one is a 4xx in the
protocol's `{"error": ...}` shape, counted as a client error and never as a server error.

The app is the ingress's own routes, wrapper, error handler and body limit over a Router whose
one colour answers through in-process stand-ins for the Serve handles (sums of the features),
so a request that gets through parsing is scored and answered 200.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from driftline.config import ServingSettings, Settings
from serving import endpoints, protocol
from serving.metrics import _LOCAL
from tests.serving.ingress_harness import N_FEATURES, ingress_app

# The product's defaults, whatever limits another serving test put in this session's environment.
DEFAULTS = {
    name: ServingSettings.model_fields[name].default for name in ("max_rows", "max_body_bytes")
}
MAX_ROWS = int(DEFAULTS["max_rows"])
V2 = "/v2/models/m/infer"
V1 = "/v1/models/m:predict"
FORECAST = "/api/forecast"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app, _ = ingress_app(Settings(serving=DEFAULTS))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://ingress"
    ) as client:
        yield client


def _features(data: Any, shape: list[int], datatype: str = "FP64") -> dict[str, Any]:
    return {"name": "features", "shape": shape, "datatype": datatype, "data": data}


def _v2(*inputs: dict[str, Any], **extra: Any) -> bytes:
    return json.dumps({"inputs": list(inputs), **extra}).encode()


def _binary(rows: np.ndarray, *, size: int | None = None, tail: bytes = b"") -> tuple[bytes, str]:
    """A V2 body with `rows` as a binary tensor, and its JSON length header."""
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "features",
                    "shape": list(rows.shape),
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": rows.nbytes if size is None else size},
                }
            ]
        }
    ).encode()
    return header + rows.tobytes() + tail, str(len(header))


def _bars(n: int = 4, **override: Any) -> list[dict[str, Any]]:
    bar = {"open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 10.0, **override}
    return [{"date": f"2020-01-{i + 1:02d}", **bar} for i in range(n)]


ROW = [0.5] * N_FEATURES

HOSTILE: dict[str, tuple[str, bytes, dict[str, str], str]] = {
    "deep nesting": (V2, b"[" * 100_000 + b"]" * 100_000, {}, "depth limit exceeded"),
    "deep nesting in an object": (
        V2,
        b'{"inputs": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        {},
        "depth limit exceeded",
    ),
    "10**400 as a float": (
        V2,
        _v2(_features([[1e300] * N_FEATURES], [1, N_FEATURES])).replace(b"1e+300", b"1e400", 1),
        {},
        "non-finite value",
    ),
    "10**400 as an integer": (
        V2,
        _v2(_features([[7] * N_FEATURES], [1, N_FEATURES], "INT64")).replace(
            b"7", b"1" + b"0" * 400, 1
        ),
        {},
        "does not fit",
    ),
    "not UTF-8": (V2, b'{"inputs": "\xff\xfe"}', {}, "not valid UTF-8"),
    "a lone surrogate": (V2, b'{"inputs": [], "id": "\\ud800"}', {}, "surrogate"),
    "a form body": (
        V2,
        b"inputs=1",
        {"content-type": "application/x-www-form-urlencoded"},
        "malformed JSON",
    ),
    "an empty body": (V2, b"", {}, "malformed JSON"),
    "inputs an object": (V2, b'{"inputs": {}}', {}, '"inputs" must be a non-empty list'),
    "inputs a string": (V2, b'{"inputs": "abc"}', {}, '"inputs" must be a non-empty list'),
    "inputs a number": (V2, b'{"inputs": 5}', {}, '"inputs" must be a non-empty list'),
    "a JSON array body": (V2, b"[1, 2]", {}, "JSON object"),
    "null": (V2, b"null", {}, "JSON object"),
    "an input not an object": (V2, b'{"inputs": [7]}', {}, "inputs[0] must be a JSON object"),
    "a negative dimension": (V2, _v2(_features(ROW, [-1, N_FEATURES])), {}, "non-negative"),
    "a string dimension": (V2, _v2(_features(ROW, ["a"])), {}, "non-negative"),
    "data not a list": (V2, _v2(_features("abc", [1, N_FEATURES])), {}, '"data" must be a list'),
    "parameters not an object": (
        V2,
        _v2({**_features(ROW, [1, N_FEATURES]), "parameters": 5}),
        {},
        "parameters must be a JSON object",
    ),
    "an id not a string": (V2, _v2(_features(ROW, [1, N_FEATURES]), id={"a": 1}), {}, '"id"'),
    "outputs not objects": (V2, _v2(_features(ROW, [1, N_FEATURES]), outputs=[3]), {}, "outputs"),
}


def _binary_case(rows: np.ndarray, **kwargs: Any) -> tuple[bytes, dict[str, str]]:
    body, length = _binary(rows, **kwargs)
    return body, {protocol.JSON_LENGTH_HEADER: length}


ONE = np.ones((1, N_FEATURES))
BINARY: dict[str, tuple[bytes, dict[str, str], str]] = {
    "bytes short of the shape": (
        _binary(ONE)[0][:-8],
        {protocol.JSON_LENGTH_HEADER: _binary(ONE)[1]},
        "8 bytes short",
    ),
    "bytes beyond the shape": (*_binary_case(ONE, tail=b"x" * 16), "16 bytes after the JSON"),
    "a size that does not fit the shape": (
        *_binary_case(ONE, size=8 * N_FEATURES - 4),
        "does not fit shape",
    ),
    "a negative size": (*_binary_case(ONE, size=-8), "does not fit shape"),
    "a size that is a string": (*_binary_case(ONE, size="24"), "does not fit shape"),  # type: ignore[arg-type]
    "a header past the body": (
        _binary(ONE)[0],
        {protocol.JSON_LENGTH_HEADER: "999999"},
        "within the body",
    ),
    "a zero header": (_binary(ONE)[0], {protocol.JSON_LENGTH_HEADER: "0"}, "within the body"),
    "a negative header": (_binary(ONE)[0], {protocol.JSON_LENGTH_HEADER: "-3"}, "within the body"),
    "a header cutting the JSON": (
        _binary(ONE)[0],
        {protocol.JSON_LENGTH_HEADER: "10"},
        "malformed JSON",
    ),
}

FORECASTS: dict[str, tuple[bytes, str]] = {
    "a NUL in the symbol": (json.dumps({"symbol": "S\x00X", "bars": _bars()}).encode(), "symbol"),
    "a control character in the symbol": (
        json.dumps({"symbol": "SPX\n", "bars": _bars()}).encode(),
        "symbol",
    ),
    "a lone surrogate in the symbol": (
        b'{"symbol": "\\udc80", "bars": ' + json.dumps(_bars()).encode() + b"}",
        "surrogate",
    ),
    "a long symbol": (json.dumps({"symbol": "S" * 33, "bars": _bars()}).encode(), "symbol"),
    "a numeric symbol": (json.dumps({"symbol": 5, "bars": _bars()}).encode(), "symbol"),
    "bars not objects": (json.dumps({"symbol": "SPX", "bars": [1, 2]}).encode(), "forecast body"),
    "a volume of 10**400": (
        json.dumps({"symbol": "SPX", "bars": _bars(volume=7.0)})
        .encode()
        .replace(b"7.0", b"1" + b"0" * 400),
        "volume",
    ),
    "deep nesting": (b"[" * 100_000 + b"]" * 100_000, "depth limit exceeded"),
}


def _error(response: httpx.Response) -> str:
    document = orjson.loads(response.content)
    assert list(document) == ["error"]
    return str(document["error"])


@pytest.mark.parametrize("case", list(HOSTILE))
async def test_hostile_v2_bodies_are_400s_in_the_protocols_shape(
    client: httpx.AsyncClient, case: str
) -> None:
    path, body, headers, message = HOSTILE[case]
    response = await client.post(path, content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert message in _error(response)


@pytest.mark.parametrize("case", list(BINARY))
async def test_binary_tensors_whose_bytes_do_not_match_their_shape_are_400s(
    client: httpx.AsyncClient, case: str
) -> None:
    body, headers, message = BINARY[case]
    response = await client.post(V2, content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert message in _error(response)


@pytest.mark.parametrize("case", list(FORECASTS))
async def test_hostile_forecasts_are_400s(client: httpx.AsyncClient, case: str) -> None:
    body, message = FORECASTS[case]
    response = await client.post(FORECAST, content=body)
    assert response.status_code == 400, response.text
    assert message in _error(response)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"instances": [[1' + b"0" * 400 + b"]]}",
        b'\xff{"instances"',
        b'{"instances": {}}',
        b'{"instances": [[1, 2], [3]]}',
    ],
)
async def test_hostile_v1_bodies_are_400s(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.post(V1, content=body)
    assert response.status_code == 400, response.text
    _error(response)


async def test_well_formed_requests_in_every_form_are_answered(client: httpx.AsyncClient) -> None:
    rows = np.full((2, N_FEATURES), 0.25)
    body, headers = _binary_case(rows)
    answers = [
        await client.post(V2, content=_v2(_features(rows.tolist(), [2, N_FEATURES]))),
        await client.post(V2, content=body, headers=headers),
        await client.post(V1, json={"instances": rows.tolist()}),
        await client.post(FORECAST, json={"symbol": "^GSPC", "bars": _bars()}),
    ]
    assert [a.status_code for a in answers] == [200] * 4
    assert answers[3].json()["symbol"] == "^GSPC"


async def test_the_largest_legal_request_fits_the_default_body_limit(
    client: httpx.AsyncClient,
) -> None:
    # max_rows rows of the widest float text a client may send (24 characters each).
    rows = np.full((MAX_ROWS, N_FEATURES), -1.2345678901234567e-300)
    body = _v2(_features(rows.ravel().tolist(), [MAX_ROWS, N_FEATURES]))
    assert len(body) < DEFAULTS["max_body_bytes"]
    binary, headers = _binary_case(rows)
    for content, extra in ((body, {}), (binary, headers)):
        response = await client.post(V2, content=content, headers=extra)
        assert response.status_code == 200, response.text[:200]
        assert len(orjson.loads(response.content)["outputs"][0]["data"]) == MAX_ROWS
    over = _v2(_features((rows[:1].ravel().tolist()) * (MAX_ROWS + 1), [MAX_ROWS + 1, N_FEATURES]))
    response = await client.post(V2, content=over)
    assert response.status_code == 400
    assert f"exceed the limit of {MAX_ROWS}" in _error(response)


async def test_large_bodies_are_parsed_off_the_event_loop() -> None:
    def where(body: bytes) -> int:
        return threading.get_ident()

    small = b"x" * (endpoints.PARSE_INLINE_BYTES - 1)
    large = b"x" * endpoints.PARSE_INLINE_BYTES
    assert await endpoints.parsed(where, small) == threading.get_ident()
    assert await endpoints.parsed(where, large) != threading.get_ident()


async def test_client_errors_are_labelled_as_such_in_the_ingress_metrics() -> None:
    app, _ = ingress_app(Settings(serving=DEFAULTS))
    before = _samples()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://ingress"
    ) as client:
        for body, headers, _message in list(BINARY.values())[:3]:
            await client.post(V2, content=body, headers=headers)
    after = _samples()

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted({"endpoint": "v2_infer", **labels}.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert grew("driftline_request_errors_total", kind="bad_input") == 3
    assert grew("driftline_request_errors_total", kind="internal") == 0
    assert grew("driftline_requests_total", model="m", version="1", code="400") == 3
    # Their latency is not the service's: the histogram the controller verifies did not move.
    assert grew("driftline_request_duration_seconds_count", model="m", version="1") == 0


def _samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(_LOCAL).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
