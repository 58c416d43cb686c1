"""Severity and recommendation from detector results, by rules simple enough to state here.

Evidence is counted per group of features that carry one signal (a return and its lags, the
volatility family, the oscillators: groups come from the reference's own lagged correlations,
see `groups`), so that one signal counts once. A group has *drifted* when the calibrated KS
test flagged any member, or when it moved *far*: its members' median PSI is at least 5x their
null quantiles, or a member's KS statistic is at least 0.9 (the window lies almost entirely
beyond the reference's values, which short windows of slow features cannot prove by test).
The joint test scores the whole feature vector; its ratio is its statistic over its null
quantile.

Severity, first rule that holds from the top (shares are of the groups tested):

- critical: >= 60% of groups drifted and (>= 3 groups far, or the joint ratio >= 10), or
  performance fell significantly while >= 40% of groups drifted;
- high: >= 40% of groups drifted, or >= 2 groups far, or performance fell significantly;
- medium: >= 20% of groups drifted, or a group far, or the joint ratio >= 2, or the
  prediction distribution drifted, or the error stream changed level (concept drift);
- low: at least one group drifted;
- none: otherwise.

Recommendation: `rollback` for critical with a significant performance fall; `investigate_data`
when at least half the drifted features look like a pipeline change (a feature turned constant,
or its most common value's share moved by over half), or at medium when only the inputs moved;
`retrain` for high and critical; `monitor` otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from driftline.contracts import Severity
from driftline.drift.report import DetectorResult, Recommendation


@dataclass(frozen=True, slots=True)
class SeverityRules:
    """Thresholds of the rules above."""

    far_psi_ratio: float = 5.0
    far_ks: float = 0.9
    medium_share: float = 0.20
    high_share: float = 0.40
    critical_share: float = 0.60
    high_far: int = 2
    critical_far: int = 3
    medium_joint_ratio: float = 2.0
    critical_joint_ratio: float = 10.0


@dataclass(frozen=True, slots=True)
class Group:
    """One signal's evidence: its features, whether the test flagged one, and how far it moved."""

    features: tuple[str, ...]
    tested: bool = False
    psi_ratio: float = 0.0
    ks_max: float = 0.0

    def far(self, rules: SeverityRules) -> bool:
        """Moved far beyond the reference's own variation, whatever the test could prove."""
        return self.psi_ratio >= rules.far_psi_ratio or self.ks_max >= rules.far_ks

    def drifted(self, rules: SeverityRules) -> bool:
        """Flagged by the calibrated test, or far."""
        return self.tested or self.far(rules)


@dataclass(frozen=True, slots=True)
class Findings:
    """What the detectors found, reduced to what the rules weigh."""

    n_features: int = 0
    drifted: tuple[str, ...] = ()
    psi_ratio: float = 0.0
    suspects: tuple[str, ...] = ()
    groups: tuple[Group, ...] = ()
    joint_ratio: float = 0.0
    prediction: bool = False
    performance: bool = False
    concept: bool = False

    def drifted_groups(self, rules: SeverityRules) -> list[Group]:
        """Groups flagged by the test or far."""
        return [g for g in self.groups if g.drifted(rules)]

    def far_groups(self, rules: SeverityRules) -> list[Group]:
        """Groups that moved far."""
        return [g for g in self.groups if g.far(rules)]

    def share(self, rules: SeverityRules) -> float:
        """Share of groups that drifted."""
        return len(self.drifted_groups(rules)) / len(self.groups) if self.groups else 0.0


def grade(
    results: Sequence[DetectorResult], rules: SeverityRules = SeverityRules()
) -> tuple[Severity, Recommendation, tuple[str, ...]]:
    """The severity, recommendation and human-readable reasons for one window's results."""
    findings = findings_of(results)
    severity = severity_of(findings, rules)
    return severity, recommendation_of(findings, severity), reasons_of(findings, rules)


def findings_of(results: Sequence[DetectorResult]) -> Findings:
    """The facts the rules weigh, from detectors that ran."""
    ran = {r.detector: r for r in results if r.skipped is None}
    feature = ran.get("feature")
    joint = ran.get("joint")

    def drifted(name: str) -> bool:
        return name in ran and ran[name].drifted

    common: dict[str, Any] = {
        "joint_ratio": float(joint.summary["ratio"]) if joint is not None else 0.0,
        "prediction": drifted("prediction"),
        "performance": drifted("performance"),
        "concept": drifted("concept"),
    }
    if feature is None:
        return Findings(**common)
    flagged = tuple(s.feature for s in feature.scores if s.method == "ks" and s.drifted)
    return Findings(
        n_features=int(feature.summary["n_features"]),
        drifted=flagged,
        psi_ratio=float(feature.summary["median_psi_ratio"]),
        suspects=tuple(feature.summary.get("pipeline_suspects", ())),
        groups=_groups(feature.summary.get("groups"), flagged),
        **common,
    )


def _groups(
    summary: Sequence[Mapping[str, Any]] | None, flagged: tuple[str, ...]
) -> tuple[Group, ...]:
    # Reports written before groups existed: every flagged feature is its own group.
    if summary is None:
        return tuple(Group((name,), tested=True) for name in flagged)
    return tuple(
        Group(
            features=tuple(g["features"]),
            tested=bool(g["tested"]),
            psi_ratio=float(g["psi_ratio"]),
            ks_max=float(g["ks_max"]),
        )
        for g in summary
    )


def severity_of(f: Findings, rules: SeverityRules = SeverityRules()) -> Severity:
    """The severity rule that holds first, from the top."""
    share = f.share(rules)
    far = len(f.far_groups(rules))
    if (
        share >= rules.critical_share
        and (far >= rules.critical_far or f.joint_ratio >= rules.critical_joint_ratio)
    ) or (f.performance and share >= rules.high_share):
        return Severity.CRITICAL
    if share >= rules.high_share or far >= rules.high_far or f.performance:
        return Severity.HIGH
    if (
        share >= rules.medium_share
        or far >= 1
        or f.joint_ratio >= rules.medium_joint_ratio
        or f.prediction
        or f.concept
    ):
        return Severity.MEDIUM
    return Severity.LOW if f.drifted_groups(rules) else Severity.NONE


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


def reasons_of(f: Findings, rules: SeverityRules = SeverityRules()) -> tuple[str, ...]:
    """One sentence per finding, for people reading a report or an alert."""
    reasons = []
    if f.groups:
        far = f.far_groups(rules)
        reasons.append(
            f"{len(f.drifted_groups(rules))} of {len(f.groups)} feature groups drifted "
            f"({len(f.drifted)} of {f.n_features} features beyond the reference's own variation, "
            f"median PSI {f.psi_ratio:.1f}x its null quantile); {len(far)} moved far"
            + (f" ({', '.join(g.features[0] for g in far[:5])})" if far else "")
        )
    if f.joint_ratio >= rules.medium_joint_ratio:
        reasons.append(
            f"the whole feature vector is {f.joint_ratio:.1f}x its null quantile from the reference"
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
