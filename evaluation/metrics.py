"""Performance and signal metrics with their uncertainty.

Annualisation: markets trade 24/7, so a per-bar statistic is annualised with N = bars per
year = 365.25 x 86,400 s / bar length (as ``policy.calendar.bars_per_year``), Sharpe
SR = mean(r) / std(r) sqrt(N) on per-bar net returns r. (Nautilus's report resamples to days
and uses sqrt(365); the two agree when bar returns are serially uncorrelated.)
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from scoremodel.gaussian import norm_cdf
from scoremodel.gaussian import norm_ppf

EULER_GAMMA = 0.5772156649015329  # gamma in the deflated Sharpe ratio


# ----- returns ---------------------------------------------------------------------------------


def sharpe(returns: np.ndarray, periods_per_year: float = 1.0) -> float:
    """SR = mean(r) / std(r) sqrt(N) (std with ddof = 1); 0 when r is constant."""
    r = np.asarray(returns, dtype=np.float64)
    std = r.std(ddof=1) if len(r) > 1 else 0.0
    return float(r.mean() / std * math.sqrt(periods_per_year)) if std > 0 else 0.0


def sortino(returns: np.ndarray, periods_per_year: float = 1.0) -> float:
    """mean(r) / DD sqrt(N), downside deviation DD = sqrt(mean(min(r, 0)^2)) (target 0)."""
    r = np.asarray(returns, dtype=np.float64)
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2))) if len(r) else 0.0
    return float(r.mean() / downside * math.sqrt(periods_per_year)) if downside > 0 else 0.0


def max_drawdown(equity: np.ndarray) -> float:
    """max_t (1 - E_t / max_{s <= t} E_s)."""
    e = np.asarray(equity, dtype=np.float64)
    peak = np.maximum.accumulate(e)
    return float(np.max(1.0 - e / np.where(peak > 0, peak, 1.0))) if len(e) else 0.0


def _moments(r: np.ndarray) -> tuple[float, float, float]:
    """Per-period SR, skewness gamma_3 and (non-excess) kurtosis gamma_4 of r."""
    mean, std = r.mean(), r.std(ddof=1)
    if not std > 0:
        return 0.0, 0.0, 3.0
    centred = r - mean
    m2 = np.mean(centred**2)
    return (
        float(mean / std),
        float(np.mean(centred**3) / m2**1.5),
        float(np.mean(centred**4) / m2**2),
    )


def sharpe_standard_error(returns: np.ndarray) -> float:
    """se(SR) = sqrt((1 - g3 SR + (g4 - 1)/4 SR^2) / (T - 1)) per period (Mertens 2002)."""
    r = np.asarray(returns, dtype=np.float64)
    sr, g3, g4 = _moments(r)
    return math.sqrt(max(1.0 - g3 * sr + (g4 - 1.0) / 4.0 * sr**2, 1e-12) / max(len(r) - 1, 1))


def probabilistic_sharpe(returns: np.ndarray, benchmark: float = 0.0) -> float:
    """PSR(SR*) = Phi((SR - SR*) sqrt(T - 1) / sqrt(1 - g3 SR + (g4 - 1)/4 SR^2)).

    Bailey & Lopez de Prado (2012); SR and the benchmark SR* per period (not annualised).
    """
    r = np.asarray(returns, dtype=np.float64)
    if len(r) < 3:
        return float("nan")
    sr = _moments(r)[0]
    return float(norm_cdf((sr - benchmark) / sharpe_standard_error(r)))


def expected_max_sharpe(trial_sharpes: np.ndarray) -> float:
    """SR_0 = sqrt(V[SR_n]) ((1 - gamma) Phi^{-1}(1 - 1/N) + gamma Phi^{-1}(1 - 1/(N e))).

    The Sharpe ratio the best of N unskilled trials reaches by luck (Bailey & Lopez de Prado
    2014); V is the variance of the N trials' per-period Sharpe ratios, gamma Euler's constant.
    """
    s = np.asarray(trial_sharpes, dtype=np.float64)
    n = len(s)
    if n < 2:
        return 0.0
    spread = math.sqrt(float(s.var(ddof=1)))
    return spread * (
        (1 - EULER_GAMMA) * float(norm_ppf(1 - 1 / n))
        + EULER_GAMMA * float(norm_ppf(1 - 1 / (n * math.e)))
    )


def deflated_sharpe(returns: np.ndarray, trial_sharpes: np.ndarray) -> float:
    """DSR = PSR(SR_0): the probability that the true SR beats the luck of N trials."""
    return probabilistic_sharpe(returns, expected_max_sharpe(trial_sharpes))


# ----- proportions and correlations --------------------------------------------------------------


def wilson_interval(successes: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval (p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)."""
    if trials == 0:
        return float("nan"), float("nan")
    z = float(norm_ppf(0.5 + level / 2))
    p = successes / trials
    centre = p + z * z / (2 * trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    scale = 1 + z * z / trials
    return (centre - half) / scale, (centre + half) / scale


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho: Pearson correlation of the (average) ranks."""
    rx = pd.Series(np.asarray(x, dtype=np.float64)).rank().to_numpy()
    ry = pd.Series(np.asarray(y, dtype=np.float64)).rank().to_numpy()
    if rx.std() == 0 or ry.std() == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


def block_length(n: int, horizon: int) -> int:
    """b = max(h, ceil(n^(1/3))): blocks at least as long as the label overlap."""
    return max(int(horizon), math.ceil(n ** (1 / 3)), 1)


def block_bootstrap_indices(
    n: int, block: int, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """Circular moving-block bootstrap: (n_boot, n) row indices built from random blocks."""
    n_blocks = math.ceil(n / block)
    starts = rng.integers(0, n, size=(n_boot, n_blocks))
    return ((starts[:, :, None] + np.arange(block)) % n).reshape(n_boot, -1)[:, :n]


def _rank_rows(a: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank) along the last axis of a 2-D array."""
    a = np.atleast_2d(a)
    order = np.argsort(a, axis=-1, kind="stable")
    s = np.take_along_axis(a, order, axis=-1)
    position = np.broadcast_to(np.arange(a.shape[-1], dtype=np.float64), a.shape)
    new_run = np.ones(a.shape, dtype=bool)
    new_run[:, 1:] = s[:, 1:] != s[:, :-1]
    first = np.maximum.accumulate(np.where(new_run, position, 0.0), axis=-1)
    run_end = np.ones(a.shape, dtype=bool)
    run_end[:, :-1] = new_run[:, 1:]
    last_rev = np.where(run_end, position, a.shape[-1] - 1.0)[:, ::-1]
    last = np.minimum.accumulate(last_rev, axis=-1)[:, ::-1]
    ranks = np.empty(a.shape)
    np.put_along_axis(ranks, order, (first + last) / 2.0, axis=-1)
    return ranks


def _resampled_ranks(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``_rank_rows(x[rows])`` by counting instead of sorting: each resample (a row of
    ``rows``) draws from the same values, so one ``np.unique`` codes them and a per-row
    histogram gives every value's average rank (first + (count - 1) / 2) in O(n)."""
    values, codes = np.unique(x, return_inverse=True)
    k, codes = len(values), codes[rows]
    offsets = k * np.arange(len(rows))[:, None]
    counts = np.bincount((codes + offsets).ravel(), minlength=len(rows) * k).reshape(len(rows), k)
    average = np.cumsum(counts, axis=1) - counts + (counts - 1) / 2.0
    return np.take_along_axis(average, codes, axis=1)


def _row_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    denominator = np.sqrt((a * a).sum(-1) * (b * b).sum(-1))
    return np.where(denominator > 0, (a * b).sum(-1) / np.where(denominator > 0, denominator, 1), 0)


def information_coefficient(
    signal: np.ndarray,
    forward: np.ndarray,
    horizon: int,
    n_boot: int = 500,
    level: float = 0.95,
    seed: int = 0,
    rank: bool = True,
) -> dict:
    """Spearman IC (``rank``) or Pearson IC (Grinold and Kahn's IC, the correlation of forecast
    and outcome) of the signal against the h-bar forward return, with a block-bootstrap CI.

    Labels of neighbouring bars overlap by h - 1 bars, so pairs are resampled in circular
    blocks of b >= h bars (:func:`block_length`); the interval is the percentile interval.
    Spearman gives tied forecasts one shared rank: a forecast that is exactly 0 on most bars
    (a planted market's oracle) ranks differently from any forecast with noise on them, while
    Pearson compares them on the same scale.
    """
    x, y = _finite_pairs(signal, forward)
    n = len(x)
    if n < 10:
        return {"value": float("nan"), "low": float("nan"), "high": float("nan"), "n": n}
    block = block_length(n, horizon)
    rng = np.random.default_rng(seed)
    rho = []
    for part in np.array_split(
        block_bootstrap_indices(n, block, n_boot, rng), max(1, n_boot // 50)
    ):
        if rank:
            rho.append(_row_corr(_resampled_ranks(x, part), _resampled_ranks(y, part)))
        else:
            rho.append(_row_corr(x[part], y[part]))
    rho = np.concatenate(rho)
    tail = (1 - level) / 2
    return {
        "value": spearman(x, y) if rank else float(_row_corr(x, y)),
        "low": float(np.quantile(rho, tail)),
        "high": float(np.quantile(rho, 1 - tail)),
        "n": n,
        "block": block,
    }


def permutation_ic(
    signal: np.ndarray, forward: np.ndarray, n_perm: int = 50, seed: int = 0
) -> dict:
    """The leakage guard: Spearman IC after shuffling the forward returns (expected ~0).

    ``bound`` = 3 / sqrt(n - 1), three standard errors of rho under independence.
    """
    x, y = _finite_pairs(signal, forward)
    rng = np.random.default_rng(seed)
    shuffled = np.stack([rng.permutation(y) for _ in range(n_perm)])
    rho = _row_corr(_rank_rows(x)[None, :], _rank_rows(shuffled))
    return {
        "mean": float(rho.mean()),
        "low": float(np.quantile(rho, 0.025)),
        "high": float(np.quantile(rho, 0.975)),
        "max_abs": float(np.abs(rho).max()),
        "bound": 3.0 / math.sqrt(max(len(x) - 1, 1)),
        "n_permutations": n_perm,
    }


def _finite_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep]


# ----- one simulated strategy -------------------------------------------------------------


def strategy_metrics(
    equity: pd.Series,
    leverage: pd.Series,
    fees: pd.Series,
    traded: pd.Series,
    gross_pnl: pd.Series,
    periods_per_year: float,
) -> dict:
    """Sharpe [CI] (and before fees), Sortino, return, drawdown, turnover, fees, hit rate, PSR.

    Hit rate: share of bars held in the market whose P&L before fees is positive.
    Turnover: traded notional / equity per year. Fees: in units of the starting equity.
    """
    r = equity.pct_change().iloc[1:].to_numpy()
    gross = gross_pnl.to_numpy()[1:] / np.maximum(equity.to_numpy()[:-1], 1e-12)  # before fees
    held = leverage.to_numpy()[1:] != 0.0  # a position was held over the bar
    wins = int((gross_pnl.to_numpy()[1:][held] > 0).sum())
    hit_low, hit_high = wilson_interval(wins, int(held.sum()))
    root = math.sqrt(periods_per_year)
    sr = sharpe(r, periods_per_year)
    se = sharpe_standard_error(r) * root if len(r) > 2 else float("nan")
    return {
        "sharpe": sr,
        "sharpe_low": sr - 1.96 * se,
        "sharpe_high": sr + 1.96 * se,
        "sharpe_before_fees": sharpe(gross, periods_per_year),
        "sortino": sortino(r, periods_per_year),
        "total_return": float(equity.iloc[-1] / equity.iloc[0] - 1.0),
        "max_drawdown": max_drawdown(equity.to_numpy()),
        "turnover": float(traded.sum() / max(len(r), 1) * periods_per_year),
        "fees": float(fees.sum()),
        "trades": int((traded > 0).sum()),
        "time_in_market": float(held.mean()) if len(held) else 0.0,
        "mean_abs_leverage": float(leverage.abs().mean()),
        "hit_rate": float(wins / held.sum()) if held.sum() else float("nan"),
        "hit_rate_low": hit_low,
        "hit_rate_high": hit_high,
        "psr": probabilistic_sharpe(r),
        "bars": len(r),
    }


def sharpe_difference(
    a: np.ndarray,
    b: np.ndarray,
    periods_per_year: float,
    horizon: int,
    n_boot: int = 500,
    seed: int = 0,
) -> dict:
    """SR(a) - SR(b) on the same bars, with a paired moving-block bootstrap 95 % interval."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    rng = np.random.default_rng(seed)
    idx = block_bootstrap_indices(len(a), block_length(len(a), horizon), n_boot, rng)
    root = math.sqrt(periods_per_year)

    def row_sharpe(x: np.ndarray) -> np.ndarray:
        std = x.std(axis=1, ddof=1)
        return np.where(std > 0, x.mean(axis=1) / np.where(std > 0, std, 1.0), 0.0) * root

    boot = row_sharpe(a[idx]) - row_sharpe(b[idx])
    return {
        "difference": sharpe(a, periods_per_year) - sharpe(b, periods_per_year),
        "low": float(np.quantile(boot, 0.025)),
        "high": float(np.quantile(boot, 0.975)),
    }
