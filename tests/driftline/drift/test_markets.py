"""Drift grading on two markets it was not tuned on one by one: S&P 500 and NASDAQ (issue 17)."""

from __future__ import annotations

import pytest

from benchmarks._drift_windows import MARKETS, driftline_report, windows
from driftline.contracts import Severity


@pytest.mark.slow
@pytest.mark.parametrize("market", MARKETS)
def test_crashes_grade_high_or_worse_and_calm_years_no_worse_than_low(market: str) -> None:
    graded = [(w, driftline_report(market, w)) for w in windows(market)]
    wrong = [
        f"{w.name} ({w.kind}, volatility x{w.volatility_ratio:.2f}): {r.severity.label}"
        for w, r in graded
        if not w.acceptable(r.severity)
    ]
    assert not wrong, f"{market}: " + "; ".join(wrong)
    kinds = [w.kind for w, _ in graded]
    assert kinds.count("crash") >= 5, "2008-09..12, 2000, 2001, 2002 and the 2008 year"
    assert kinds.count("calm") >= 6
    crash = next(r for w, r in graded if w.name.startswith("2008-09"))
    # The crash reaches critical, and the report says which evidence took it there.
    assert crash.severity is Severity.CRITICAL
    assert any("moved far" in reason for reason in crash.reasons)
