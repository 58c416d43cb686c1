"""Pure drift statistics: two-sample KS, and PSI and Jensen-Shannon over frozen bins."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import stats

Array = npt.NDArray[np.float64]

# Proportions are floored at this value before logs are taken: an empty bin on one side would
# otherwise make PSI infinite. 1e-4 is the customary choice and keeps single-bin PSI below ~1.
PROPORTION_FLOOR = 1e-4


def ks_statistic(a: Array, b: Array) -> float:
    """The two-sample Kolmogorov-Smirnov statistic sup|F_a - F_b| (equals scipy's `statistic`)."""
    a = np.sort(a)
    b = np.sort(b)
    grid = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, grid, side="right") / len(a)
    cdf_b = np.searchsorted(b, grid, side="right") / len(b)
    return float(np.max(np.abs(cdf_a - cdf_b)))


def kolmogorov_pvalue(statistic: Array, effective_n: Array) -> Array:
    """Asymptotic KS p-values for statistics `statistic` at effective sample sizes `effective_n`."""
    return np.asarray(stats.kstwobign.sf(np.sqrt(effective_n) * statistic), dtype=np.float64)


def ks_effective_n(null_quantile: Array, level: float) -> Array:
    """The sample size at which the Kolmogorov law's `level` quantile equals `null_quantile`.

    For independent samples of sizes m and n this recovers m*n/(m+n); autocorrelation widens the
    null distribution of the statistic and so shrinks the effective size.
    """
    critical = float(stats.kstwobign.isf(1.0 - level))
    safe = np.maximum(null_quantile, 1e-12)
    return np.asarray((critical / safe) ** 2, dtype=np.float64)


def integrated_time(values: Array, *, window_factor: float = 5.0) -> float:
    """Integrated autocorrelation time of the ranks of `values` (1 for independent draws).

    tau = 1 + 2 * sum of rank autocorrelations up to Sokal's automatic cut-off, the smallest lag
    k with k >= window_factor * tau(k). `n / tau` independent draws carry as much information
    about the distribution as `n` autocorrelated ones; ranks make it robust to outliers.
    """
    from statsmodels.tsa.stattools import acf  # noqa: PLC0415  (statsmodels loads slowly)

    n = len(values)
    if n < 4 or np.ptp(values) == 0:
        return 1.0
    rho = acf(stats.rankdata(values), nlags=max(1, n // 4), fft=True)
    taus = 2.0 * np.cumsum(rho) - 1.0
    for k in range(1, len(taus)):
        if k >= window_factor * taus[k]:
            return max(float(taus[k]), 1.0)
    return max(float(taus[-1]), 1.0)


def nominal_n(m: int, n: int) -> float:
    """The sample size the KS asymptotics use for independent samples of sizes m and n."""
    return m * n / (m + n)


def bin_edges(reference: Array, bins: int) -> Array:
    """Inner bin edges at the reference's quantiles; repeated values collapse into fewer bins."""
    quantiles = np.quantile(reference, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    return np.unique(np.asarray(quantiles, dtype=np.float64))


def proportions(values: Array, edges: Array) -> Array:
    """Share of `values` in each bin (-inf, e1], (e1, e2], ..., (ek, inf)."""
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)
    return counts / max(len(values), 1)


def psi(expected: Array, actual: Array) -> float:
    """Population stability index sum((a - e) * ln(a / e)) over floored bin proportions."""
    return float(psi_rows(expected[None, :], actual[None, :])[0])


def psi_rows(expected: Array, actual: Array) -> Array:
    """`psi` of each row pair of two (windows x bins) arrays."""
    e = np.maximum(expected, PROPORTION_FLOOR)
    a = np.maximum(actual, PROPORTION_FLOOR)
    return np.asarray(np.sum((a - e) * np.log(a / e), axis=1), dtype=np.float64)


def js_divergence(expected: Array, actual: Array) -> float:
    """Jensen-Shannon divergence in bits (0 identical, 1 disjoint) between bin proportions."""
    return float(js_divergence_rows(expected[None, :], actual[None, :])[0])


def js_divergence_rows(expected: Array, actual: Array) -> Array:
    """`js_divergence` of each row pair of two (windows x bins) arrays."""
    p = expected / expected.sum(axis=1, keepdims=True)
    q = actual / actual.sum(axis=1, keepdims=True)
    mid = 0.5 * (p + q)
    return 0.5 * _kl_bits(p, mid) + 0.5 * _kl_bits(q, mid)


def _kl_bits(p: Array, q: Array) -> Array:
    # 0 * log(0 / q) is 0 by convention; `where` keeps log2 away from the zeros.
    ratio = np.divide(p, q, out=np.ones_like(p), where=p > 0)
    return np.asarray(np.sum(p * np.log2(ratio), axis=1), dtype=np.float64)


def benjamini_hochberg(pvalues: Array, alpha: float) -> npt.NDArray[np.bool_]:
    """Which hypotheses the Benjamini-Hochberg procedure rejects at false discovery rate `alpha`."""
    if len(pvalues) == 0:
        return np.zeros(0, dtype=bool)
    adjusted = stats.false_discovery_control(np.clip(pvalues, 0.0, 1.0), method="bh")
    return np.asarray(adjusted <= alpha, dtype=bool)
