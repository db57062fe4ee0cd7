"""Gaussian mixtures with analytic noised densities and scores: known answers for checks.

For p = sum_k pi_k N(mu_k, C_k), the noised density is p_sigma = sum_k pi_k N(mu_k, C_k + sigma^2 I)
and its score is sum_k gamma_k(x) (C_k + sigma^2 I)^{-1} (mu_k - x), gamma_k the responsibilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GaussianMixture:
    weights: np.ndarray  # (K,)
    means: np.ndarray  # (K, D)
    covariances: np.ndarray  # (K, D, D)

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @classmethod
    def random(
        cls, dim: int, n_components: int, seed: int = 0, spread: float = 3.0
    ) -> GaussianMixture:
        """Well-separated components with random correlated covariances."""
        rng = np.random.default_rng(seed)
        means = rng.normal(0.0, spread, size=(n_components, dim))
        factors = rng.normal(0.0, 1.0, size=(n_components, dim, dim)) / np.sqrt(dim)
        covariances = 0.3 * np.eye(dim) + 0.4 * factors @ factors.transpose(0, 2, 1)
        weights = rng.dirichlet(np.full(n_components, 5.0))
        return cls(weights, means, covariances)

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng(seed)
        component = rng.choice(len(self.weights), size=n, p=self.weights)
        chol = np.linalg.cholesky(self.covariances)
        z = rng.normal(size=(n, self.dim))
        return self.means[component] + np.einsum("nij,nj->ni", chol[component], z)

    def _noised(self, sigma: float) -> tuple[np.ndarray, np.ndarray]:
        cov = self.covariances + sigma**2 * np.eye(self.dim)
        return np.linalg.inv(cov), np.linalg.slogdet(cov)[1]

    def _component_log_probs(self, x: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
        precision, logdet = self._noised(sigma)
        diff = x[:, None, :] - self.means[None, :, :]  # (N, K, D)
        maha = np.einsum("nkd,kde,nke->nk", diff, precision, diff)
        log_probs = np.log(self.weights)[None, :] - 0.5 * (
            maha + logdet[None, :] + self.dim * np.log(2 * np.pi)
        )
        return log_probs, np.einsum("kde,nke->nkd", precision, diff)

    def log_prob(self, x: np.ndarray, sigma: float = 0.0) -> np.ndarray:
        """log p_sigma(x)."""
        log_probs, _ = self._component_log_probs(np.asarray(x, np.float64), sigma)
        return _logsumexp(log_probs, axis=1)

    def score(self, x: np.ndarray, sigma: float = 0.0) -> np.ndarray:
        """grad_x log p_sigma(x)."""
        log_probs, precision_diff = self._component_log_probs(np.asarray(x, np.float64), sigma)
        responsibilities = np.exp(log_probs - _logsumexp(log_probs, axis=1)[:, None])
        return -np.einsum("nk,nkd->nd", responsibilities, precision_diff)


def _logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    peak = a.max(axis=axis, keepdims=True)
    return (peak + np.log(np.exp(a - peak).sum(axis=axis, keepdims=True))).squeeze(axis)


def relative_fisher_divergence(model_score: np.ndarray, true_score: np.ndarray) -> float:
    """E||s_theta - s||^2 / E||s||^2 over the same points (0 is perfect)."""
    return float(((model_score - true_score) ** 2).sum(1).mean() / (true_score**2).sum(1).mean())
