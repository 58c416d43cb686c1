"""Severity and recommendation from detector results, by rules simple enough to state in a table.

| severity | when (first rule that holds, top down) |
| --- | --- |
| critical | >= 60% of features drifted with a median PSI over 2x its null quantile; or performance fell significantly while >= 30% of features drifted |
| high | >= 30% of features drifted; or performance fell significantly |
| medium | >= 10% of features drifted; or the prediction distribution drifted; or concept drift on the error stream |
| low | at least one feature drifted |
| none | otherwise |

Recommendation: `rollback` for critical with a significant performance fall, `retrain` for high
and critical, `investigate_data` when most drifted features look like a pipeline change (a
feature turned constant, or its most common value's share moved by over half) or when only the
data moved at medium, `monitor` otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from driftline.drift.report import DetectorResult, Recommendation, Severity


@dataclass(frozen=True, slots=True)
class SeverityRules:
    """Thresholds of the rules above (shares are of the features tested)."""

    medium_share: float = 0.10
    high_share: float = 0.30
    critical_share: float = 0.60
    critical_psi_ratio: float = 2.0


def grade(
    results: Sequence[DetectorResult], rules: SeverityRules = SeverityRules()
) -> tuple[Severity, Recommendation, tuple[str, ...]]:
    """The severity, recommendation and human-readable reasons for one window's results."""
    by_name = {r.detector: r for r in results if r.skipped is None}
    feature = by_name.get("feature")
    share = float(feature.summary["share_drifted"]) if feature else 0.0
    psi_ratio = float(feature.summary["median_psi_ratio"]) if feature else 0.0
    suspects = list(feature.summary.get("pipeline_suspects", [])) if feature else []
    n_drifted = int(feature.summary["n_drifted"]) if feature else 0
    prediction = _drifted(by_name, "prediction")
    performance = _drifted(by_name, "performance")
    concept = _drifted(by_name, "concept")

    reasons: list[str] = []
    if feature:
        reasons.append(
            f"{n_drifted} of {feature.summary['n_features']} features drifted beyond the "
            f"reference's own variation (median PSI {psi_ratio:.1f}x its null quantile)"
        )
    if prediction:
        reasons.append("the distribution of ensemble outputs drifted")
    if performance:
        reasons.append("live performance is significantly worse than the version's evaluation")
    if concept:
        reasons.append("the error stream changed level (concept drift)")
    if suspects:
        reasons.append(f"possible pipeline change in {', '.join(suspects[:5])}")

    if (share >= rules.critical_share and psi_ratio >= rules.critical_psi_ratio) or (
        performance and share >= rules.high_share
    ):
        severity = Severity.CRITICAL
    elif share >= rules.high_share or performance:
        severity = Severity.HIGH
    elif share >= rules.medium_share or prediction or concept:
        severity = Severity.MEDIUM
    elif n_drifted > 0:
        severity = Severity.LOW
    else:
        severity = Severity.NONE

    data_only = not (prediction or performance or concept)
    if severity is Severity.CRITICAL and performance:
        recommendation = Recommendation.ROLLBACK
    elif suspects and n_drifted and 2 * len(set(suspects) & set(_drifted_names(feature))) >= (
        n_drifted
    ):
        recommendation = Recommendation.INVESTIGATE_DATA
    elif severity >= Severity.HIGH:
        recommendation = Recommendation.RETRAIN
    elif severity is Severity.MEDIUM and data_only:
        recommendation = Recommendation.INVESTIGATE_DATA
    else:
        recommendation = Recommendation.MONITOR
    return severity, recommendation, tuple(reasons)


def _drifted(by_name: dict[str, DetectorResult], name: str) -> bool:
    result = by_name.get(name)
    return result is not None and result.drifted


def _drifted_names(feature: DetectorResult | None) -> list[str]:
    if feature is None:
        return []
    return [s.feature for s in feature.scores if s.method == "ks" and s.drifted]
