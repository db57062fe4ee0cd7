"""report.md (tables + a plain-language verdict), evaluation.json and the figures."""

from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np

from evaluation.folds import span_words
from evaluation.plots import figure_captions
from evaluation.plots import write_plots
from evaluation.summary import BASELINES
from evaluation.summary import FILTER_VARIANTS
from evaluation.summary import MODEL
from evaluation.summary import MODEL_VARIANTS
from evaluation.summary import YARDSTICKS
from evaluation.summary import FoldRun
from output_paths import claim_output_dir
from output_paths import write_atomically
from scoremodel.training import TrainConfig

CLAIMED_SHARPE = (0.8, 1.5)  # the chapter's promise
OUT_OPTION = "--out"  # how errors name the report directory


def write_report(
    directory: str | Path, results: dict, runs: list[FoldRun], scenarios: dict
) -> Path:
    """Write evaluation.json, the PNG figures and report.md into ``directory`` (checked and
    marked as this program's by :func:`output_paths.claim_output_dir`; each file replaced
    atomically)."""
    directory = claim_output_dir(directory, OUT_OPTION)
    results = {**results, "verdict": verdict(results)}
    write_atomically(directory / "evaluation.json", json.dumps(jsonable(results), indent=1))
    figures = write_plots(directory, results, runs, scenarios)
    write_atomically(directory / "report.md", markdown(results, figures))
    return directory


def jsonable(value: object) -> object:
    """numpy scalars to Python, NaN/inf to null, tuples to lists (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# ----- verdict ---------------------------------------------------------------------------------


def verdict(results: dict) -> list[str]:
    """Plain-language conclusions, each derived from a rule stated in the report."""
    o = results["overall"]
    s = o["strategies"]
    m = s[MODEL]
    hold = s["buy_and_hold"]
    lines = [
        f"Strategy: out of sample, after fees and funding ({_execution_words(results)}), the "
        f"score-model strategy returned {m['total_return']:+.1%} over {len(results['folds'])} "
        f"test windows, net Sharpe {m['sharpe']:.2f} (95 % CI {m['sharpe_low']:.2f} .. "
        f"{m['sharpe_high']:.2f}), max drawdown {m['max_drawdown']:.1%}, fees {m['fees']:.1%} "
        f"and funding {_funding(m)} of starting equity (Sharpe before fees and funding "
        f"{m['sharpe_before_fees']:.2f}). Buy-and-hold: Sharpe {hold['sharpe']:.2f}, return "
        f"{hold['total_return']:+.1%}, fees {hold['fees']:.1%}, funding {_funding(hold)}."
    ]
    lines.append(_baseline_line(o))
    lines.append(
        f"Luck: probabilistic Sharpe ratio {m['psr']:.2f} (P[true Sharpe > 0]); deflated Sharpe "
        f"ratio {m['dsr']:.2f} given the {o['n_trials']} variants of the model evaluated here "
        f"({_dsr_word(m['dsr'])})."
    )
    lines.append(_ic_line(o))
    lines.append(_forecast_line(o))
    if YARDSTICKS[0] in o.get("forecast_by_model", {}):
        lines.append(_yardstick_line(o))
    lines.append(_filter_line(o))
    if "filter_comparison" in o:
        lines.append(_filters_verdict_line(o["filter_comparison"]))
    lines.append(_scenario_line(results["scenarios"]))
    lines.append(_claim_line(m))
    return lines


def _execution_words(results: dict) -> str:
    """The execution style and fee, and whether funding was charged, in a few words."""
    costs = results.get("costs")
    if costs is None:
        return "taker execution, no funding"
    style = f"{costs['execution']} execution at {costs['fee']:.3%} per side"
    return style + ("; funding charged" if costs["funding_charged"] else "; funding not charged")


def _funding(m: dict) -> str:
    """Funding paid (positive) or received (negative) in units of starting equity."""
    funding = m.get("funding")
    return "not charged" if funding is None else f"{funding:+.2%}"


def _interval_word(low: float, high: float, positive: str, negative: str, neutral: str) -> str:
    if low > 0:
        return positive
    if high < 0:
        return negative
    return neutral


def _baseline_line(o: dict) -> str:
    parts = []
    for name in BASELINES:
        c = o["comparisons"][f"{MODEL}_vs_{name}"]
        word = _interval_word(
            c["low"], c["high"], "beats", "loses to", "is not distinguishable from"
        )
        parts.append(f"{word} {name} ({c['difference']:+.2f} [{c['low']:+.2f}, {c['high']:+.2f}])")
    random = o["strategies"]["random"]
    return (
        "Against baselines (Sharpe difference, 95 % paired block bootstrap) the model "
        + "; ".join(parts)
        + f". {random['share_of_draws_beating_model']:.0%} of {random['draws']} random strategies "
        "with the model's own holding periods reached the model's Sharpe or more."
    )


def _dsr_word(dsr: float) -> str:
    if dsr >= 0.95:
        return "significant at 5 % after deflation"
    return "not significant after deflation for the number of strategies tried"


def _ic_line(o: dict) -> str:
    ic, perm = o["ic"], o["permutation_ic"]
    word = _interval_word(
        ic["low"],
        ic["high"],
        "positive and significant",
        "negative and significant (the signal points the wrong way)",
        "not distinguishable from zero",
    )
    guard = "passes" if abs(perm["mean"]) <= perm["bound"] else "FAILS (investigate leakage)"
    return (
        f"Signal: Spearman IC of the score signal with the next-h-bar return {ic['value']:+.4f} "
        f"(95 % CI {ic['low']:+.4f} .. {ic['high']:+.4f}, n = {ic['n']:,}): {word}. Leakage guard "
        f"(future returns shuffled): IC {perm['mean']:+.4f}, within +-{perm['bound']:.4f}: {guard}."
    )


def _forecast_line(o: dict) -> str:
    f = o["forecast"]
    word = _interval_word(
        f["crps_skill_low"],
        f["crps_skill_high"],
        "better than",
        "worse than",
        "not distinguishable from",
    )
    pit = f["pit_model"]
    calibrated = "calibrated" if pit["ks"] <= pit["ks_critical_5pct"] else "not calibrated"
    cover = f["coverage_model"]
    return (
        f"Forecast: CRPS {f['crps_model']:.5f} vs {f['crps_baseline']:.5f} for a Gaussian with "
        f"rolling volatility, skill {f['crps_skill']:+.1%} (95 % CI {f['crps_skill_low']:+.1%} .. "
        f"{f['crps_skill_high']:+.1%}): {word} the baseline. PIT KS {pit['ks']:.3f} (5 % critical "
        f"{pit['ks_critical_5pct']:.3f}, {calibrated}; the baseline's "
        f"{f['pit_baseline']['ks']:.3f}); central intervals cover "
        + ", ".join(f"{v:.0%} (nominal {float(k):.0%})" for k, v in cover.items())
        + "."
    )


def _yardstick_line(o: dict) -> str:
    """Every forecaster's pooled CRPS skill; the model's rank among them."""
    by_model = o["forecast_by_model"]
    skill = {name: f["crps_skill"] for name, f in by_model.items()}
    ranked = sorted(skill, key=lambda name: -skill[name] if math.isfinite(skill[name]) else 1e9)
    parts = [
        f"{name} {_f(f['crps_skill'], '+.1%')} [{_f(f['crps_skill_low'], '+.1%')}, "
        f"{_f(f['crps_skill_high'], '+.1%')}]"
        for name, f in by_model.items()
    ]
    return (
        "Forecasters against the Gaussian rolling volatility (CRPS skill, pooled, 95 % CI): "
        + "; ".join(parts)
        + f". Best: {ranked[0]}; the model ranks {ranked.index(MODEL) + 1} of {len(ranked)}."
    )


def _filter_line(o: dict) -> str:
    flt = o["filters"]["model"]
    parts = []
    for name in FILTER_VARIANTS:
        c = o["comparisons"][f"{MODEL}_vs_{name}"]
        word = _interval_word(
            c["low"], c["high"], "beats", "loses to", "is not distinguishable from"
        )
        parts.append(f"{word} {name} ({c['difference']:+.2f} [{c['low']:+.2f}, {c['high']:+.2f}])")
    return (
        f"Density filter: flags {flt['ood_share']:.1%} of test bars; the unfiltered strategy made "
        f"{flt['return_bp_flagged']:+.2f} bp/bar on flagged and {flt['return_bp_familiar']:+.2f} "
        f"bp/bar on familiar bars; |forward return| is {flt['forward_abs_ratio']:.2f}x larger on "
        "flagged bars. With the score filter the strategy " + "; ".join(parts) + "."
    )


def filter_label(name: str, comparison: dict) -> str:
    """A filter's name in words: ``density_percentile`` -> "density (percentile rule, p5)"."""
    if name == "density_percentile":
        return f"density (percentile rule, p{comparison['density_percentile']:g})"
    if name == "density_reliability":
        return "density (reliability rule)"
    if name == "confidence":
        return f"confidence (min_confidence {comparison['min_confidence']:g}; vs 0)"
    return name


