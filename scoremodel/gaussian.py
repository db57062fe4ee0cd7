"""The standard normal distribution on arrays: Phi and its inverse (no SciPy needed)."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

_NORMAL = NormalDist()
_erf = np.vectorize(math.erf, otypes=[np.float64])


def norm_cdf(x: np.ndarray | float) -> np.ndarray:
    """Phi(x), the standard normal CDF."""
    return 0.5 * (1.0 + _erf(np.asarray(x, dtype=np.float64) / math.sqrt(2.0)))


def norm_ppf(p: np.ndarray | float) -> np.ndarray:
    """Phi^{-1}(p) for p in (0, 1)."""
    return np.vectorize(_NORMAL.inv_cdf, otypes=[np.float64])(np.asarray(p, dtype=np.float64))
