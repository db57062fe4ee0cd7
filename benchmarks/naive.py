"""The chapter's per-bar approach, as the reference the fast path is compared against.

Every bar: rebuild the features with pandas rolling windows over the last window of bars,
one torch forward for the score, a 100-step Riemann path integral from the origin for the
"density" (100 forwards), and 20 Langevin denoising steps (20 forwards).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch

from scoremodel.inference import ScoreModel

WINDOW = 100  # bars of history handed to the rolling computations each bar
PATH_STEPS = 100
LANGEVIN_STEPS = 20


def rolling_features(window: pd.DataFrame) -> np.ndarray:
    """The market state of the window's last bar, recomputed from scratch with pandas."""
    log_close = np.log(window["close"])
    returns = log_close.diff()
    volume = window["volume"]
    state = [log_close.diff(h).iloc[-1] for h in (1, 5, 10, 20)]
    vol20 = returns.rolling(20).std().iloc[-1]
    state += [vol20, returns.rolling(5).std().iloc[-1] / vol20, log_close.diff(60).iloc[-1]]
    state.append(volume.iloc[-1] / volume.rolling(20).mean().iloc[-1])
    high, low = window["high"].rolling(20).max().iloc[-1], window["low"].rolling(20).min().iloc[-1]
    state.append((window["close"].iloc[-1] - low) / (high - low))
    gains = returns.clip(lower=0).rolling(14).sum().iloc[-1]
    losses = (-returns).clip(lower=0).rolling(14).sum().iloc[-1]
    state.append(gains / (gains + losses))
    return np.nan_to_num(np.array(state, dtype=np.float64), nan=0.5)


@torch.no_grad()
def naive_decision(
    model: ScoreModel, net: torch.nn.Module, window: pd.DataFrame
) -> tuple[float, float]:
    z = torch.as_tensor(model.normaliser.transform(rolling_features(window)), dtype=torch.float32)[
        None
    ]
    sigma = torch.full((1,), model.settings.signal_sigma)
    score = float(net(z, sigma)[0, model.spec.return_index])
    density = 0.0
    for k in range(PATH_STEPS):  # Riemann sum of s(t z) . z dt from the origin
        point = z * (k + 0.5) / PATH_STEPS
        density += float((net(point, sigma) * z).sum()) / PATH_STEPS
    x = z.clone()
    step = 0.5 * model.settings.signal_sigma**2
    for _ in range(LANGEVIN_STEPS):
        x = x + step * net(x, sigma) + (2 * step) ** 0.5 * torch.randn_like(x)
    return score, density


def naive_bars_per_second(model: ScoreModel, bars: pd.DataFrame, n_bars: int = 300) -> float:
    """Bars per second of the naive path, timed on ``n_bars`` bars (extrapolated)."""
    net = model.torch_network("signal")
    torch.manual_seed(0)
    start = WINDOW
    started = time.perf_counter()
    for i in range(start, start + n_bars):
        naive_decision(model, net, bars.iloc[i - WINDOW + 1 : i + 1])
    return n_bars / (time.perf_counter() - started)