MIN_FILTER_TRADES = 30  # fewer trades without the filter: its comparison says little


def _filters_verdict_line(comparison: dict) -> str:
    """The traded filter against none, held to the target, for the model strategy and as a
    risk gate on buy-and-hold, in a few plain sentences."""
    name = comparison["traded"]
    f = comparison["filters"][name]
    target, days = comparison["target"], comparison["worst_window_days"]
    goal = (
        f"a drawdown cut of at least {target['drawdown_cut']:.0%} at no more than "
        f"{target['sharpe_cost']:.0%} of the Sharpe"
    )
    if f["flagged_bars"] == 0:
        flags = "flags no test bar, so the strategy with it is the strategy without it"
    else:
        flags = (
            f"flags {f['flagged_share']:.1%} of test bars, followed by a mean h-bar forward "
            f"return of {_f(f['forward_return_bp_flagged'], '+.1f')} bp (familiar bars "
            f"{_f(f['forward_return_bp_familiar'], '+.1f')} bp)"
        )
    line = (
        f"Filters: the traded filter, {filter_label(name, comparison)}, {flags}. The model "
        f"strategy with it: {_against(f, goal, days)}"
    )
    if f["trades_without"] < MIN_FILTER_TRADES:
        line += (
            f" (the unfiltered strategy made {f['trades_without']} trades: too few for this "
            "comparison to say much)"
        )
    gate = f["buy_and_hold_gated"]
    return line + f". As a risk gate on buy-and-hold: {_against(gate, goal, days)}."


