"""Forecast mode: is the predictive distribution of the h-bar forward return any good?

The model publishes quantiles q_k at levels tau_k (``scoremodel.forecast.QUANTILES``). Between
them the quantile function is interpolated linearly in normal scores z = Phi^{-1}(tau) and
extrapolated with the outer slopes, which is exact for a Gaussian (Q(tau) = mu + s z). Then

    CRPS(F, y) = 2 int_0^1 rho_tau(y - Q(tau)) d tau,  rho_tau(u) = u (tau - 1{u < 0}),

(pinball-loss form of the CRPS, Gneiting & Raftery 2007), by the midpoint rule on M levels, and
PIT u = F(y). The baseline is a Gaussian N(0, h s_t^2) with s_t the standard deviation of the
last W one-bar log returns (a rolling volatility), scored by the same code. Central-interval
coverage at 50/80/90 % is read off the PIT (|u - 1/2| <= c/2), so levels between the knots use
the same interpolated quantile function as the CRPS; where a forecaster has a varying mean, its
Spearman and Pearson IC with the realised return are scored beside.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from evaluation.metrics import block_bootstrap_indices
from evaluation.metrics import block_length
from evaluation.metrics import information_coefficient
from scoremodel.gaussian import crps_gaussian as crps_gaussian
from scoremodel.gaussian import norm_cdf
from scoremodel.gaussian import norm_ppf
from scoremodel.quantile_scoring import crps_from_quantiles as crps_from_quantiles


def pit_from_quantiles(levels: np.ndarray, quantiles: np.ndarray, y: np.ndarray) -> np.ndarray:
    """u = F(y): invert the interpolated quantile function (linear in z, linear tails)."""
    knots = norm_ppf(np.asarray(levels))
    q = np.sort(np.atleast_2d(quantiles), axis=1)
    y = np.asarray(y, dtype=np.float64)
    segment = np.clip((y[:, None] > q).sum(axis=1) - 1, 0, len(knots) - 2)
    rows = np.arange(len(y))
    q0, q1 = q[rows, segment], q[rows, segment + 1]
    span = np.where(q1 > q0, q1 - q0, 1e-300)
    z = knots[segment] + (knots[segment + 1] - knots[segment]) * (y - q0) / span
    return norm_cdf(z)


def gaussian_quantiles(mu: np.ndarray, sigma: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """mu + s Phi^{-1}(tau_k) per row."""
    return np.asarray(mu)[:, None] + np.asarray(sigma)[:, None] * norm_ppf(levels)[None, :]


def rolling_volatility_forecast(bars: pd.DataFrame, horizon: int, window: int) -> pd.Series:
    """sigma_h,t = sqrt(h) std(r_{t-W+1..t}): the baseline's predictive std, known at t."""
    returns = np.log(bars["close"]).diff()
    return math.sqrt(horizon) * returns.rolling(window).std()


def pit_summary(u: np.ndarray, bins: int = 10) -> dict:
    """Histogram of the PIT and the KS distance to U(0, 1): D = max |F_n(u) - u|."""
    u = np.sort(np.asarray(u, dtype=np.float64))
    n = len(u)
    grid = np.arange(1, n + 1) / n
    ks = float(max(np.max(grid - u), np.max(u - (grid - 1 / n)))) if n else float("nan")
    counts, _ = np.histogram(u, bins=bins, range=(0.0, 1.0))
    return {"ks": ks, "ks_critical_5pct": 1.36 / math.sqrt(max(n, 1)), "counts": counts.tolist()}


