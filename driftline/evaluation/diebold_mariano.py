"""The Diebold-Mariano test of equal predictive accuracy with the Harvey-Leybourne-Newbold fix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats

Alternative = Literal["less", "greater", "two-sided"]


@dataclass(frozen=True, slots=True)
class TestResult:
    """A test statistic and its p-value."""

    __test__ = False  # not a pytest test class, despite the name

    statistic: float
    pvalue: float


def diebold_mariano(
    loss_a: npt.ArrayLike,
    loss_b: npt.ArrayLike,
    *,
    horizon: int = 1,
    alternative: Alternative = "less",
) -> TestResult:
    """Test whether forecast A's expected loss differs from B's; "less" means A is better.

    The loss differential's long-run variance sums its autocovariances up to lag `horizon - 1`
    (h-step forecast errors are MA(h-1) under the null), falling back to Bartlett weights when
    that estimate is not positive; Harvey, Leybourne and Newbold (1997)
    scale the statistic for small samples and compare it with Student's t on n - 1 degrees of
    freedom. With horizon 1 this is exactly the one-sample t-test of the loss differential.
    """
    a = np.asarray(loss_a, dtype=np.float64)
    b = np.asarray(loss_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"losses must be 1-D and of equal length, got {a.shape} and {b.shape}")
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1, got {horizon}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("losses must be finite")
    n = a.size
    if n < max(3, 2 * horizon):
        raise ValueError(f"{n} loss pairs are too few for horizon {horizon}")
    d = a - b
    centred = d - d.mean()
    autocov = [float(centred[k:] @ centred[: n - k]) / n for k in range(horizon)]
    long_run_variance = autocov[0] + 2.0 * sum(autocov[1:])
    if long_run_variance <= 0.0:
        # The truncated (rectangular) estimate can go negative in small samples; Newey-West's
        # Bartlett weights over the same lags cannot.
        long_run_variance = autocov[0] + 2.0 * sum(
            (1.0 - k / horizon) * g for k, g in enumerate(autocov[1:], start=1)
        )
    if long_run_variance <= 0.0:
        # Identical losses: no evidence either way.
        return TestResult(statistic=0.0, pvalue=1.0)
    dm = d.mean() / np.sqrt(long_run_variance / n)
    hln = np.sqrt((n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n)
    statistic = float(dm * hln)
    t = stats.t(df=n - 1)
    if alternative == "less":
        pvalue = t.cdf(statistic)
    elif alternative == "greater":
        pvalue = t.sf(statistic)
    elif alternative == "two-sided":
        pvalue = 2.0 * t.sf(abs(statistic))
    else:
        raise ValueError(f"alternative must be less, greater or two-sided, not {alternative!r}")
    return TestResult(statistic=statistic, pvalue=float(min(1.0, pvalue)))
