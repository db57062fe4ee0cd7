"""Scenario realism statistics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.scenarios import correlation_error
from evaluation.scenarios import forward_return_check
from evaluation.scenarios import ks_critical
from evaluation.scenarios import ks_statistic


def test_ks_statistic_by_hand():
    assert ks_statistic([1, 2, 3], [1, 2, 3]) == 0.0
    # F_a - F_b at 2: 2/4 - 0 = 0.5; at 3: 3/4 - 1/3
    assert ks_statistic([0, 1, 2, 3], [3, 4, 5]) == pytest.approx(0.75)
    assert ks_statistic([0, 1], [5, 6]) == 1.0
    assert ks_critical(100, 100) == pytest.approx(1.358 * np.sqrt(0.02))
    rng = np.random.default_rng(0)
    same = ks_statistic(rng.normal(size=2_000), rng.normal(size=2_000))
    shifted = ks_statistic(rng.normal(size=2_000), rng.normal(0.3, 1, 2_000))
    assert same < ks_critical(2_000, 2_000) < shifted


def test_correlation_error_is_the_frobenius_norm_of_the_difference():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(20_000, 2))
    b = a @ np.array([[1.0, 0.6], [0.0, 0.8]])  # corr(b) = [[1, 0.6], [0.6, 1]]
    assert correlation_error(a, a) == 0.0
    assert correlation_error(a, b) == pytest.approx(np.sqrt(2 * 0.6**2), abs=0.02)


def test_forward_return_check_of_a_correct_sampler():
    rng = np.random.default_rng(2)
    scale = rng.uniform(0.01, 0.03, 400)
    sampled = rng.normal(size=(400, 32)) * scale[:, None]
    actual = rng.normal(size=400) * scale
    check = forward_return_check(sampled, actual, stress=scale > np.quantile(scale, 0.9))
    assert check["coverage_90"] == pytest.approx(check["coverage_90_expected"], abs=0.05)
    assert check["ks"] < check["ks_critical_5pct"]
    assert check["stress_var95_sampled"] < -0.03
