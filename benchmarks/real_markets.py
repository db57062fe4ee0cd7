"""Real markets: every shared perpetual walk-forward, the model against the volatility
yardsticks and the controls, and edge mode after fees and funding against buy-and-hold.

    python -m benchmarks.real_markets                       # ../shared/data/real, every market
    python -m benchmarks.real_markets FOLDER --markets LTCUSDT,BCHUSDT --horizons 6 --workers 2
    python -m benchmarks.real_markets --horizons 6 --folds 3   # other options go to the evaluation

For each ``<SYMBOL>_<interval>_binance-usdm-perp.csv`` in FOLDER (``1h`` or ``5m``) the bars go
into a ParquetDataCatalog of their own under ``--work`` with the real commands a user runs
(``python -m catalogs import-csv --symbol S --round-prices`` and, where
``<SYMBOL>_funding_binance-usdm-perp.csv`` exists, ``import-funding``: the evaluation then
charges real funding), then ``python -m evaluation --catalog ... --horizon h`` runs with the
default policy and folds, for h = 1, 6, 24 (hourly) and 1, 12, 48 (five-minute) unless
``--horizons`` says otherwise. From each run's ``evaluation.json`` it keeps, per market and
horizon: every forecaster's CRPS skill against the rolling-volatility Gaussian with its 95 %
interval, its Pearson and Spearman IC, central 50/80/90 % coverage and PIT KS; edge mode and
buy-and-hold after fees and funding; and the Filters section (each filter against none).
Writes ``--out`` (JSON) and the same path with ``.md``, and prints the run time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from output_paths import write_atomically

FORECASTERS = ("model", "garch", "har", "ewma", "point_gauss", "ridge", "nll_mlp")
YARDSTICKS = ("garch", "har", "ewma", "point_gauss")
HORIZONS = {"1h": (1, 6, 24), "5m": (1, 12, 48)}
INTERVALS = {"1h": ("1h", "1-HOUR"), "5m": ("5min", "5-MINUTE")}
FILE = re.compile(r"^(?P<symbol>[A-Z0-9]+)_(?P<interval>1h|5m)_binance-usdm-perp\.csv$")


def markets(folder: Path, only: set[str] | None) -> list[tuple[str, str, Path]]:
    """(symbol, interval, bars file) of every market in ``folder`` (``only``: these symbols)."""
    found = []
    for path in sorted(folder.iterdir()):
        match = FILE.match(path.name)
        if match and (only is None or match["symbol"] in only):
            found.append((match["symbol"], match["interval"], path))
    return found


def run(command: list[str]) -> None:
    """Run one of the project's commands; its own one-line error on failure."""
    done = subprocess.run([sys.executable, *command], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:3])} failed: {done.stderr.strip()[-500:]}")


def build_catalog(symbol: str, interval: str, bars: Path, work: Path) -> tuple[Path, str, bool]:
    """The market's own catalog (bars, and funding where the folder has it): its path, the bar
    type and whether funding was imported. Reused when it exists."""
    catalog = work / f"{symbol}_{interval}"
    step, spec = INTERVALS[interval]
    bar_type = f"{symbol}-LINEAR.BYBIT-{spec}-LAST-EXTERNAL"
    funding = bars.parent / f"{symbol}_funding_binance-usdm-perp.csv"
    if not catalog.exists():
        common = ["--catalog", str(catalog), "--symbol", symbol]
        run(["-m", "catalogs", "import-csv", str(bars), *common, "--interval", step,
             "--round-prices"])  # fmt: skip
        if funding.is_file():
            run(["-m", "catalogs", "import-funding", str(funding), *common])
    return catalog, bar_type, funding.is_file()


def evaluate(
    catalog: Path, bar_type: str, horizon: int, out: Path, workers: int, extra: list[str]
) -> dict:
    """``python -m evaluation`` on the market at ``horizon`` (``extra``: more of its options);
    its evaluation.json."""
    command = ["-m", "evaluation", "--catalog", str(catalog), "--bar-type", bar_type,
               "--horizon", str(horizon), "--out", str(out), *extra]  # fmt: skip
    if workers > 1:
        command += ["--workers", str(workers)]
    run(command)
    return json.loads((out / "evaluation.json").read_text())