def _against(f: dict, goal: str, days: int) -> str:
    """With against without, and the target's verdict, in words."""
    d = f["sharpe_difference"]
    if f["meets_target"] is None:
        held = f"{goal} cannot be judged: without the filter no drawdown or a Sharpe of 0"
    else:
        held = f"{'meets' if f['meets_target'] else 'does NOT meet'} the target ({goal})"
    return (
        f"max drawdown {f['max_drawdown']:.1%} with it, {f['max_drawdown_without']:.1%} without "
        f"(cut {_f(f['drawdown_cut'], '+.0%')}); Sharpe {f['sharpe']:.2f} with, "
        f"{f['sharpe_without']:.2f} without (cost {_f(f['sharpe_cost'], '+.0%')}; difference "
        f"{d['difference']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}], "
        f"{'not worse' if f['not_worse'] else 'worse'}); worst {days} days "
        f"{_f(f['worst_30d'], '+.1%')} with, {_f(f['worst_30d_without'], '+.1%')} without "
        f"(ended {(f['worst_30d_end_without'] or 'n/a')[:10]}; "
        f"{_f(f['during_worst_30d_without'], '+.1%')} with the filter over those days): {held}"
    )


def _scenario_line(sc: dict) -> str:
    ks = sc["states"]["ks"]
    median = {k: float(np.median(list(v.values()))) for k, v in ks.items()}
    corr = sc["states"]["correlation_error"]
    fr = sc["forward_returns"]
    return (
        f"Scenarios: median per-feature KS against held-out states {median['score_model']:.3f} "
        f"for score-model samples, {median['gaussian']:.3f} for a fitted Gaussian, "
        f"{median['training_data']:.3f} for the training data itself (critical "
        f"{sc['states']['ks_critical_5pct']:.3f}); correlation error "
        f"{corr['score_model']:.2f} / {corr['gaussian']:.2f} / {corr['training_data']:.2f}. "
        f"Inpainted h-bar forward returns: 90 % bands cover {fr['coverage_90']:.0%} "
        f"(a correct model: {fr['coverage_90_expected']:.0%}); stressed states' 95 % VaR "
        f"{fr['stress_var95_sampled']:+.2%} sampled vs {fr['stress_var95_realised']:+.2%} realised."
    )


def _claim_line(m: dict) -> str:
    low, high = m["sharpe_low"], m["sharpe_high"]
    if high < CLAIMED_SHARPE[0]:
        word = "not supported: the whole 95 % interval lies below it"
    elif low > CLAIMED_SHARPE[1]:
        word = "exceeded (the whole interval lies above it)"
    elif low >= CLAIMED_SHARPE[0]:
        word = "consistent with the measurement"
    else:
        word = "not demonstrated: the 95 % interval also includes Sharpe ratios far below it"
    return (
        f"The chapter's promise of Sharpe {CLAIMED_SHARPE[0]}-{CLAIMED_SHARPE[1]} is {word} "
        f"(measured {m['sharpe']:.2f}, 95 % CI {low:.2f} .. {high:.2f})."
    )


# ----- markdown ------------------------------------------------------------------------------


def markdown(results: dict, figures: list[str]) -> str:
    cfg = results["config"]
    lines = [
        f"# Walk-forward evaluation: {results['source']}",
        "",
        f"{results['bars']:,} bars of {results['bar_interval']} ({results['first_bar'][:16]} .. "
        f"{results['last_bar'][:16]} UTC), {_folds_phrase(cfg)}; written "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC in {results['seconds']:.0f} s.",
        "",
        "## Verdict",
        "",
        *(f"- {line}" for line in results["verdict"]),
        "",
        *_setup(results),
        *_strategy_table(results["overall"]),
        *_costs_table(results["overall"]),
        *_per_fold_sharpe(results),
        *_comparison_table(results["overall"]),
        *_ic_table(results),
        *_forecast_table(results),
        *_forecast_comparison(results),
        *_filters_section(results),
        *_filter_table(results),
        *_scenario_tables(results["scenarios"]),
        "## Figures",
        "",
        *_figures(results, figures),
        *_definitions(),
    ]
    return "\n".join(lines) + "\n"


def _figures(results: dict, figures: list[str]) -> list[str]:
    captions = figure_captions(results)
    return [
        line for name in figures for line in (f"![{name}]({name})", "", f"*{captions[name]}*", "")
    ]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
    ]


def _folds_phrase(cfg: dict) -> str:
    retrain = cfg.get("retrain")
    if retrain is None:
        return f"{cfg['n_folds']} {cfg['scheme']} folds"
    return f"{cfg['n_folds']} folds of the retrain schedule (every {span_words(retrain['every'])})"