def interval_coverage(levels: np.ndarray, quantiles: np.ndarray, y: np.ndarray) -> dict:
    """Empirical coverage of the central intervals between symmetric quantile pairs."""
    levels = np.asarray(levels)
    out = {}
    for i in range(len(levels) // 2):
        lo, hi = quantiles[:, i], quantiles[:, len(levels) - 1 - i]
        nominal = round(float(levels[len(levels) - 1 - i] - levels[i]), 4)
        out[f"{nominal:g}"] = float(np.mean((y >= lo) & (y <= hi)))
    return out


CENTRAL_LEVELS = (0.5, 0.8, 0.9)


def central_coverage(u: np.ndarray, levels: tuple[float, ...] = CENTRAL_LEVELS) -> dict:
    """Share of outcomes inside each central c interval of their predictive: |F(y) - 1/2| <= c/2
    (from the PIT u = F(y); at a knot pair the same as :func:`interval_coverage`)."""
    distance = np.abs(np.asarray(u, dtype=np.float64) - 0.5)
    return {f"{c:g}": float(np.mean(distance <= c / 2 + 1e-12)) for c in levels}


def reliability(p_up: np.ndarray, y: np.ndarray, bins: int = 10) -> dict:
    """Binned P(up) against the observed frequency of y > 0 (a reliability diagram)."""
    edges = np.quantile(p_up, np.linspace(0, 1, bins + 1))
    which = np.clip(np.searchsorted(edges, p_up, side="right") - 1, 0, bins - 1)
    rows = [
        (float(p_up[which == b].mean()), float((y[which == b] > 0).mean()), int((which == b).sum()))
        for b in range(bins)
        if (which == b).any()
    ]
    predicted, observed, count = (list(c) for c in zip(*rows, strict=True))
    brier = float(np.mean((p_up - (y > 0)) ** 2))
    return {"predicted": predicted, "observed": observed, "count": count, "brier": brier}


def mean_difference_ci(
    a: np.ndarray, b: np.ndarray, horizon: int, n_boot: int = 500, seed: int = 0
) -> tuple[float, float, float]:
    """mean(a - b) with a moving-block bootstrap 95 % interval (overlapping labels)."""
    d = np.asarray(a) - np.asarray(b)
    rng = np.random.default_rng(seed)
    idx = block_bootstrap_indices(len(d), block_length(len(d), horizon), n_boot, rng)
    means = d[idx].mean(axis=1)
    return float(d.mean()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def forecast_scores(
    levels: np.ndarray,
    model_quantiles: np.ndarray,
    p_up: np.ndarray,
    baseline_sigma: np.ndarray,
    y: np.ndarray,
    horizon: int,
    n_boot: int = 500,
    mean: np.ndarray | None = None,
    seed: int = 0,
) -> dict:
    """CRPS of the model and the baseline, skill with CI, PIT, coverage and reliability; with
    ``mean`` (a forecaster's predictive mean), its Spearman and Pearson IC with y (else None)."""
    keep = np.isfinite(y) & np.isfinite(baseline_sigma) & np.isfinite(model_quantiles).all(1)
    y, q, p_up, s = y[keep], model_quantiles[keep], p_up[keep], baseline_sigma[keep]
    base_q = gaussian_quantiles(np.zeros(len(y)), s, levels)
    crps_model = crps_from_quantiles(levels, q, y)
    crps_base = crps_from_quantiles(levels, base_q, y)
    diff, low, high = mean_difference_ci(crps_model, crps_base, horizon, n_boot)
    mean_base = float(crps_base.mean())
    pit_model = pit_from_quantiles(levels, q, y)
    pit_base = pit_from_quantiles(levels, base_q, y)
    ic = {
        name: None
        if mean is None
        else information_coefficient(
            np.asarray(mean)[keep], y, horizon, n_boot, seed=seed, rank=rank
        )
        for name, rank in (("ic_spearman", True), ("ic_pearson", False))
    }
    return {
        "n": len(y),
        "crps_model": float(crps_model.mean()),
        "crps_baseline": mean_base,
        "crps_skill": -diff / mean_base,  # 1 - CRPS_model / CRPS_baseline
        "crps_skill_low": -high / mean_base,
        "crps_skill_high": -low / mean_base,
        "pit_model": pit_summary(pit_model),
        "pit_baseline": pit_summary(pit_base),
        "coverage_model": interval_coverage(levels, q, y),
        "coverage_baseline": interval_coverage(levels, base_q, y),
        "central_coverage_model": central_coverage(pit_model),
        "central_coverage_baseline": central_coverage(pit_base),
        "reliability": reliability(p_up, y),
        **ic,
    }
