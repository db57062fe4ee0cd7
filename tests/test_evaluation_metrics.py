"""Metrics against hand-computed values, and the leakage guard."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

from evaluation.metrics import deflated_sharpe
from evaluation.metrics import expected_max_sharpe
from evaluation.metrics import information_coefficient
from evaluation.metrics import max_drawdown
from evaluation.metrics import permutation_ic
from evaluation.metrics import probabilistic_sharpe
from evaluation.metrics import sharpe
from evaluation.metrics import sharpe_difference
from evaluation.metrics import sortino
from evaluation.metrics import spearman
from evaluation.metrics import strategy_metrics
from evaluation.metrics import wilson_interval

PHI = NormalDist()


def test_sharpe_sortino_and_drawdown_by_hand():
    r = [0.01, -0.02, 0.03, 0.0]
    # mean 0.005; deviations 0.005, -0.025, 0.025, -0.005 -> std = sqrt(0.0013 / 3)
    assert sharpe(r, 4) == pytest.approx(0.005 / math.sqrt(0.0013 / 3) * 2)
    # downside deviation sqrt(mean([0, 0.02^2, 0, 0])) = 0.01
    assert sortino(r, 4) == pytest.approx(0.005 / 0.01 * 2)
    assert max_drawdown([1.0, 1.2, 0.9, 1.5, 1.2]) == pytest.approx(0.25)
    assert sharpe([0.0, 0.0, 0.0]) == 0.0 and sortino([0.01, 0.02]) == 0.0


def test_wilson_interval_matches_the_textbook_value():
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    low, high = wilson_interval(0, 20)
    assert low == pytest.approx(0.0, abs=1e-12) and high == pytest.approx(0.1611, abs=1e-4)


def test_spearman_uses_average_ranks_for_ties():
    # ranks (1,2,3,4,5) and (1,2,3.5,5,3.5): sum dx dy = 8, sum dx^2 = 10, sum dy^2 = 9.5
    assert spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(8 / math.sqrt(95))


def test_psr_and_dsr_formulas_by_hand():
    r = [0.03, -0.01, 0.03, -0.01]  # SR = 0.01 / sqrt(0.0016 / 3); skew 0, kurtosis 1
    sr = 0.01 / math.sqrt(0.0016 / 3)
    # PSR = Phi(SR sqrt(T - 1) / sqrt(1 - 0 + (1 - 1)/4 SR^2)) = Phi(0.75)
    assert probabilistic_sharpe(r) == pytest.approx(PHI.cdf(sr * math.sqrt(3)))
    assert probabilistic_sharpe(r) == pytest.approx(PHI.cdf(0.75))
    trials = [0.1, 0.2, 0.3]  # V[SR_n] = 0.01
    gamma = 0.5772156649015329
    sr0 = 0.1 * ((1 - gamma) * PHI.inv_cdf(1 - 1 / 3) + gamma * PHI.inv_cdf(1 - 1 / (3 * math.e)))
    assert expected_max_sharpe(trials) == pytest.approx(sr0)
    assert deflated_sharpe(r, trials) == pytest.approx(PHI.cdf((sr - sr0) * math.sqrt(3)))
    assert deflated_sharpe(r, trials) < probabilistic_sharpe(r)  # more trials, less credit


def planted(n: int = 3_000, horizon: int = 12, strength: float = 0.5, seed: int = 0):
    """Overlapping h-bar forward returns and a signal that knows part of them."""
    rng = np.random.default_rng(seed)
    r = rng.normal(0, 0.01, n + horizon)
    forward = np.convolve(r, np.ones(horizon), "valid")[1 : n + 1]  # r_{t+1} + ... + r_{t+h}
    return strength * forward / forward.std() + rng.normal(size=n), forward


def test_a_planted_relation_is_significant_and_shuffled_returns_give_zero():
    signal, forward = planted()
    ic = information_coefficient(signal, forward, horizon=12, n_boot=300)
    assert ic["value"] > 0.3 and ic["low"] > 0.2  # significant
    guard = permutation_ic(signal, forward, n_perm=50)
    assert abs(guard["mean"]) < guard["bound"]  # ~0 after shuffling the future
    assert guard["low"] < 0 < guard["high"]
    assert guard["max_abs"] < 0.1


def test_no_relation_gives_an_interval_around_zero_that_respects_the_overlap():
    rng = np.random.default_rng(3)
    _, forward = planted(seed=4)
    slow = np.convolve(rng.normal(size=3_100), np.ones(100) / 10, "valid")[:3_000]  # persistent
    ic = information_coefficient(slow, forward, horizon=12, n_boot=300)
    assert ic["low"] < 0 < ic["high"]
    naive_half_width = 1.96 / math.sqrt(3_000)
    assert (ic["high"] - ic["low"]) / 2 > 1.2 * naive_half_width  # overlap widens it


def test_sharpe_difference_of_a_strategy_with_itself_is_zero_and_detects_a_better_one():
    rng = np.random.default_rng(2)
    a = rng.normal(0.001, 0.01, 5_000)
    same = sharpe_difference(a, a, 8766, horizon=1, n_boot=200)
    assert same["difference"] == 0.0 and same["low"] == same["high"] == 0.0
    better = sharpe_difference(a + 0.002, a, 8766, horizon=1, n_boot=200)
    assert better["low"] > 0


def test_strategy_metrics_of_a_hand_made_run():
    index = pd.date_range("2024-01-01", periods=5, freq="1h", tz="UTC")
    equity = pd.Series([1.0, 1.01, 0.99, 0.99, 1.0], index=index)
    leverage = pd.Series([0.0, 1.0, 1.0, 0.0, 1.0], index=index)
    fees = pd.Series([0.0, 0.001, 0.0, 0.001, 0.001], index=index)
    traded = pd.Series([0.0, 1.0, 0.0, 1.0, 1.0], index=index)
    gross = pd.Series([0.0, 0.011, -0.02, 0.001, 0.011], index=index)
    m = strategy_metrics(equity, leverage, fees, traded, gross, periods_per_year=4)
    assert m["total_return"] == pytest.approx(0.0)
    assert m["max_drawdown"] == pytest.approx(0.02 / 1.01)
    assert m["fees"] == pytest.approx(0.003) and m["trades"] == 3
    assert m["turnover"] == pytest.approx(3 / 4 * 4)  # traded equity per bar x bars per year
    assert m["hit_rate"] == pytest.approx(2 / 3)  # bars 1, 2, 4 held; bars 1 and 4 gained
    assert (m["hit_rate_low"], m["hit_rate_high"]) == pytest.approx(wilson_interval(2, 3))
    assert m["time_in_market"] == pytest.approx(3 / 4)
    assert m["sharpe_before_fees"] > m["sharpe"]


def test_pearson_ic_does_not_rank_a_forecast_by_its_ties():
    """A forecast that is exactly 0 except on rare events (a planted oracle), and the same
    forecast with a tiny noise on the zeros: Spearman halves, Pearson stays (and is exact)."""
    rng = np.random.default_rng(3)
    n = 20_000
    events = rng.random(n) < 0.05
    oracle = np.where(events, rng.normal(size=n), 0.0)
    forward = oracle + 2.0 * rng.normal(size=n)
    noisy = oracle + 1e-6 * rng.normal(size=n)
    tied, jittered = (information_coefficient(f, forward, 1, n_boot=50) for f in (oracle, noisy))
    assert jittered["value"] < 0.7 * tied["value"]
    pearson = [
        information_coefficient(f, forward, 1, n_boot=50, rank=False) for f in (oracle, noisy)
    ]
    assert pearson[0]["value"] == pytest.approx(np.corrcoef(oracle, forward)[0, 1], abs=1e-12)
    assert pearson[1]["value"] == pytest.approx(pearson[0]["value"], abs=1e-4)
    assert pearson[0]["low"] < pearson[0]["value"] < pearson[0]["high"]