def _folds_setup(cfg: dict, train: dict) -> list[str]:
    """The Setup's bullets on the folds: walk-forward folds, or a retraining schedule's."""
    retrain = cfg.get("retrain")
    if retrain is None:
        return [
            f"- Folds: {cfg['scheme']} walk-forward, purge {cfg['purge']} bars between training "
            f"and test (>= max(label horizon h = {cfg['horizon']}, feature warm-up)), embargo "
            f"{cfg['embargo']} bars after each test window (>= h, so test windows share no "
            "label).",
            f"- Each fold trains its own score and forecast models and normalisers with "
            f"`fit_model` on its training bars only (internal chronological split "
            f"{cfg['fractions']}, early stopping on its own validation block): hidden "
            f"{train['hidden']} x {train['n_blocks']} blocks, at most {train['max_epochs']} "
            f"epochs (patience {train['patience']}; `train` uses {TrainConfig().max_epochs}), "
            f"batch {train['batch_size']}, lr {train['learning_rate']}, EMA "
            f"{train['ema_decay']}, seed {train['seed']}.",
        ]
    window = (
        "every bar from the first"
        if retrain["window"] == "expanding"
        else f"the last {span_words(retrain['window'])}"
    )
    validate = (
        "promoted only when not worse than the model in use (`scoremodel.retrain.compare`: "
        "CRPS and calibrated slope of the traded horizon on the window's most recent bars it "
        "did not train on); a candidate not promoted leaves the model in use trading its "
        "fold's window"
        if retrain["validate"]
        else "every candidate promoted (retrain.validate: false)"
    )
    epochs = (
        f"at most {retrain['epochs']} epochs (retrain.epochs)"
        if retrain["epochs"] is not None
        else f"at most {train['max_epochs']} epochs (retrain.epochs unset: --epochs)"
    )
    drift = (
        " Retrainings on drift alerts (on_drift) are not modelled." if retrain["on_drift"] else ""
    )
    return [
        f"- Folds: the run configuration's retrain schedule, one fold per retraining the "
        f"strategy makes: at the first bar of each period of {span_words(retrain['every'])} "
        f"(a calendar grid from the UNIX epoch) a model is trained on {window} up to that "
        f"bar (at least {retrain['min_bars']} bars, else that retraining waits) and decides from "
        f"{retrain['delay_bars']} bar(s) later until the next retraining's model does. Test "
        f"windows are adjacent (embargo 0); no training label reaches a test bar (each model's "
        f"labels are computed from its window's bars, which end before its first decision; "
        f"purge {cfg['purge']} bars). Each test window is simulated on its own (flat at its "
        "start and end, a fresh risk state), where the strategy holds its position and risk "
        f"state through a model swap.{drift}",
        f"- Each retraining trains the score, forecast and conditional models with `fit_model` "
        f"on its window only, as the strategy retrains (split {cfg['fractions']}, early "
        f"stopping on its own validation block): hidden {train['hidden']} x "
        f"{train['n_blocks']} blocks, {epochs}, {retrain['threads']} thread(s), batch "
        f"{train['batch_size']}, lr {train['learning_rate']}, EMA {train['ema_decay']}, seed "
        f"{train['seed']}; the first candidate is promoted (no model before it), later ones "
        f"{validate}. The controls (ridge, NLL MLP) are trained on each fold's window.",
    ]


def _deciding_model(fold: dict) -> str:
    if fold["promoted"]:
        return f"{fold['model']} (promoted)"
    return f"{fold['model']} (candidate {fold['candidate']} not promoted)"


def _setup(results: dict) -> list[str]:
    cfg, train = results["config"], results["config"]["train"]
    sim, execution = cfg["policy"], cfg["execution"]
    retrain = cfg.get("retrain") is not None
    rows = [
        [
            str(f["fold"]),
            _span(f["train_first"], f["train_last"], f["train"]),
            _span(f["test_first"], f["test_last"], f["test"]),
            f"{f['best_epoch'] + 1}/{f['epochs_run']}",
            *([_deciding_model(f)] if retrain else []),
        ]
        for f in results["folds"]
    ]
    header = ["fold", "training window (bars)", "test window (bars)", "best epoch"]
    if retrain:
        header = [*header, "model deciding the test window"]
    return [
        "## Setup (fixed before the run; nothing is tuned on test windows)",
        "",
        *_folds_setup(cfg, train),
        f"- Trading rules: the strategy's policy ({results.get('policy_source', 'defaults')}): "
        f"{_density_rule_words(sim)}, "
        "min confidence "
        f"{sim['min_confidence']}, {sim['consistency_bars']} consistent bars, target volatility "
        f"{sim['target_annual_vol']:.0%}, max leverage {sim['max_leverage']}, no-trade band "
        f"{sim['no_trade_band']:.0%}, drawdown ladder {sim['reduce_drawdown']:.0%} -> halt at "
        f"{sim['max_drawdown']:.0%}, daily loss stop {sim['daily_loss_limit']:.0%}, max notional "
        f"{sim['max_notional'] or 'none'}, resume after halt {sim['resume_after_halt']} "
        f"(cooldown {sim['halt_cooldown_hours']:g} h); {_execution_rule(execution)}; each "
        f"test window starts flat with {execution['starting_balance']:,.0f} USDT and ends flat "
        "(a market order at the taker fee). "
        "Every decision is made by `policy.decision.Policy`, the code the strategy runs; the "
        "cost-aware (edge) policy prices a round trip at the fee of the execution style.",
        f"- Funding: {results.get('costs', {}).get('funding', 'not charged')}.",
        "- Simplifications vs the Nautilus backtest: no partial fills, no slippage or latency, "
        "no queue for limits (tests/test_evaluation_vs_backtest.py checks that the simulator "
        "makes the backtest's decisions and lands within 0.1 % of its final equity on the "
        "demo's window).",
        '- "A beats B" (fixed in advance): the pooled net Sharpe difference A - B has a 95 % '
        "paired block-bootstrap interval above 0; filters are compared as the model strategy "
        "with each filter. Everything else is reported, not used to pick.",
        f"- Annualisation: {results['annualisation']} (N = {results['bars_per_year']:,.0f}; "
        f"sqrt(N) = {results['bars_per_year'] ** 0.5:,.0f}, so a small but steady loss per bar, "
        "e.g. fees, shows as a large negative Sharpe).",
        f"- Strategies tried (N = {len(MODEL_VARIANTS)} for the deflated Sharpe, the model's "
        "variants; controls and baselines are yardsticks, not candidates): "
        + ", ".join(MODEL_VARIANTS)
        + ".",
        "",
        *_table(header, rows),
    ]


def _density_rule_words(policy: dict) -> str:
    """The run's density filter in words (its rule, :mod:`scoremodel.density_rule`)."""
    if policy.get("density_rule", "percentile") == "reliability":
        return (
            "density filter by the reliability rule (the log-density below which each fold "
            "model's forecaster lost skill on its validation block; none: it flags nothing)"
        )
    return f"density filter at the {policy['density_percentile']:g}th training percentile"