def figures(results: dict) -> dict:
    """What the benchmark keeps of one evaluation."""
    overall = results["overall"]
    forecasts = overall["forecast_by_model"]
    strategies = overall["strategies"]
    keep = ("sharpe", "sharpe_low", "sharpe_high", "total_return", "max_drawdown", "fees",
            "funding", "trades")  # fmt: skip
    comparison = overall.get("filter_comparison", {})
    return {
        "forecasters": {
            name: {
                "crps_skill": f["crps_skill"],
                "crps_skill_low": f["crps_skill_low"],
                "crps_skill_high": f["crps_skill_high"],
                "ic_pearson": f.get("ic_pearson"),
                "ic_spearman": f.get("ic_spearman"),
                "coverage": f["central_coverage_model"],
                "pit_ks": f["pit_model"]["ks"],
                "pit_ks_critical": f["pit_model"]["ks_critical_5pct"],
            }
            for name, f in forecasts.items()
            if name in FORECASTERS
        },
        "strategies": {
            name: {k: strategies[name].get(k) for k in keep} for name in ("model", "buy_and_hold")
        },
        "filters": {
            name: {
                "flagged_share": f["flagged_share"],
                "sharpe": f["sharpe"],
                "sharpe_without": f["sharpe_without"],
                "sharpe_difference": f["sharpe_difference"],
                "max_drawdown": f["max_drawdown"],
                "max_drawdown_without": f["max_drawdown_without"],
                "worst_30d": f["worst_30d"],
                "worst_30d_without": f["worst_30d_without"],
                "trades_without": f["trades_without"],
                "meets_target": f["meets_target"],
                "buy_and_hold_gated": {
                    k: f["buy_and_hold_gated"][k]
                    for k in ("sharpe", "max_drawdown", "worst_30d", "meets_target")
                },
            }
            for name, f in comparison.get("filters", {}).items()
        },
        "filter_settings": {
            key: comparison.get(key) for key in ("traded", "density_percentile", "min_confidence")
        },
        "test_span": [results["folds"][0]["test_first"], results["folds"][-1]["test_last"]],
    }


