"""PSI, Jensen-Shannon and KS against values worked out by hand (or by scipy)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from driftline.drift import stats


def test_psi_matches_the_hand_computation() -> None:
    expected = np.array([0.5, 0.5])
    actual = np.array([0.25, 0.75])
    # (0.25-0.5)ln(0.25/0.5) + (0.75-0.5)ln(0.75/0.5) = 0.25 ln 2 + 0.25 ln 1.5
    by_hand = 0.25 * math.log(2) + 0.25 * math.log(1.5)
    assert stats.psi(expected, actual) == pytest.approx(by_hand, rel=1e-12)
    assert by_hand == pytest.approx(0.274653, abs=1e-6)


def test_psi_floors_empty_bins_instead_of_going_infinite() -> None:
    # (1e-4 - 0.5) ln(1e-4 / 0.5) + (1 - 0.5) ln(1 / 0.5)
    by_hand = (1e-4 - 0.5) * math.log(1e-4 / 0.5) + 0.5 * math.log(2)
    assert stats.psi(np.array([0.5, 0.5]), np.array([0.0, 1.0])) == pytest.approx(by_hand)


def test_js_divergence_matches_the_hand_computation() -> None:
    p = np.array([0.5, 0.5])
    q = np.array([1.0, 0.0])
    # M = (0.75, 0.25); KL(P||M) = 0.5 log2(0.5/0.75) + 0.5 log2(0.5/0.25); KL(Q||M) = log2(1/0.75)
    kl_p = 0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(2)
    kl_q = math.log2(1 / 0.75)
    assert stats.js_divergence(p, q) == pytest.approx(0.5 * kl_p + 0.5 * kl_q, rel=1e-12)
    assert stats.js_divergence(p, q) == pytest.approx(0.311278, abs=1e-6)


def test_js_divergence_is_zero_for_equal_and_one_for_disjoint_bins() -> None:
    assert stats.js_divergence(np.array([0.2, 0.8]), np.array([0.2, 0.8])) == 0.0
    assert stats.js_divergence(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(1.0)


def test_bins_are_frozen_reference_quantiles() -> None:
    reference = np.arange(1.0, 11.0)  # 1..10
    edges = stats.bin_edges(reference, 5)
    assert edges == pytest.approx([2.8, 4.6, 6.4, 8.2])
    assert stats.proportions(reference, edges) == pytest.approx([0.2] * 5)
    # Values beyond the reference's range fall into the outer bins, never outside them.
    assert stats.proportions(np.array([-100.0, 100.0]), edges) == pytest.approx([0.5, 0, 0, 0, 0.5])


def test_repeated_values_collapse_bins() -> None:
    values = np.array([0.0] * 95 + [1.0] * 5)
    edges = stats.bin_edges(values, 10)
    # Every decile of 95% zeros is 0: one edge, bins (-inf, 0] and (0, inf).
    assert edges.tolist() == [0.0]
    assert stats.proportions(values, edges) == pytest.approx([0.95, 0.05])


def test_ks_statistic_equals_scipy() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=300), rng.normal(0.2, 1.3, size=120)
    assert stats.ks_statistic(a, b) == pytest.approx(scipy_stats.ks_2samp(a, b).statistic)


def test_effective_n_recovers_the_nominal_size_for_the_textbook_quantile() -> None:
    nominal = stats.nominal_n(250, 1000)
    critical = scipy_stats.kstwobign.isf(0.05) / math.sqrt(nominal)
    assert stats.ks_effective_n(np.array([critical]), 0.95)[0] == pytest.approx(nominal)


def test_integrated_time_is_near_one_for_independent_and_large_for_persistent_draws() -> None:
    rng = np.random.default_rng(5)
    independent = rng.normal(size=2000)
    persistent = np.empty(2000)
    persistent[0] = 0.0
    for i in range(1, 2000):
        persistent[i] = 0.95 * persistent[i - 1] + rng.normal()
    assert stats.integrated_time(independent) < 1.5
    # AR(1) with rho 0.95: (1 + rho) / (1 - rho) = 39 for the values; ranks are close.
    assert 15 < stats.integrated_time(persistent) < 80


def test_benjamini_hochberg_steps_up() -> None:
    # Sorted p = .001 .01 .03 .2 with m = 4 at q = .05: thresholds .0125 .025 .0375 .05 ->
    # the largest k with p(k) <= k q / m is 3, so the first three are rejected.
    p = np.array([0.03, 0.001, 0.2, 0.01])
    assert stats.benjamini_hochberg(p, 0.05).tolist() == [True, True, False, True]
