"""KServe V1/V2 requests to numpy and back, using KServe's own protocol types; pure functions."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import orjson
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import (
    InferInput,
    InferOutput,
    InferRequest,
    InferResponse,
    RequestedOutput,
)
from pydantic import TypeAdapter, ValidationError

from driftline.drift.outcomes import AsOf
from driftline.registry.outputs import named_outputs, output_names
from driftline.symbols import check_symbol
from serving.errors import BadInputError

Array = npt.NDArray[np.float64]

FEATURES_INPUT = "features"
BAR_INPUTS = ("open", "high", "low", "close", "volume")
_ITEMSIZE = {"FP16": 2, "FP32": 4, "FP64": 8, "INT8": 1, "INT16": 2, "INT32": 4, "INT64": 8}
NUMERIC_DATATYPES = frozenset(_ITEMSIZE)
# KServe's binary tensor extension: the JSON header's length when binary data follows it.
JSON_LENGTH_HEADER = "inference-header-content-length"
# The request parameters naming what an outcome settles, as the outcomes API names them.
SYMBOL_PARAMETER = "symbol"
AS_OF_PARAMETER = "as_of"


@dataclass(frozen=True)
class Inputs:
    """What a request asks to score: feature rows, or one window of raw bars."""

    rows: Array | None = None
    bars: Mapping[str, Array] | None = None

    @property
    def n_rows(self) -> int:
        """Rows the answer will carry."""
        return 1 if self.rows is None else len(self.rows)


@dataclass(frozen=True)
class Limits:
    """What the model accepts: feature count, bars per window, rows per request."""

    n_features: int
    window: int
    max_rows: int


def json_length_of(header: str | None, body_size: int) -> int | None:
    """The binary extension's JSON length header, checked against the body; None when absent."""
    if header is None:
        return None
    if not header.isdigit() or not 0 < int(header) <= body_size:
        raise BadInputError(
            f"{JSON_LENGTH_HEADER} {header[:20]!r} must be a byte count within the body "
            f"of {body_size} bytes"
        )
    return int(header)


def parse_v2(body: bytes, json_length: int | None, model_name: str) -> InferRequest:
    """Decode a V2 infer body (JSON, or JSON plus binary tensors) into KServe's InferRequest.

    KServe's own decoder trusts the document's shape (a string `inputs`, a binary size that
    does not match the tensor's shape raise as server errors); this one refuses each.
    """
    end = len(body) if json_length is None else json_length
    document = loads(body[:end])
    if not isinstance(document, dict):
        raise BadInputError('a V2 request body is a JSON object with an "inputs" list')
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise BadInputError('"id" must be a string')
    binary = memoryview(body)[end:]
    inputs = [_infer_input(i, item) for i, item in enumerate(_list(document, "inputs"))]
    _attach_binary(inputs, binary)
    return InferRequest(
        model_name=model_name,
        infer_inputs=inputs,
        request_id=request_id,
        parameters=_parameters(document, "request"),
        request_outputs=[_requested(o) for o in _list(document, "outputs", required=False)] or None,
    )


def _list(document: Mapping[str, Any], key: str, *, required: bool = True) -> list[Any]:
    value = document.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list) or (required and not value):
        raise BadInputError(f'"{key}" must be a non-empty list')
    return value


def _parameters(document: Mapping[str, Any], where: str) -> dict[str, Any] | None:
    value = document.get("parameters")
    if value is not None and not isinstance(value, dict):
        raise BadInputError(f"{where} parameters must be a JSON object")
    return value


class OutcomeKey(NamedTuple):
    """The (symbol, as of) an outcome settles a request's last row by; both None when the
    request names neither."""

    symbol: str | None = None
    as_of: datetime | None = None


UNKEYED = OutcomeKey()
_AS_OF: TypeAdapter[datetime] = TypeAdapter(AsOf)


def outcome_key(parameters: Mapping[str, Any] | None) -> OutcomeKey:
    """The request parameters `symbol` and `as_of`, both or neither, validated as the outcomes
    API validates them: the live row is stored under them, so an outcome posted for the same
    (symbol, as_of) settles it and pairs it with the shadow's answer."""
    if not parameters or (SYMBOL_PARAMETER not in parameters and AS_OF_PARAMETER not in parameters):
        return UNKEYED
    for name in (SYMBOL_PARAMETER, AS_OF_PARAMETER):
        if name not in parameters:
            raise BadInputError(
                f'request parameter "{name}" is missing: "symbol" and "as_of" name a row together'
            )
    try:
        symbol = check_symbol(parameters[SYMBOL_PARAMETER])
    except ValueError as error:
        raise BadInputError(f'request parameter "symbol": {error}') from None
    value = parameters[AS_OF_PARAMETER]
    try:
        as_of = _AS_OF.validate_python(value)
    except ValidationError as error:
        reason = error.errors()[0]["msg"]
        raise BadInputError(
            f'request parameter "as_of" {repr(value)[:40]} is not a time: {reason}'
        ) from None
    return OutcomeKey(symbol, as_of)


