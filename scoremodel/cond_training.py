"""Training of the conditional score model (and of the NLL control, same loop and budget).

The machinery is the project's (:mod:`scoremodel.training`): AdamW with warm-up + cosine
schedule, gradient clipping, EMA weights (:class:`scoremodel.ema.EMA`), early stopping on the
EMA model's loss on the validation block with fixed noise, seeds, and a tqdm progress bar.
Same data, seed and thread count => bit-identical weights.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from scoremodel.cond_loss import conditional_dsm_loss
from scoremodel.cond_network import ConditionalNetConfig
from scoremodel.cond_network import ConditionalScoreNet
from scoremodel.ema import EMA
from scoremodel.losses import sample_sigmas
from scoremodel.training import _warmup_cosine


@dataclass(frozen=True)
class ConditionalTrainConfig:
    """Hyper-parameters of one run (network size, noise range, optimiser, stopping)."""

    hidden: int = 64
    head_width: int = 16
    embed_dim: int = 16
    sigma_min: float = 0.2  # z-units of the (vol-scaled) target
    sigma_max: float = 2.0
    batch_size: int = 1024
    max_epochs: int = 40
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.05
    grad_clip: float = 1.0
    ema_decay: float = 0.995
    patience: int = 8
    val_noise_draws: int = 2
    seed: int = 7
    threads: int | None = 1  # the per-run thread count is part of bit-identity

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULT_TRAIN = ConditionalTrainConfig()


@dataclass
class TrainOutcome:
    """Best EMA weights and the record of one run."""

    state_dict: dict[str, torch.Tensor]
    best_val_loss: float
    best_epoch: int
    epochs_run: int
    seconds: float
    history: list[dict] = field(default_factory=list)


@dataclass
class ConditionalTrainResult:
    """A trained conditional score network: architecture, config and the run's record."""

    network: ConditionalNetConfig
    config: ConditionalTrainConfig
    outcome: TrainOutcome

    @property
    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.outcome.state_dict

    def model(self) -> ConditionalScoreNet:
        """The network with the best EMA weights, in eval mode."""
        model = ConditionalScoreNet(self.network)
        model.load_state_dict(self.outcome.state_dict)
        return model.eval()


BatchLoss = Callable[[nn.Module, torch.Tensor, torch.Generator], torch.Tensor]


def run_training(
    model: nn.Module,
    batch_loss: BatchLoss,
    validation_loss: Callable[[nn.Module], float],
    n_train: int,
    config: ConditionalTrainConfig,
    desc: str,
    progress: bool = True,
) -> TrainOutcome:
    """Minibatch training with EMA and early stopping; ``batch_loss(model, rows, generator)``.

    ``validation_loss(ema_model)`` must be deterministic (fixed noise). The seed is set by
    the caller before the model is built, so initial weights follow it too.
    """
    ema = EMA(model, config.ema_decay)
    eval_model = copy.deepcopy(model).eval()
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    steps_per_epoch = math.ceil(n_train / config.batch_size)
    scheduler = _warmup_cosine(optimiser, steps_per_epoch * config.max_epochs, config)
    generator = torch.Generator().manual_seed(config.seed)
    best_loss, best_epoch, best_state = math.inf, -1, ema.state_dict()
    history: list[dict] = []
    started = time.perf_counter()
    epochs = tqdm(range(config.max_epochs), desc=desc, unit="epoch", disable=(not progress) or None)
    for epoch in epochs:
        model.train()
        order = torch.randperm(n_train, generator=generator)
        total = 0.0
        for start in range(0, n_train, config.batch_size):
            rows = order[start : start + config.batch_size]
            loss = batch_loss(model, rows, generator)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimiser.step()
            scheduler.step()
            ema.update(model)
            total += loss.item() * len(rows)
        eval_model.load_state_dict(ema.shadow)
        with torch.no_grad():
            val_loss = validation_loss(eval_model)
        history.append({"epoch": epoch, "train_loss": total / n_train, "val_loss": val_loss})
        if val_loss < best_loss:
            best_loss, best_epoch, best_state = val_loss, epoch, ema.state_dict()
        epochs.set_postfix(train=f"{total / n_train:.4f}", val=f"{val_loss:.4f}", best=best_epoch)
        if epoch - best_epoch >= config.patience:
            break
    return TrainOutcome(
        best_state, best_loss, best_epoch, len(history), time.perf_counter() - started, history
    )


def train_conditional(
    train_context: np.ndarray,
    train_target: np.ndarray,
    val_context: np.ndarray,
    val_target: np.ndarray,
    context_len: int,
    config: ConditionalTrainConfig = DEFAULT_TRAIN,
    progress: bool = True,
) -> ConditionalTrainResult:
    """Fit s_theta(y~ | c) by conditional DSM on (context, target) rows in model units.

    Contexts are (n, L F) z-scored windows, targets (n, K) z-scored vol-scaled returns
    (:func:`scoremodel.cond_data.prepare`); early stopping on the validation rows.
    """
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    network = ConditionalNetConfig(
        context_len=context_len,
        n_features=train_context.shape[1] // context_len,
        n_horizons=train_target.shape[1],
        hidden=config.hidden,
        head_width=config.head_width,
        embed_dim=config.embed_dim,
    )
    model = ConditionalScoreNet(network)
    c_train = torch.as_tensor(train_context, dtype=torch.float32)
    y_train = torch.as_tensor(train_target, dtype=torch.float32)
    validation = _FixedNoise(val_context, val_target, config)

    def batch_loss(net: nn.Module, rows: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        y = y_train[rows]
        sigma = sample_sigmas(y.numel(), config.sigma_min, config.sigma_max, generator)
        noise = torch.randn(y.shape, generator=generator)
        return conditional_dsm_loss(net, c_train[rows], y, sigma.reshape(y.shape), noise)

    outcome = run_training(
        model, batch_loss, validation.loss, len(y_train), config, "conditional DSM", progress
    )
    return ConditionalTrainResult(network, config, outcome)


class _FixedNoise:
    """Validation rows repeated ``val_noise_draws`` times with fixed sigmas and noise."""

    def __init__(
        self, context: np.ndarray, target: np.ndarray, config: ConditionalTrainConfig
    ) -> None:
        generator = torch.Generator().manual_seed(config.seed + 1)
        draws = config.val_noise_draws
        self.context = torch.as_tensor(context, dtype=torch.float32).repeat(draws, 1)
        self.target = torch.as_tensor(target, dtype=torch.float32).repeat(draws, 1)
        shape = self.target.shape
        sigma = sample_sigmas(self.target.numel(), config.sigma_min, config.sigma_max, generator)
        self.sigma = sigma.reshape(shape)
        self.noise = torch.randn(shape, generator=generator)

    def loss(self, model: nn.Module, batch_size: int = 8192) -> float:
        total = 0.0
        for start in range(0, len(self.target), batch_size):
            part = slice(start, start + batch_size)
            n = len(self.target[part])
            loss = conditional_dsm_loss(
                model, self.context[part], self.target[part], self.sigma[part], self.noise[part]
            )
            total += loss.item() * n
        return total / len(self.target)
