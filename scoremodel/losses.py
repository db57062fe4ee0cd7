"""Denoising score matching (Vincent 2011) with the sigma^2 weighting of NCSN."""

from __future__ import annotations

import torch

from scoremodel.network import ScoreNetwork


def sample_sigmas(
    n: int, sigma_min: float, sigma_max: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """log sigma ~ U[log sigma_min, log sigma_max]: the continuum of a geometric schedule."""
    u = torch.rand(n, generator=generator, dtype=torch.float32)
    log_min, log_max = torch.log(torch.tensor(sigma_min)), torch.log(torch.tensor(sigma_max))
    return torch.exp(log_min + u * (log_max - log_min))


def dsm_loss(
    model: ScoreNetwork, x: torch.Tensor, sigma: torch.Tensor, noise: torch.Tensor
) -> torch.Tensor:
    """L = E[lambda(sigma)/2 ||s(x~, sigma) + z/sigma||^2], lambda = sigma^2, x~ = x + sigma z.

    With s = f / sigma this is E[1/2 ||f(x~, log sigma) + z||^2]: every level weighs the same.
    """
    x_noisy = x + sigma[:, None] * noise  # x~
    residual = model.unit_score(x_noisy, sigma) + noise  # sigma s + z
    return 0.5 * residual.pow(2).sum(dim=1).mean()