def _execution_rule(execution: dict) -> str:
    if execution.get("style", "taker") == "maker":
        tick = execution["price_tick"]
        where = f"{tick:g} from that close on the passive side" if tick else "at that close"
        return (
            f"maker execution: a decision on a bar's close rests a post-only limit {where}, "
            "filled only by a later bar trading through it (at the limit or a better open), "
            "maker fee "
            f"{execution['maker_fee']:.3%}, no slippage, cancelled unfilled after "
            f"{execution['maker_timeout_bars']} bar(s)"
        )
    return (
        "taker execution: decisions on a bar's close fill at the next bar's open; taker fee "
        f"{execution['taker_fee']:.3%} on every position change"
    )


def _span(first: str, last: str, bars: list[int]) -> str:
    return f"{first[:16]} .. {last[:16]} ({bars[1] - bars[0]:,})"


def _ci(
    d: dict, fmt: str = "+.4f", value: str = "value", low: str = "low", high: str = "high"
) -> str:
    return f"{_f(d[value], fmt)} [{_f(d[low], fmt)}, {_f(d[high], fmt)}]"


def _f(x: float | None, fmt: str = ".2f") -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, fmt)


def _strategy_table(o: dict) -> list[str]:
    rows = []
    for name, m in o["strategies"].items():
        rows.append(
            [
                name,
                f"{_f(m['sharpe'])} [{_f(m['sharpe_low'])}, {_f(m['sharpe_high'])}]",
                _f(m["sharpe_before_fees"]),
                _f(m["sortino"]),
                _f(m["total_return"], "+.1%"),
                _f(m["max_drawdown"], ".1%"),
                _f(m["turnover"], ",.0f"),
                _f(m["fees"], ".1%"),
                _f(m["trades"], ",.0f"),
                f"{_f(m['hit_rate'], '.1%')} [{_f(m['hit_rate_low'], '.1%')}, "
                f"{_f(m['hit_rate_high'], '.1%')}]",
                _f(m["psr"]),
                _f(m["dsr"]),
            ]
        )
    header = ["strategy", "Sharpe [95 % CI]", "before fees", "Sortino", "return", "max DD"]
    header += ["turnover/yr"]
    header += ["fees", "trades", "hit rate [Wilson 95 %]", "PSR", "DSR"]
    return [
        "## Strategies, all test windows chained",
        "",
        'Net of fees and funding; "before fees" is before fees and funding.',
        "",
        *_table(header, rows),
    ]


def _costs_table(o: dict) -> list[str]:
    """Every strategy's Sharpe after and before its costs, fees and funding apart, and its
    fills by liquidity side with the maker limits that never filled."""
    rows = [
        [
            name,
            _f(m["sharpe"]),
            _f(m["sharpe_before_fees"]),
            _f(m["fees"], ".2%"),
            _funding(m),
            f"{_f(m.get('fills_maker'), ',.0f')} / {_f(m.get('fills_taker'), ',.0f')}",
            _f(m.get("unfilled"), ",.0f"),
        ]
        for name, m in o["strategies"].items()
    ]
    header = ["strategy", "Sharpe after fees and funding", "before both", "fees", "funding"]
    header += ["fills maker / taker", "maker limits unfilled"]
    return [
        "## Costs: fees and funding (pooled, in units of starting equity)",
        "",
        "Funding: positive paid, negative received. random: means over the draws.",
        "",
        *_table(header, rows),
    ]


def _per_fold_sharpe(results: dict) -> list[str]:
    folds = results["folds"]
    names = list(folds[0]["strategies"])
    rows = [
        [name, *(_f(f["strategies"][name]["sharpe"]) for f in [*folds, results["overall"]])]
        for name in names
    ]
    header = ["Sharpe", *(f"fold {f['fold']}" for f in folds), "pooled"]
    return ["## Net Sharpe per fold", "", *_table(header, rows)]


def _comparison_table(o: dict) -> list[str]:
    rows = [
        [
            name,
            _f(c["difference"]),
            f"[{_f(c['low'])}, {_f(c['high'])}]",
            "yes" if c["beats"] else "no",
        ]
        for name, c in o["comparisons"].items()
    ]
    header = ["comparison", "Sharpe difference", "95 % interval", "model beats it"]
    return [
        "## Does the model beat the alternatives? (pooled, paired block bootstrap)",
        "",
        *_table(header, rows),
    ]


def _ic_table(results: dict) -> list[str]:
    summaries = [*results["folds"], results["overall"]]
    labels = [f"fold {f['fold']}" for f in results["folds"]] + ["pooled"]
    names = list(summaries[0]["ic_by_signal"])
    rows = [
        [
            label,
            *(_ci(s["ic_by_signal"][n]) for n in names),
            _ci(s["permutation_ic"], value="mean"),
        ]
        for label, s in zip(labels, summaries, strict=True)
    ]
    pearson = results["overall"]["pearson_ic_by_signal"]
    rows.append(["pooled, Pearson IC", *(_ci(pearson[n]) for n in names), ""])
    return [
        "## Signal quality: Spearman IC vs the next-h-bar return [95 % block-bootstrap CI]",
        "",
        *_table(["window", *names, "model, shuffled returns [95 % of shuffles]"], rows),
        "",
        "Pearson IC (last row): the correlation of forecast and return, which compares a "
        "forecast that is 0 on most bars with a noisy one on the same scale (Spearman gives "
        "tied forecasts one shared rank).",
    ]


