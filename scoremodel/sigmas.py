"""Noise scales: sigma_max from the data, geometric schedule, Langevin step sizes (NCSNv2)."""

from __future__ import annotations

import math

import numpy as np
import torch


def max_pairwise_distance(x: np.ndarray, max_points: int = 4096, seed: int = 0) -> float:
    """Largest Euclidean distance between two training points (NCSNv2, technique 1).

    sigma_max must be about this large so that the noisiest level mixes all modes. A random
    subset of ``max_points`` rows bounds the O(n^2) cost.
    """
    x = np.asarray(x, dtype=np.float64)
    if len(x) > max_points:
        x = x[np.random.default_rng(seed).choice(len(x), max_points, replace=False)]
    points = torch.from_numpy(x)
    return float(torch.cdist(points, points).max())


MAX_RATIO = 2.0


def geometric_ratio(dim: int) -> float:
    """gamma = sigma_{i-1}/sigma_i with C(gamma) = 0.5 (NCSNv2, technique 2), capped at 2.

    C = Phi(sqrt(2D)(gamma-1) + 3 gamma) - Phi(sqrt(2D)(gamma-1) - 3 gamma) is the overlap of
    the noise shells of adjacent levels. In the low dimensions of market states (D ~ 10) the
    shells are thick and C = 0.5 allows gamma ~ 3 (D = 10) or any gamma (D <= 4); the cap keeps
    at least a halving per level so annealed Langevin still moves between levels gently.
    """

    def overlap(gamma: float) -> float:
        a = math.sqrt(2 * dim) * (gamma - 1)
        return _normal_cdf(a + 3 * gamma) - _normal_cdf(a - 3 * gamma)

    if overlap(MAX_RATIO) > 0.5:
        return MAX_RATIO
    lo, hi = 1.0, MAX_RATIO
    for _ in range(100):  # overlap() decreases in gamma on [1, MAX_RATIO]
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if overlap(mid) > 0.5 else (lo, mid)
    return 0.5 * (lo + hi)


def geometric_sigmas(sigma_max: float, sigma_min: float, dim: int) -> np.ndarray:
    """Decreasing geometric schedule sigma_1 = sigma_max > ... > sigma_L = sigma_min."""
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    n_levels = 1 + math.ceil(math.log(sigma_max / sigma_min) / math.log(geometric_ratio(dim)))
    return np.geomspace(sigma_max, sigma_min, max(n_levels, 2))


def langevin_variance_ratio(eps: float, sigmas: np.ndarray, steps_per_level: int) -> float:
    """s_T^2 / sigma_i^2 after T Langevin steps at one level (NCSNv2, Proposition 3).

    (1 - eps/sL^2)^(2T) (gamma^2 - 2 eps/(sL^2 - sL^2 (1 - eps/sL^2)^2))
        + 2 eps/(sL^2 - sL^2 (1 - eps/sL^2)^2), with sL = sigma_L the smallest level.
    """
    gamma = float(sigmas[0] / sigmas[1])
    s2 = float(sigmas[-1]) ** 2
    decay = 1.0 - eps / s2
    stationary = 2.0 * eps / (s2 - s2 * decay**2)
    return decay ** (2 * steps_per_level) * (gamma**2 - stationary) + stationary


def langevin_step_size(sigmas: np.ndarray, steps_per_level: int) -> float:
    """epsilon of the step sizes alpha_i = epsilon sigma_i^2 / sigma_L^2 (NCSNv2, technique 4).

    The epsilon that brings :func:`langevin_variance_ratio` closest to 1, so that T steps at a
    level turn a sample of the previous (wider) level into one of this level's width.
    """
    s2 = float(sigmas[-1]) ** 2
    candidates = np.geomspace(1e-8 * s2, 0.999 * s2, 4000)
    ratios = [langevin_variance_ratio(e, sigmas, steps_per_level) for e in candidates]
    return float(candidates[int(np.argmin(np.abs(np.asarray(ratios) - 1.0)))])


def _normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))
