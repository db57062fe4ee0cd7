"""Forecast quality: CRPS against its closed form, PIT uniformity for a correct model, and the
scores of a recalibrated conditional forecaster."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evaluation.forecast_quality import central_coverage
from evaluation.forecast_quality import crps_from_quantiles
from evaluation.forecast_quality import crps_gaussian
from evaluation.forecast_quality import forecast_scores
from evaluation.forecast_quality import gaussian_quantiles
from evaluation.forecast_quality import interval_coverage
from evaluation.forecast_quality import pit_from_quantiles
from evaluation.forecast_quality import pit_summary
from scoremodel.calibration import CdfMap
from scoremodel.cond_predictive import predict_batch
from scoremodel.cond_predictive import predictive_cdf
from scoremodel.gaussian import norm_cdf
from tests.test_calibration import gaussian_market
from tests.test_calibration import gaussian_model

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


def test_central_coverage_reads_the_pit_and_matches_the_knot_intervals():
    mu, sigma, y = draws(seed=4)
    q = gaussian_quantiles(mu, sigma, LEVELS)
    central = central_coverage(pit_from_quantiles(LEVELS, q, y))
    assert set(central) == {"0.5", "0.8", "0.9"}
    knots = interval_coverage(LEVELS, q, y)
    assert central["0.5"] == knots["0.5"] and central["0.9"] == knots["0.9"]
    assert central["0.8"] == pytest.approx(0.8, abs=0.02)  # between the knots, interpolated
    wide = central_coverage(
        pit_from_quantiles(LEVELS, gaussian_quantiles(mu, 2 * sigma, LEVELS), y)
    )
    assert wide["0.5"] > 0.75 and wide["0.8"] > 0.95


def test_forecast_scores_add_ic_where_a_mean_is_given():
    mu, sigma, y = draws(seed=5)
    q = gaussian_quantiles(mu, sigma, LEVELS)
    p_up = 1 - norm_cdf(-mu / sigma)
    flat = np.full(len(y), 0.03)
    without = forecast_scores(LEVELS, q, p_up, flat, y, horizon=1, n_boot=100)
    assert without["ic_spearman"] is None and without["ic_pearson"] is None
    y_gap = y.copy()
    y_gap[:10] = np.nan  # rows without an outcome are dropped from the IC too
    scored = forecast_scores(LEVELS, q, p_up, flat, y_gap, horizon=1, n_boot=100, mean=mu)
    keep = np.isfinite(y_gap)
    assert scored["ic_pearson"]["value"] == pytest.approx(np.corrcoef(mu[keep], y[keep])[0, 1])
    assert scored["ic_spearman"]["n"] == scored["n"] == len(y) - 10
    assert scored["ic_spearman"]["low"] > 0.2  # the mean explains much of y here
    assert set(scored) - set(without) == set()
    assert scored["central_coverage_model"]["0.8"] == pytest.approx(0.8, abs=0.03)


def test_the_evaluation_scores_the_recalibrated_predictive_of_a_too_wide_forecaster():
    """The conditional forecaster's published quantiles carry its CDF map (fitted here on 5,000
    validation rows): scored by the evaluation's own code (5 knots, PIT by interpolation), the
    too-wide predictive's PIT fails the KS test and over-covers; the recalibrated one passes
    it, covers within 2 points and has the lower CRPS."""
    mean, std = 0.05, 0.6
    wide = gaussian_model(mean, 1.5 * std)
    val_states, val_returns = gaussian_market(5_000, mean, std, seed=7)
    calibrated = gaussian_model(
        mean, 1.5 * std, cdf=CdfMap.fit(predictive_cdf(wide, val_states, val_returns))
    )
    states, returns = gaussian_market(20_000, mean, std, seed=8)
    y, vol = returns[:, 0], states[:, 1]
    scored = {
        name: forecast_scores(
            LEVELS, p.quantiles[:, 0], p.p_up[:, 0], vol, y, horizon=1, n_boot=100
        )
        for name, p in (("wide", predict_batch(wide, states)),
                        ("calibrated", predict_batch(calibrated, states)))
    }  # fmt: skip
    before, after = scored["wide"], scored["calibrated"]
    assert before["pit_model"]["ks"] > 5 * before["pit_model"]["ks_critical_5pct"]
    assert before["central_coverage_model"]["0.5"] > 0.65
    assert after["pit_model"]["ks"] < after["pit_model"]["ks_critical_5pct"], after["pit_model"]
    for level, coverage in after["central_coverage_model"].items():
        assert abs(coverage - float(level)) < 0.02, after["central_coverage_model"]
    assert after["crps_model"] < before["crps_model"]


def test_the_walk_forward_scores_the_model_with_its_cdf_map_and_reports_it():
    """Each fold's model carries the CDF map its validation block fitted; the evaluation scores
    that calibrated predictive: its coverage of the 50 and 90 % intervals (read at published
    quantiles) equals the coverage read from the model's own calibrated CDF (``exact_pit``),
    and the fold reports beta, the map and the PIT with and without it."""
    from catalogs.synthetic import generate_bars
    from evaluation.walk_forward import evaluate
    from tests.test_evaluation_cli import TINY

    bars = generate_bars(3_000, interval="1h", seed=5)
    results, _, _ = evaluate(bars, "synthetic", TINY, log=lambda _: None)
    for fold in results["folds"]:
        calibration = fold["model_calibration"]
        assert 0.0 <= calibration["mean_shrinkage"] <= 1.0 and calibration["cdf_map_rows"] > 0
        assert 0.0 < calibration["cdf_map_max_shift"] < 1.0
        scored = fold["forecast_by_model"]["model"]
        exact, without = calibration["exact_pit"], calibration["exact_pit_without_map"]
        assert exact["n"] == without["n"] == scored["n"]
        for level in ("0.5", "0.9"):
            assert exact["central_coverage"][level] == pytest.approx(
                scored["central_coverage_model"][level], abs=2 / scored["n"]
            )
        assert exact["central_coverage"] != without["central_coverage"]
