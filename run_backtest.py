"""Backtest ScoreMatchingStrategy over a Nautilus ParquetDataCatalog and write a report.

With no input of your own (no --config, --catalog or --model): the embedded default. It builds
its synthetic catalog in var/demo/catalog if missing, trains its model into var/demo/model if
none is usable there (or reuses the one it trained before), backtests the model's held-out test
period and prints a summary with the report directory. It writes nothing outside var/demo and
the report directory. The embedded default holds only
BTCUSDT-LINEAR.BYBIT-1-HOUR-LAST-EXTERNAL bars; --bar-type for other bars needs --catalog.

With any input path given, nothing is generated or trained: a missing or unusable catalog or
model is a one-line error that says which command creates it.

    python run_backtest.py
    python run_backtest.py --config configs/default.yaml --start 2027-01-01 --report-dir reports/x
    python run_backtest.py --catalog CATALOG --bar-type BAR_TYPE --model MODEL_DIR
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING

from cli_errors import UserError
from cli_errors import add_debug_flag
from cli_errors import add_retrain_flags
from cli_errors import run_cli

if TYPE_CHECKING:
    from runtime.run_config import RunConfig


class DefaultInputError(UserError):
    """A request the embedded default cannot serve (it holds one bar type only)."""


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return run_cli(lambda: _backtest(args), debug=args.debug)


def _backtest(args: argparse.Namespace) -> int:
    import nautilus_trader

    if int(nautilus_trader.__version__.split(".")[0]) >= 2:  # the NautilusTrader 2.0 binding
        from runtime.backtest_v2 import backtest_command

        return backtest_command(vars(args))
    from runtime.backtest import run_backtest
    from runtime.reports import format_summary
    from runtime.reports import write_report

    started = time.perf_counter()
    run = prepared_run(args)
    outcome = run_backtest(run)
    summary = write_report(outcome, run.backtest.report_dir)
    outcome.engine.dispose()
    print(format_summary(summary, run.backtest.report_dir))
    print(f"  total time      {time.perf_counter() - started:.1f} s")
    return 0


def prepared_run(args: argparse.Namespace) -> RunConfig:
    """The run the arguments ask for, its inputs checked (the embedded default made first);
    on NautilusTrader 1.231 (the 2.0 binding asks the 1.231 venv for it)."""
    from output_paths import check_output_dir
    from runtime.backtest import check_inputs
    from runtime.backtest import with_local_catalog
    from runtime.embedded_default import DEFAULT_BAR_TYPE
    from runtime.embedded_default import embedded_run
    from runtime.embedded_default import prepare_default_inputs
    from runtime.report_figures import REPORT_DIR_OPTION
    from runtime.run_config import load_run_config
    from runtime.run_config import with_backtest_overrides
    from runtime.run_config import with_retrain_overrides

    embedded_default = args.config is None and args.catalog is None and args.model is None
    if embedded_default and args.bar_type not in (None, DEFAULT_BAR_TYPE):
        raise DefaultInputError(
            f"the embedded default holds only {DEFAULT_BAR_TYPE} bars; for {args.bar_type} give "
            "your catalog and model: --catalog CATALOG --model MODEL_DIR (or --config FILE)"
        )
    run = load_run_config(args.config, model_path=args.model, bar_type=args.bar_type)
    run = with_backtest_overrides(
        run, catalog=args.catalog, start=args.start, end=args.end, report_dir=args.report_dir
    )
    run = with_retrain_overrides(run, every=args.retrain_every, window=args.retrain_window)
    if embedded_default:
        run = embedded_run(run)  # its own catalog and model, under var/demo
    run = with_local_catalog(run)  # a file:// URL as its path
    check_output_dir(run.backtest.report_dir, REPORT_DIR_OPTION)  # before any work
    if embedded_default:
        prepare_default_inputs(run)
    check_inputs(run)
    return run


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
    add_retrain_flags(parser)
    add_debug_flag(parser)
    return parser


if __name__ == "__main__":
    sys.exit(main())
