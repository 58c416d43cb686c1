"""Per-feature two-sample KS tests with FDR correction: alibi-detect when present, else scipy.

alibi-detect 0.12+ is under the Business Source License 1.1 and takes seconds to import, so it
is imported lazily (the monitor does it at start-up, off the request path) and is optional: the
scipy path runs the same test and the same Benjamini-Hochberg correction.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import io
import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats as scipy_stats

from driftline.drift.stats import benjamini_hochberg

log = logging.getLogger(__name__)

Array = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class KSResult:
    """Per-feature KS statistics, textbook p-values and textbook FDR decisions."""

    statistic: Array
    pvalue: Array
    drifted: npt.NDArray[np.bool_]
    backend: str


def ks_test(reference: Array, current: Array, *, alpha: float, prefer_alibi: bool) -> KSResult:
    """KS tests of every column of `current` against the same column of `reference`."""
    detector_class = alibi_ks_class() if prefer_alibi else None
    if detector_class is not None:
        return _alibi(detector_class, reference, current, alpha)
    return _scipy(reference, current, alpha)


@cache
def alibi_ks_class() -> Any | None:
    """alibi-detect's KSDrift, or None when alibi-detect is not installed (imported once)."""
    try:
        with _quiet_import():
            module = importlib.import_module("alibi_detect.cd")
    except ImportError:
        log.info("alibi-detect is not installed: feature drift uses scipy's KS test")
        return None
    return module.KSDrift


@contextlib.contextmanager
def _quiet_import() -> Iterator[None]:
    # alibi-detect pulls in TensorFlow or PyTorch and transformers, which announce themselves
    # on import (warnings, log lines, C++ notices); none of it is ours to show on the CLI.
    for name, value in (
        ("TF_CPP_MIN_LOG_LEVEL", "3"),
        ("TRANSFORMERS_VERBOSITY", "error"),
        ("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1"),
    ):
        os.environ.setdefault(name, value)
    with (
        warnings.catch_warnings(),
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)


def backend_name(prefer_alibi: bool) -> str:
    """Which implementation `ks_test` uses, with its version."""
    if prefer_alibi and alibi_ks_class() is not None:
        return f"alibi-detect {importlib.metadata.version('alibi-detect')}"
    return f"scipy {importlib.metadata.version('scipy')}"


def _alibi(detector_class: Any, reference: Array, current: Array, alpha: float) -> KSResult:
    detector = detector_class(reference, p_val=alpha, correction="fdr")
    data = detector.predict(current, return_p_val=True, return_distance=True)["data"]
    pvalue = np.asarray(data["p_val"], dtype=np.float64)
    # alibi-detect reports one FDR verdict for the whole window; per-feature decisions use the
    # same Benjamini-Hochberg step on its p-values.
    return KSResult(
        statistic=np.asarray(data["distance"], dtype=np.float64),
        pvalue=pvalue,
        drifted=benjamini_hochberg(pvalue, alpha),
        backend="alibi-detect",
    )


def _scipy(reference: Array, current: Array, alpha: float) -> KSResult:
    # Asymptotic p-values, as alibi-detect computes them, so both paths decide alike.
    result = scipy_stats.ks_2samp(reference, current, axis=0, method="asymp")
    pvalue = np.atleast_1d(np.asarray(result.pvalue, dtype=np.float64))
    return KSResult(
        statistic=np.atleast_1d(np.asarray(result.statistic, dtype=np.float64)),
        pvalue=pvalue,
        drifted=benjamini_hochberg(pvalue, alpha),
        backend="scipy",
    )
