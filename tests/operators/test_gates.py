"""Offline gate verdicts from figures, including the cases that must fail."""

from __future__ import annotations

import numpy as np
import pytest

from operators import gates

RNG = np.random.default_rng(7)


def test_parity_fails_beyond_the_tolerance_and_passes_without_onnx() -> None:
    native = RNG.normal(0, 0.01, 100)
    assert gates.parity_gate(native, native + 5e-7, 1e-5).passed
    off = gates.parity_gate(native, native + np.r_[np.zeros(99), 3e-4], 1e-5)
    assert not off.passed
    assert off.figures["max_abs_diff"] == pytest.approx(3e-4)
    assert gates.parity_gate(native, None, 1e-5).passed


def test_recorded_parity_judges_registration_figures_and_fails_without_them() -> None:
    assert gates.recorded_parity_gate({"rf": 2e-7, "xgb": 4e-6}, 1e-5).passed
    off = gates.recorded_parity_gate({"rf": 2e-7, "xgb": 3e-4}, 1e-5)
    assert not off.passed
    assert off.figures["max_abs_diff"] == pytest.approx(3e-4)
    unknown = gates.recorded_parity_gate({"rf": None, "xgb": 0.0}, 1e-5)
    assert not unknown.passed
    assert "rf" in unknown.detail


def test_smoke_rejects_non_finite_or_misshapen_outputs() -> None:
    assert gates.smoke_gate(np.zeros(5), 5).passed
    assert not gates.smoke_gate(np.array([0.0, np.nan, 0.0]), 3).passed
    assert not gates.smoke_gate(np.zeros((5, 2)), 5).passed
    assert not gates.smoke_gate(np.zeros(0), 0).passed


def test_latency_judges_the_p99() -> None:
    samples = np.r_[np.full(98, 1.0), 80.0, 90.0]
    verdict = gates.latency_gate(samples, 50)
    assert not verdict.passed
    assert verdict.figures["p50_ms"] == 1.0
    assert gates.latency_gate(np.full(100, 2.0), 50).passed


def test_latency_is_judged_on_the_quietest_round() -> None:
    # A neighbour's burst stalls one round; a slow model is slow in every round.
    stalled = np.r_[np.full(48, 1.0), 80.0, 90.0]
    verdict = gates.latency_gate(np.vstack([stalled, np.full(50, 2.0), stalled]), 50)
    assert verdict.passed
    assert (verdict.figures["p99_ms"], verdict.figures["rounds"]) == (2.0, 3.0)
    assert "best of 3 rounds" in verdict.detail
    slow = np.full((3, 50), 60.0)
    assert not gates.latency_gate(slow, 50).passed


def test_the_champion_must_be_beaten_significantly() -> None:
    champion = RNG.gamma(2.0, 1e-4, 250)
    clearly_better = champion * 0.7
    verdict = gates.champion_gate(clearly_better, champion, "paired-t", 0.05)
    assert verdict.passed
    assert verdict.figures["pvalue"] is not None
    assert verdict.figures["pvalue"] < 0.05
    noise = champion * RNG.normal(1.0, 0.05, 250)
    assert not gates.champion_gate(noise, champion, "paired-t", 0.05).passed
    assert not gates.champion_gate(champion, champion, "wilcoxon", 0.05).passed  # identical


def test_without_a_champion_every_baseline_must_be_beaten() -> None:
    candidate = np.full(50, 1.0)
    verdict = gates.baselines_gate(
        candidate,
        None,
        {"zero_return": np.full(50, 2.0), "previous_return": np.full(50, 0.5)},
        "paired-t",
    )
    assert not verdict.passed
    assert verdict.detail == "beats zero_return; loses to previous_return"
    only_zero = {"zero_return": np.full(50, 2.0)}
    assert gates.baselines_gate(candidate, None, only_zero, "paired-t").passed


def test_a_candidate_must_keep_every_edge_the_champion_has_and_no_more() -> None:
    baselines = {"zero_return": np.full(50, 1.0), "previous_return": np.full(50, 3.0)}
    # Like real markets: the champion beats previous_return but not zero_return.
    champion = np.full(50, 2.0)
    better = gates.baselines_gate(np.full(50, 1.5), champion, baselines, "paired-t")
    assert better.passed
    assert better.detail == "beats previous_return; the champion beats previous_return"
    assert better.figures["champion_mse"] == 2.0
    worse = gates.baselines_gate(np.full(50, 3.5), champion, baselines, "paired-t")
    assert not worse.passed
    assert (
        worse.detail == "beats none; the champion beats previous_return; loses to previous_return"
    )


def test_a_load_error_is_a_failed_artifact_gate() -> None:
    verdict = gates.artifact_gate("InvalidProtobuf: model.onnx: failed to parse")
    assert not verdict.passed
    assert "failed to parse" in verdict.detail
