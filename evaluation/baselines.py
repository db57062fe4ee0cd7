"""Baselines on the same folds, costs and decision rules as the model.

Signals (direction and a confidence calibrated on the fold's training window, like the model's):
- time-series momentum: d_t = sign(log c_t - log c_{t-L}), L = 60 bars (``momentum_60``);
- short-term reversal: d_t = -sign(r_t), the last bar's return (``ret_1``);
- random: the model's own target-leverage path with the sign of every holding period flipped
  by a fair coin: same time in market, sizes and holding periods, hence about the same
  turnover, and no information;
- buy-and-hold: 1x long from the first fill (a fully collateralised 1x long keeps leverage 1,
  so it never rebalances), no filters, no risk rules.

In-distribution filters on z-scored features, fitted on the fold's training states, flagging
the same share as the model's filter (the 5 % least typical training states):
- Mahalanobis: d^2(z) = (z - mu)^T Sigma^{-1} (z - mu);
- Gaussian mixture: log p(z) = log sum_k pi_k N(z; mu_k, Sigma_k), fitted by EM.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scoremodel.calibration import QuantileTable

MAX_EM_ROWS = 10_000  # EM runs on a random subset of at most this many training states


@dataclass(frozen=True)
class Signal:
    """Direction (+1/-1/0) and calibrated confidence (0-1) per bar."""

    direction: np.ndarray
    confidence: np.ndarray
    raw: np.ndarray  # the signal value (for the IC)


def calibrated_signal(raw_test: np.ndarray, raw_train: np.ndarray) -> Signal:
    """Direction sign(s); confidence = percentile of |s| among the training window's |s|."""
    table = QuantileTable.fit(np.abs(raw_train[np.isfinite(raw_train)]))
    raw_test = np.asarray(raw_test, dtype=np.float64)
    return Signal(np.sign(raw_test).astype(np.int64), table.ranks(np.abs(raw_test)), raw_test)


def momentum_signal(momentum_test: np.ndarray, momentum_train: np.ndarray) -> Signal:
    """Time-series momentum: long after a rise over the lookback, short after a fall."""
    return calibrated_signal(momentum_test, momentum_train)


def reversal_signal(return_test: np.ndarray, return_train: np.ndarray) -> Signal:
    """Short-term reversal: bet against the bar that just closed."""
    return calibrated_signal(-np.asarray(return_test), -np.asarray(return_train))


def random_sign_flips(target: np.ndarray, n_draws: int, seed: int = 0) -> np.ndarray:
    """(n_draws, T) copies of ``target`` with each run of constant sign multiplied by +-1."""
    target = np.asarray(target, dtype=np.float64)
    sign = np.sign(np.nan_to_num(target))
    run = np.concatenate([[0], np.cumsum(sign[1:] != sign[:-1])])
    coins = np.random.default_rng(seed).choice([-1.0, 1.0], size=(n_draws, run[-1] + 1))
    return target[None, :] * coins[:, run]


# ----- in-distribution filters ----------------------------------------------------------------


@dataclass(frozen=True)
class MahalanobisFilter:
    mean: np.ndarray
    precision: np.ndarray
    threshold: float  # d^2 above this is out of distribution

    @classmethod
    def fit(cls, z_train: np.ndarray, flag_share: float = 0.05) -> MahalanobisFilter:
        mean = z_train.mean(axis=0)
        cov = np.cov(z_train, rowvar=False) + 1e-6 * np.eye(z_train.shape[1])
        precision = np.linalg.inv(cov)
        fitted = cls(mean, precision, np.inf)
        threshold = float(np.quantile(fitted.distance2(z_train), 1.0 - flag_share))
        return cls(mean, precision, threshold)

    def distance2(self, z: np.ndarray) -> np.ndarray:
        d = z - self.mean
        return np.einsum("nd,de,ne->n", d, self.precision, d)

    def in_distribution(self, z: np.ndarray) -> np.ndarray:
        return self.distance2(z) <= self.threshold


@dataclass(frozen=True)
class GaussianMixtureFilter:
    weights: np.ndarray  # pi_k
    means: np.ndarray  # mu_k (K, D)
    covariances: np.ndarray  # Sigma_k (K, D, D)
    threshold: float  # log p below this is out of distribution

    @classmethod
    def fit(
        cls,
        z_train: np.ndarray,
        n_components: int = 4,
        flag_share: float = 0.05,
        iterations: int = 100,
        seed: int = 0,
    ) -> GaussianMixtureFilter:
        rng = np.random.default_rng(seed)
        fit_rows = z_train[rng.permutation(len(z_train))[:MAX_EM_ROWS]]
        weights, means, covs = _em(fit_rows, n_components, iterations, seed)
        fitted = cls(weights, means, covs, -np.inf)
        threshold = float(np.quantile(fitted.log_density(z_train), flag_share))
        return cls(weights, means, covs, threshold)

    def log_density(self, z: np.ndarray) -> np.ndarray:
        return _logsumexp(_component_log_probs(z, self.weights, self.means, self.covariances))

    def in_distribution(self, z: np.ndarray) -> np.ndarray:
        return self.log_density(z) >= self.threshold


def _component_log_probs(
    z: np.ndarray, weights: np.ndarray, means: np.ndarray, covs: np.ndarray
) -> np.ndarray:
    """log pi_k + log N(z; mu_k, Sigma_k), shape (N, K)."""
    chol = np.linalg.cholesky(covs)  # Sigma_k = L_k L_k^T
    diff = z[None, :, :] - means[:, None, :]  # (K, N, D)
    solved = diff @ np.linalg.inv(chol).transpose(0, 2, 1)  # rows L_k^{-1} (z - mu_k)
    log_det = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    dim = z.shape[1]
    maha = (solved**2).sum(-1).T  # (N, K)
    return np.log(weights) - 0.5 * (maha + log_det + dim * np.log(2 * np.pi))


def _em(
    z: np.ndarray, k: int, iterations: int, seed: int, reg: float = 1e-3
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """EM for a full-covariance Gaussian mixture, started from k random training points."""
    n, dim = z.shape
    rng = np.random.default_rng(seed)
    means = z[rng.choice(n, size=k, replace=False)]
    covs = np.repeat(np.cov(z, rowvar=False)[None] + reg * np.eye(dim), k, axis=0)
    weights = np.full(k, 1.0 / k)
    previous = -np.inf
    for _ in range(iterations):
        log_probs = _component_log_probs(z, weights, means, covs)
        log_norm = _logsumexp(log_probs)
        gamma = np.exp(log_probs - log_norm[:, None])  # responsibilities (E step)
        mass = gamma.sum(axis=0) + 1e-12  # M step
        weights = mass / n
        means = gamma.T @ z / mass[:, None]
        diff = z[None, :, :] - means[:, None, :]  # (K, N, D)
        covs = (gamma.T[:, :, None] * diff).transpose(0, 2, 1) @ diff / mass[:, None, None]
        covs += reg * np.eye(dim)
        likelihood = float(log_norm.mean())
        if likelihood - previous < 1e-6:
            break
        previous = likelihood
    return weights, means, covs


def _logsumexp(a: np.ndarray) -> np.ndarray:
    peak = a.max(axis=1, keepdims=True)
    return (peak + np.log(np.exp(a - peak).sum(axis=1, keepdims=True)))[:, 0]
