"""DSM training loop: AdamW, warm-up + cosine schedule, grad clipping, EMA, early stopping."""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field

import numpy as np
import torch
from tqdm.auto import tqdm

from field_rules import FRACTION_BELOW_ONE
from field_rules import NON_NEGATIVE
from field_rules import POSITIVE
from field_rules import PROBABILITY
from field_rules import Integer
from field_rules import Nullable
from field_rules import check_fields
from field_rules import setting
from scoremodel.ema import EMA
from scoremodel.losses import dsm_loss
from scoremodel.losses import sample_sigmas
from scoremodel.network import NetworkConfig
from scoremodel.network import ScoreNetwork
from scoremodel.sigmas import max_pairwise_distance


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one DSM run; stored in the checkpoint manifest.

    Each field carries the rule its value must satisfy (:mod:`field_rules`), checked when the
    config is made; a sweep space's ``model:`` values are checked by the same rules."""

    hidden: int = setting(64, Integer(1))
    n_blocks: int = setting(2, Integer(1))
    # z-units; smaller levels are learned poorly (DSM variance ~ 1/sigma^2)
    sigma_min: float = setting(0.1, POSITIVE)
    # None: the largest pairwise distance of the training data
    sigma_max: float | None = setting(None, Nullable(POSITIVE))
    batch_size: int = setting(4096, Integer(1))
    max_epochs: int = setting(100, Integer(1))
    learning_rate: float = setting(3e-3, POSITIVE)
    weight_decay: float = setting(1e-4, NON_NEGATIVE)
    warmup_fraction: float = setting(0.05, PROBABILITY)
    grad_clip: float = setting(1.0, POSITIVE)
    # ~200-step average: a run is ~1,000 large-batch steps
    ema_decay: float = setting(0.995, FRACTION_BELOW_ONE)
    patience: int = setting(20, Integer(1))
    val_noise_draws: int = setting(2, Integer(1))
    seed: int = setting(7, Integer(0))
    threads: int | None = setting(None, Nullable(Integer(1)))  # None: torch's default

    def __post_init__(self) -> None:
        check_fields(self)
        if self.sigma_max is not None and float(self.sigma_max) <= float(self.sigma_min):
            raise ValueError(
                f"sigma_max = {self.sigma_max!r} must be greater than sigma_min = "
                f"{self.sigma_min!r}"
            )

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    """Best EMA weights and the record of the run."""

    state_dict: dict[str, torch.Tensor]
    network: NetworkConfig
    sigma_min: float
    sigma_max: float
    best_val_loss: float
    best_epoch: int
    epochs_run: int
    seconds: float
    states_per_second: float  # training steps only (validation excluded)
    history: list[dict] = field(default_factory=list)


class ValidationSet:
    """Fixed noise and sigmas per validation state, so the validation loss is deterministic."""

    def __init__(self, val: torch.Tensor, config: TrainConfig, sigma_max: float) -> None:
        generator = torch.Generator().manual_seed(config.seed + 1)
        self.x = val.repeat(config.val_noise_draws, 1)
        self.sigma = sample_sigmas(len(self.x), config.sigma_min, sigma_max, generator)
        self.noise = torch.randn(self.x.shape, generator=generator)

    @torch.no_grad()
    def loss(self, model: ScoreNetwork, batch_size: int = 8192) -> float:
        total = 0.0
        for start in range(0, len(self.x), batch_size):
            part = slice(start, start + batch_size)
            n = len(self.x[part])
            total += dsm_loss(model, self.x[part], self.sigma[part], self.noise[part]).item() * n
        return total / len(self.x)


def train_score_network(
    train: np.ndarray, val: np.ndarray, config: TrainConfig, progress: bool = True
) -> TrainResult:
    """Fit s_theta on normalised ``train`` rows; early-stop on the EMA model's validation loss.

    Same inputs and seed on the same machine and thread count => bit-identical weights.
    """
    torch.manual_seed(config.seed)  # CPU kernels are deterministic for a fixed thread count
    if config.threads:
        torch.set_num_threads(config.threads)
    sigma_max = config.sigma_max or max_pairwise_distance(train, seed=config.seed)
    x_train = torch.as_tensor(train, dtype=torch.float32)
    x_val = torch.as_tensor(val, dtype=torch.float32)
    network = NetworkConfig(dim=x_train.shape[1], hidden=config.hidden, n_blocks=config.n_blocks)
    model = ScoreNetwork(network)
    ema = EMA(model, config.ema_decay)
    eval_model = copy.deepcopy(model).eval()
    validation = ValidationSet(x_val, config, sigma_max)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay, fused=True
    )
    steps_per_epoch = math.ceil(len(x_train) / config.batch_size)
    scheduler = _warmup_cosine(optimiser, steps_per_epoch * config.max_epochs, config)
    generator = torch.Generator().manual_seed(config.seed)

    best_loss, best_epoch, best_state = math.inf, -1, ema.state_dict()
    history: list[dict] = []
    started = time.perf_counter()
    stepping = 0.0  # seconds spent in training steps
    # disable=None: a progress bar on a terminal, nothing in logs and pipes
    epochs = tqdm(
        range(config.max_epochs), desc="DSM", unit="epoch", disable=(not progress) or None
    )
    for epoch in epochs:
        epoch_started = time.perf_counter()
        train_loss = _train_epoch(
            model, ema, optimiser, scheduler, x_train, config, sigma_max, generator
        )
        stepping += time.perf_counter() - epoch_started
        eval_model.load_state_dict(ema.shadow)
        val_loss = validation.loss(eval_model)
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss})
        if val_loss < best_loss:
            best_loss, best_epoch, best_state = val_loss, epoch, ema.state_dict()
        epochs.set_postfix(train=f"{train_loss:.4f}", val=f"{val_loss:.4f}", best=best_epoch)
        if epoch - best_epoch >= config.patience:
            break
    seconds = time.perf_counter() - started
    return TrainResult(
        state_dict=best_state,
        network=network,
        sigma_min=config.sigma_min,
        sigma_max=sigma_max,
        best_val_loss=best_loss,
        best_epoch=best_epoch,
        epochs_run=len(history),
        seconds=seconds,
        states_per_second=len(history) * len(x_train) / stepping,
        history=history,
    )


def _train_epoch(
    model: ScoreNetwork,
    ema: EMA,
    optimiser: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    x_train: torch.Tensor,
    config: TrainConfig,
    sigma_max: float,
    generator: torch.Generator,
) -> float:
    model.train()
    order = torch.randperm(len(x_train), generator=generator)
    total, count = 0.0, 0
    for start in range(0, len(order), config.batch_size):
        x = x_train[order[start : start + config.batch_size]]
        sigma = sample_sigmas(len(x), config.sigma_min, sigma_max, generator)
        noise = torch.randn(x.shape, generator=generator)
        loss = dsm_loss(model, x, sigma, noise)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimiser.step()
        scheduler.step()
        ema.update(model)
        total += loss.item() * len(x)
        count += len(x)
    return total / count


def _warmup_cosine(
    optimiser: torch.optim.Optimizer, total_steps: int, config: TrainConfig
) -> torch.optim.lr_scheduler.LambdaLR:
    warmup = max(1, int(total_steps * config.warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimiser, factor)
