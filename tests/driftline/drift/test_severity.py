"""The severity rules and recommendations, rule by rule, on groups of features."""

from __future__ import annotations

import pytest

from driftline.contracts import Severity
from driftline.drift.report import DetectorResult, Recommendation, Score
from driftline.drift.severity import Findings, Group, findings_of, recommendation_of, severity_of

CALM = Group(("calm",))
TESTED = Group(("tested",), tested=True)
FAR_PSI = Group(("far_psi",), psi_ratio=6.0)
FAR_KS = Group(("slow",), ks_max=1.0)


def _groups(*groups: Group, calm: int = 0, **kwargs: object) -> Findings:
    every = (*groups, *(CALM,) * calm)
    drifted = tuple(f for g in every if g.tested for f in g.features)
    return Findings(n_features=len(every), drifted=drifted, groups=every, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("findings", "severity"),
    [
        (_groups(calm=10), Severity.NONE),
        (_groups(TESTED, calm=9), Severity.LOW),
        (_groups(TESTED, TESTED, calm=8), Severity.MEDIUM),
        (_groups(FAR_PSI, calm=9), Severity.MEDIUM),
        (_groups(calm=10, joint_ratio=2.5), Severity.MEDIUM),
        (_groups(calm=10, joint_ratio=1.9), Severity.NONE),
        (_groups(calm=10, prediction=True), Severity.MEDIUM),
        (_groups(calm=10, concept=True), Severity.MEDIUM),
        (_groups(*(TESTED,) * 4, calm=6), Severity.HIGH),
        # Effect size counts: two slow signals far beyond the reference, no test rejected.
        (_groups(FAR_KS, FAR_PSI, calm=8), Severity.HIGH),
        (_groups(calm=10, performance=True), Severity.HIGH),
        (_groups(*(TESTED,) * 6, calm=4), Severity.HIGH),
        (_groups(*(TESTED,) * 3, FAR_KS, FAR_PSI, FAR_PSI, calm=4), Severity.CRITICAL),
        (_groups(*(TESTED,) * 6, calm=4, joint_ratio=12.0), Severity.CRITICAL),
        (_groups(*(TESTED,) * 4, calm=6, performance=True), Severity.CRITICAL),
        (Findings(performance=True), Severity.HIGH),
    ],
)
def test_severity_rules(findings: Findings, severity: Severity) -> None:
    assert severity_of(findings) is severity


def test_one_signal_seen_in_six_features_counts_once() -> None:
    returns = Group(("ret_1", "ret_lag_1", "ret_lag_2", "ret_lag_3", "ret_lag_4", "body"), True)
    findings = _groups(returns, calm=9)
    assert len(findings.drifted) == 6
    assert severity_of(findings) is Severity.LOW


@pytest.mark.parametrize(
    ("findings", "recommendation"),
    [
        (_groups(calm=10), Recommendation.MONITOR),
        (_groups(TESTED, calm=9), Recommendation.MONITOR),
        (_groups(TESTED, TESTED, calm=8), Recommendation.INVESTIGATE_DATA),
        (_groups(TESTED, TESTED, calm=8, prediction=True), Recommendation.MONITOR),
        (_groups(*(TESTED,) * 5, calm=5), Recommendation.RETRAIN),
        (_groups(*(TESTED,) * 4, calm=6, performance=True), Recommendation.ROLLBACK),
        (_groups(TESTED, calm=9, suspects=("tested",)), Recommendation.INVESTIGATE_DATA),
    ],
)
def test_recommendations(findings: Findings, recommendation: Recommendation) -> None:
    assert recommendation_of(findings, severity_of(findings)) is recommendation


def test_findings_read_groups_and_the_joint_ratio_from_results() -> None:
    feature = DetectorResult(
        "feature",
        True,
        scores=(Score("a", "ks", 0.5, True), Score("b", "ks", 0.1, False)),
        summary={
            "n_features": 2,
            "median_psi_ratio": 3.0,
            "groups": [{"features": ["a", "b"], "tested": True, "psi_ratio": 3.0, "ks_max": 0.5}],
        },
    )
    joint = DetectorResult("joint", True, summary={"ratio": 4.0})
    findings = findings_of([feature, joint])
    assert findings.groups == (Group(("a", "b"), True, 3.0, 0.5),)
    assert findings.drifted == ("a",)
    assert findings.joint_ratio == 4.0


def test_severity_labels_parse_and_refuse_unknown_names() -> None:
    assert Severity.parse(" High ") is Severity.HIGH
    assert Severity.CRITICAL.label == "critical"
    with pytest.raises(ValueError, match="unknown severity 'severe'"):
        Severity.parse("severe")
