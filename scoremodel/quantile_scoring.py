"""A predictive law given by its quantiles, and its CRPS.

The model publishes quantiles q_k at levels tau_k (``scoremodel.forecast.QUANTILES``). Between
them the quantile function is interpolated linearly in normal scores z = Phi^{-1}(tau) and
extrapolated with the outer slopes (exact for a Gaussian: Q(tau) = mu + s z); then

    CRPS(F, y) = 2 int_0^1 rho_tau(y - Q(tau)) d tau,  rho_tau(u) = u (tau - 1{u < 0}),

by the midpoint rule on M levels (Gneiting & Raftery 2007). The evaluation scores every
forecaster with it, and the density filter's reliability rule (:mod:`scoremodel.density_rule`)
measures the forecaster with it on the validation block.
"""

from __future__ import annotations

import numpy as np

from scoremodel.gaussian import norm_ppf


def quantile_function(levels: np.ndarray, quantiles: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """Q(tau) per row from knots (tau_k, q_k): linear in z = Phi^{-1}(tau), linear tails."""
    knots = norm_ppf(levels)
    q = np.sort(np.atleast_2d(quantiles), axis=1)
    z = norm_ppf(taus)
    segment = np.clip(np.searchsorted(knots, z) - 1, 0, len(knots) - 2)
    z0, z1 = knots[segment], knots[segment + 1]
    q0, q1 = q[:, segment], q[:, segment + 1]
    return q0 + (q1 - q0) * ((z - z0) / (z1 - z0))[None, :]


def crps_from_quantiles(
    levels: np.ndarray, quantiles: np.ndarray, y: np.ndarray, n_levels: int = 400
) -> np.ndarray:
    """CRPS per row from the interpolated quantile function (midpoint rule, M levels)."""
    taus = (np.arange(n_levels) + 0.5) / n_levels
    q = quantile_function(np.asarray(levels), quantiles, taus)  # (n, M)
    u = np.asarray(y, dtype=np.float64)[:, None] - q
    pinball = u * (taus[None, :] - (u < 0))
    return 2.0 * pinball.mean(axis=1)