def _forecast_table(results: dict) -> list[str]:
    summaries = [*results["folds"], results["overall"]]
    labels = [f"fold {f['fold']}" for f in results["folds"]] + ["pooled"]
    rows = []
    for label, s in zip(labels, summaries, strict=True):
        f = s["forecast"]
        cover = f["coverage_model"]
        rows.append(
            [
                label,
                _f(f["crps_model"], ".5f"),
                _f(f["crps_baseline"], ".5f"),
                f"{_f(f['crps_skill'], '+.1%')} [{_f(f['crps_skill_low'], '+.1%')}, "
                f"{_f(f['crps_skill_high'], '+.1%')}]",
                f"{_f(f['pit_model']['ks'], '.3f')} / {_f(f['pit_baseline']['ks'], '.3f')}",
                " / ".join(f"{v:.0%}" for v in cover.values()),
                _f(f["reliability"]["brier"], ".4f"),
            ]
        )
    header = ["window", "CRPS model", "CRPS Gaussian vol", "skill [95 % CI]", "PIT KS model / base"]
    header += ["coverage " + " / ".join(f"{float(k):.0%}" for k in cover), "Brier P(up)"]
    return ["## Forecast quality (h-bar forward log return)", "", *_table(header, rows)]


def _forecast_comparison(results: dict) -> list[str]:
    """Every forecaster of ``forecast_by_model`` pooled: CRPS, skill, IC, PIT, coverage; then
    each one's skill per fold."""
    by_model = results["overall"].get("forecast_by_model", {})
    if not by_model:
        return []
    levels = ("0.5", "0.8", "0.9")

    def row(name: str, f: dict, side: str = "model") -> list[str]:
        cover = f.get(f"central_coverage_{side}") or {}
        skill = (
            f"{_f(f['crps_skill'], '+.1%')} [{_f(f['crps_skill_low'], '+.1%')}, "
            f"{_f(f['crps_skill_high'], '+.1%')}]"
            if side == "model"
            else "0 (reference)"
        )
        ic = [
            _ci(f[k]) if side == "model" and f.get(k) else "" for k in ("ic_spearman", "ic_pearson")
        ]
        return [
            name,
            _f(f[f"crps_{side}"], ".5f"),
            skill,
            *ic,
            _f(f[f"pit_{side}"]["ks"], ".3f"),
            " / ".join(_f(cover.get(k), ".1%") for k in levels),
        ]

    rows = [row(name, f) for name, f in by_model.items()]
    rows.append(row("Gaussian rolling vol (baseline)", by_model[MODEL], "baseline"))
    header = ["forecaster", "CRPS", "skill vs Gaussian vol [95 %]", "Spearman IC [95 %]"]
    header += ["Pearson IC [95 %]", "PIT KS", "coverage 50 / 80 / 90 %"]
    critical = by_model[MODEL]["pit_model"]["ks_critical_5pct"]
    folds = results["folds"]
    per_fold = [
        [
            name,
            *(
                _f(f.get("forecast_by_model", {}).get(name, {}).get("crps_skill"), "+.1%")
                for f in folds
            ),
            _f(f_all["crps_skill"], "+.1%"),
        ]
        for name, f_all in by_model.items()
    ]
    return [
        "## Forecasters compared (h-bar forward log return, pooled over the test windows)",
        "",
        *_table(header, rows),
        f"n = {by_model[MODEL]['n']:,} bars; PIT KS 5 % critical value {critical:.3f}. garch: "
        "GARCH(1, 1)-t refit per fold on its training bars, the h-bar variance summed from the "
        "filtered one-bar forecasts, a Student-t with the fitted nu; har: HAR-RV in logs "
        "(daily, weekly, monthly realised variance), Gaussian; ewma: RiskMetrics lambda 0.94, "
        "Gaussian; point_gauss: ridge's mean with its training residual std, Gaussian. "
        "Coverage: share of outcomes inside the central 50 / 80 / 90 % interval; IC only where "
        "the mean varies.",
        "",
        *_fits_line(folds),
        *_table(["CRPS skill", *(f"fold {f['fold']}" for f in folds), "pooled"], per_fold),
    ]


def _fits_line(folds: list[dict]) -> list[str]:
    """The yardsticks' fits per fold: GARCH's nu and alpha + beta, HAR's day and slopes."""
    fits = [f.get("yardstick_fits") for f in folds]
    if not all(fits):
        return []
    garch = ", ".join(
        f"{_f(x['garch']['nu'])} / {_f(x['garch']['persistence'], '.4f')}"
        + ("" if x["garch"]["converged"] else " (not converged)")
        for x in fits
    )
    har = ", ".join(
        "/".join(_f(c) for c in x["har"]["coef"][1:]) + f" (smearing {_f(x['har']['smearing'])})"
        for x in fits
    )
    return [
        f"Fits per fold: GARCH nu / alpha + beta {garch}; HAR-RV day = "
        f"{fits[0]['har']['day_bars']} bars, slopes on log daily/weekly/monthly RV {har}.",
        "",
    ]


