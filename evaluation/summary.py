"""Pooled summaries over test windows: strategy metrics, IC, CRPS, filters, comparisons.

Test windows are chained as one account (each starts with the previous one's final equity), so
pooled figures weigh every out-of-sample bar equally.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from evaluation.density_diagnostics import beats
from evaluation.density_diagnostics import flag_diagnostics
from evaluation.folds import Fold
from evaluation.forecast_quality import forecast_scores
from evaluation.metrics import deflated_sharpe
from evaluation.metrics import information_coefficient
from evaluation.metrics import permutation_ic
from evaluation.metrics import sharpe
from evaluation.metrics import sharpe_difference
from evaluation.metrics import strategy_metrics
from evaluation.simulate import SimResult
from scoremodel.forecast import QUANTILES
from scoremodel.inference import ScoreModel

MODEL = "model"  # the run configuration's signal mode (edge: the conditional forecaster)
FILTER_VARIANTS = ("model_no_filter", "model_mahalanobis", "model_gmm")
CONTROLS = ("ridge", "nll_mlp")  # the same policy on plain regressions of the same contexts
OTHER_MODES = ("model_score", "model_forecast")  # the chapter's score signal, the joint grid
BASELINES = ("buy_and_hold", "momentum", "reversal", "random")
STRATEGIES = (MODEL, *FILTER_VARIANTS, *OTHER_MODES, *CONTROLS, *BASELINES)
# The deflated Sharpe's N trials: the model's variants a user could pick from this report.
# Controls and baselines are yardsticks, not candidates; their Sharpe ratios (buy-and-hold's,
# random draws') spread so widely that counting them made SR_0 unreachable (DSR 0.00 even for
# a strong strategy).
MODEL_VARIANTS = (MODEL, *FILTER_VARIANTS, *OTHER_MODES)
IC_SIGNALS = (MODEL, *OTHER_MODES, *CONTROLS, "momentum", "reversal")
FORECASTERS = (MODEL, *CONTROLS)  # scored by CRPS against the Gaussian rolling volatility


class SummaryConfig(Protocol):
    """The settings :func:`summarise` reads (an EvaluationConfig)."""

    horizon: int
    n_boot: int
    n_permutations: int
    seed: int


@dataclass
class FoldRun:
    """One fold's model outputs and simulations (kept for pooling and plots)."""

    fold: Fold
    sims: dict[str, SimResult]
    random_sims: list[SimResult]
    signals: dict[str, np.ndarray]
    forward: np.ndarray
    predictives: dict[str, tuple[np.ndarray, np.ndarray]]  # forecaster: (quantiles, P(up))
    baseline_sigma: np.ndarray
    flags: dict[str, np.ndarray]
    model: ScoreModel
    summary: dict


def chain(results: list[SimResult]) -> SimResult:
    """Consecutive test windows as one account: each window starts with the last's equity."""
    names = ("equity", "leverage", "fees", "traded", "gross_pnl", "funding")
    scaled = {"equity", "fees", "gross_pnl", "funding"}  # in units of the window's start equity
    parts: dict[str, list[pd.Series]] = {k: [] for k in names}
    scale = 1.0
    for k, r in enumerate(results):
        rows = slice(0 if k == 0 else 1, None)  # a window's first close is the last's final one
        for name in names:
            part = getattr(r, name).iloc[rows]
            parts[name].append(part * scale if name in scaled else part)
        scale *= float(r.equity.iloc[-1])
    times = [r.funding_times for r in results]
    return SimResult(
        **{k: pd.concat(v) for k, v in parts.items()},
        target=np.concatenate([r.target for r in results]),
        decisions=[d for r in results for d in r.decisions],
        fills_maker=sum(r.fills_maker for r in results),
        fills_taker=sum(r.fills_taker for r in results),
        unfilled=sum(r.unfilled for r in results),
        funding_times=None if None in times else sum(times),
    )


def _metrics(result: SimResult, per_year: float) -> dict:
    """The strategy's metrics (net of fees and funding), its funding, and its fills by side."""
    metrics = strategy_metrics(
        result.equity, result.leverage, result.fees, result.traded, result.gross_pnl, per_year
    )
    return {
        **metrics,
        "funding": float(result.funding.sum()) if result.funding_times is not None else None,
        "fills_maker": result.fills_maker,
        "fills_taker": result.fills_taker,
        "unfilled": result.unfilled,
    }


