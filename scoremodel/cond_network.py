"""Conditional score network s_theta(y~ | c, sigma, h) for forward returns given a context.

The context ``c`` (the z-scored market states of the last L bars, flattened) goes through a
small MLP encoder once; per horizon h and noise level sigma a conditioning vector ``t`` is
formed, and a linear head turns ``t`` into the parameters of a one-dimensional function of the
noised target y~ (a one-hidden-layer network in y~ whose weights depend on c, sigma and h):

    f(y~) = b + l y~ + sum_m v_m act(a_m + w_m y~),   s_theta = f / sigma (NCSNv2 scaling).

Each horizon's target is one-dimensional, so the predictive distribution can be read off the
y-score on a grid (:mod:`scoremodel.cond_predictive`), and a grid point costs O(M) operations
once the context is encoded: that is what keeps a bar's whole predictive within budget.

``act(x) = x (1 + x / sqrt(1 + x^2)) / 2`` is a smooth SiLU-like activation without ``exp``,
cheap in the per-bar kernel.
"""

from __future__ import annotations

from dataclasses import asdict
from dataclasses import dataclass

import torch
from torch import nn

from scoremodel.network import SigmaEmbedding


def act(x: torch.Tensor) -> torch.Tensor:
    """x (1 + x / sqrt(1 + x^2)) / 2: an algebraic SiLU (smooth, no exponential)."""
    return x * (0.5 + 0.5 * x * torch.rsqrt(1.0 + x * x))


@dataclass(frozen=True)
class ConditionalNetConfig:
    """Architecture; stored in the checkpoint manifest so the weights can be rebuilt."""

    context_len: int  # L bars of states
    n_features: int  # state dimension per bar
    n_horizons: int  # K one-dimensional targets
    hidden: int = 64
    head_width: int = 16  # M units of the function of y~
    embed_dim: int = 16

    @property
    def context_dim(self) -> int:
        return self.context_len * self.n_features

    @property
    def head_outputs(self) -> int:
        """a, w, v (M each), the linear coefficient l and the offset b."""
        return 3 * self.head_width + 2

    def to_dict(self) -> dict:
        return asdict(self)


class ConditionalScoreNet(nn.Module):
    """Encoder of c, conditioning per (sigma, horizon), and the head's function of y~."""

    def __init__(self, config: ConditionalNetConfig) -> None:
        super().__init__()
        self.config = config
        h = config.hidden
        self.encoder_in = nn.Linear(config.context_dim, h)
        self.encoder_hidden = nn.Linear(h, h)
        self.sigma_embed = SigmaEmbedding(config.embed_dim, h)
        self.horizon_embed = nn.Parameter(torch.zeros(config.n_horizons, h))
        self.condition = nn.Linear(h, h)
        self.head = nn.Linear(h, config.head_outputs)

    def encode(self, context: torch.Tensor) -> torch.Tensor:
        """Context (B, L * F) -> encoding (B, H); computed once per bar."""
        return act(self.encoder_hidden(act(self.encoder_in(context))))

    def head_parameters(self, encoding: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """(B, K, 3M + 2) head parameters for every horizon; ``sigma`` has shape (B, K)."""
        batch, k = sigma.shape
        embedded = self.sigma_embed(torch.log(sigma).reshape(-1)).reshape(batch, k, -1)
        t = act(self.condition(encoding)[:, None, :] + embedded + self.horizon_embed[None])
        return self.head(t)

    def unit_score(
        self, context: torch.Tensor, y_noisy: torch.Tensor, sigma: torch.Tensor
    ) -> torch.Tensor:
        """f_theta = sigma s_theta(y~ | c) per horizon: (B, K) from c (B, L F), y~ and sigma."""
        params = self.head_parameters(self.encode(context), sigma)
        return head_function(params, y_noisy, self.config.head_width)

    def forward(
        self, context: torch.Tensor, y_noisy: torch.Tensor, sigma: torch.Tensor
    ) -> torch.Tensor:
        """s_theta(y~ | c, sigma), the y-score of the target smoothed with N(0, sigma^2)."""
        return self.unit_score(context, y_noisy, sigma) / sigma


def head_function(params: torch.Tensor, y: torch.Tensor, width: int) -> torch.Tensor:
    """f(y) = b + l y + sum_m v_m act(a_m + w_m y) with params (..., 3M + 2), y (...)."""
    a, w, v = params[..., :width], params[..., width : 2 * width], params[..., 2 * width : -2]
    linear, offset = params[..., -2], params[..., -1]
    hidden = act(a + w * y[..., None])
    return offset + linear * y + (v * hidden).sum(dim=-1)
