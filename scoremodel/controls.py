"""Honest controls for the conditional score model: same features, context and target units.

- :class:`RidgeControl`: ridge regression of each horizon's (vol-scaled, z-scored) target on
  the flattened context; alpha chosen on the validation block. Its std is the training
  residual std in those units, times the bar's volatility scale: a rolling-volatility std
  (vol_20 x sqrt(h)) calibrated on the training residuals.
- :class:`NLLControl`: an MLP with the score model's encoder size (two layers of ``hidden``)
  and a mean and a log-variance head per horizon, trained by Gaussian negative
  log-likelihood with the same loop, budget and stopping rule
  (:func:`scoremodel.cond_training.run_training`).

Both return :class:`scoremodel.cond_predictive.Predictive` with Gaussian quantiles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from scoremodel.cond_data import ConditionalScaling
from scoremodel.cond_network import act
from scoremodel.cond_predictive import DEFAULT_COST
from scoremodel.cond_predictive import Predictive
from scoremodel.cond_training import DEFAULT_TRAIN
from scoremodel.cond_training import ConditionalTrainConfig
from scoremodel.cond_training import TrainOutcome
from scoremodel.cond_training import run_training
from scoremodel.forecast import QUANTILES
from scoremodel.gaussian import norm_cdf
from scoremodel.gaussian import norm_ppf

RIDGE_ALPHAS = (0.1, 1.0, 10.0, 100.0, 1_000.0, 10_000.0)


def gaussian_predictive(
    mean: np.ndarray, std: np.ndarray, cost: float = DEFAULT_COST
) -> Predictive:
    """Predictive of N(mean, std^2) per row and horizon (raw units)."""
    scores = norm_ppf(np.asarray(QUANTILES))
    return Predictive(
        mean=mean,
        std=std,
        quantiles=mean[..., None] + std[..., None] * scores,
        p_up=1.0 - norm_cdf(-mean / std),
        p_up_cost=1.0 - norm_cdf((cost - mean) / std),
        p_down_cost=norm_cdf((-cost - mean) / std),
    )


@dataclass
class RidgeControl:
    """Ridge on the context: coefficients (L F + 1, K), residual std (K,) in target z-units."""

    coef: np.ndarray
    residual_std: np.ndarray
    alpha: float

    @classmethod
    def fit(
        cls,
        train_context: np.ndarray,
        train_target: np.ndarray,
        val_context: np.ndarray,
        val_target: np.ndarray,
    ) -> RidgeControl:
        """Closed-form ridge for each alpha in :data:`RIDGE_ALPHAS`; the best on validation."""
        x, xv = _with_intercept(train_context), _with_intercept(val_context)
        gram, moment = x.T @ x, x.T @ train_target
        penalty = np.eye(x.shape[1])
        penalty[-1, -1] = 0.0  # the intercept is not shrunk
        best = None
        for alpha in RIDGE_ALPHAS:
            coef = np.linalg.solve(gram + alpha * penalty, moment)
            error = float(np.mean((xv @ coef - val_target) ** 2))
            if best is None or error < best[0]:
                best = (error, alpha, coef)
        _, alpha, coef = best
        residual_std = (x @ coef - train_target).std(axis=0, ddof=1)
        return cls(coef, residual_std, alpha)

    def predict(
        self,
        context: np.ndarray,
        raw_states: np.ndarray,
        scaling: ConditionalScaling,
        cost: float = DEFAULT_COST,
    ) -> Predictive:
        offset, scale = scaling.raw_affine(raw_states)
        mean_z = _with_intercept(context) @ self.coef
        return gaussian_predictive(offset + scale * mean_z, scale * self.residual_std, cost)


def _with_intercept(x: np.ndarray) -> np.ndarray:
    return np.column_stack([x, np.ones(len(x))])


class GaussianMLP(nn.Module):
    """Encoder of the score model's size, then mean and log-variance per horizon."""

    def __init__(self, context_dim: int, n_horizons: int, hidden: int) -> None:
        super().__init__()
        self.encoder_in = nn.Linear(context_dim, hidden)
        self.encoder_hidden = nn.Linear(hidden, hidden)
        self.mean = nn.Linear(hidden, n_horizons)
        self.log_var = nn.Linear(hidden, n_horizons)

    def forward(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e = act(self.encoder_hidden(act(self.encoder_in(context))))
        return self.mean(e), self.log_var(e)


def gaussian_nll(model: GaussianMLP, context: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over rows of sum_h [log var + (y - mu)^2 / var] / 2 (constant dropped)."""
    mean, log_var = model(context)
    return 0.5 * (log_var + (target - mean) ** 2 * torch.exp(-log_var)).sum(dim=1).mean()


@dataclass
class NLLControl:
    """A trained Gaussian-NLL MLP and its run record."""

    model: GaussianMLP
    outcome: TrainOutcome

    @classmethod
    def fit(
        cls,
        train_context: np.ndarray,
        train_target: np.ndarray,
        val_context: np.ndarray,
        val_target: np.ndarray,
        config: ConditionalTrainConfig = DEFAULT_TRAIN,
        progress: bool = True,
    ) -> NLLControl:
        """Same optimiser, schedule, EMA, batch size, epochs and patience as the DSM run."""
        if config.threads:
            torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed)
        model = GaussianMLP(train_context.shape[1], train_target.shape[1], config.hidden)
        c = torch.as_tensor(train_context, dtype=torch.float32)
        y = torch.as_tensor(train_target, dtype=torch.float32)
        cv = torch.as_tensor(val_context, dtype=torch.float32)
        yv = torch.as_tensor(val_target, dtype=torch.float32)

        def batch_loss(net: nn.Module, rows: torch.Tensor, _: torch.Generator) -> torch.Tensor:
            return gaussian_nll(net, c[rows], y[rows])

        def validation(net: nn.Module) -> float:
            return float(gaussian_nll(net, cv, yv))

        outcome = run_training(model, batch_loss, validation, len(y), config, "NLL MLP", progress)
        model.load_state_dict(outcome.state_dict)
        return cls(model.eval(), outcome)

    def predict(
        self,
        context: np.ndarray,
        raw_states: np.ndarray,
        scaling: ConditionalScaling,
        cost: float = DEFAULT_COST,
    ) -> Predictive:
        with torch.no_grad():
            mean, log_var = self.model(torch.as_tensor(context, dtype=torch.float32))
        offset, scale = scaling.raw_affine(raw_states)
        mean_z, std_z = mean.double().numpy(), torch.exp(0.5 * log_var).double().numpy()
        return gaussian_predictive(offset + scale * mean_z, scale * std_z, cost)
