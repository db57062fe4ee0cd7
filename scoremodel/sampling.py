"""Annealed Langevin dynamics (NCSN), Tweedie denoising, and inpainting for conditionals.

x <- x + alpha_i s(x, sigma_i) + sqrt(2 alpha_i) z, alpha_i = eps sigma_i^2 / sigma_L^2, for T
steps at each level sigma_1 > ... > sigma_L; eps from NCSNv2's technique 4
(:func:`scoremodel.sigmas.langevin_step_size`). The last sample is denoised with Tweedie's
formula x + sigma_L^2 s(x, sigma_L) (NCSNv2), which removes the residual sigma_L noise.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

from scoremodel.network import ScoreNetwork
from scoremodel.sigmas import langevin_step_size


@torch.no_grad()
def annealed_langevin(
    model: ScoreNetwork,
    sigmas: np.ndarray,
    n_samples: int,
    steps_per_level: int = 5,
    seed: int = 0,
    known: torch.Tensor | None = None,
    known_mask: torch.Tensor | None = None,
    denoise: bool = True,
) -> torch.Tensor:
    """Samples from the model's density; with ``known`` and ``known_mask``, from the conditional.

    Inpainting: at every level the known coordinates are reset to ``known + sigma_i z`` (a
    sample of the noised observation), so only the unknown coordinates move, guided by the
    joint score. ``known`` has shape (D,) or (n_samples, D); ``known_mask`` is boolean (D,).
    """
    generator = torch.Generator().manual_seed(seed)
    dim = model.config.dim
    eps = langevin_step_size(sigmas, steps_per_level)
    sigma_last = float(sigmas[-1])
    x = float(sigmas[0]) * torch.randn(n_samples, dim, generator=generator)
    for sigma in sigmas:
        sigma = float(sigma)
        alpha = eps * sigma**2 / sigma_last**2
        sigma_column = torch.full((n_samples,), sigma)
        for _ in range(steps_per_level):
            if known is not None:
                noisy_known = known + sigma * torch.randn(x.shape, generator=generator)
                x = torch.where(known_mask, noisy_known, x)
            noise = torch.randn(x.shape, generator=generator)
            x = x + alpha * model(x, sigma_column) + (2.0 * alpha) ** 0.5 * noise
    if denoise:
        x = x + sigma_last**2 * model(x, torch.full((n_samples,), sigma_last))
    if known is not None:
        x = torch.where(known_mask, known.expand_as(x), x)
    return x


@torch.no_grad()
def denoise(model: ScoreNetwork, x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Tweedie: E[x_0 | x] = x + sigma^2 s(x, sigma) for x = x_0 + sigma z."""
    return x + sigma**2 * model(x, torch.full((len(x),), sigma))


@torch.no_grad()
def predictor_corrector(
    model: ScoreNetwork,
    sigma_max: float,
    sigma_min: float,
    n_samples: int,
    n_steps: int = 200,
    snr: float = 0.16,
    seed: int = 0,
    known: torch.Tensor | None = None,
    known_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Reverse-diffusion predictor + Langevin corrector for the VE SDE (Song et al. 2021).

    Over a geometric grid sigma_0 = sigma_max > ... > sigma_{N-1} = sigma_min, sigma_N = 0:
    corrector  x <- x + e s(x, sigma_i) + sqrt(2 e) z,  e = 2 (snr ||z|| / ||s||)^2;
    predictor  x <- x + d_i s(x, sigma_i) + sqrt(d_i) z,  d_i = sigma_i^2 - sigma_{i+1}^2.
    The predictor follows the noised marginals down the whole schedule, so, unlike annealed
    Langevin with few levels, it needs no equilibration at each level; the last predictor step
    (to sigma = 0) returns its mean, i.e. the Tweedie-denoised sample. Inpainting as in
    :func:`annealed_langevin`.
    """
    generator = torch.Generator().manual_seed(seed)
    sigmas = np.append(np.geomspace(sigma_max, sigma_min, n_steps), 0.0)
    x = sigma_max * torch.randn(n_samples, model.config.dim, generator=generator)
    for sigma, sigma_next in itertools.pairwise(sigmas):
        sigma_column = torch.full((n_samples,), float(sigma))
        if known is not None:
            noisy_known = known + float(sigma) * torch.randn(x.shape, generator=generator)
            x = torch.where(known_mask, noisy_known, x)
        # corrector
        score = model(x, sigma_column)
        noise = torch.randn(x.shape, generator=generator)
        ratio = snr * noise.norm(dim=1).mean() / score.norm(dim=1).mean()
        step = 2.0 * ratio**2
        x = x + step * score + torch.sqrt(2.0 * step) * noise
        # predictor
        variance_drop = float(sigma**2 - sigma_next**2)
        x_mean = x + variance_drop * model(x, sigma_column)
        x = x_mean + variance_drop**0.5 * torch.randn(x.shape, generator=generator)
    if known is not None:
        x_mean = torch.where(known_mask, known.expand_as(x_mean), x_mean)
    return x_mean
