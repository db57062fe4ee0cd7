"""Noise-conditional score network: residual MLP with pre-LayerNorm, conditioned on log sigma."""

from __future__ import annotations

import math
from dataclasses import asdict
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class NetworkConfig:
    """Architecture; stored in the checkpoint manifest so the weights can be rebuilt."""

    dim: int
    hidden: int = 64
    n_blocks: int = 3
    embed_dim: int = 32

    def to_dict(self) -> dict:
        return asdict(self)

    def forward_macs(self) -> int:
        """Multiply-accumulates of one forward pass for one sample (all matrix products)."""
        h = self.hidden
        embedding = self.embed_dim * h + h * h
        blocks = self.n_blocks * 3 * h * h  # fc1, sigma projection, fc2
        return self.dim * h + embedding + blocks + h * self.dim

    def training_flops(self) -> int:
        """FLOPs per sample of one DSM step: forward + backward ~ 3 forwards, 2 FLOPs per MAC."""
        return 2 * 3 * self.forward_macs()


class SigmaEmbedding(nn.Module):
    """Sinusoidal features of log sigma followed by an MLP (continuous noise conditioning)."""

    def __init__(self, embed_dim: int, hidden: int) -> None:
        super().__init__()
        half = embed_dim // 2
        # log sigma spans roughly [-5, 4]; frequencies cover that range from coarse to fine.
        self.register_buffer(
            "frequencies", torch.exp(torch.linspace(math.log(0.1), math.log(20), half))
        )
        self.mlp = nn.Sequential(nn.Linear(embed_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, log_sigma: torch.Tensor) -> torch.Tensor:
        angles = log_sigma[:, None] * self.frequencies[None, :]
        return self.mlp(torch.cat([torch.sin(angles), torch.cos(angles)], dim=1))


class ResidualBlock(nn.Module):
    """h + W2 silu(W1 LN(h) + b1 + P e): pre-LN residual block with an additive sigma shift."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.fc1 = nn.Linear(hidden, hidden)
        self.sigma_proj = nn.Linear(hidden, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, hidden)

    def forward(self, h: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        u = self.fc1(self.norm(h)) + self.sigma_proj(embedding)
        return h + self.fc2(torch.nn.functional.silu(u))


class ScoreNetwork(nn.Module):
    """s_theta(x, sigma) = f_theta(x, log sigma) / sigma.

    Dividing by sigma (NCSNv2) lets f_theta predict the unit-scale noise direction -z, whose
    magnitude does not depend on sigma; the sigma^2-weighted DSM loss is then
    1/2 ||f_theta(x + sigma z, log sigma) + z||^2.
    """

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = SigmaEmbedding(config.embed_dim, config.hidden)
        self.input = nn.Linear(config.dim, config.hidden)
        self.blocks = nn.ModuleList(ResidualBlock(config.hidden) for _ in range(config.n_blocks))
        self.out_norm = nn.LayerNorm(config.hidden)
        self.output = nn.Linear(config.hidden, config.dim)

    def unit_score(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """f_theta(x, log sigma) = sigma * s_theta(x, sigma); ``sigma`` has shape (batch,)."""
        embedding = self.embed(torch.log(sigma))
        h = self.input(x)
        for block in self.blocks:
            h = block(h, embedding)
        return self.output(self.out_norm(h))

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """s_theta(x, sigma), the score of the data smoothed with N(0, sigma^2 I)."""
        return self.unit_score(x, sigma) / sigma[:, None]
