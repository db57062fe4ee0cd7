"""The standard normal distribution on arrays: Phi, its inverse and the Gaussian CRPS (no SciPy)."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

_NORMAL = NormalDist()
INV_SQRT_PI = 1.0 / math.sqrt(math.pi)
_erf = np.vectorize(math.erf, otypes=[np.float64])


def norm_cdf(x: np.ndarray | float) -> np.ndarray:
    """Phi(x), the standard normal CDF."""
    return 0.5 * (1.0 + _erf(np.asarray(x, dtype=np.float64) / math.sqrt(2.0)))


def norm_ppf(p: np.ndarray | float) -> np.ndarray:
    """Phi^{-1}(p) for p in (0, 1)."""
    return np.vectorize(_NORMAL.inv_cdf, otypes=[np.float64])(np.asarray(p, dtype=np.float64))


def crps_gaussian(mu: np.ndarray, sigma: np.ndarray, y: np.ndarray) -> np.ndarray:
    """CRPS of N(mu, s^2) at y, closed form (Gneiting & Raftery 2007):
    s [z (2 Phi(z) - 1) + 2 phi(z) - 1/sqrt(pi)], z = (y - mu) / s."""
    z = (np.asarray(y) - mu) / sigma
    pdf = np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    return sigma * (z * (2 * norm_cdf(z) - 1) + 2 * pdf - INV_SQRT_PI)