def _filters_section(results: dict) -> list[str]:
    """## Filters: each filter (the model's density by each rule, Mahalanobis, GMM, none) with
    the bars it flags, what followed them, and the strategy with it against none; then the
    same filters as a risk gate on buy-and-hold."""
    comparison = results["overall"].get("filter_comparison")
    if comparison is None:
        return []
    target = comparison["target"]
    days = comparison["worst_window_days"]
    rows, gate_rows = [], []
    for name, f in comparison["filters"].items():
        traded = " (traded)" if name == comparison["traded"] else ""
        label = filter_label(name, comparison) + traded
        flagged = f"{_f(f['flagged_share'], '.1%')} ({f['flagged_bars']:,})"
        forward = (
            f"{_f(f['forward_return_bp_flagged'], '+.1f')} / "
            f"{_f(f['forward_return_bp_familiar'], '+.1f')}"
        )
        rows.append([label, flagged, forward, *_against_cells(f, name)])
        if name != "confidence":  # not a state filter: it gates the model's trades only
            gate_rows.append([label, flagged, *_against_cells(f["buy_and_hold_gated"], name)])
    tail = ["Sharpe [95 % CI]", "vs none [95 % CI]", "max DD", "DD cut", "Sharpe cost"]
    tail += [f"worst {days} days (ended)", f"over none's worst {days} days", "trades"]
    tail += ["target met"]
    header = ["filter", "flagged (bars)", "fwd return bp flagged / familiar", *tail]
    return [
        "## Filters",
        "",
        "The model strategy with each in-distribution filter and without one (none), all test "
        "windows chained. Flagged: bars the filter calls unfamiliar (the strategy is flat "
        "there). fwd return: mean h-bar forward log return of the market on flagged and on "
        'familiar bars. "vs none": the paired Sharpe difference with the strategy without a '
        "filter; DD cut = 1 - max DD / max DD without; Sharpe cost = (Sharpe without - Sharpe) "
        f"/ |Sharpe without|. The confidence filter is compared with the same strategy at "
        "min_confidence 0 (its density filter kept); its flagged bars are those it blocked. "
        f"Target: a DD cut of at least {target['drawdown_cut']:.0%} at a "
        f"Sharpe cost of at most {target['sharpe_cost']:.0%}.",
        "",
        *_table(header, rows),
        "The same filters as a risk gate on buy-and-hold (long 1x, flat on the bars the filter "
        "flags, fees paid on every switch), against buy-and-hold (none): does the filter keep "
        "a position that is always in the market out of the crashes?",
        "",
        *_table(["filter", "flagged (bars)", *tail], gate_rows),
        *_reliability_lines(results),
    ]


def _against_cells(f: dict, name: str) -> list[str]:
    d = f["sharpe_difference"]
    none = name == "none"
    return [
        f"{_f(f['sharpe'])} [{_f(f['sharpe_low'])}, {_f(f['sharpe_high'])}]",
        ""
        if none
        else f"{_f(d['difference'], '+.2f')} [{_f(d['low'], '+.2f')}, {_f(d['high'], '+.2f')}]",
        _f(f["max_drawdown"], ".1%"),
        "" if none else _f(f["drawdown_cut"], "+.0%"),
        "" if none else _f(f["sharpe_cost"], "+.0%"),
        f"{_f(f['worst_30d'], '+.1%')} ({(f['worst_30d_end'] or 'n/a')[:10]})",
        _f(f["during_worst_30d_without"], "+.1%"),
        _f(f["trades"], ",.0f"),
        "" if none else _target_word(f),
    ]


def _target_word(f: dict) -> str:
    if f["meets_target"] is None:
        return "n/a (no drawdown without)"
    return "yes" if f["meets_target"] else "no"


def _reliability_lines(results: dict) -> list[str]:
    """Per fold: what the reliability rule found on the fold model's validation block."""
    lines = []
    for fold in results["folds"]:
        found = fold.get("density_reliability")
        label = f"fold {fold['fold']}"
        if found is None:
            lines.append(
                f"- {label}: no reliability measurement (a model without a conditional "
                "forecaster keeps the percentile rule)"
            )
            continue
        if found["threshold"] is None:
            what = f"no threshold, the reliability filter flags nothing ({found['reason']})"
        else:
            what = (
                f"threshold {found['threshold']:.2f}, the {_f(found['training_percentile'], '.1f')}"
                f"th training percentile ({found['unreliable_bins']} unreliable decile(s))"
            )
        skill = ", ".join(_f(x, "+.1%") for x in found["bin_skill"])
        measured = (
            f"; CRPS skill per decile of validation log-density (lowest first) {skill}, upper "
            f"half {_f(found['reference_skill'], '+.1%')} ({found['rows']:,} validation rows)"
            if skill
            else ""
        )
        lines.append(f"- {label}: {what}{measured}")
    if not lines:
        return []
    return [
        "Reliability rule, per fold (each fold model's validation block; a decile is "
        "unreliable when its skill minus the upper half's has a 95 % block-bootstrap interval "
        "below 0, walking up from the lowest, at most 3):",
        "",
        *lines,
        "",
    ]


def _filter_table(results: dict) -> list[str]:
    rows = []
    for f in [*results["folds"], results["overall"]]:
        label = f"fold {f['fold']}" if isinstance(f.get("fold"), int) else "pooled"
        for name, d in f["filters"].items():
            rows.append(
                [
                    label,
                    name,
                    _f(d["ood_share"], ".1%"),
                    _f(d["return_bp_flagged"], "+.2f"),
                    _f(d["return_bp_familiar"], "+.2f"),
                    _f(d["forward_abs_ratio"], ".2f"),
                ]
            )
    header = ["window", "filter", "flagged", "bp/bar flagged", "bp/bar familiar", "|fwd| ratio"]
    return [
        "## Density filter diagnostics (unfiltered model strategy, next-bar return)",
        "",
        *_table(header, rows),
    ]