def finite(value: object) -> object:
    """``value`` with every non-finite float as None (strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def verdict(entry: dict) -> str:
    """Is the model's CRPS skill above the best yardstick's, beyond both intervals?"""
    f = entry["forecasters"]
    best = max(YARDSTICKS, key=lambda name: f[name]["crps_skill"])
    model, other = f["model"], f[best]
    if model["crps_skill_low"] > other["crps_skill_high"]:
        return f"model above {best}"
    if model["crps_skill_high"] < other["crps_skill_low"]:
        return f"model below {best}"
    return f"model and {best} overlap"


def markdown(record: dict) -> str:
    """The record as tables: forecasters per market and horizon, then strategies and filters."""
    lines = [
        "# Real markets (`python -m benchmarks.real_markets`)",
        "",
        f"{record['command']}; {record['seconds']:.0f} s on {record['cpus']} cores.",
        "CRPS skill against the rolling-volatility Gaussian [95 % CI]; coverage of the central "
        "50/80/90 % intervals; Pearson IC.",
        "",
        "| market | h | " + " | ".join(FORECASTERS) + " | coverage (model) | PIT KS (model) "
        "| Pearson IC (model) | verdict |",
        "|---|---|" + "---|" * (len(FORECASTERS) + 4),
    ]
    for entry in record["runs"]:
        f = entry["forecasters"]
        cells = [
            f"{100 * f[n]['crps_skill']:+.1f} [{100 * f[n]['crps_skill_low']:+.1f}, "
            f"{100 * f[n]['crps_skill_high']:+.1f}]"
            if n in f
            else "n/a"
            for n in FORECASTERS
        ]
        m = f["model"]
        cover = " / ".join(f"{100 * v:.1f}" for v in m["coverage"].values())
        ic = m["ic_pearson"]
        ic_text = (
            "n/a"
            if not ic or ic["value"] is None
            else f"{ic['value']:+.3f} [{ic['low']:+.3f}, {ic['high']:+.3f}]"
        )
        lines.append(
            f"| {entry['market']} | {entry['horizon']} | " + " | ".join(cells)
            + f" | {cover} | {m['pit_ks']:.3f} | {ic_text} | {entry['verdict']} |"
        )  # fmt: skip
    lines += [
        "",
        "Edge mode and buy-and-hold after fees and funding (test windows chained); the traded "
        "filters against none (max drawdown, Sharpe):",
        "",
        "| market | h | funding | edge Sharpe [CI] | edge return | trades | buy-and-hold Sharpe "
        "| buy-and-hold return | density filter flags | confidence: Sharpe with / without |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in record["runs"]:
        s, hold = entry["strategies"]["model"], entry["strategies"]["buy_and_hold"]
        filters = entry["filters"]
        density = next((v for k, v in filters.items() if k.startswith("density_")), None)
        flags = "n/a" if density is None else f"{100 * density['flagged_share']:.1f} %"
        confidence = filters.get("confidence")
        with_without = (
            "n/a"
            if confidence is None
            else f"{confidence['sharpe']:.2f} / {confidence['sharpe_without']:.2f}"
        )
        lines.append(
            f"| {entry['market']} | {entry['horizon']} | {'yes' if entry['funding'] else 'no'} "
            f"| {s['sharpe']:.2f} [{s['sharpe_low']:.2f}, {s['sharpe_high']:.2f}] "
            f"| {100 * s['total_return']:+.1f} % | {s['trades']:,.0f} | {hold['sharpe']:.2f} "
            f"| {100 * hold['total_return']:+.1f} % "
            f"| {flags} | {with_without} |"
        )  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args, extra = _parser().parse_known_args(argv)  # the rest goes to python -m evaluation
    folder = Path(args.folder)
    if not folder.is_dir():
        print(f"error: {folder} is not a folder of market CSVs; give FOLDER", file=sys.stderr)
        return 2
    only = set(args.markets.split(",")) if args.markets else None
    found = markets(folder, only)
    if not found:
        print(f"error: no <SYMBOL>_<1h|5m>_binance-usdm-perp.csv in {folder}", file=sys.stderr)
        return 2
    out = Path(args.out)
    if not out.parent.is_dir() or not os.access(out.parent, os.W_OK):
        print(f"error: --out {out}: its folder is missing or not writable", file=sys.stderr)
        return 2
    work = Path(args.work)
    started = time.perf_counter()
    runs = []
    for symbol, interval, path in found:
        catalog, bar_type, funding = build_catalog(symbol, interval, path, work / "catalogs")
        horizons = [int(h) for h in args.horizons.split(",")] if args.horizons else None
        for horizon in horizons or HORIZONS[interval]:
            clock = time.perf_counter()
            report = work / "reports" / f"{symbol}_{interval}_h{horizon}"
            entry = {"market": f"{symbol} {interval}", "horizon": horizon, "funding": funding}
            stored = report / "evaluation.json"
            results = (
                json.loads(stored.read_text())
                if args.reuse and stored.is_file()
                else evaluate(catalog, bar_type, horizon, report, args.workers, extra)
            )
            entry |= figures(results)
            entry["verdict"] = verdict(entry)
            entry["seconds"] = time.perf_counter() - clock
            print(f"{entry['market']} h={horizon}: {entry['verdict']} ({entry['seconds']:.0f} s)")
            runs.append(entry)
    record = {
        "command": "python -m benchmarks.real_markets " + " ".join(argv or sys.argv[1:]),
        "seconds": time.perf_counter() - started,
        "cpus": os.cpu_count(),
        "runs": finite(runs),
    }
    write_atomically(out, json.dumps(record, indent=2, allow_nan=False, default=str) + "\n")
    write_atomically(out.with_suffix(".md"), markdown(record))
    print(f"{len(runs)} runs in {record['seconds']:.0f} s: {out}, {out.with_suffix('.md')}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.real_markets", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("folder", nargs="?", default="../shared/data/real", help="market CSVs")
    parser.add_argument("--markets", help="comma-separated symbols (default: every market)")
    parser.add_argument("--horizons", help="comma-separated h (default: 1,6,24 / 1,12,48)")
    parser.add_argument("--workers", type=int, default=2, help="Ray workers per evaluation")
    parser.add_argument("--work", default="var/real_markets", help="catalogs and reports")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep a market and horizon's finished evaluation in --work instead of rerunning it "
        "(resume an interrupted run; only with the same evaluation options)",
    )
    parser.add_argument("--out", default="docs/real_markets.json", help="figures (and .md)")
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
