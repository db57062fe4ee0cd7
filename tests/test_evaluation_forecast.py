"""Forecast quality: CRPS against its closed form, PIT uniformity for a correct model."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evaluation.forecast_quality import crps_from_quantiles
from evaluation.forecast_quality import crps_gaussian
from evaluation.forecast_quality import forecast_scores
from evaluation.forecast_quality import gaussian_quantiles
from evaluation.forecast_quality import interval_coverage
from evaluation.forecast_quality import pit_from_quantiles
from evaluation.forecast_quality import pit_summary
from scoremodel.gaussian import norm_cdf

LEVELS = np.array([0.05, 0.25, 0.5, 0.75, 0.95])


def test_gaussian_crps_equals_the_integral_of_the_squared_cdf_difference():
    x = np.linspace(-30, 30, 600_001)
    for mu, sigma, y in [(0.0, 1.0, 0.0), (0.5, 2.0, -1.0), (-1.0, 0.3, 2.0)]:
        integrand = (norm_cdf((x - mu) / sigma) - (x >= y)) ** 2
        numeric = float(np.sum(integrand) * (x[1] - x[0]))
        closed = float(crps_gaussian(np.array(mu), np.array(sigma), np.array(y)))
        assert closed == pytest.approx(numeric, rel=1e-4)
    # E[CRPS] of N(0, 1) against its own draws is 1/sqrt(pi)
    y = np.random.default_rng(0).normal(size=200_000)
    mean = crps_gaussian(np.zeros_like(y), np.ones_like(y), y).mean()
    assert mean == pytest.approx(1 / math.sqrt(math.pi), rel=5e-3)


def test_crps_from_gaussian_quantiles_equals_the_closed_form():
    rng = np.random.default_rng(1)
    mu, sigma = rng.normal(size=500), rng.uniform(0.5, 2.0, 500)
    y = mu + 1.5 * sigma * rng.normal(size=500)
    from_quantiles = crps_from_quantiles(LEVELS, gaussian_quantiles(mu, sigma, LEVELS), y)
    np.testing.assert_allclose(from_quantiles, crps_gaussian(mu, sigma, y), rtol=5e-3, atol=2e-3)
    wrong = crps_from_quantiles(LEVELS, gaussian_quantiles(mu + 2 * sigma, sigma, LEVELS), y)
    assert wrong.mean() > from_quantiles.mean() * 1.5


def draws(n: int = 4_000, seed: int = 2):
    rng = np.random.default_rng(seed)
    mu, sigma = rng.normal(0, 0.01, n), rng.uniform(0.005, 0.02, n)
    return mu, sigma, mu + sigma * rng.normal(size=n)


def test_pit_is_uniform_for_a_correct_model_and_not_for_an_overconfident_one():
    mu, sigma, y = draws()
    correct = pit_summary(pit_from_quantiles(LEVELS, gaussian_quantiles(mu, sigma, LEVELS), y))
    assert correct["ks"] < correct["ks_critical_5pct"]
    np.testing.assert_allclose(pit_from_quantiles(
        LEVELS, gaussian_quantiles(mu, sigma, LEVELS), y), norm_cdf((y - mu) / sigma), atol=1e-12
    )  # fmt: skip
    narrow = pit_summary(pit_from_quantiles(LEVELS, gaussian_quantiles(mu, sigma / 2, LEVELS), y))
    assert narrow["ks"] > 3 * narrow["ks_critical_5pct"]
    counts = np.array(narrow["counts"])
    assert counts[0] > 2 * counts[5] and counts[-1] > 2 * counts[4]  # U-shaped


def test_coverage_and_skill_of_a_correct_model_against_a_flat_baseline():
    mu, sigma, y = draws(seed=3)
    q = gaussian_quantiles(mu, sigma, LEVELS)
    cover = interval_coverage(LEVELS, q, y)
    assert cover["0.9"] == pytest.approx(0.9, abs=0.02)
    assert cover["0.5"] == pytest.approx(0.5, abs=0.03)
    p_up = 1 - norm_cdf(-mu / sigma)
    scores = forecast_scores(LEVELS, q, p_up, np.full(len(y), 0.03), y, horizon=1, n_boot=200)
    assert scores["crps_model"] < scores["crps_baseline"]
    assert scores["crps_skill_low"] > 0  # the informed model beats N(0, 0.03^2) significantly
