"""Pooled summaries over test windows: strategy metrics, IC, CRPS, filters, comparisons.

Test windows are chained as one account (each starts with the previous one's final equity), so
pooled figures weigh every out-of-sample bar equally.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any
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
from policy.filters import Blocker
from scoremodel.density_rule import other_density_rule
from scoremodel.forecast import QUANTILES
from scoremodel.inference import ScoreModel

MODEL = "model"  # the run configuration's signal mode (edge: the conditional forecaster)
# the model with its density filter by the density rule the run does not trade (percentile
# when the run's is reliability, and the other way round; scoremodel.density_rule)
OTHER_RULE = "model_other_rule"
NO_FILTER = "model_no_filter"
# FoldRun.sims[GATED + flag key]: buy-and-hold made flat on the bars that filter flags (not a
# strategy of the tables: the Filters section's risk gate, filter_comparison)
GATED = "buy_and_hold_gated:"
# the model with its density filter but without the confidence filter (min_confidence 0): the
# confidence filter's yardstick in the Filters section
NO_CONFIDENCE = "model_no_confidence"
FILTER_VARIANTS = (NO_FILTER, "model_mahalanobis", "model_gmm", OTHER_RULE, NO_CONFIDENCE)
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
# The volatility yardsticks (evaluation.volatility) and ridge's mean with its training error:
# scored as forecasters only, never traded
YARDSTICKS = ("garch", "har", "ewma", "point_gauss")
FORECASTERS = (MODEL, *CONTROLS, *YARDSTICKS)  # scored by CRPS against the Gaussian rolling vol
# the forecasters whose predictive mean varies from bar to bar (GARCH's is h mu, HAR's and
# EWMA's 0): their IC is scored with their CRPS
MEAN_FORECASTERS = (MODEL, *CONTROLS, "point_gauss")


class SummaryConfig(Protocol):
    """The settings :func:`summarise` reads (an EvaluationConfig)."""

    horizon: int
    n_boot: int
    n_permutations: int
    seed: int
    policy: Any  # PolicySettings: the density rule and percentile name the filters


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
    # forecaster: its predictive mean, where it varies (its IC is scored beside its CRPS)
    means: dict[str, np.ndarray] = field(default_factory=dict)
    # per test bar: the model strategy's confidence filter blocked it (confidence_blocked)
    blocked_by_confidence: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))


def confidence_blocked(sim: SimResult, bars: int) -> np.ndarray:
    """Per bar of a test window, whether ``sim``'s policy blocked it for confidence (its
    decisions cover the closes before the last, while the account lasts)."""
    blocked = np.zeros(bars, dtype=bool)
    decided = [d.blocker == Blocker.CONFIDENCE for d in sim.decisions]
    blocked[: len(decided)] = decided
    return blocked


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
    signals = {name: pooled_array(lambda r, n=name: r.signals[n]) for name in IC_SIGNALS}

    def scores(name: str) -> dict:
        """forecast_scores of one forecaster; the IC of its mean is the IC table's where that
        signal is the same series (edge mode's model, ridge, the NLL MLP; point_gauss has
        ridge's mean), else computed here."""
        mean = pooled_array(lambda r: r.means[name]) if name in runs[0].means else None
        same = next(
            (
                s
                for s in IC_SIGNALS
                if mean is not None and np.array_equal(signals[s], mean, equal_nan=True)
            ),
            None,
        )
        out = forecast_scores(
            np.asarray(QUANTILES),
            pooled_array(lambda r: r.predictives[name][0]),
            pooled_array(lambda r: r.predictives[name][1]),
            baseline_sigma,
            forward,
            cfg.horizon,
            cfg.n_boot,
            mean=mean if same is None else None,
            seed=cfg.seed,
        )
        if same is not None:
            out.update(ic_spearman=ic[same], ic_pearson=pearson_ic[same])
        return out

    forecasts = {name: scores(name) for name in FORECASTERS}
    forecast = forecasts[MODEL]
    next_return = pooled_array(
        lambda r: r.sims[NO_FILTER].equity.pct_change().shift(-1).fillna(0.0).to_numpy()
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
        "filter_comparison": filter_comparison(
            chained,
            strategies,
            {key: chain([r.sims[GATED + key] for r in runs]) for key in runs[0].flags},
            {
                **{name: pooled_array(lambda r, n=name: r.flags[n]) for name in runs[0].flags},
                CONFIDENCE_FILTER: ~pooled_array(lambda r: r.blocked_by_confidence),
            },
            forward,
            next_return,
            cfg,
            per_year,
        ),
        "comparisons": comparisons,
        "n_trials": len(MODEL_VARIANTS),
    }


# ----- the Filters section: each filter against none --------------------------------------------

# The target a filter is held to (issue 24): it cuts the strategy's maximum drawdown by at least
# 20 % and costs at most 10 % of its Sharpe ratio, both against the same strategy unfiltered.
TARGET_DRAWDOWN_CUT = 0.20
TARGET_SHARPE_COST = 0.10
WORST_WINDOW_DAYS = 30


CONFIDENCE_FILTER = "confidence"  # the Filters section's name of the confidence filter


def filter_names(policy: Any) -> dict[str, tuple[str, str]]:
    """Each filter of the Filters section: (the strategy trading it, its flags' key in
    :attr:`FoldRun.flags`); ``none`` has no flags. The model's density filter appears once per
    rule: the run's rule is the ``model`` strategy, the other rule :data:`OTHER_RULE`. The
    confidence filter (:data:`CONFIDENCE_FILTER`) is the ``model`` strategy against
    :data:`NO_CONFIDENCE`; its flags are the bars it blocked."""
    rule = policy.density_rule
    return {
        f"density_{rule}": (MODEL, "model"),
        f"density_{other_density_rule(rule)}": (OTHER_RULE, OTHER_RULE),
        "mahalanobis": ("model_mahalanobis", "mahalanobis"),
        "gmm": ("model_gmm", "gmm"),
        CONFIDENCE_FILTER: (MODEL, CONFIDENCE_FILTER),
        "none": (NO_FILTER, ""),
    }


def worst_window(
    equity: pd.Series, days: int = WORST_WINDOW_DAYS
) -> tuple[float | None, str | None]:
    """The worst return over any ``days``-day span of ``equity`` (E_t / E_{t - days} - 1, E at
    or before t - days) and the close that ended it; (None, None) when the equity spans less."""
    if len(equity) < 2:
        return None, None
    span = pd.Timedelta(days=days)
    index = equity.index
    ends = index[index - span >= index[0]]
    if len(ends) == 0:
        return None, None
    values = equity.to_numpy(np.float64)
    start = index.searchsorted(ends - span, side="right") - 1
    end = index.searchsorted(ends)
    change = values[end] / values[start] - 1.0
    worst = int(np.argmin(change))
    return float(change[worst]), str(ends[worst])


def window_return(
    equity: pd.Series, end: str | None, days: int = WORST_WINDOW_DAYS
) -> float | None:
    """E_end / E_(end - days) - 1 (E at or before each time): ``equity`` over the same span as
    another's worst window; None without one."""
    if end is None or len(equity) < 2:
        return None
    index = equity.index
    stop = pd.Timestamp(end)
    start = index.searchsorted(stop - pd.Timedelta(days=days), side="right") - 1
    stop_at = index.searchsorted(stop, side="right") - 1
    if start < 0 or stop_at < 0:
        return None
    values = equity.to_numpy(np.float64)
    return float(values[stop_at] / values[start] - 1.0)


def filter_comparison(
    chained: dict[str, SimResult],
    metrics: dict[str, dict],
    gated: dict[str, SimResult],
    flags: dict[str, np.ndarray],
    forward: np.ndarray,
    next_return: np.ndarray,
    cfg: SummaryConfig,
    per_year: float,
) -> dict:
    """Per filter: the bars it flags and what followed them (the mean h-bar forward log return
    of the market and the unfiltered strategy's next-bar return, flagged vs familiar), and the
    strategy with the filter against the same strategy without one (Sharpe with its interval
    and the paired difference, maximum drawdown, the worst 30 days; the drawdown cut and the
    Sharpe cost, held to the target: a cut of at least 20 % at no more than 10 % of the
    Sharpe). ``buy_and_hold_gated``: the same for buy-and-hold made flat on the bars the filter
    flags (``gated``, by flag key), against buy-and-hold: the filter as a risk gate on a
    position that is always in the market, whatever the model trades. ``metrics``: each
    strategy's pooled metrics (:func:`summarise`'s)."""
    hold = chained["buy_and_hold"]
    gated = {**gated, CONFIDENCE_FILTER: hold}  # not a state filter: no gate of its own
    out = {}
    for name, (strategy, key) in filter_names(cfg.policy).items():
        familiar = flags[key] if key else np.ones(len(forward), dtype=bool)
        gate = gated[key] if key else hold
        base = NO_CONFIDENCE if key == CONFIDENCE_FILTER else NO_FILTER
        without = chained[base]
        out[name] = {
            "strategy": strategy,
            "bars": len(familiar),
            "flagged_bars": int((~familiar).sum()),
            "flagged_share": float((~familiar).mean()) if len(familiar) else math.nan,
            "forward_return_bp_flagged": _mean_bp(forward, ~familiar),
            "forward_return_bp_familiar": _mean_bp(forward, familiar),
            "unfiltered_return_bp_flagged": _mean_bp(next_return, ~familiar),
            "unfiltered_return_bp_familiar": _mean_bp(next_return, familiar),
            **_with_and_without(
                chained[strategy], metrics[strategy], without, metrics[base], cfg, per_year
            ),
            "buy_and_hold_gated": _with_and_without(
                gate, _metrics(gate, per_year), hold, metrics["buy_and_hold"], cfg, per_year
            ),
        }
        if not key:  # without a filter: the yardstick, not a candidate
            out[name].update(not_worse=None, meets_target=None)
        if key in ("", CONFIDENCE_FILTER):
            out[name]["buy_and_hold_gated"].update(not_worse=None, meets_target=None)
    return {
        "traded": f"density_{cfg.policy.density_rule}",
        "density_percentile": cfg.policy.density_percentile,
        "min_confidence": cfg.policy.min_confidence,
        "target": {"drawdown_cut": TARGET_DRAWDOWN_CUT, "sharpe_cost": TARGET_SHARPE_COST},
        "worst_window_days": WORST_WINDOW_DAYS,
        "filters": out,
    }


def _with_and_without(
    sim: SimResult,
    m: dict,
    without: SimResult,
    base: dict,
    cfg: SummaryConfig,
    per_year: float,
) -> dict:
    """A strategy with a filter (``sim``, its metrics ``m``) against it without (``without``,
    ``base``): Sharpe, drawdown, the worst 30 days, the paired Sharpe difference, the drawdown
    cut and the Sharpe cost, and whether they meet the target."""
    worst, worst_end = worst_window(sim.equity)
    base_worst, base_worst_end = worst_window(without.equity)
    difference = sharpe_difference(
        sim.returns.to_numpy(), without.returns.to_numpy(), per_year, cfg.horizon,
        cfg.n_boot, cfg.seed,
    )  # fmt: skip
    cut = 1.0 - m["max_drawdown"] / base["max_drawdown"] if base["max_drawdown"] > 0 else None
    cost = (base["sharpe"] - m["sharpe"]) / abs(base["sharpe"]) if base["sharpe"] != 0 else None
    return {
        "sharpe": m["sharpe"],
        "sharpe_low": m["sharpe_low"],
        "sharpe_high": m["sharpe_high"],
        "total_return": m["total_return"],
        "max_drawdown": m["max_drawdown"],
        "trades": m["trades"],
        "worst_30d": worst,
        "worst_30d_end": worst_end,
        "sharpe_without": base["sharpe"],
        "max_drawdown_without": base["max_drawdown"],
        "trades_without": base["trades"],
        "worst_30d_without": base_worst,
        "worst_30d_end_without": base_worst_end,
        # the filtered strategy over the unfiltered one's worst 30 days (the same span)
        "during_worst_30d_without": window_return(sim.equity, base_worst_end),
        "sharpe_difference": difference,
        "not_worse": bool(difference["high"] >= 0.0),
        "drawdown_cut": cut,
        "sharpe_cost": cost,
        "meets_target": None
        if cut is None or cost is None
        else bool(cut >= TARGET_DRAWDOWN_CUT and cost <= TARGET_SHARPE_COST),
    }


def _mean_bp(values: np.ndarray, where: np.ndarray) -> float:
    """Mean of the finite ``values`` at ``where``, in basis points (NaN where there are none)."""
    chosen = np.asarray(values, dtype=np.float64)[np.asarray(where, dtype=bool)]
    chosen = chosen[np.isfinite(chosen)]
    return 1e4 * float(chosen.mean()) if len(chosen) else math.nan


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