def _infer_input(index: int, item: Any) -> InferInput:
    if not isinstance(item, dict):
        raise BadInputError(f"inputs[{index}] must be a JSON object")
    name, shape, datatype = item.get("name"), item.get("shape"), item.get("datatype")
    if not isinstance(name, str) or not name:
        raise BadInputError(f'inputs[{index}]: "name" must be a non-empty string')
    if not isinstance(datatype, str):
        raise BadInputError(f'input {name!r}: "datatype" must be a string')
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise BadInputError(f'input {name!r}: "shape" must be a list of non-negative integers')
    parameters = _parameters(item, f"input {name!r}")
    tensor = InferInput(name=name, shape=shape, datatype=datatype, parameters=parameters)
    if "data" in item:
        if not isinstance(item["data"], list):
            raise BadInputError(f'input {name!r}: "data" must be a list')
        tensor.data = item["data"]
    elif parameters is None or "binary_data_size" not in parameters:
        raise BadInputError(f'input {name!r}: no "data" and no binary_data_size')
    return tensor


def _attach_binary(inputs: Sequence[InferInput], binary: memoryview) -> None:
    # Tensors sent as bytes after the JSON, in input order, each exactly its shape's size.
    start = 0
    for tensor in inputs:
        if tensor.data is not None:
            continue
        size = (tensor.parameters or {}).get("binary_data_size")
        itemsize = _ITEMSIZE.get(tensor.datatype)
        if itemsize is None:
            raise BadInputError(
                f"input {tensor.name!r}: datatype {tensor.datatype!r} is not numeric "
                "(use FP32 or FP64)"
            )
        expected = math.prod(tensor.shape) * itemsize
        if not isinstance(size, int) or isinstance(size, bool) or size != expected:
            raise BadInputError(
                f"input {tensor.name!r}: binary_data_size {size!r} does not fit shape "
                f"{tensor.shape} of {tensor.datatype} ({expected} bytes)"
            )
        if start + size > len(binary):
            raise BadInputError(
                f"input {tensor.name!r}: the body ends {start + size - len(binary)} bytes short "
                "of its binary data"
            )
        tensor._raw_data = bytes(binary[start : start + size])
        start += size
    if start != len(binary):
        raise BadInputError(
            f"{len(binary) - start} bytes after the JSON document belong to no input"
        )


def _requested(item: Any) -> RequestedOutput:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise BadInputError('each of "outputs" must be a JSON object with a "name"')
    return RequestedOutput(name=item["name"], parameters=_parameters(item, "output"))


def v2_inputs(request: InferRequest, limits: Limits) -> Inputs:
    """Validated inputs of a V2 request: a `features` tensor or the five bar tensors."""
    names = [i.name for i in request.inputs]
    if names == [FEATURES_INPUT]:
        rows = _tensor(request.inputs[0])
        return Inputs(rows=check_rows(rows, limits))
    if sorted(names) == sorted(BAR_INPUTS):
        bars = {i.name: _tensor(i).reshape(-1) for i in request.inputs}
        return Inputs(bars=check_bars(bars, limits))
    raise BadInputError(
        f"inputs {names}: expected one input named {FEATURES_INPUT!r} "
        f"or the bar inputs {list(BAR_INPUTS)}"
    )


def _tensor(infer_input: InferInput) -> Array:
    if infer_input.datatype not in NUMERIC_DATATYPES:
        raise BadInputError(
            f"input {infer_input.name!r}: datatype {infer_input.datatype!r} is not numeric "
            "(use FP32 or FP64)"
        )
    try:
        array = infer_input.as_numpy()
    except (ValueError, TypeError, OverflowError) as error:
        raise BadInputError(
            f"input {infer_input.name!r}: data does not fit shape {infer_input.shape}: {error}"
        ) from None
    return np.asarray(array, dtype=np.float64)


def check_rows(rows: Array, limits: Limits) -> Array:
    """Rows of the right shape, count and finiteness, or BadInputError saying what is wrong."""
    if rows.ndim != 2 or rows.shape[1] != limits.n_features:
        raise BadInputError(
            f"input {FEATURES_INPUT!r}: shape {list(rows.shape)}, expected [n, {limits.n_features}]"
        )
    if len(rows) == 0:
        raise BadInputError(f"input {FEATURES_INPUT!r}: no rows")
    if len(rows) > limits.max_rows:
        raise BadInputError(f"{len(rows)} rows exceed the limit of {limits.max_rows} per request")
    finite = np.isfinite(rows)
    if not finite.all():
        row, column = (int(i[0]) for i in np.nonzero(~finite))
        raise BadInputError(
            f"input {FEATURES_INPUT!r}: non-finite value {rows[row, column]} "
            f"at row {row}, column {column}"
        )
    return rows


