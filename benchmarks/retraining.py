"""Retraining on a market whose structure changes: a frozen model against retrained ones.

The market is ``catalogs.planted``'s ``reversal_to_momentum`` at the demo's edge size
(:func:`catalogs.planted.demo_preset`, hourly bars, 60 % annual volatility): after a volume
spike the next 3 bars give back the spike's whole return until the switch bar (half way by
default), and repeat it from the switch bar on. It is written into a catalog with the demo's
synthetic funding (``catalogs.funding.synthetic_funding``). The base model is trained on the
first ``--base-bars`` bars (all before the switch) with the production recipe
(:class:`scoremodel.pipeline.FitConfig`, edge mode's models, one torch thread; ``--epochs``
caps both networks' epochs, base and retrained). Then ``run_backtest.py``'s machinery (its
argument parser, :func:`run_backtest.prepared_run`, :func:`runtime.backtest.run_backtest`,
:func:`runtime.reports.write_report`; the run configurations are kept in
``WORK_DIR/configs``) backtests edge mode from the first bar after the base model's data to
the last bar, over the same bars, as:

- **frozen**: the base model throughout (no ``retrain:`` section);
- **retraining**: ``retrain: {every, window, min_bars, delay_bars: 1, validate: true}``, the
  same recipe, trained in the engine's thread;
- **retraining_unvalidated**: the same with ``validate: false`` (every candidate promoted).

Each run is split at the switch bar (before: bars closing before it; after: from it on) from
its per-bar ``diagnostics.parquet`` (mark-to-market equity, so after fees and funding):
return, Sharpe, Sortino and max drawdown with the summary's definitions
(:func:`runtime.report_figures.returns_statistics`: daily compounding, 365 days), fills, fees
and funding paid in each part, and the bars the risk rules reduced. For each retraining run,
every retraining (due bar, window, promoted or not and why, the bars its version decided)
with, over the bars each version decided: its PnL after costs, the frozen run's PnL over the
same bars, its fills, and the correlation of its forecast (the traded mean, ``signal``) with
the realised 6-bar log return.

**Recovery**: the first version trained after the switch (its retraining was due at or after
the switch bar) whose own bars (the ~``every`` it decided) made a positive PnL after fees and
funding *and* whose forecasts on those bars correlate positively with the realised return
(it trades the new structure, not luck). The report gives its retraining's number after the
switch, the days from the switch to its first decided bar and the PnL from there to the end;
``forecast_recovered`` is the first such version by the correlation alone.

    python -m benchmarks.retraining                  # 24,000 bars, every 30D, window 180D
    python -m benchmarks.retraining --window 365D --out /tmp/retraining-365d.json
    python -m benchmarks.retraining --bars 4000 --base-bars 1200 --every 10D --window 600 \\
        --min-bars 400 --epochs 2 --out /tmp/r.json  # a quick look (the smoke test's size)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from catalogs.catalog import read_bars_frame
from catalogs.catalog import write_bars
from catalogs.funding import DEFAULT_FUNDING_INTERVAL
from catalogs.funding import synthetic_funding
from catalogs.funding import write_funding
from catalogs.instruments import make_perpetual
from catalogs.planted import PlantedMarket
from catalogs.planted import demo_preset
from catalogs.planted import generate_planted
from cli_errors import UserError
from cli_errors import add_debug_flag
from cli_errors import run_cli
from output_paths import check_output_dir
from output_paths import check_output_file
from output_paths import claim_output_dir
from output_paths import is_owned
from output_paths import write_atomically
from runtime.report_figures import returns_statistics

BAR_TYPE = "BTCUSDT-LINEAR.BYBIT-1-HOUR-LAST-EXTERNAL"
SYMBOL = "BTCUSDT"
INTERVAL = "1h"
KIND = "reversal_to_momentum"
FROZEN = "frozen"
# the retraining runs: name -> retrain.validate
VARIANTS = {"retraining": True, "retraining_unvalidated": False}
VALIDATE_CHOICES = {
    "both": tuple(VARIANTS),
    "yes": ("retraining",),
    "no": ("retraining_unvalidated",),
}
# what a run writes into --work-dir
WORK_ENTRIES = ("catalog", "model", "configs", FROZEN, *VARIANTS)
KEEP_VERSIONS = 1_000  # every version stays on disk: the timeline reads their manifests
TRADED_HORIZON = 6  # bars: edge mode trades the conditional forecaster's longest horizon


class BenchmarkInputError(UserError, ValueError):
    """Settings the benchmark cannot run with."""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)
    args.command = " ".join(["python -m benchmarks.retraining", *argv])
    return run_cli(lambda: benchmark(args), debug=args.debug)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.retraining",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--bars", type=int, default=24_000, help="hourly bars (default 24000)")
    parser.add_argument(
        "--switch-fraction", type=float, default=0.5, help="where the switch bar is (0.5)"
    )
    parser.add_argument(
        "--base-bars", type=int, help="bars the base model trains on (default: a third)"
    )
    parser.add_argument("--every", default="30D", help="retrain.every (default 30D)")
    parser.add_argument("--window", default="180D", help="retrain.window (default 180D)")
    parser.add_argument("--min-bars", type=int, default=2_000, help="retrain.min_bars (2000)")
    parser.add_argument(
        "--validate",
        choices=tuple(VALIDATE_CHOICES),
        default="both",
        help="retrain.validate of the retraining run: yes (run `retraining`), no (run "
        "`retraining_unvalidated`: every candidate promoted) or both (default)",
    )
    parser.add_argument(
        "--epochs", type=int, help="epoch cap of both networks, base and retrained (default: "
        "the production recipe's own budget, early-stopped)"
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=7, help="market and funding seed (7)")
    parser.add_argument(
        "--work-dir", default="var/bench-retraining", help="catalog, model, configs, reports"
    )
    parser.add_argument("--out", default="docs/retraining.json", help="figures (and .md)")
    add_debug_flag(parser)
    return parser


# ----- the benchmark ---------------------------------------------------------------------------


def benchmark(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    base_bars = args.base_bars if args.base_bars is not None else args.bars // 3
    switch_bar = int(args.switch_fraction * args.bars)
    _check(args, base_bars, switch_bar)
    out = check_output_file(args.out, "--out", overwrite=True)
    markdown = check_output_file(out.with_suffix(".md"), "--out (its .md)", overwrite=True)
    work = fresh_work_dir(args.work_dir)
    seconds: dict[str, float] = {}

    clock = time.perf_counter()
    market = build_market(work / "catalog", args.bars, args.switch_fraction, args.seed)
    seconds["market"] = time.perf_counter() - clock
    print(f"market: {args.bars:,} {INTERVAL} bars of {KIND}, switch at {market.switch}")

    clock = time.perf_counter()
    base = train_base_model(work / "model", market.bars.iloc[:base_bars], args.epochs)
    seconds["base_model"] = time.perf_counter() - clock
    print(f"base model: {base_bars:,} bars, validated slope {base['validated_slope']:.3f}")

    start = market.bars.index[base_bars]
    settings: dict[str, dict | None] = {FROZEN: None}
    for name in VALIDATE_CHOICES[args.validate]:
        settings[name] = {
            "every": args.every,
            "window": args.window,
            "min_bars": args.min_bars,
            "delay_bars": 1,
            "validate": VARIANTS[name],
            "keep": KEEP_VERSIONS,
            **({"epochs": args.epochs} if args.epochs is not None else {}),
        }
    runs = {}
    for name, retrain in settings.items():
        config = write_run_config(work / "configs" / f"{name}.yaml", work, start, retrain)
        clock = time.perf_counter()
        runs[name] = backtest(config, work / name, market.switch)
        seconds[name] = time.perf_counter() - clock
        print(f"{name}: {seconds[name]:.0f} s")

    retrained = [name for name in runs if name != FROZEN]
    timelines = {
        name: versions_timeline(runs[name], runs[FROZEN], market.switch, work / name / "models")
        for name in retrained
    }
    results = {
        "benchmark": "retraining",
        "command": args.command,
        "market": {
            "kind": KIND,
            "preset": f'catalogs.planted.demo_preset("{INTERVAL}", "{KIND}")',
            "bars": args.bars,
            "interval": INTERVAL,
            "seed": args.seed,
            "first_bar": str(market.bars.index[0]),
            "last_bar": str(market.bars.index[-1]),
            "switch": str(market.switch),
            "switch_bar": switch_bar,
            "beta": demo_preset(INTERVAL, KIND).beta,
            "drift_bars": demo_preset(INTERVAL, KIND).drift_bars,
            "events_before": int(market.events.iloc[:switch_bar].sum()),
            "events_after": int(market.events.iloc[switch_bar:].sum()),
        },
        "base_model": base,
        "window": {
            "first_bar": str(start),
            "last_bar": str(market.bars.index[-1]),
            "bars_before_switch": switch_bar - base_bars,
            "bars_after_switch": args.bars - switch_bar,
            "days_before_switch": round((market.switch - start) / pd.Timedelta(days=1), 1),
            "days_after_switch": round(
                (market.bars.index[-1] - market.switch) / pd.Timedelta(days=1), 1
            ),
        },
        "retrain": {name: settings[name] for name in retrained},
        "runs": {name: run["figures"] for name, run in runs.items()},
        "retrainings": timelines,
        "recovery": {
            name: recovery(timelines[name], runs[name], runs[FROZEN], market.switch)
            for name in retrained
        },
        "definitions": DEFINITIONS,
        "machine": machine(),
    }
    seconds["total"] = time.perf_counter() - started
    results["seconds"] = {name: round(value, 1) for name, value in seconds.items()}
    text = report_table(results)
    write_atomically(out, json.dumps(results, indent=2, default=str) + "\n")
    write_atomically(markdown, text + "\n")
    print(text)
    print(f"wrote {out} and {markdown}")
    return 0


def machine() -> str:
    """The machine in a few words (CPU count; torch threads of a training are 1)."""
    import os
    import platform

    return f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def _check(args: argparse.Namespace, base_bars: int, switch_bar: int) -> None:
    if not 0.0 < args.switch_fraction < 1.0:
        raise BenchmarkInputError(f"--switch-fraction {args.switch_fraction} must be in (0, 1)")
    if args.bars < 2_000:
        raise BenchmarkInputError(f"--bars {args.bars} is too few; use at least 2000")
    if not 500 <= base_bars < switch_bar - 24:
        raise BenchmarkInputError(
            f"--base-bars {base_bars} must be at least 500 and end a day before the switch bar "
            f"{switch_bar} (the frozen and the retraining runs start after the base model's bars)"
        )
    if args.epochs is not None and args.epochs < 1:
        raise BenchmarkInputError(f"--epochs {args.epochs} must be at least 1")


def fresh_work_dir(path: str) -> Path:
    """The work directory, emptied of a previous run's entries (only a directory this program
    marked as its own; a backtest's report directory keeps its model versions, and a later
    run into it would resume from them)."""
    work = check_output_dir(path, "--work-dir")
    if work.is_dir() and is_owned(work):
        for name in WORK_ENTRIES:
            entry = work / name
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
    return claim_output_dir(work, "--work-dir")


def build_market(catalog: Path, bars: int, switch_fraction: float, seed: int) -> PlantedMarket:
    """The switching market in a catalog, with the demo's synthetic funding (every 8 h)."""
    config = dataclasses.replace(demo_preset(INTERVAL, KIND), switch_fraction=switch_fraction)
    market = generate_planted(bars, seed=seed, config=config)
    instrument = make_perpetual(SYMBOL)
    write_bars(catalog, market.bars, instrument, INTERVAL, round_prices=True)
    frame = read_bars_frame(catalog, BAR_TYPE)
    rates = synthetic_funding(frame, DEFAULT_FUNDING_INTERVAL, seed=seed)
    write_funding(catalog, rates, instrument.id.value, DEFAULT_FUNDING_INTERVAL)
    return market


