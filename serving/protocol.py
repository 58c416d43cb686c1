"""KServe V1/V2 requests to numpy and back, using KServe's own protocol types; pure functions."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import pydantic
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferOutput, InferRequest, InferResponse
from kserve.protocol.rest.v2_datamodels import InferenceRequest

from driftline.registry.outputs import named_outputs, output_names
from serving.errors import BadInputError

Array = npt.NDArray[np.float64]

FEATURES_INPUT = "features"
BAR_INPUTS = ("open", "high", "low", "close", "volume")
NUMERIC_DATATYPES = frozenset({"FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64"})
# KServe's binary tensor extension: the JSON header's length when binary data follows it.
JSON_LENGTH_HEADER = "inference-header-content-length"


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


def parse_v2(body: bytes, json_length: int | None, model_name: str) -> InferRequest:
    """Decode a V2 infer body (JSON, or JSON plus binary tensors) into KServe's InferRequest."""
    try:
        return InferRequest.from_bytes(body, json_length or len(body), model_name)
    except InvalidInput as error:
        if json_length is None and "Unrecognized request format" in str(error):
            return _parse_lenient(body, model_name)
        raise BadInputError(str(error)) from None
    except (KeyError, TypeError) as error:
        raise BadInputError(f"malformed V2 request: missing or invalid field {error}") from None


def _parse_lenient(body: bytes, model_name: str) -> InferRequest:
    # orjson refuses NaN and Infinity literals, which Python's json module writes by default:
    # accept them here so that the client hears "non-finite value", not "malformed JSON".
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as error:
        raise BadInputError(f"malformed JSON: {error}") from None
    try:
        request = InferenceRequest.model_validate(document)
    except pydantic.ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BadInputError(f"malformed V2 request: {where}: {first['msg']}") from None
    return InferRequest.from_inference_request(request, model_name)


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
    except (ValueError, TypeError) as error:
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
    except (ValueError, TypeError) as error:
        raise BadInputError(f'"instances" is not a numeric matrix: {error}') from None
    return check_rows(rows, limits)


def loads(body: bytes) -> Any:
    """Parse a JSON body; NaN and Infinity literals are accepted so that they can be refused."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError) as error:
            raise BadInputError(f"malformed JSON: {error}") from None


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
