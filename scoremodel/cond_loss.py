"""Conditional denoising score matching: noise on the targets only, never on the context."""

from __future__ import annotations

import torch

from scoremodel.cond_network import ConditionalScoreNet


def conditional_dsm_loss(
    model: ConditionalScoreNet,
    context: torch.Tensor,
    target: torch.Tensor,
    sigma: torch.Tensor,
    noise: torch.Tensor,
) -> torch.Tensor:
    """E[1/2 sum_h ||f(y + sigma z | c) + z||^2] with y~ = y + sigma z; c enters unchanged.

    ``target``, ``sigma`` and ``noise`` have shape (B, K): every horizon gets its own level.
    The minimiser is f = sigma grad_y log p_sigma(y~ | c), the y-score of the target smoothed
    with N(0, sigma^2) given the clean context (Vincent 2011, as in CSDI's masked loss).
    """
    y_noisy = target + sigma * noise
    residual = model.unit_score(context, y_noisy, sigma) + noise
    return 0.5 * residual.pow(2).sum(dim=1).mean()
