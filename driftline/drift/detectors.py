"""Feature, joint and prediction drift behind the one `Detector` interface.

Feature and prediction drift run the textbook KS test (scipy, or alibi-detect when installed
and preferred; FDR-corrected) and then judge each statistic against the reference's own null:
the calibrated p-value uses the effective sample size `calibrate` measured, and
Benjamini-Hochberg at the same level decides which features drifted. PSI and Jensen-Shannon
use the bins frozen in the null model, so their values stay comparable from window to window;
they measure by how much. Feature drift also summarises each group of features that carry one
signal (its members' verdicts, median PSI over the null quantile, largest KS), so severity can
count a signal once and weigh how far it moved, and keeps each feature's shares in the frozen
bins on both sides for reports to draw. Joint drift scores the whole feature vector.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt
from scipy import stats as scipy_stats

from driftline.drift import stats
from driftline.drift.calibration import FeatureNull
from driftline.drift.errors import DriftInputError
from driftline.drift.joint import joint_statistic
from driftline.drift.ks import ks_test
from driftline.drift.report import DetectorResult, Score
from driftline.drift.window import PREDICTION, Baseline, Window

Array = npt.NDArray[np.float64]

# PSI above 0.25 is the customary "major shift"; reported for comparison, never used to decide.
TEXTBOOK_PSI = 0.25
# A representation change (a field that starts or stops being filled, a unit switch) shows as
# the share of the most common value moving by more than this between reference and window.
MODE_SHARE_JUMP = 0.5


class Detector(Protocol):
    """Compares one window with a model version's baseline."""

    @property
    def name(self) -> str:
        """The detector's name in reports (`feature`, `prediction`, ...)."""
        ...

    def detect(self, window: Window, baseline: Baseline) -> DetectorResult:
        """This detector's verdict on `window`; DriftInputError for input it cannot use."""
        ...


@dataclass(frozen=True, slots=True)
class FeatureDrift:
    """Per-feature calibrated KS, PSI and Jensen-Shannon."""

    alpha: float = 0.05
    prefer_alibi: bool = False
    min_rows: int = 30
    name: str = "feature"

    def detect(self, window: Window, baseline: Baseline) -> DetectorResult:
        names = _check_columns(list(window.features.columns), baseline.feature_names)
        current = _finite(window.features.loc[:, names].to_numpy(dtype=np.float64), "window")
        reference = baseline.reference.loc[:, names].to_numpy(dtype=np.float64)
        _check_rows(len(current), baseline.null.window, self.min_rows)
        nulls = [baseline.null.column(n) for n in names]
        ks = ks_test(reference, current, alpha=self.alpha, prefer_alibi=self.prefer_alibi)
        calibrated = stats.kolmogorov_pvalue(ks.statistic, _effective_n(nulls))
        drifted = stats.benjamini_hochberg(calibrated, self.alpha)
        scores: list[Score] = []
        psis = np.empty(len(names))
        histograms: dict[str, dict[str, list[float]]] = {}
        for j, null in enumerate(nulls):
            psi, js = _binned(null, current[:, j])
            psis[j] = psi
            histograms[names[j]] = _histogram(null, current[:, j])
            scores += [
                Score(
                    names[j],
                    "ks",
                    float(ks.statistic[j]),
                    bool(drifted[j]),
                    threshold=_critical(null, self.alpha),
                    pvalue=float(calibrated[j]),
                ),
                Score(
                    names[j],
                    "ks_textbook",
                    float(ks.statistic[j]),
                    bool(ks.drifted[j]),
                    pvalue=float(ks.pvalue[j]),
                ),
                Score(names[j], "psi", psi, psi > null.psi_quantile, null.psi_quantile),
                Score(names[j], "js", js, js > null.js_quantile, null.js_quantile),
            ]
        ratio = psis / np.maximum([n.psi_quantile for n in nulls], stats.PROPORTION_FLOOR)
        n_drifted = int(drifted.sum())
        groups = _groups(baseline.null.groups, names, drifted, ratio, ks.statistic)
        return DetectorResult(
            detector=self.name,
            drifted=n_drifted > 0,
            scores=tuple(scores),
            summary={
                "n_features": len(names),
                "n_drifted": n_drifted,
                "share_drifted": n_drifted / len(names),
                "median_psi_ratio": float(np.median(ratio[drifted])) if n_drifted else 0.0,
                "max_psi": float(psis.max()),
                "textbook_ks_drifted": int(ks.drifted.sum()),
                "textbook_psi_over_0_25": int((psis > TEXTBOOK_PSI).sum()),
                "backend": ks.backend,
                "pipeline_suspects": _pipeline_suspects(names, reference, current),
                "groups": groups,
                "histograms": histograms,
            },
        )


@dataclass(frozen=True, slots=True)
class JointDrift:
    """The whole feature vector's whitened distance from the reference, against its null."""

    min_rows: int = 30
    name: str = "joint"

    def detect(self, window: Window, baseline: Baseline) -> DetectorResult:
        names = _check_columns(list(window.features.columns), baseline.feature_names)
        current = _finite(window.features.loc[:, names].to_numpy(dtype=np.float64), "window")
        reference = baseline.reference.loc[:, names].to_numpy(dtype=np.float64)
        _check_rows(len(current), baseline.null.window, self.min_rows)
        quantile = baseline.null.joint_quantile
        statistic = joint_statistic(reference, current)
        ratio = statistic / quantile if quantile > 0 else 0.0
        return DetectorResult(
            detector=self.name,
            drifted=statistic > quantile,
            scores=(
                Score(
                    "all_features", "whitened_distance", statistic, statistic > quantile, quantile
                ),
            ),
            summary={"ratio": ratio, "n_features": len(names)},
        )