def _scenario_tables(sc: dict) -> list[str]:
    states = sc["states"]
    names = list(states["ks"]["score_model"])
    rows = [[n, *(_f(states["ks"][s][n], ".3f") for s in states["ks"])] for n in names]
    rows.append(
        [
            "correlation error (Frobenius)",
            *(_f(v, ".2f") for v in states["correlation_error"].values()),
        ]
    )
    fr = sc["forward_returns"]
    return [
        f"## Scenarios (fold {sc['fold']} model vs its held-out test states)",
        "",
        f"{states['n_samples']:,} predictor-corrector samples vs {states['n_heldout']:,} held-out "
        f"states; 5 % critical KS value {states['ks_critical_5pct']:.3f}.",
        "",
        *_table(["KS per feature", *states["ks"]], rows),
        f"Inpainted forward returns: KS {fr['ks']:.3f} (critical {fr['ks_critical_5pct']:.3f}), "
        f"std {fr['std_sampled']:.4f} sampled vs {fr['std_realised']:.4f} realised, 90 % band "
        f"coverage {fr['coverage_90']:.0%} (correct model {fr['coverage_90_expected']:.0%}), "
        f"stressed states ({fr['stress_states']}, top 10 % volatility) 95 % VaR "
        f"{fr['stress_var95_sampled']:+.2%} sampled vs {fr['stress_var95_realised']:+.2%} "
        "realised.",
        "",
    ]


def _definitions() -> list[str]:
    return [
        "## Definitions",
        "",
        "- Sharpe = mean / std of per-bar net returns x sqrt(N), N = bars per 365.25-day year "
        "(the market trades 24/7); Sortino uses the downside deviation sqrt(mean(min(r, 0)^2)); "
        "CI from the Mertens (2002) standard error sqrt((1 - g3 SR + (g4 - 1)/4 SR^2)/(T - 1)). "
        "The backtest report (summary.json, tearsheet.html) compounds bars per UTC day and "
        "annualises with sqrt(365); the two agree when bar returns are serially uncorrelated.",
        "- Fees and funding: every net figure pays the fee of the execution style on each "
        "position change (taker: filled at the next bar's open; maker: at the limit when a "
        "later bar trades through it) and, where the catalog holds funding rates, funding at "
        "each funding time: position x the last close at or before it x rate (a long pays a "
        'positive rate, a short receives it), the rule of the Nautilus backtest. "Before fees" '
        "adds both back.",
        "- PSR = Phi((SR - 0) sqrt(T - 1) / sqrt(1 - g3 SR + (g4 - 1)/4 SR^2)) (Bailey & Lopez de "
        "Prado 2012); DSR = PSR against SR_0 = sqrt(V[SR_n]) ((1 - gamma) Phi^-1(1 - 1/N) + gamma "
        "Phi^-1(1 - 1/(N e))) over the N strategies of this report (2014).",
        '- "A beats B": the pooled Sharpe difference\'s 95 % paired moving-block bootstrap '
        "interval lies above 0 (blocks of max(h, n^(1/3)) bars). Filters are compared the same "
        "way (the model strategy with each filter); the filter diagnostics show the unfiltered "
        "strategy's next-bar return and |h-bar forward return| on flagged vs familiar bars.",
        "- Density rules (scoremodel/density_rule.py): percentile = flag states below the "
        "density_percentile of training log-densities; reliability = flag states below the "
        "log-density where the forecaster's CRPS skill against the rolling-volatility Gaussian, "
        "per decile of its validation block's log-density, falls significantly below its skill "
        "in the upper half (none: flags nothing). model_other_rule trades the rule the run "
        "does not. Worst 30 days = min over closes t of E_t / E_(t - 30 days) - 1 of the chained "
        "equity.",
        "- IC = Spearman correlation of the signal at t with log(c_{t+h}/c_t); the interval is a "
        "moving-block bootstrap (labels overlap by h - 1 bars). Leakage guard: the same IC after "
        "shuffling the forward returns must lie within 3/sqrt(n - 1) of 0.",
        "- Hit rate = share of bars held in the market with positive P&L before fees (Wilson "
        "interval). Turnover = traded notional / equity per year. Fees in units of the starting "
        "equity.",
        "- CRPS = 2 int_0^1 pinball_tau(y - Q(tau)) dtau with Q interpolated through the model's "
        "quantiles in normal scores (exact for Gaussians); the baseline is N(0, h s^2), s the std "
        "of the last W one-bar returns. Skill = 1 - CRPS_model / CRPS_baseline. PIT = F(y). "
        "Every forecaster is scored through its quantiles at the model's levels (5, 25, 50, 75, "
        "95 %), so the 80 % interval and the tails use the same interpolation for all.",
        "- Yardsticks (evaluation/volatility.py), each fit on its fold's training bars only and "
        "forecasting at t from bars up to t: garch = GARCH(1, 1) with Student-t innovations "
        "(arch), variance filtered with the fitted parameters, h-bar variance = the sum of the h "
        "one-bar forecasts, mean h mu; har = OLS of log next-h-bar realised variance on the logs "
        "of the daily (D = one day of bars), weekly and monthly realised variance, smeared back "
        "to E[RV], N(0, RV); ewma = N(0, h sigma^2), sigma^2 the RiskMetrics EWMA (lambda 0.94) "
        "of squared one-bar returns; point_gauss = N(ridge mean, s^2), s the std of ridge's "
        "training residuals of the raw h-bar return.",
        "- random = the model's own target path with the sign of each holding period flipped by a "
        "fair coin (same time in market, sizes and holding periods); its row is the mean over the "
        "draws, and the model is compared with the spread of the draws' Sharpe ratios "
        "(difference to their mean, interval from their 2.5-97.5 % quantiles).",
        "",
    ]
