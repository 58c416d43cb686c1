"""Severity and recommendation from detector results, by rules simple enough to state here.

Severity, first rule that holds from the top (shares are of the features tested):

- critical: >= 60% of features drifted with a median PSI over 2x its null quantile, or
  performance fell significantly while >= 30% of features drifted;
- high: >= 30% of features drifted, or performance fell significantly;
- medium: >= 10% of features drifted, or the prediction distribution drifted, or the error
  stream changed level (concept drift);
- low: at least one feature drifted;
- none: otherwise.

Recommendation: `rollback` for critical with a significant performance fall; `investigate_data`
when at least half the drifted features look like a pipeline change (a feature turned constant,
or its most common value's share moved by over half), or at medium when only the inputs moved;
`retrain` for high and critical; `monitor` otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from driftline.contracts import Severity
from driftline.drift.report import DetectorResult, Recommendation


@dataclass(frozen=True, slots=True)
class SeverityRules:
    """Thresholds of the rules above."""

    medium_share: float = 0.10
    high_share: float = 0.30
    critical_share: float = 0.60
    critical_psi_ratio: float = 2.0


@dataclass(frozen=True, slots=True)
class Findings:
    """What the detectors found, reduced to what the rules weigh."""

    n_features: int = 0
    drifted: tuple[str, ...] = ()
    psi_ratio: float = 0.0
    suspects: tuple[str, ...] = ()
    prediction: bool = False
    performance: bool = False
    concept: bool = False

    @property
    def share(self) -> float:
        """Share of tested features that drifted."""
        return len(self.drifted) / self.n_features if self.n_features else 0.0


def grade(
    results: Sequence[DetectorResult], rules: SeverityRules = SeverityRules()
) -> tuple[Severity, Recommendation, tuple[str, ...]]:
    """The severity, recommendation and human-readable reasons for one window's results."""
    findings = findings_of(results)
    severity = severity_of(findings, rules)
    return severity, recommendation_of(findings, severity), reasons_of(findings)


def findings_of(results: Sequence[DetectorResult]) -> Findings:
    """The facts the rules weigh, from detectors that ran."""
    ran = {r.detector: r for r in results if r.skipped is None}
    feature = ran.get("feature")

    def drifted(name: str) -> bool:
        return name in ran and ran[name].drifted

    if feature is None:
        return Findings(
            prediction=drifted("prediction"),
            performance=drifted("performance"),
            concept=drifted("concept"),
        )
    return Findings(
        n_features=int(feature.summary["n_features"]),
        drifted=tuple(s.feature for s in feature.scores if s.method == "ks" and s.drifted),
        psi_ratio=float(feature.summary["median_psi_ratio"]),
        suspects=tuple(feature.summary.get("pipeline_suspects", ())),
        prediction=drifted("prediction"),
        performance=drifted("performance"),
        concept=drifted("concept"),
    )


def severity_of(f: Findings, rules: SeverityRules = SeverityRules()) -> Severity:
    """The severity rule that holds first, from the top."""
    if (f.share >= rules.critical_share and f.psi_ratio >= rules.critical_psi_ratio) or (
        f.performance and f.share >= rules.high_share
    ):
        return Severity.CRITICAL
    if f.share >= rules.high_share or f.performance:
        return Severity.HIGH
    if f.share >= rules.medium_share or f.prediction or f.concept:
        return Severity.MEDIUM
    return Severity.LOW if f.drifted else Severity.NONE


def recommendation_of(f: Findings, severity: Severity) -> Recommendation:
    """What to do about a window with findings `f` graded `severity`."""
    if severity is Severity.CRITICAL and f.performance:
        return Recommendation.ROLLBACK
    pipeline = set(f.suspects) & set(f.drifted)
    if f.drifted and 2 * len(pipeline) >= len(f.drifted):
        return Recommendation.INVESTIGATE_DATA
    if severity >= Severity.HIGH:
        return Recommendation.RETRAIN
    inputs_only = not (f.prediction or f.performance or f.concept)
    if severity is Severity.MEDIUM and inputs_only:
        return Recommendation.INVESTIGATE_DATA
    return Recommendation.MONITOR


def reasons_of(f: Findings) -> tuple[str, ...]:
    """One sentence per finding, for people reading a report or an alert."""
    reasons = []
    if f.n_features:
        reasons.append(
            f"{len(f.drifted)} of {f.n_features} features drifted beyond the reference's own "
            f"variation (median PSI {f.psi_ratio:.1f}x its null quantile)"
        )
    if f.prediction:
        reasons.append("the distribution of ensemble outputs drifted")
    if f.performance:
        reasons.append("live performance is significantly worse than the version's evaluation")
    if f.concept:
        reasons.append("the error stream changed level (concept drift)")
    if f.suspects:
        reasons.append(f"possible pipeline change in {', '.join(f.suspects[:5])}")
    return tuple(reasons)
