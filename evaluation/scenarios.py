"""Scenarios for stress tests: sampled market states and forward returns, and how real they look.

- states: predictor-corrector samples (reverse-diffusion predictor + Langevin corrector, VE SDE)
  of the state model, mapped back to raw feature units;
- forward returns: the forecast model's joint [state, h-bar return] score, inpainting the return
  for fixed held-out states (the state coordinates are clamped to their noised observed values);
- realism against held-out states: per-feature two-sample Kolmogorov-Smirnov statistic
  D = sup_x |F_sample(x) - F_heldout(x)| and the correlation-matrix error ||C_s - C_h||_F
  (Frobenius). Two references put the numbers in scale: a multivariate Gaussian fitted to the
  training states, and the training states themselves (how much the market itself drifted).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from scoremodel.inference import ScoreModel
from scoremodel.normalise import Normaliser
from scoremodel.sampling import predictor_corrector


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample KS: D = max |F_a - F_b| over the pooled sample points."""
    a, b = np.sort(np.asarray(a, np.float64)), np.sort(np.asarray(b, np.float64))
    points = np.concatenate([a, b])
    fa = np.searchsorted(a, points, side="right") / len(a)
    fb = np.searchsorted(b, points, side="right") / len(b)
    return float(np.max(np.abs(fa - fb)))


def ks_critical(n: int, m: int, alpha_coefficient: float = 1.358) -> float:
    """c(alpha) sqrt((n + m) / (n m)); 1.358 is the 5 % level."""
    return alpha_coefficient * math.sqrt((n + m) / (n * m))


def correlation_error(a: np.ndarray, b: np.ndarray) -> float:
    """||corr(a) - corr(b)||_F."""
    return float(np.linalg.norm(np.corrcoef(a, rowvar=False) - np.corrcoef(b, rowvar=False)))


def sample_states(model: ScoreModel, n: int, n_steps: int = 200, seed: int = 0) -> pd.DataFrame:
    """n predictor-corrector samples of market states, raw feature units."""
    sigmas = model.sigmas("signal")
    z = predictor_corrector(
        model.torch_network("signal"), float(sigmas[0]), float(sigmas[-1]), n, n_steps, seed=seed
    ).numpy()
    clip = model.normaliser.clip
    raw = model.normaliser.inverse(np.clip(z.astype(np.float64), -clip, clip))
    return pd.DataFrame(raw, columns=list(model.spec.names))


def gaussian_states(train: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """The reference generator: N(mean, covariance) of the training states."""
    rng = np.random.default_rng(seed)
    return rng.multivariate_normal(train.mean(0), np.cov(train, rowvar=False), size=n)


def inpaint_forward_returns(
    model: ScoreModel, states: np.ndarray, per_state: int, n_steps: int = 200, seed: int = 0
) -> np.ndarray:
    """(n_states, per_state) samples of the h-bar forward log return given each state."""
    entry = model.manifest["models"]["forecast"]
    joint = Normaliser.from_dict(entry["normaliser"])
    z_state = joint.transform_columns(states, slice(0, -1))
    known = np.repeat(np.column_stack([z_state, np.zeros(len(z_state))]), per_state, axis=0)
    mask = torch.zeros(known.shape[1], dtype=torch.bool)
    mask[:-1] = True
    sigmas = model.sigmas("forecast")
    z = predictor_corrector(
        model.torch_network("forecast"),
        float(sigmas[0]),
        float(sigmas[-1]),
        len(known),
        n_steps,
        seed=seed,
        known=torch.as_tensor(known, dtype=torch.float32),
        known_mask=mask,
    ).numpy()
    y = joint.inverse_column(np.clip(z[:, -1].astype(np.float64), -joint.clip, joint.clip), -1)
    return y.reshape(len(states), per_state)


def realism(
    samples: np.ndarray, heldout: np.ndarray, train: np.ndarray, names: list[str], seed: int = 0
) -> dict:
    """KS per feature and correlation error: samples, Gaussian reference, training data."""
    gaussian = gaussian_states(train, len(samples), seed)
    sources = {"score_model": samples, "gaussian": gaussian, "training_data": train}
    return {
        "ks": {
            source: {name: ks_statistic(x[:, j], heldout[:, j]) for j, name in enumerate(names)}
            for source, x in sources.items()
        },
        "ks_critical_5pct": ks_critical(len(samples), len(heldout)),
        "correlation_error": {
            source: correlation_error(x, heldout) for source, x in sources.items()
        },
        "n_samples": len(samples),
        "n_heldout": len(heldout),
    }


def forward_return_check(sampled: np.ndarray, actual: np.ndarray, stress: np.ndarray) -> dict:
    """Inpainted h-bar returns against the realised ones: KS, 90 % band coverage, stressed tail.

    ``stress`` marks the states of the stress subset (e.g. the most volatile 10 %); its 5 %
    quantile of sampled returns (a 95 % VaR) is compared with the realised 5 % quantile.
    """
    lo, hi = np.quantile(sampled, [0.05, 0.95], axis=1)
    m = sampled.shape[1]
    # np.quantile interpolates order statistics at 1 + p (m - 1); E[F(X_(j))] = j / (m + 1)
    expected = 0.9 * (m - 1) / (m + 1)
    pooled_stress = sampled[stress].ravel()
    return {
        "ks": ks_statistic(sampled.ravel(), actual),
        "ks_critical_5pct": ks_critical(sampled.size, len(actual)),
        "coverage_90": float(np.mean((actual >= lo) & (actual <= hi))),
        "coverage_90_expected": expected,
        "stress_states": int(stress.sum()),
        "stress_var95_sampled": float(np.quantile(pooled_stress, 0.05)),
        "stress_var95_realised": float(np.quantile(actual[stress], 0.05)),
        "std_sampled": float(sampled.std()),
        "std_realised": float(actual.std()),
    }
