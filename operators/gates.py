"""Offline gate verdicts from figures: pure functions, one per gate, each naming its evidence."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from operators.quality import lower_loss_test
from operators.spec import BASELINE_GATE, QualityTest
from operators.states import GateResult

Array = npt.NDArray[np.float64]


def artifact_gate(error: str | None, *, members: int = 0) -> GateResult:
    """The candidate's bundle downloaded and every member loaded."""
    if error is not None:
        return GateResult("artifact", False, f"candidate does not load: {error}")
    return GateResult("artifact", True, f"{members} members loaded", {"members": float(members)})


def smoke_gate(outputs: Array, rows: int) -> GateResult:
    """One prediction per row, all finite."""
    shape_ok = outputs.shape == (rows,)
    finite = int(np.isfinite(outputs).sum()) if outputs.size else 0
    passed = shape_ok and finite == rows and rows > 0
    detail = f"{finite} of {rows} rows gave finite predictions" + (
        "" if shape_ok else f"; output shape {outputs.shape}, expected ({rows},)"
    )
    return GateResult("smoke", passed, detail, {"rows": float(rows), "finite": float(finite)})


def parity_gate(native: Array, onnx: Array | None, tolerance: float) -> GateResult:
    """ONNX Runtime and the native models agree within `tolerance` on every row."""
    if onnx is None:
        return GateResult("onnx_parity", True, "no ONNX artifacts: serving uses the native models")
    if native.shape != onnx.shape:
        return GateResult("onnx_parity", False, f"shapes differ: {native.shape} vs {onnx.shape}")
    worst = float(np.max(np.abs(native - onnx))) if native.size else 0.0
    passed = bool(np.isfinite(worst)) and worst <= tolerance
    return GateResult(
        "onnx_parity",
        passed,
        f"max |native - onnx| {worst:.3g} {'<=' if passed else '>'} {tolerance:g}",
        {"max_abs_diff": worst, "tolerance": tolerance},
    )


def recorded_parity_gate(differences: Mapping[str, float | None], tolerance: float) -> GateResult:
    """The ONNX-versus-native differences registration measured, within `tolerance`: the gate's
    verdict where native members may not be unpickled."""
    missing = sorted(name for name, diff in differences.items() if diff is None)
    if missing:
        return GateResult(
            "onnx_parity",
            False,
            f"no parity recorded at registration for {', '.join(missing)}, and native members "
            "may not be loaded here",
        )
    worst = max((float(d) for d in differences.values() if d is not None), default=0.0)
    passed = bool(np.isfinite(worst)) and worst <= tolerance
    return GateResult(
        "onnx_parity",
        passed,
        f"max |native - onnx| {worst:.3g} recorded at registration "
        f"{'<=' if passed else '>'} {tolerance:g}",
        {"max_abs_diff": worst, "tolerance": tolerance},
    )


def latency_gate(samples_ms: Array, budget_ms: float) -> GateResult:
    """p99 of one-row ensemble inference within the budget, judged on the best of the rounds.

    `samples_ms` is one round of timings or several (rounds x samples). Other processes only ever
    add time, so on a shared host the quietest round is the model's own cost; a slow model is
    slow in every round.
    """
    rounds = np.atleast_2d(np.asarray(samples_ms, dtype=np.float64))
    best = rounds[int(np.argmin(np.percentile(rounds, 99, axis=1)))]
    p50, p99 = (float(np.percentile(best, q)) for q in (50, 99))
    passed = p99 <= budget_ms
    of = f", best of {len(rounds)} rounds" if len(rounds) > 1 else ""
    return GateResult(
        "latency",
        passed,
        f"one-row p99 {p99:.2f} ms (p50 {p50:.2f}{of}) {'<=' if passed else '>'} {budget_ms:g} ms",
        {
            "p50_ms": p50,
            "p99_ms": p99,
            "budget_ms": budget_ms,
            "samples": float(best.size),
            "rounds": float(len(rounds)),
        },
    )


def champion_gate(
    candidate: Array, champion: Array, test: QualityTest, alpha: float, *, horizon: int = 1
) -> GateResult:
    """The candidate's squared error is significantly lower than the champion's."""
    statistic, pvalue = lower_loss_test(candidate, champion, test, horizon=horizon)
    passed = pvalue is not None and pvalue < alpha
    p = "n/a" if pvalue is None else f"{pvalue:.4g}"
    return GateResult(
        "beats_champion",
        passed,
        f"{test} on {candidate.size} bars: MSE {np.mean(candidate):.3g} vs champion "
        f"{np.mean(champion):.3g}, p={p} {'<' if passed else '>='} {alpha}",
        {
            "bars": float(candidate.size),
            "candidate_mse": float(np.mean(candidate)),
            "champion_mse": float(np.mean(champion)),
            "statistic": statistic,
            "pvalue": pvalue,
            "alpha": alpha,
        },
    )


def baselines_gate(
    candidate: Array,
    champion: Array | None,
    baselines: Mapping[str, Array],
    test: QualityTest,
    *,
    horizon: int = 1,
) -> GateResult:
    """The candidate loses to no naive baseline that the champion beats.

    On real markets no honest return model reliably beats the zero-return forecast, champions
    included: an absolute bar would refuse every retrained model. The bar is relative, so a
    candidate keeps every edge the champion has; with no champion, every baseline counts.
    """
    mse = float(np.mean(candidate))
    figures: dict[str, float | None] = {"candidate_mse": mse}
    if champion is not None:
        figures["champion_mse"] = float(np.mean(champion))
    required, lost = [], []
    for name, loss in baselines.items():
        baseline = float(np.mean(loss))
        figures[f"{name}_mse"] = baseline
        figures[f"{name}_pvalue"] = lower_loss_test(candidate, loss, test, horizon=horizon)[1]
        if champion is None or float(np.mean(champion)) < baseline:
            required.append(name)
            if not mse < baseline:
                lost.append(name)
    beaten = [n for n in baselines if mse < figures[f"{n}_mse"]]  # type: ignore[operator]
    detail = f"beats {', '.join(beaten) or 'none'}"
    if champion is not None:
        detail += f"; the champion beats {', '.join(required) or 'none'}"
    if lost:
        detail += f"; loses to {', '.join(lost)}"
    return GateResult(BASELINE_GATE, not lost and bool(baselines), detail, figures)
