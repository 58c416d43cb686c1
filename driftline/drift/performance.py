"""Performance drift: rolling error metrics from outcomes, tested against the version's own.

Daily errors cluster (volatile weeks give large errors for every model), so the tests use
Newey-West (HAC) standard errors: a one-sided test that the live mean squared error exceeds the
baseline's, the same for absolute error, and that live directional accuracy is below the
baseline's; Holm's correction keeps the three at one level. The baseline is the version's
reference block (out-of-fold predictions and realised targets, so its own sampling error enters
the test), else the hold-out metrics of its evaluation report; the report carries both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats as scipy_stats

from driftline.drift.report import DetectorResult, Score
from driftline.drift.window import PREDICTION, TARGET, Baseline, Window

Array = npt.NDArray[np.float64]
METRICS = ("rmse", "mae", "r2", "directional_accuracy")


@dataclass(frozen=True, slots=True)
class Metrics:
    """Point metrics of predictions against realised values."""

    rmse: float
    mae: float
    r2: float
    directional_accuracy: float
    n: int

    def as_dict(self) -> dict[str, float]:
        """Metric name -> value."""
        return {name: float(getattr(self, name)) for name in METRICS}


def metrics(prediction: Array, target: Array) -> Metrics:
    """RMSE, MAE, R^2 (against the window's own mean) and the share of correct signs."""
    error = target - prediction
    total = float(np.sum((target - target.mean()) ** 2))
    return Metrics(
        rmse=float(np.sqrt(np.mean(error**2))),
        mae=float(np.mean(np.abs(error))),
        r2=1.0 - float(np.sum(error**2)) / total if total > 0 else float("nan"),
        directional_accuracy=float(np.mean(np.sign(prediction) == np.sign(target))),
        n=len(error),
    )


def hac_mean_test(
    live: Array, baseline: float | Array, *, alternative: str = "greater"
) -> tuple[float, float]:
    """(z, p) for H1: mean(live) > baseline (or < with `alternative="less"`), HAC errors.

    `baseline` is a constant, or a second sample whose own HAC variance is added.
    """
    mean_live, var_live = _hac_mean(live)
    if isinstance(baseline, np.ndarray):
        mean_base, var_base = _hac_mean(baseline)
    else:
        mean_base, var_base = float(baseline), 0.0
    scale = np.sqrt(var_live + var_base)
    if scale == 0:
        return 0.0, 1.0
    z = (mean_live - mean_base) / scale
    p = scipy_stats.norm.sf(z) if alternative == "greater" else scipy_stats.norm.cdf(z)
    return float(z), float(p)


def _hac_mean(values: Array) -> tuple[float, float]:
    # The model's own module: `statsmodels.api` imports all of statsmodels (25 MiB more in the
    # long-running monitor) to reach the same class.
    from statsmodels.regression.linear_model import OLS  # noqa: PLC0415

    n = len(values)
    lags = int(np.floor(4 * (n / 100) ** (2 / 9)))
    fit = OLS(values, np.ones(n)).fit(cov_type="HAC", cov_kwds={"maxlags": lags})
    return float(fit.params[0]), float(fit.bse[0] ** 2)


@dataclass(frozen=True, slots=True)
class PerformanceDrift:
    """Live metrics from outcomes against the version's, with HAC tests and Holm's correction."""

    alpha: float = 0.05
    min_outcomes: int = 30
    name: str = "performance"

    def detect(self, window: Window, baseline: Baseline) -> DetectorResult:
        outcomes = window.outcomes
        if outcomes is None or len(outcomes) < self.min_outcomes:
            return DetectorResult.too_few_outcomes(self.name, outcomes, self.min_outcomes)
        prediction = outcomes[PREDICTION].to_numpy(dtype=np.float64)
        target = outcomes[TARGET].to_numpy(dtype=np.float64)
        live = metrics(prediction, target)
        base, samples, source = baseline_metrics(baseline)
        error = target - prediction
        hits = (np.sign(prediction) == np.sign(target)).astype(np.float64)
        tests = {
            "rmse": hac_mean_test(error**2, samples.get("se", base["rmse"] ** 2)),
            "mae": hac_mean_test(np.abs(error), samples.get("ae", base["mae"])),
            "directional_accuracy": hac_mean_test(
                hits, samples.get("hit", base["directional_accuracy"]), alternative="less"
            ),
        }
        adjusted = _holm({k: p for k, (_, p) in tests.items()})
        scores = tuple(
            Score(
                feature="performance",
                method=name,
                value=value,
                drifted=adjusted.get(name, 1.0) < self.alpha,
                threshold=base.get(name),
                pvalue=adjusted.get(name),
            )
            for name, value in live.as_dict().items()
        )
        return DetectorResult(
            detector=self.name,
            drifted=any(s.drifted for s in scores),
            scores=scores,
            summary={
                "n_outcomes": live.n,
                "live": live.as_dict(),
                "baseline": base,
                "baseline_source": source,
                "evaluation": reported_metrics(baseline.evaluation),
            },
        )


def baseline_metrics(baseline: Baseline) -> tuple[dict[str, float], dict[str, Any], str]:
    """The version's metrics, per-row samples to test against when they exist, and their source.

    The reference block's out-of-fold predictions come first: their per-row errors let the
    tests carry the baseline's own sampling uncertainty. A version without them is tested
    against its evaluation report's hold-out point values.
    """
    reference = baseline.reference
    if PREDICTION in reference and TARGET in reference:
        frame = reference[[PREDICTION, TARGET]].dropna()
        prediction = frame[PREDICTION].to_numpy(dtype=np.float64)
        target = frame[TARGET].to_numpy(dtype=np.float64)
        error = target - prediction
        samples = {
            "se": error**2,
            "ae": np.abs(error),
            "hit": (np.sign(prediction) == np.sign(target)).astype(np.float64),
        }
        return metrics(prediction, target).as_dict(), samples, "reference"
    reported = reported_metrics(baseline.evaluation)
    if reported is None:
        raise ValueError("the baseline has neither reference outcomes nor evaluation metrics")
    return reported, {}, "evaluation"


def reported_metrics(evaluation: Mapping[str, Any]) -> dict[str, float] | None:
    """Hold-out metrics from a training report (`model.statistical`), if it has all of them."""
    model = evaluation.get("model")
    candidates = [model.get("statistical") if isinstance(model, Mapping) else None, evaluation]
    for candidate in candidates:
        if isinstance(candidate, Mapping) and all(
            isinstance(candidate.get(k), int | float) for k in METRICS
        ):
            return {k: float(candidate[k]) for k in METRICS}
    return None


def _holm(pvalues: dict[str, float]) -> dict[str, float]:
    ordered = sorted(pvalues.items(), key=lambda kv: kv[1])
    adjusted: dict[str, float] = {}
    running = 0.0
    for i, (name, p) in enumerate(ordered):
        running = max(running, min(1.0, (len(ordered) - i) * p))
        adjusted[name] = running
    return adjusted


def outcome_frame(prediction: Array, target: Array) -> pd.DataFrame:
    """The `Window.outcomes` frame for paired predictions and realised values."""
    return pd.DataFrame({PREDICTION: prediction, TARGET: target})
