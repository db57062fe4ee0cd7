"""Log-density proxy: the learned score integrated along the ray from the training mean.

log p_sigma(x) - log p_sigma(0) = int_0^1 s(t x, sigma) . x dt  (x in z-score units, so the
origin is the training mean). The integral is taken with M-point Gauss-Legendre quadrature,
i.e. M rows in ONE batched forward, at a small noise level sigma_d where p_sigma is smooth and
the learned field is close to a gradient. This repairs the chapter's version (100 sequential
network calls, a Riemann sum from an arbitrary origin, a fixed threshold of -5): the threshold
here is a percentile of the training-set values, stored in the manifest.
"""

from __future__ import annotations

import numpy as np

from scoremodel.fastpath import gauss_legendre_unit


class RayDensity:
    """Quadrature rows and weights for the ray integral (M nodes)."""

    def __init__(self, sigma: float, n_nodes: int) -> None:
        self.sigma = sigma
        self.nodes, self.weights = gauss_legendre_unit(n_nodes)  # t_m, w_m on [0, 1]

    def rows(self, z: np.ndarray) -> np.ndarray:
        """Points t_m z for states ``z`` (..., D): shape (..., M, D)."""
        return self.nodes[:, None] * z[..., None, :]

    def log_density(self, unit_scores: np.ndarray, z: np.ndarray) -> np.ndarray:
        """sum_m w_m s(t_m z) . z with s = f / sigma_d; ``unit_scores`` (..., M, D)."""
        directional = (unit_scores * z[..., None, :]).sum(axis=-1)  # s(t_m z) . z, times sigma
        return directional @ self.weights / self.sigma
