"""Backtest ScoreMatchingStrategy over a Nautilus ParquetDataCatalog and write a report.

With no arguments: the embedded default. It builds the synthetic catalog if missing, trains a
model if none exists (or reuses the one it trained before), backtests the model's held-out
test period and prints a summary with the report directory.

    python run_backtest.py
    python run_backtest.py --config configs/default.yaml --start 2027-01-01 --report-dir reports/x
"""

from __future__ import annotations

import argparse
import sys
import time

from strategies.defaults import prepare_default_inputs
from strategies.run_config import load_run_config


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from catalogs.errors import CatalogsError
    from scoremodel.checkpoint import CheckpointError
    from strategies.backtest import run_backtest
    from strategies.reports import format_summary
    from strategies.reports import write_report

    started = time.perf_counter()
    try:
        run = load_run_config(args.config, model_path=args.model, bar_type=args.bar_type)
        run = _with_backtest_overrides(run, args)
        if args.config is None:
            prepare_default_inputs(run)
        outcome = run_backtest(run)
        summary = write_report(outcome, run.backtest.report_dir)
        outcome.engine.dispose()
    except (CatalogsError, CheckpointError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_summary(summary, run.backtest.report_dir))
    print(f"  total time      {time.perf_counter() - started:.1f} s")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", help="run configuration YAML (the file run_live.py reads)")
    parser.add_argument("--catalog", help="ParquetDataCatalog directory")
    parser.add_argument("--bar-type", help="e.g. BTCUSDT-LINEAR.BYBIT-1-HOUR-LAST-EXTERNAL")
    parser.add_argument("--model", help="model directory (python -m scoremodel train --out)")
    parser.add_argument("--start", help="first bar, ISO time UTC (default: the model's test block)")
    parser.add_argument("--end", help="last bar, ISO time UTC")
    parser.add_argument("--report-dir", help="where to write the report (default reports/latest)")
    return parser


def _with_backtest_overrides(run, args):
    import dataclasses

    overrides = {
        "catalog": args.catalog,
        "start": args.start,
        "end": args.end,
        "report_dir": args.report_dir,
    }
    backtest = dataclasses.replace(
        run.backtest, **{k: v for k, v in overrides.items() if v is not None}
    )
    return dataclasses.replace(run, backtest=backtest)


if __name__ == "__main__":
    raise SystemExit(main())