def train_base_model(directory: Path, bars: pd.DataFrame, epochs: int | None) -> dict:
    """The production recipe (edge mode's models, one thread) on ``bars``; saved."""
    from scoremodel.pipeline import FitConfig
    from scoremodel.pipeline import fit_model
    from scoremodel.pipeline import save_model

    replace = dataclasses.replace
    defaults = FitConfig()
    train = replace(defaults.train, threads=1)
    conditional = replace(defaults.conditional, threads=1)
    if epochs is not None:
        train = replace(train, max_epochs=epochs)
        conditional = replace(conditional, max_epochs=epochs)
    config = replace(defaults, train=train, conditional=conditional, modes=("score", "edge"))
    clock = time.perf_counter()
    model = fit_model(bars, BAR_TYPE, config, progress=False)
    save_model(model, directory, overwrite=True)
    record = model.manifest["models"]["conditional"]
    return {
        "trained_from": str(bars.index[0]),
        "trained_to": str(bars.index[-1]),
        "bars": len(bars),
        "state_model_max_epochs": train.max_epochs,
        "forecaster_max_epochs": conditional.max_epochs,
        "forecaster_epochs_run": record["epochs_run"],
        "validated_slope": float(record["mean_shrinkage"][-1]),
        "seconds": round(time.perf_counter() - clock, 1),
    }


