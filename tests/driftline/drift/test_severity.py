"""The severity rules and recommendations, rule by rule."""

from __future__ import annotations

import pytest

from driftline.contracts import Severity
from driftline.drift.report import Recommendation
from driftline.drift.severity import Findings, recommendation_of, severity_of


def _features(drifted: int, total: int = 40, **kwargs: object) -> Findings:
    return Findings(
        n_features=total,
        drifted=tuple(f"f{i}" for i in range(drifted)),
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("findings", "severity"),
    [
        (_features(0), Severity.NONE),
        (_features(1), Severity.LOW),
        (_features(3), Severity.LOW),
        (_features(4), Severity.MEDIUM),
        (_features(0, prediction=True), Severity.MEDIUM),
        (_features(0, concept=True), Severity.MEDIUM),
        (_features(12), Severity.HIGH),
        (_features(0, performance=True), Severity.HIGH),
        (_features(30, psi_ratio=1.5), Severity.HIGH),
        (_features(24, psi_ratio=2.0), Severity.CRITICAL),
        (_features(12, performance=True), Severity.CRITICAL),
        (Findings(performance=True), Severity.HIGH),
    ],
)
def test_severity_rules(findings: Findings, severity: Severity) -> None:
    assert severity_of(findings) is severity


@pytest.mark.parametrize(
    ("findings", "recommendation"),
    [
        (_features(0), Recommendation.MONITOR),
        (_features(2), Recommendation.MONITOR),
        (_features(5), Recommendation.INVESTIGATE_DATA),
        (_features(5, prediction=True), Recommendation.MONITOR),
        (_features(20), Recommendation.RETRAIN),
        (_features(12, performance=True), Recommendation.ROLLBACK),
        (_features(2, suspects=("f0",)), Recommendation.INVESTIGATE_DATA),
        (_features(20, suspects=("f0",)), Recommendation.RETRAIN),
    ],
)
def test_recommendations(findings: Findings, recommendation: Recommendation) -> None:
    assert recommendation_of(findings, severity_of(findings)) is recommendation


def test_severity_labels_parse_and_refuse_unknown_names() -> None:
    assert Severity.parse(" High ") is Severity.HIGH
    assert Severity.CRITICAL.label == "critical"
    with pytest.raises(ValueError, match="unknown severity 'severe'"):
        Severity.parse("severe")
