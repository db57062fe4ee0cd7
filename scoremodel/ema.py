"""Exponential moving average of model weights (NCSNv2 samples and evaluates with EMA weights)."""

from __future__ import annotations

import torch
from torch import nn


class EMA:
    """theta_ema <- mu theta_ema + (1 - mu) theta, with warm-up mu_n = min(mu, (1 + n)/(10 + n))."""

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        self.decay = decay
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        mu = min(self.decay, (1 + self.updates) / (10 + self.updates))
        shadow, current = [], []
        for name, value in model.state_dict().items():
            if value.dtype.is_floating_point:
                shadow.append(self.shadow[name])
                current.append(value.detach())
            else:
                self.shadow[name].copy_(value)
        torch._foreach_lerp_(shadow, current, 1 - mu)  # theta_ema + (1 - mu)(theta - theta_ema)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """A deep copy: later updates never change what was returned."""
        return {k: v.clone() for k, v in self.shadow.items()}