def write_run_config(path: Path, work: Path, start: pd.Timestamp, retrain: dict | None) -> Path:
    """A run configuration file (what ``run_backtest.py --config`` reads)."""
    lines = [
        "strategy:",
        f"  model_path: {(work / 'model').resolve()}",
        "  signal_mode: edge",
        "backtest:",
        f"  catalog: {(work / 'catalog').resolve()}",
        f"  start: '{start.isoformat()}'",
        "  tearsheet: false",
    ]
    if retrain is not None:
        lines += ["retrain:", *(f"  {key}: {_yaml(value)}" for key, value in retrain.items())]
    write_atomically(path, "\n".join(lines) + "\n")
    return path


def _yaml(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def backtest(config: Path, report_dir: Path, switch: pd.Timestamp) -> dict:
    """``python run_backtest.py --config CONFIG --report-dir REPORT_DIR``, in this process;
    the figures split at the switch, and what the timeline needs."""
    import run_backtest
    from runtime.backtest import run_backtest as run_engine
    from runtime.reports import format_summary
    from runtime.reports import write_report

    args = run_backtest._parser().parse_args(
        ["--config", str(config), "--report-dir", str(report_dir)]
    )
    run = run_backtest.prepared_run(args)
    outcome = run_engine(run)
    try:
        summary = write_report(outcome, run.backtest.report_dir)
        fills = fill_events(outcome.engine)
        funding = pd.Series(
            [p.paid for p in outcome.funding.payments] if outcome.funding else [],
            index=pd.to_datetime(
                [p.ts_ns for p in outcome.funding.payments] if outcome.funding else [], utc=True
            ),
            dtype=float,
        )
    finally:
        outcome.engine.dispose()
    print(format_summary(summary, report_dir))
    diagnostics = pd.read_parquet(report_dir / "diagnostics.parquet")
    starting = float(summary["starting_equity"])
    figures = {
        "whole": {
            **part_figures(diagnostics, fills, funding, starting),
            "halted": summary["halted"],
            "halt_reason": summary["halt_reason"],
            "first_halted_bar": _first(diagnostics.index[diagnostics["risk_status"] == "HALTED"]),
        },
    }
    before = diagnostics.index < switch
    last_before = diagnostics.index[before][-1] if before.any() else None
    split = last_before if last_before is not None else diagnostics.index[0] - pd.Timedelta(1)
    figures["before"] = part_figures(
        diagnostics[before], fills[fills.index <= split], funding[funding.index <= split], starting
    )
    figures["after"] = part_figures(
        diagnostics[~before],
        fills[fills.index > split],
        funding[funding.index > split],
        float(diagnostics["equity"][before].iloc[-1]) if before.any() else starting,
    )
    figures["report_dir"] = str(report_dir)
    figures["model_versions"] = len(summary["model_versions"])
    return {
        "figures": figures,
        "summary": summary,
        "diagnostics": diagnostics,
        "fills": fills,
        "funding": funding,
    }


def fill_events(engine: object) -> pd.DataFrame:
    """Every fill of the run: time, commission (USDT), quantity, the order's model tag."""
    rows = []
    for order in engine.cache.orders():
        tags = list(order.tags or [])
        for event in order.events:
            if type(event).__name__ == "OrderFilled":
                rows.append(
                    (
                        event.ts_event,
                        event.commission.as_double(),
                        event.last_qty.as_double(),
                        ",".join(tags),
                    )
                )
    frame = pd.DataFrame(rows, columns=["ts", "fee", "qty", "tags"])
    frame.index = pd.to_datetime(frame.pop("ts").to_numpy(dtype=np.int64), utc=True)
    return frame.sort_index()


def part_figures(
    diagnostics: pd.DataFrame, fills: pd.DataFrame, funding: pd.Series, starting: float
) -> dict:
    """One part of a run: figures of its equity (from ``starting``, the equity it began
    with), its fills, fees and funding."""
    if diagnostics.empty:
        return {"bars": 0}
    equity = diagnostics["equity"].astype(float)
    close = diagnostics["close"].astype(float)
    stats = returns_statistics(equity, starting)
    return {
        "first_bar": str(diagnostics.index[0]),
        "last_bar": str(diagnostics.index[-1]),
        "bars": len(diagnostics),
        "days": round(len(diagnostics) / 24, 1),
        "return": stats["total_return"],
        "pnl": float(equity.iloc[-1] - starting),
        "sharpe": stats["sharpe"],
        "sortino": stats["sortino"],
        "max_drawdown": stats["max_drawdown"],
        "fills": len(fills),
        "fees": float(fills["fee"].sum()),
        "funding_paid": float(funding.sum()),
        "bars_in_market": int((diagnostics["position_qty"] != 0).sum()),
        # the drawdown ladder (REDUCING), the daily stop or a halt limited the position
        "bars_risk_reduced": int((diagnostics["risk_status"] != "NORMAL").sum()),
        "price_return": float(close.iloc[-1] / close.iloc[0] - 1.0),
    }


def _first(index: pd.Index) -> str | None:
    return str(index[0]) if len(index) else None


# ----- the retraining timeline and recovery ----------------------------------------------------


def versions_timeline(
    retraining: dict, frozen: dict, switch: pd.Timestamp, registry: Path
) -> list[dict]:
    """Every version of a retraining run (the base model first), with the bars it decided,
    its PnL after costs there, the frozen run's PnL over the same bars, and its forecast's
    out-of-sample correlation with the realised traded-horizon return."""
    diagnostics = retraining["diagnostics"]
    frozen_equity = frozen["diagnostics"]["equity"].astype(float)
    equity = diagnostics["equity"].astype(float)
    starting = float(retraining["summary"]["starting_equity"])
    close = diagnostics["close"].astype(float)
    realised = np.log(close.shift(-TRADED_HORIZON) / close)
    fills = retraining["fills"]
    rows = []
    for number, version in enumerate(retraining["summary"]["model_versions"]):
        mine = diagnostics["model_version"] == version["id"]
        row = {
            "retraining": number,  # 0: the base model
            "id": version["id"],
            "due_bar": version.get("due_bar"),
            "due_after_switch": version.get("due_bar") is not None
            and pd.Timestamp(version["due_bar"]) >= switch,
            "trained_from": version["trained_from"],
            "trained_to": version["trained_to"],
            "promoted": version["promoted"],
            "reason": version["reason"],
            "first_bar": version.get("first_bar"),
            "last_bar": version.get("last_bar"),
            "bars_decided": int(mine.sum()),
            "validated_slope": validated_slope(registry, version["id"]),
            "block_slope": (version.get("metrics") or {}).get("candidate_slope"),
            "current_block_slope": (version.get("metrics") or {}).get("current_slope"),
        }
        if mine.any():
            stamps = diagnostics.index[mine]
            position = diagnostics.index.get_indexer(stamps)
            first, last = position[0], position[-1]
            before = float(equity.iloc[first - 1]) if first > 0 else starting
            frozen_before = float(frozen_equity.iloc[first - 1]) if first > 0 else starting
            signal = diagnostics["signal"].to_numpy()[position]
            target = realised.to_numpy()[position]
            usable = np.isfinite(target) & (signal != 0.0)
            row.update(
                {
                    "days_after_switch": round((stamps[0] - switch) / pd.Timedelta(days=1), 1),
                    "pnl": float(equity.iloc[last] - before),
                    "return": float(equity.iloc[last] / before - 1.0),
                    "frozen_pnl": float(frozen_equity.iloc[last] - frozen_before),
                    "fills": int(((fills.index > stamps[0] - _bar()) & (fills.index <= stamps[-1]))
                                 .sum()),
                    "bars_in_market": int((diagnostics["position_qty"].to_numpy()[position] != 0)
                                          .sum()),
                    "forecast_bars": int(usable.sum()),
                    "forecast_correlation": _correlation(signal[usable], target[usable]),
                }
            )  # fmt: skip
        rows.append(row)
    return rows


def _bar() -> pd.Timedelta:
    return pd.Timedelta(INTERVAL)


def _correlation(x: np.ndarray, y: np.ndarray) -> float | None:
    if len(x) < 10 or np.std(x) == 0.0 or np.std(y) == 0.0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def validated_slope(registry: Path, identity: str) -> float | None:
    """The version's calibrated mean slope beta (from its validation block) on the traded
    horizon, from its manifest in the run's registry (None for the base model)."""
    manifest = registry / "versions" / identity / "manifest.json"
    if not manifest.is_file():
        return None
    record = json.loads(manifest.read_text())["models"].get("conditional", {})
    shrinkage = record.get("mean_shrinkage")
    return float(shrinkage[-1]) if shrinkage else None


def recovery(timeline: list[dict], run: dict, frozen: dict, switch: pd.Timestamp) -> dict:
    """The first version trained after the switch that recovered the edge (module docstring),
    and the PnL of both runs from its first bar to the end."""
    after = [row for row in timeline if row["due_after_switch"]]
    found = {"definition": DEFINITIONS["recovery"], "retrainings_after_switch": len(after)}
    for key, test in (
        ("recovered", lambda r: r.get("pnl", 0.0) > 0.0 and (_positive(r))),
        ("forecast_recovered", _positive),
    ):
        hit = next((n for n, row in enumerate(after, 1) if row["bars_decided"] and test(row)), None)
        if hit is None:
            found[key] = None
            continue
        row = after[hit - 1]
        found[key] = {
            "retraining_after_switch": hit,
            "version": row["id"],
            "due_bar": row["due_bar"],
            "first_bar": row["first_bar"],
            "days_after_switch": row["days_after_switch"],
            "trained_from": row["trained_from"],
            "trained_to": row["trained_to"],
            "share_of_window_after_switch": _share_after(row, switch),
            "pnl": row["pnl"],
            "forecast_correlation": row["forecast_correlation"],
            "pnl_from_here_to_end": _pnl_from(run, row["first_bar"]),
            "frozen_pnl_from_here_to_end": _pnl_from(frozen, row["first_bar"]),
        }
    later = [row for row in after if row["bars_decided"]]
    found["versions_after_switch_with_positive_pnl"] = sum(r["pnl"] > 0 for r in later)
    found["versions_after_switch_that_decided"] = len(later)
    return found


def _pnl_from(run: dict, first_bar: str) -> float:
    """Equity change of a run from the bar before ``first_bar`` to its last bar."""
    equity = run["diagnostics"]["equity"].astype(float)
    position = equity.index.get_indexer([pd.Timestamp(first_bar)])[0]
    before = equity.iloc[position - 1] if position > 0 else run["summary"]["starting_equity"]
    return float(equity.iloc[-1] - before)


def _positive(row: dict) -> bool:
    value = row.get("forecast_correlation")
    return value is not None and value > 0.0


def _share_after(row: dict, switch: pd.Timestamp) -> float:
    first, last = pd.Timestamp(row["trained_from"]), pd.Timestamp(row["trained_to"])
    return round(max(0.0, (last - max(first, switch)) / (last - first)), 3)


DEFINITIONS = {
    "split": "before: the bars closing before the switch bar; after: from the switch bar on "
    "(fills and funding by time, so that each part's equity change contains its own costs)",
    "return": "equity change of the part over the equity it began with (mark-to-market, after "
    "fees and funding)",
    "sharpe": "runtime.report_figures.returns_statistics on the part's per-bar equity: per-bar "
    "returns compounded per UTC day, annualised with 365 days (summary.json's definition)",
    "fills": "fills of the part (each order fills once: taker execution)",
    "pnl": "per version: the equity change over the bars it decided (after fees and funding)",
    "forecast_correlation": "per version: Pearson correlation of its traded forecast (signal: "
    "the shrunk mean of the 6-bar log return) with the realised 6-bar log return, over the "
    "bars it decided with a non-zero forecast",
    "recovery": "the first version whose retraining was due at or after the switch bar, whose "
    "bars decided made a positive PnL after fees and funding and whose forecast correlates "
    "positively with the realised return there; its number among the retrainings after the "
    "switch, and the days from the switch bar to its first decided bar",
}


# ----- the report ------------------------------------------------------------------------------


def report_table(results: dict) -> str:
    """Markdown: the runs before / after the switch, each retraining timeline, recovery."""
    market, window, seconds = results["market"], results["window"], results["seconds"]
    base = results["base_model"]
    settings = next(iter(results["retrain"].values()), None) or {}
    common = {k: v for k, v in settings.items() if k not in ("validate", "keep")}
    lines = [
        f"Retraining benchmark: `{results['command']}`",
        "",
        f"Market: {market['bars']:,} {market['interval']} bars of planted `{market['kind']}` "
        f"(seed {market['seed']}), switch from reversal to momentum at {market['switch'][:16]} "
        f"(bar {market['switch_bar']:,}; {market['events_before']} / {market['events_after']} "
        f"volume-spike events before / after). Base model: {base['bars']:,} bars up to "
        f"{base['trained_to'][:16]} (validated slope {base['validated_slope']:.2f}). Backtest: "
        f"{window['first_bar'][:16]} .. {window['last_bar'][:16]}, "
        f"{window['days_before_switch']:g} days before and {window['days_after_switch']:g} "
        f"after the switch. Retraining runs: {_settings(common)}; `retraining` validates "
        "(promotes only a candidate not worse than the model in use), "
        "`retraining_unvalidated` promotes every candidate.",
        "",
        "| run | part | return | Sharpe | max DD | fills | fees | funding | PnL | "
        "bars risk-reduced |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, run in results["runs"].items():
        for part in ("before", "after", "whole"):
            f = run[part]
            if not f.get("bars"):
                continue
            lines.append(
                f"| {name} | {part} | {f['return']:+.1%} | {f['sharpe']:.2f} | "
                f"{f['max_drawdown']:.1%} | {f['fills']:,} | {f['fees']:,.0f} | "
                f"{f['funding_paid']:,.0f} | {f['pnl']:+,.0f} | "
                f"{f['bars_risk_reduced']:,} of {f['bars']:,} |"
            )
    for name, run in results["runs"].items():
        if run["whole"]["halted"]:
            lines += [
                "",
                f"{name} halted at {run['whole']['first_halted_bar']}: "
                f"{run['whole']['halt_reason']}",
            ]
    for name, timeline in results["retrainings"].items():
        lines += ["", f"**{name}** (validate: {results['retrain'][name]['validate']}):", ""]
        lines += timeline_table(timeline)
        not_promoted = [r for r in timeline if not r["promoted"]]
        if not_promoted:
            lines += ["", "Not promoted:", ""]
            lines += [f"- {row['retraining']}: {row['reason']}" for row in not_promoted]
        lines += ["", recovery_line(results["recovery"][name])]
    lines += [
        "",
        "Run time: "
        + ", ".join(f"{name} {value:.0f} s" for name, value in seconds.items())
        + f" ({results['machine']}).",
    ]
    return "\n".join(lines)


def timeline_table(timeline: list[dict]) -> list[str]:
    lines = [
        "| # | due | window | promoted | decided | days after switch | validated slope | "
        "forecast corr | PnL | frozen PnL, same bars | fills |",
        "|---:|---|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in timeline:
        decided = (
            f"{row['first_bar'][:10]} .. {row['last_bar'][:10]}" if row["bars_decided"] else "-"
        )
        lines.append(
            f"| {row['retraining']} | {(row['due_bar'] or 'base')[:10]} | "
            f"{row['trained_from'][:10]} .. {row['trained_to'][:10]} | "
            f"{'yes' if row['promoted'] else 'no'} | {decided} | "
            f"{_number(row.get('days_after_switch'), '{:+.0f}')} | "
            f"{_number(row['validated_slope'], '{:.2f}')} | "
            f"{_number(row.get('forecast_correlation'), '{:+.3f}')} | "
            f"{_number(row.get('pnl'), '{:+,.0f}')} | {_number(row.get('frozen_pnl'), '{:+,.0f}')}"
            f" | {row.get('fills', 0)} |"
        )
    return lines


def recovery_line(found: dict) -> str:
    hit = found.get("recovered")
    forecast = found.get("forecast_recovered")
    if hit is None:
        text = (
            f"Recovery: no version trained after the switch made a positive PnL with a "
            f"positively correlated forecast ({found['retrainings_after_switch']} retrainings "
            "after the switch)."
        )
    else:
        text = (
            f"Recovery: retraining {hit['retraining_after_switch']} after the switch (version "
            f"{hit['version']}, due {hit['due_bar'][:10]}, window {hit['trained_from'][:10]} .. "
            f"{hit['trained_to'][:10]}, {hit['share_of_window_after_switch']:.0%} of it after "
            f"the switch) is the first to trade the edge back: it decides from "
            f"{hit['days_after_switch']:.0f} days after the switch, PnL {hit['pnl']:+,.0f} "
            f"after costs, forecast correlation {hit['forecast_correlation']:+.3f}; from its "
            f"first bar to the end the run makes {hit['pnl_from_here_to_end']:+,.0f} (frozen "
            f"{hit['frozen_pnl_from_here_to_end']:+,.0f}); "
            f"{found['versions_after_switch_with_positive_pnl']} of the "
            f"{found['versions_after_switch_that_decided']} versions after the switch that "
            "decided bars made money."
        )
    if forecast is not None and (hit is None or forecast["version"] != hit["version"]):
        text += (
            f" The forecast alone recovers at retraining {forecast['retraining_after_switch']} "
            f"after the switch ({forecast['days_after_switch']:.0f} days after it)."
        )
    return text


def _settings(retrain: dict) -> str:
    return ", ".join(f"{key} {value}" for key, value in retrain.items())


def _number(value: float | None, spec: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return spec.format(value)


if __name__ == "__main__":
    raise SystemExit(main())
