"""Concept drift: ADWIN (river) on the absolute-error stream, alarming when errors grow.

ADWIN's bound assumes values in [0, 1]; errors are divided by ten times the version's mean
absolute error and clipped, so a typical error sits near 0.1 and a change of level is visible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from driftline.drift.performance import baseline_metrics
from driftline.drift.report import DetectorResult, Score
from driftline.drift.window import PREDICTION, TARGET, Baseline, Window


@dataclass(frozen=True, slots=True)
class ConceptDrift:
    """Runs ADWIN over the window's errors in time order; a cut with a higher mean is drift."""

    delta: float = 0.002
    min_outcomes: int = 30
    name: str = "concept"

    def detect(self, window: Window, baseline: Baseline) -> DetectorResult:
        from river.drift import ADWIN  # noqa: PLC0415  (river is only needed off the request path)

        outcomes = window.outcomes
        if outcomes is None or len(outcomes) < self.min_outcomes:
            return DetectorResult.too_few_outcomes(self.name, outcomes, self.min_outcomes)
        errors = np.abs(
            outcomes[TARGET].to_numpy(dtype=np.float64)
            - outcomes[PREDICTION].to_numpy(dtype=np.float64)
        )
        scale = 10.0 * baseline_metrics(baseline)[0]["mae"]
        scaled = np.clip(errors / scale, 0.0, 1.0) if scale > 0 else np.zeros_like(errors)
        adwin = ADWIN(delta=self.delta)  # type: ignore[no-untyped-call]
        increases: list[int] = []
        decreases: list[int] = []
        for i, value in enumerate(scaled):
            before = adwin.estimation
            adwin.update(float(value))  # type: ignore[no-untyped-call]
            if adwin.drift_detected:
                (increases if adwin.estimation > before else decreases).append(i)
        ratio = float(errors[increases[-1] :].mean() / errors.mean()) if increases else 1.0
        return DetectorResult(
            detector=self.name,
            drifted=bool(increases),
            scores=(Score("error", "adwin", ratio, bool(increases)),),
            summary={"increases_at": increases, "decreases_at": decreases, "n": len(errors)},
        )
