"""Statistical comparison of two models' losses on the same targets, for every quality gate."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from operators.observations import PairedEvidence
from operators.spec import QualityTest

Losses = npt.NDArray[np.float64]


def lower_loss_test(
    loss_a: Losses, loss_b: Losses, test: QualityTest, *, horizon: int = 1
) -> tuple[float | None, float | None]:
    """(statistic, p-value) of the one-sided test that A's loss is lower than B's."""
    a, b = np.asarray(loss_a, dtype=np.float64), np.asarray(loss_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired losses must be 1-d and equal length, got {a.shape}, {b.shape}")
    differential = a - b
    # Too few pairs, or a differential without variance: no test statistic is defined.
    if len(a) < 3 or np.ptp(differential) <= 1e-12 * max(float(np.max(np.abs(a))), 1e-300):
        return None, None
    if test == "diebold-mariano":
        from driftline.evaluation import diebold_mariano  # noqa: PLC0415 - training's module

        result = diebold_mariano(a, b, horizon=horizon, alternative="less")
        return _finite(result.statistic), _finite(result.pvalue)
    from scipy import stats  # noqa: PLC0415 - seconds to import; only gates and shadow need it

    if test == "paired-t":
        t = stats.ttest_rel(a, b, alternative="less")
        return _finite(t.statistic), _finite(t.pvalue)
    w = stats.wilcoxon(a - b, alternative="less", zero_method="zsplit")
    return _finite(w.statistic), _finite(w.pvalue)


def paired_evidence(
    candidate_loss: Losses, champion_loss: Losses, test: QualityTest
) -> PairedEvidence:
    """Evidence that the candidate is worse: the test that the champion's loss is lower."""
    statistic, pvalue = lower_loss_test(champion_loss, candidate_loss, test)
    pairs = len(candidate_loss)
    return PairedEvidence(
        pairs=pairs,
        test=test,
        statistic=statistic,
        pvalue=pvalue,
        candidate_loss=float(np.mean(candidate_loss)) if pairs else None,
        champion_loss=float(np.mean(champion_loss)) if pairs else None,
    )


def _finite(value: object) -> float | None:
    number = float(value)  # type: ignore[arg-type]
    return number if math.isfinite(number) else None