@dataclass(frozen=True, slots=True)
class PredictionDrift:
    """The ensemble's output distribution against the reference's predictions."""

    alpha: float = 0.05
    prefer_alibi: bool = False
    min_rows: int = 30
    name: str = "prediction"

    def detect(self, window: Window, baseline: Baseline) -> DetectorResult:
        if window.predictions is None or PREDICTION not in baseline.null.names:
            return DetectorResult(self.name, False, skipped="no predictions to compare")
        current = _finite(np.asarray(window.predictions, dtype=np.float64), "predictions")
        _check_rows(len(current), baseline.null.window, self.min_rows)
        null = baseline.null.column(PREDICTION)
        reference = baseline.reference[PREDICTION].to_numpy(dtype=np.float64)
        ks = ks_test(
            reference[:, None], current[:, None], alpha=self.alpha, prefer_alibi=self.prefer_alibi
        )
        pvalue = float(stats.kolmogorov_pvalue(ks.statistic, _effective_n([null]))[0])
        drifted = pvalue < self.alpha
        psi, js = _binned(null, current)
        return DetectorResult(
            detector=self.name,
            drifted=drifted,
            scores=(
                Score(
                    PREDICTION,
                    "ks",
                    float(ks.statistic[0]),
                    drifted,
                    _critical(null, self.alpha),
                    pvalue,
                ),
                Score(PREDICTION, "psi", psi, psi > null.psi_quantile, null.psi_quantile),
                Score(PREDICTION, "js", js, js > null.js_quantile, null.js_quantile),
            ),
            summary={"mean": float(current.mean()), "reference_mean": float(reference.mean())},
        )


def _groups(
    groups: tuple[tuple[str, ...], ...],
    names: list[str],
    drifted: npt.NDArray[np.bool_],
    psi_ratio: Array,
    ks: Array,
) -> list[dict[str, object]]:
    # A null model without groups (none calibrated) counts every feature as its own signal.
    position = {name: j for j, name in enumerate(names)}
    out: list[dict[str, object]] = []
    for members in groups or tuple((name,) for name in names):
        index = [position[m] for m in members if m in position]
        if index:
            out.append(
                {
                    "features": [names[j] for j in index],
                    "tested": bool(drifted[index].any()),
                    "psi_ratio": float(np.median(psi_ratio[index])),
                    "ks_max": float(ks[index].max()),
                }
            )
    return out


def _check_columns(given: list[str], known: list[str]) -> list[str]:
    unknown = [n for n in given if n not in known]
    if unknown:
        raise DriftInputError(
            f"unknown feature(s) {', '.join(unknown[:5])}: the model version's reference has "
            f"{len(known)} features ({', '.join(known[:3])}, ...)"
        )
    missing = [n for n in known if n not in given]
    if missing:
        raise DriftInputError(f"window lacks feature(s) {', '.join(missing[:5])}")
    return known


def _check_rows(rows: int, calibrated: int, min_rows: int) -> None:
    if rows < min_rows:
        raise DriftInputError(f"window has {rows} rows; the detectors need at least {min_rows}")
    if rows != calibrated:
        raise DriftInputError(
            f"window has {rows} rows but the null model was calibrated for {calibrated}"
        )


def _finite(values: Array, what: str) -> Array:
    if not np.isfinite(values).all():
        raise DriftInputError(f"{what} contain NaN or infinite values")
    return values


def _effective_n(nulls: list[FeatureNull]) -> Array:
    return np.array([n.ks_effective_n for n in nulls], dtype=np.float64)


def _critical(null: FeatureNull, alpha: float) -> float:
    # The KS statistic above which this feature alone would be called drifted at `alpha`.
    return float(scipy_stats.kstwobign.isf(alpha) / np.sqrt(null.ks_effective_n))


def _binned(null: FeatureNull, values: Array) -> tuple[float, float]:
    edges = np.asarray(null.edges, dtype=np.float64)
    expected = np.asarray(null.expected, dtype=np.float64)
    actual = stats.proportions(values, edges)
    return stats.psi(expected, actual), stats.js_divergence(expected, actual)


def _histogram(null: FeatureNull, values: Array) -> dict[str, list[float]]:
    # The frozen bins' inner edges and both sides' shares, rounded: what a report draws.
    edges = np.asarray(null.edges, dtype=np.float64)
    return {
        "edges": [float(f"{e:.4g}") for e in edges],
        "reference": [round(float(p), 4) for p in null.expected],
        "current": [round(float(p), 4) for p in stats.proportions(values, edges)],
    }


def _pipeline_suspects(names: list[str], reference: Array, current: Array) -> list[str]:
    suspects = []
    for j, name in enumerate(names):
        ref_constant = np.ptp(reference[:, j]) == 0
        cur_constant = np.ptp(current[:, j]) == 0
        jump = abs(_mode_share(reference[:, j]) - _mode_share(current[:, j]))
        if ref_constant != cur_constant or jump > MODE_SHARE_JUMP:
            suspects.append(name)
    return suspects


def _mode_share(values: Array) -> float:
    _, counts = np.unique(values, return_counts=True)
    return float(counts.max() / len(values))