def check_bars(bars: Mapping[str, Array], limits: Limits) -> dict[str, Array]:
    """Bar columns of equal length, at least one window long and finite."""
    lengths = {name: len(values) for name, values in bars.items()}
    if len(set(lengths.values())) != 1:
        raise BadInputError(f"bar inputs differ in length: {lengths}")
    n = next(iter(lengths.values()))
    if n < limits.window:
        raise BadInputError(f"{n} bars given; the model's feature spec needs {limits.window}")
    for name, values in bars.items():
        if not np.isfinite(values).all():
            raise BadInputError(f"input {name!r}: non-finite value")
    return {name: np.asarray(bars[name], dtype=np.float64) for name in BAR_INPUTS}


def v1_rows(document: Any, limits: Limits) -> Array:
    """Feature rows from a V1 `{"instances": [[...], ...]}` body."""
    if not isinstance(document, Mapping) or "instances" not in document:
        raise BadInputError('V1 body must be a JSON object with an "instances" list')
    try:
        rows = np.asarray(document["instances"], dtype=np.float64)
    except (ValueError, TypeError, OverflowError) as error:
        raise BadInputError(f'"instances" is not a numeric matrix: {error}') from None
    return check_rows(rows, limits)


def loads(body: bytes) -> Any:
    """Parse a JSON body; NaN, Infinity and out-of-range numbers parse, so that they can be
    refused as non-finite values rather than as malformed JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        reason = str(error)
    # orjson refuses nesting over 1024 levels, invalid UTF-8 and lone surrogates: so do we.
    if any(word in reason for word in _REFUSED_BY_ORJSON):
        raise BadInputError(f"malformed JSON: {reason}")
    try:
        return json.loads(body, parse_int=_int)
    except (ValueError, RecursionError) as error:
        raise BadInputError(f"malformed JSON: {error}") from None


_REFUSED_BY_ORJSON = ("depth limit", "UTF-8", "surrogate")


def _int(text: str) -> int | float:
    # An integer beyond int64 becomes a float (infinite past 1e308): never a Python bigint.
    return int(text) if len(text) < 19 else float(text)


def v2_response(
    request: InferRequest,
    *,
    model_name: str,
    version: str,
    prediction: Array,
    members: Mapping[str, Array],
) -> tuple[bytes, int | None]:
    """The V2 response body (echoing the request id) and, for binary outputs, its JSON length."""
    outputs = named_outputs(prediction, members)
    if request.use_binary_outputs or request.request_outputs:
        return kserve_response(request, model_name, version, outputs)
    # The common case, all outputs as JSON, written directly: the same document KServe's
    # InferResponse.to_rest builds (a test holds them equal) at a fifteenth of the cost.
    document = {
        "id": request.id or "",
        "model_name": model_name,
        "model_version": version,
        "outputs": [
            {"name": name, "shape": [len(values)], "datatype": "FP64", "data": values}
            for name, values in outputs.items()
        ],
    }
    return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY), None


def kserve_response(
    request: InferRequest, model_name: str, version: str, outputs: Mapping[str, Array]
) -> tuple[bytes, int | None]:
    """The response through KServe's InferResponse: binary outputs, requested outputs."""
    response = InferResponse(
        response_id=request.id or "",
        model_name=model_name,
        model_version=version,
        infer_outputs=[_output(name, values) for name, values in outputs.items()],
        use_binary_outputs=request.use_binary_outputs,
        requested_outputs=request.request_outputs,
    )
    try:
        body, json_length = response.to_rest()
    except InvalidInput as error:
        raise BadInputError(str(error)) from None
    if isinstance(body, bytes):
        return body, json_length
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), None


def _output(name: str, values: Array) -> InferOutput:
    output = InferOutput(name=name, shape=[len(values)], datatype="FP64")
    output.data = values
    return output


def v1_response(prediction: Array) -> bytes:
    """The V1 `{"predictions": [...]}` body."""
    return orjson.dumps({"predictions": prediction}, option=orjson.OPT_SERIALIZE_NUMPY)


def model_metadata(
    model_name: str, versions: Sequence[str], n_features: int, members: Sequence[str]
) -> dict[str, Any]:
    """V2 model metadata: the two accepted input forms and the ensemble's and members' outputs."""
    return {
        "name": model_name,
        "versions": list(versions),
        "platform": "driftline-ensemble",
        "inputs": [
            {"name": FEATURES_INPUT, "datatype": "FP64", "shape": [-1, n_features]},
            *({"name": name, "datatype": "FP64", "shape": [-1]} for name in BAR_INPUTS),
        ],
        "outputs": [
            {"name": name, "datatype": "FP64", "shape": [-1]} for name in output_names(members)
        ],
    }