def summarise(
    runs: list[FoldRun], cfg: SummaryConfig, per_year: float, header: dict | None = None
) -> dict:
    """Metrics of every strategy, IC, CRPS and filter diagnostics over ``runs`` pooled."""
    chained = {name: chain([r.sims[name] for r in runs]) for name in STRATEGIES}
    strategies = {name: _metrics(sim, per_year) for name, sim in chained.items()}
    draws = [chain([r.random_sims[d] for r in runs]) for d in range(len(runs[0].random_sims))]
    strategies["random"], random_gap = _random_summary(draws, strategies[MODEL]["sharpe"], per_year)
    returns = {name: sim.returns.to_numpy() for name, sim in chained.items()}
    trials = np.array([sharpe(returns[name]) for name in MODEL_VARIANTS])  # per-bar SR, N trials
    for name in STRATEGIES:
        strategies[name]["dsr"] = deflated_sharpe(returns[name], trials)

    def pooled_array(get: Callable[[FoldRun], np.ndarray]) -> np.ndarray:
        return np.concatenate([get(r) for r in runs])

    forward = pooled_array(lambda r: r.forward)
    ic, pearson_ic = (
        {
            name: information_coefficient(
                pooled_array(lambda r, n=name: r.signals[n]),
                forward,
                cfg.horizon,
                cfg.n_boot,
                seed=cfg.seed,
                rank=rank,
            )
            for name in IC_SIGNALS
        }
        for rank in (True, False)
    )
    model_signal = pooled_array(lambda r: r.signals["model"])
    baseline_sigma = pooled_array(lambda r: r.baseline_sigma)
    forecasts = {
        name: forecast_scores(
            np.asarray(QUANTILES),
            pooled_array(lambda r, n=name: r.predictives[n][0]),
            pooled_array(lambda r, n=name: r.predictives[n][1]),
            baseline_sigma,
            forward,
            cfg.horizon,
            cfg.n_boot,
        )
        for name in FORECASTERS
    }
    forecast = forecasts[MODEL]
    next_return = pooled_array(
        lambda r: r.sims["model_no_filter"].equity.pct_change().shift(-1).fillna(0.0).to_numpy()
    )
    filters = {
        name: flag_diagnostics(
            pooled_array(lambda r, n=name: r.flags[n]), next_return, np.abs(forward)
        )
        for name in ("model", "mahalanobis", "gmm")
    }
    comparisons = {
        f"{MODEL}_vs_{other}": sharpe_difference(
            returns[MODEL], returns[other], per_year, cfg.horizon, cfg.n_boot, cfg.seed
        )
        for other in (*FILTER_VARIANTS, *OTHER_MODES, *CONTROLS, *BASELINES)
        if other != "random"
    }
    comparisons[f"{MODEL}_vs_random"] = random_gap
    for value in comparisons.values():
        value["beats"] = beats(value)
    return {
        **(header or {}),
        "strategies": strategies,
        "ic": ic[MODEL],
        "ic_by_signal": ic,
        "pearson_ic_by_signal": pearson_ic,  # Grinold and Kahn's IC: no shared rank for ties
        "permutation_ic": permutation_ic(model_signal, forward, cfg.n_permutations, cfg.seed),
        "crps_model": forecast["crps_model"],
        "crps_baseline": forecast["crps_baseline"],
        "forecast": forecast,
        "forecast_by_model": forecasts,
        "ood_share": filters["model"]["ood_share"],
        "filters": filters,
        "comparisons": comparisons,
        "n_trials": len(MODEL_VARIANTS),
    }


def _mean_of_finite(values: list[float]) -> float:
    """Mean of the values that are not NaN; NaN (without a warning) when all are."""
    array = np.asarray(values, dtype=np.float64)
    finite = array[~np.isnan(array)]
    return float(finite.mean()) if finite.size else math.nan


def _random_summary(
    draws: list[SimResult], model_sharpe: float, per_year: float
) -> tuple[dict, dict]:
    """Mean metrics over the random draws, and the model against the draws' Sharpe spread.

    The comparison is a permutation test: model Sharpe minus the draws' mean, with the
    interval [SR_model - q97.5, SR_model - q2.5] of the draws (beats: above all but 2.5 %).
    """
    metrics = [_metrics(d, per_year) for d in draws]
    keys = [k for k, v in metrics[0].items() if isinstance(v, int | float)]
    out = {k: _mean_of_finite([m[k] for m in metrics]) for k in keys}
    sharpes = np.array([m["sharpe"] for m in metrics])
    low, high = np.quantile(sharpes, [0.025, 0.975])
    out.update(
        sharpe_draw_low=float(low),
        sharpe_draw_high=float(high),
        share_of_draws_beating_model=float(np.mean(sharpes >= model_sharpe)),
        draws=len(draws),
    )
    gap = {
        "difference": model_sharpe - float(sharpes.mean()),
        "low": model_sharpe - float(high),
        "high": model_sharpe - float(low),
    }
    return out, gap
