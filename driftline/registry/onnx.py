"""ONNX Runtime sessions for serving on small machines, and the native-versus-ONNX parity check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


class OnnxParityError(ValueError):
    """A member's ONNX predictions differ from its native ones by more than the tolerance."""


class OnnxSession:
    """A single-threaded ONNX Runtime session taking and returning float64 rows.

    One thread per session: replicas share a couple of cores, and more threads only contend.
    """

    def __init__(self, model: Path | bytes) -> None:
        import onnxruntime as ort  # noqa: PLC0415

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # errors only
        source = str(model) if isinstance(model, Path) else model
        self._session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        node = self._session.get_inputs()[0]
        self._input = node.name
        self._dtype = np.float64 if node.type == "tensor(double)" else np.float32

    def predict(self, x: Array) -> Array:
        """Predictions for the rows of `x` as a flat float64 array."""
        (out, *_) = self._session.run(None, {self._input: x.astype(self._dtype, copy=False)})
        return np.asarray(out, dtype=np.float64).reshape(-1)


def max_abs_difference(native: Array, onnx: Array) -> float:
    """The largest absolute difference between two prediction arrays."""
    if native.shape != onnx.shape:
        return float("inf")
    return float(np.max(np.abs(native - onnx))) if native.size else 0.0


def check_parity(member: str, native: Array, onnx: Array, tolerance: float) -> float:
    """Return the largest difference, or raise OnnxParityError when it exceeds `tolerance`."""
    difference = max_abs_difference(native, onnx)
    if not difference <= tolerance:
        raise OnnxParityError(
            f"member {member}: ONNX predictions differ from native by {difference:.3g} "
            f"(tolerance {tolerance:g}); refusing to register"
        )
    return difference
