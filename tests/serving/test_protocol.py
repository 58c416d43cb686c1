"""KServe V1/V2 decoding and validation: every bad input gets BadInputError saying what is wrong."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import orjson
import pytest
from kserve.protocol.infer_type import InferInput, InferRequest

from driftline.drift.api import OutcomeIn
from serving import protocol
from serving.errors import BadInputError

LIMITS = protocol.Limits(n_features=3, window=5, max_rows=4)


def v2(inputs: list[dict[str, object]], **extra: object) -> bytes:
    return orjson.dumps({"id": "req-1", "inputs": inputs, **extra})


def features(data: object, shape: list[int], datatype: str = "FP64") -> dict[str, object]:
    return {"name": "features", "shape": shape, "datatype": datatype, "data": data}


def decode(body: bytes) -> protocol.Inputs:
    return protocol.v2_inputs(protocol.parse_v2(body, None, "m"), LIMITS)


def test_v2_rows_decode_to_float64() -> None:
    inputs = decode(v2([features([[1, 2, 3], [4, 5, 6]], [2, 3], "FP32")]))
    assert inputs.rows is not None
    assert inputs.rows.dtype == np.float64
    np.testing.assert_array_equal(inputs.rows, [[1, 2, 3], [4, 5, 6]])


def test_v2_binary_tensor_extension() -> None:
    request = InferRequest(
        model_name="m",
        infer_inputs=[InferInput("features", [2, 3], "FP64")],
        request_id="bin",
    )
    request.inputs[0].set_data_from_numpy(np.arange(6, dtype=np.float64).reshape(2, 3))
    body, json_length = request.to_rest()
    assert isinstance(body, bytes)
    parsed = protocol.parse_v2(body, json_length, "m")
    rows = protocol.v2_inputs(parsed, LIMITS).rows
    assert rows is not None
    np.testing.assert_array_equal(rows, np.arange(6).reshape(2, 3))


def test_v2_bars_decode() -> None:
    bars = [
        {"name": name, "shape": [5], "datatype": "FP64", "data": [1.0, 2, 3, 4, 5]}
        for name in protocol.BAR_INPUTS
    ]
    inputs = decode(v2(bars))
    assert inputs.bars is not None
    assert set(inputs.bars) == set(protocol.BAR_INPUTS)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"inputs": [', "malformed JSON"),
        (b"not json at all", "malformed JSON"),
        (v2([features([[1, 2, 3]], [1, 3], "BYTES")]), "datatype 'BYTES' is not numeric"),
        (v2([features([[1, 2, 3]], [1, 3], "FP128")]), "datatype 'FP128' is not numeric"),
        (v2([{**features([[1, 2, 3]], [1, 3]), "name": "x"}]), "inputs ['x']: expected one"),
        (v2([features([[1, 2]], [1, 2])]), "shape [1, 2], expected [n, 3]"),
        (v2([features([1, 2, 3], [3])]), "shape [3], expected [n, 3]"),
        (v2([features([[1, 2, 3]], [2, 3])]), "does not fit shape [2, 3]"),
        (v2([features([[1, 2, 3]] * 5, [5, 3])]), "5 rows exceed the limit of 4"),
        (v2([features([], [0, 3])]), "no rows"),
        (b'{"id": "x"}', '"inputs" must be a non-empty list'),
    ],
)
def test_v2_bad_input(body: bytes, message: str) -> None:
    with pytest.raises(BadInputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        decode(body)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_v2_non_finite_values_are_named(value: float) -> None:
    # Python's json writes NaN/Infinity literals; the client must hear "non-finite", not "JSON".
    body = json.dumps({"inputs": [features([[1.0, value, 3.0]], [1, 3])]}).encode()
    with pytest.raises(BadInputError, match=r"non-finite value .* at row 0, column 1"):
        decode(body)


def test_v2_short_bar_window() -> None:
    bars = [
        {"name": name, "shape": [3], "datatype": "FP64", "data": [1.0, 2, 3]}
        for name in protocol.BAR_INPUTS
    ]
    with pytest.raises(BadInputError, match="3 bars given; the model's feature spec needs 5"):
        decode(v2(bars))


def test_v2_ragged_bars() -> None:
    bars = [
        {"name": name, "shape": [5 + i], "datatype": "FP64", "data": [1.0] * (5 + i)}
        for i, name in enumerate(protocol.BAR_INPUTS)
    ]
    with pytest.raises(BadInputError, match="bar inputs differ in length"):
        decode(v2(bars))


def test_v1_rows_and_errors() -> None:
    rows = protocol.v1_rows({"instances": [[1, 2, 3]]}, LIMITS)
    assert rows.shape == (1, 3)
    with pytest.raises(BadInputError, match='"instances" list'):
        protocol.v1_rows({"rows": []}, LIMITS)
    with pytest.raises(BadInputError, match="not a numeric matrix"):
        protocol.v1_rows({"instances": [[1, "a", 3]]}, LIMITS)
    with pytest.raises(BadInputError, match="non-finite"):
        protocol.v1_rows(protocol.loads(b'{"instances": [[1, NaN, 3]]}'), LIMITS)


def test_v2_response_echoes_id_and_member_outputs() -> None:
    request = protocol.parse_v2(v2([features([[1, 2, 3]], [1, 3])]), None, "m")
    body, json_length = protocol.v2_response(
        request,
        model_name="m",
        version="7",
        prediction=np.array([0.5]),
        members={"rf": np.array([0.4]), "xgb": np.array([0.6])},
    )
    assert json_length is None
    document = orjson.loads(body)
    assert document["id"] == "req-1"
    assert document["model_version"] == "7"
    assert [o["name"] for o in document["outputs"]] == ["prediction", "member_rf", "member_xgb"]
    assert document["outputs"][0]["data"] == [0.5]


@pytest.mark.parametrize("request_id", ["req-1", None])
@pytest.mark.parametrize("n", [1, 3])
def test_the_direct_json_response_is_kserves_own(request_id: str | None, n: int) -> None:
    body = orjson.loads(v2([features([[1, 2, 3]], [1, 3])]))
    if request_id is None:
        body.pop("id")
    request = protocol.parse_v2(orjson.dumps(body), None, "m")
    rng = np.random.default_rng(n)
    outputs = {"prediction": rng.normal(size=n), "member_rf": rng.normal(size=n)}
    direct, _ = protocol.v2_response(
        request,
        model_name="m",
        version="7",
        prediction=outputs["prediction"],
        members={"rf": outputs["member_rf"]},
    )
    assert direct == protocol.kserve_response(request, "m", "7", outputs)[0]


# --- the request parameters that key a V2 row for outcomes ---------------------------------


def key_of(parameters: dict[str, object] | None) -> protocol.OutcomeKey:
    """The outcome key of a V2 body with these request parameters, as each runtime reads it."""
    extra = {} if parameters is None else {"parameters": parameters}
    request = protocol.parse_v2(v2([features([[1, 2, 3]], [1, 3])], **extra), None, "m")
    return protocol.outcome_key(request.parameters)


def test_symbol_and_as_of_parameters_key_the_row_in_utc() -> None:
    midnight = datetime(2024, 3, 1, tzinfo=UTC)
    for as_of in ("2024-03-01", "2024-03-01T00:00:00Z", "2024-03-01T02:00:00+02:00", 1709251200):
        key = key_of({"symbol": "^GSPC", "as_of": as_of})
        assert key == ("^GSPC", midnight), as_of
        assert key.as_of is not None
        assert key.as_of.utcoffset() == timedelta(0)


def test_without_symbol_and_as_of_a_request_is_unkeyed() -> None:
    assert key_of(None) is protocol.UNKEYED
    assert key_of({}) is protocol.UNKEYED
    # KServe's own request parameters pass through untouched.
    assert key_of({"binary_data_output": False}) is protocol.UNKEYED
    assert protocol.UNKEYED == (None, None)


def test_an_as_of_means_what_it_means_to_the_outcomes_api() -> None:
    # The same text must key the live row and the outcome that settles it.
    for as_of in ("2024-03-01", "2024-03-01T12:30:00-05:00", 1709251200, "2024-03-01T00:00"):
        outcome = OutcomeIn.model_validate({"symbol": "SPX", "as_of": as_of, "value": 0.0})
        assert key_of({"symbol": "SPX", "as_of": as_of}).as_of == outcome.as_of, as_of


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"symbol": "SPX"}, 'request parameter "as_of" is missing'),
        ({"as_of": "2024-03-01"}, 'request parameter "symbol" is missing'),
        ({"symbol": "S P X", "as_of": "2024-03-01"}, 'parameter "symbol": symbol .S P X.'),
        ({"symbol": None, "as_of": "2024-03-01"}, 'request parameter "symbol": symbol None'),
        ({"symbol": 7, "as_of": "2024-03-01"}, 'request parameter "symbol": symbol 7'),
        ({"symbol": "x" * 33, "as_of": "2024-03-01"}, 'request parameter "symbol"'),
        ({"symbol": "SPX", "as_of": "yesterday"}, "request parameter \"as_of\" 'yesterday'"),
        ({"symbol": "SPX", "as_of": "2024-13-01"}, 'request parameter "as_of" .* month value'),
        ({"symbol": "SPX", "as_of": None}, 'request parameter "as_of" None is not a time'),
        ({"symbol": "SPX", "as_of": True}, 'request parameter "as_of" True is not a time'),
        ({"symbol": "SPX", "as_of": [2024, 3, 1]}, 'request parameter "as_of" \\[2024'),
        ({"symbol": "SPX", "as_of": 1e300}, 'request parameter "as_of" .* after 9999'),
    ],
)
def test_a_bad_symbol_or_as_of_is_refused_naming_the_parameter(
    parameters: dict[str, object], message: str
) -> None:
    with pytest.raises(BadInputError, match=message) as refused:
        key_of(parameters)
    assert refused.value.status == 400
