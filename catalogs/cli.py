"""Command line interface: ``python -m catalogs COMMAND``.

Commands: ``synth``, ``import-csv``, ``import-funding``, ``fetch``, ``fetch-funding``, ``info``.

User errors (bad data, missing files, unknown bar types, damaged catalog files) print one
``error:`` line and exit with status 2 (``--debug`` shows the traceback); argparse usage errors
exit with 2 as well. Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from catalogs.bars import format_interval
from catalogs.bars import parse_interval
from catalogs.bars import to_utc_timestamp
from catalogs.catalog import DEFAULT_CATALOG_PATH
from catalogs.catalog import describe_bar_types
from catalogs.catalog import list_instrument_ids
from catalogs.catalog import open_catalog
from catalogs.catalog import write_bars_detailed
from catalogs.csv_import import read_ohlcv_csv
from catalogs.errors import DownloadError
from catalogs.errors import IntervalError
from catalogs.funding import BYBIT_MAX_FUNDING_ROWS
from catalogs.funding import DEFAULT_FUNDING_INTERVAL
from catalogs.funding import download_bybit_funding
from catalogs.funding import import_funding_csv
from catalogs.funding import parse_funding_interval
from catalogs.funding import read_funding
from catalogs.funding import synthetic_funding
from catalogs.funding import write_funding
from catalogs.instruments import make_perpetual
from catalogs.planted import KINDS
from catalogs.planted import demo_preset
from catalogs.planted import generate_planted
from catalogs.storage import check_catalog_target
from catalogs.storage import local_catalog_path
from catalogs.synthetic import SyntheticMarketConfig
from catalogs.synthetic import generate_bars
from cli_errors import EXIT_INTERRUPTED
from cli_errors import add_debug_flag
from cli_errors import positive_float
from cli_errors import positive_int
from cli_errors import run_cli

CATALOG_ON_DISK = "python -m catalogs reads and writes"
_CSV_FIELDS = ("timestamp", "open", "high", "low", "close", "volume")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit status."""
    args = build_parser().parse_args(argv)
    return run_cli(lambda: _run_command(args), debug=args.debug)


def _run_command(args: argparse.Namespace) -> int:
    args.catalog = local_catalog_path(args.catalog, CATALOG_ON_DISK)
    if args.command != "info":  # a writer: the catalog path is checked before any work
        check_catalog_target(Path(args.catalog).expanduser().resolve())
    try:
        args.handler(args)
    except KeyboardInterrupt:
        print("interrupted; bars written so far are kept, re-run to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with one sub-parser per command."""
    parser = argparse.ArgumentParser(
        prog="python -m catalogs",
        description="Put OHLCV bars into a NautilusTrader ParquetDataCatalog.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_synth(commands)
    _add_import_csv(commands)
    _add_import_funding(commands)
    _add_fetch(commands)
    _add_fetch_funding(commands)
    _add_info(commands)
    return parser


# -- Sub-commands --------------------------------------------------------------------------------


def _add_synth(commands: argparse._SubParsersAction) -> None:
    parser = _subparser(
        commands, "synth", "write deterministic synthetic bars (regimes, clustering, jumps)"
    )
    _add_symbol(parser)
    parser.add_argument("--interval", type=_interval, default="1min", help="default: 1min")
    parser.add_argument("--bars", type=positive_int, default=100_000, help="default: 100000")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default: 7)")
    parser.add_argument("--start-price", type=positive_float, default=None, help="default: 40000")
    parser.add_argument(
        "--planted",
        choices=KINDS,
        default=None,
        help="write a planted market instead (catalogs/planted.py: GARCH returns with a known "
        "predictive structure; volume_reversal is the embedded demo's market)",
    )
    parser.set_defaults(handler=_run_synth)


def _run_synth(args: argparse.Namespace) -> None:
    config = SyntheticMarketConfig()
    if args.start_price is not None:
        config = SyntheticMarketConfig(start_price=args.start_price)
    print(f"generating {args.bars:,} {args.interval} bars (seed {args.seed})", file=sys.stderr)
    if args.planted:
        planted = demo_preset(str(args.interval), args.planted)
        if args.start_price is not None:
            planted = dataclasses.replace(planted, start_price=args.start_price)
        bars = generate_planted(args.bars, seed=args.seed, config=planted).bars
    else:
        bars = generate_bars(args.bars, args.interval, seed=args.seed, config=config)
    # planted prices are not on the tick grid: rounded to it (a relative change below 1e-5)
    _write_and_print(
        args, bars, gap_policy="error", duplicate_policy="error", round_prices=bool(args.planted)
    )
    rates = synthetic_funding(bars, seed=args.seed)
    written = write_funding(
        args.catalog, rates, make_perpetual(args.symbol).id.value, DEFAULT_FUNDING_INTERVAL
    )
    print(f"wrote {written:,} synthetic funding rates (every 8 h)")


def _add_import_csv(commands: argparse._SubParsersAction) -> None:
    parser = _subparser(commands, "import-csv", "import bars from an OHLCV CSV file")
    parser.add_argument("path", type=Path, help="CSV file with a header line")
    _add_symbol(parser)
    parser.add_argument("--interval", type=_interval, required=True, help="bar interval, e.g. 1min")
    parser.add_argument(
        "--stamp",
        choices=("open", "close"),
        default="open",
        help="whether file timestamps are bar open or close times (default: open)",
    )
    parser.add_argument(
        "--timestamp-unit",
        choices=("auto", "s", "ms", "us", "ns", "iso"),
        default="auto",
        help="epoch unit or iso; auto infers it (default: auto)",
    )
    parser.add_argument("--tz", default="UTC", help="timezone of naive timestamps (default: UTC)")
    for name in _CSV_FIELDS:
        parser.add_argument(f"--{name}-col", metavar="NAME", help=f"CSV column holding {name}")
    parser.add_argument(
        "--gap-policy",
        choices=("error", "report", "fill"),
        default="report",
        help="default: report",
    )
    parser.add_argument(
        "--duplicate-policy", choices=("error", "drop"), default="error", help="default: error"
    )
    _add_on_conflict(parser)
    parser.add_argument(
        "--round-prices",
        action="store_true",
        help="round prices with more decimals than the instrument's tick instead of failing",
    )
    parser.set_defaults(handler=_run_import_csv)


def _run_import_csv(args: argparse.Namespace) -> None:
    mapping = {
        getattr(args, f"{name}_col"): name
        for name in _CSV_FIELDS
        if getattr(args, f"{name}_col") is not None
    }
    bars = read_ohlcv_csv(
        args.path,
        interval=args.interval,
        columns=mapping,
        timestamp_unit=args.timestamp_unit,
        stamp=args.stamp,
        tz=args.tz,
    )
    print(f"read {len(bars):,} rows from {args.path}", file=sys.stderr)
    _write_and_print(args, bars, gap_policy=args.gap_policy, duplicate_policy=args.duplicate_policy)


def _add_import_funding(commands: argparse._SubParsersAction) -> None:
    parser = _subparser(
        commands, "import-funding", "import funding rates from a timestamp,rate CSV file"
    )
    parser.add_argument(
        "path",
        type=Path,
        help="CSV file: timestamp (settlement time, ISO 8601 or epoch), rate (paid by longs to "
        "shorts when positive, per interval)",
    )
    _add_symbol(parser)
    parser.add_argument(
        "--interval",
        type=_funding_interval,
        default=None,
        help="funding interval, e.g. 8h (default: the median spacing of the file's times)",
    )
    parser.set_defaults(handler=_run_import_funding)


def _run_import_funding(args: argparse.Namespace) -> None:
    report = import_funding_csv(args.catalog, args.path, args.symbol, args.interval)
    print(f"catalog: {Path(args.catalog).resolve()}")
    print(report.summary())


def _add_fetch(commands: argparse._SubParsersAction) -> None:
    parser = _subparser(commands, "fetch", "download Bybit linear-perpetual klines (no API key)")
    _add_symbol(parser)
    parser.add_argument("--interval", type=_interval, default="1m", help="default: 1m")
    parser.add_argument(
        "--start", type=_timestamp, help="first bar open time, UTC (default: resume or 30 days)"
    )
    parser.add_argument("--end", type=_timestamp, help="last bar close time, UTC (default: now)")
    parser.add_argument("--base-url", help="redirect every Bybit endpoint, e.g. an emulator")
    parser.add_argument(
        "--limit", type=positive_int, default=1000, help="klines per request (default: 1000)"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(handler=_run_fetch)


def _run_fetch(args: argparse.Namespace) -> None:
    from catalogs.download import download_bybit_bars  # ccxt import only when needed

    report = download_bybit_bars(
        args.catalog,
        args.symbol,
        args.interval,
        args.start,
        args.end,
        base_url=args.base_url,
        limit=args.limit,
        progress=not args.no_progress,
    )
    print(report.summary())


def _add_fetch_funding(commands: argparse._SubParsersAction) -> None:
    parser = _subparser(
        commands, "fetch-funding", "download Bybit funding-rate history (no API key)"
    )
    _add_symbol(parser)
    parser.add_argument(
        "--start", type=_timestamp, help="first funding time, UTC (default: resume or 30 days)"
    )
    parser.add_argument("--end", type=_timestamp, help="last funding time, UTC (default: now)")
    parser.add_argument("--base-url", help="redirect every Bybit endpoint, e.g. an emulator")
    parser.add_argument(
        "--limit",
        type=positive_int,
        default=BYBIT_MAX_FUNDING_ROWS,
        help=f"rows per request (default and Bybit's maximum: {BYBIT_MAX_FUNDING_ROWS})",
    )
    parser.set_defaults(handler=_run_fetch_funding)


def _run_fetch_funding(args: argparse.Namespace) -> None:
    if args.limit > BYBIT_MAX_FUNDING_ROWS:
        raise DownloadError(
            f"--limit {args.limit} is more than Bybit serves per request; use at most "
            f"{BYBIT_MAX_FUNDING_ROWS}"
        )
    report = download_bybit_funding(
        args.catalog, args.symbol, args.start, args.end, base_url=args.base_url, limit=args.limit
    )
    print(report.summary())


def _add_info(commands: argparse._SubParsersAction) -> None:
    parser = _subparser(commands, "info", "list stored bar types with count and time range")
    parser.set_defaults(handler=_run_info)


def _run_info(args: argparse.Namespace) -> None:
    catalog = open_catalog(args.catalog)
    print(f"catalog: {catalog.path}")
    print(f"instruments: {', '.join(list_instrument_ids(catalog)) or 'none'}")
    for instrument_id in list_instrument_ids(catalog):
        rates = read_funding(catalog, instrument_id)
        if len(rates):
            print(
                f"funding {instrument_id}: {len(rates):,} rates every "
                f"{format_interval(rates.attrs['interval'])}, {_fmt(rates.index[0])} .. "
                f"{_fmt(rates.index[-1])}"
            )
    summaries = describe_bar_types(catalog)
    if not summaries:
        print("no bars stored")
        return
    width = max(len(summary.bar_type) for summary in summaries)
    print(f"{'bar type':<{width}}  {'bars':>10}  {'first close (UTC)':<19}  last close (UTC)")
    for summary in summaries:
        print(
            f"{summary.bar_type:<{width}}  {summary.count:>10,}  "
            f"{_fmt(summary.first):<19}  {_fmt(summary.last)}"
        )


# -- Shared pieces -------------------------------------------------------------------------------


def _subparser(
    commands: argparse._SubParsersAction, name: str, help_text: str
) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=help_text, description=help_text)
    parser.add_argument(
        "--catalog",
        default=str(DEFAULT_CATALOG_PATH),
        help=f"catalog directory (default: {DEFAULT_CATALOG_PATH})",
    )
    add_debug_flag(parser)
    return parser


def _add_symbol(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--symbol",
        default="BTCUSDT",
        type=str.upper,
        help="Bybit linear symbol; instrument id {SYMBOL}-LINEAR.BYBIT (default: BTCUSDT)",
    )


def _add_on_conflict(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--on-conflict",
        choices=("error", "warn"),
        default="error",
        help="bars overlapping stored ones with different values: fail or warn (default: error)",
    )


def _write_and_print(
    args: argparse.Namespace,
    bars: pd.DataFrame,
    *,
    gap_policy: str,
    duplicate_policy: str,
    round_prices: bool = False,
) -> None:
    result = write_bars_detailed(
        args.catalog,
        bars,
        make_perpetual(args.symbol),
        args.interval,
        gap_policy=gap_policy,
        duplicate_policy=duplicate_policy,
        on_conflict=getattr(args, "on_conflict", "error"),
        round_prices=round_prices or getattr(args, "round_prices", False),
        chunk_bars=250_000,
        progress=True,
    )
    print(f"catalog: {Path(args.catalog).resolve()}")
    print(result.summary())


def _argument_type(parse: Callable[[str], object], what: str) -> Callable[[str], object]:
    def convert(text: str) -> object:
        try:
            return parse(text)
        except (IntervalError, ValueError) as exc:
            raise argparse.ArgumentTypeError(f"invalid {what} {text!r}: {exc}") from exc

    return convert


def _parse_timestamp(text: str) -> pd.Timestamp:
    stamp = to_utc_timestamp(text)
    if stamp is None or pd.isna(stamp):
        raise ValueError("use e.g. 2024-01-01 or 2024-01-01T12:00 (UTC)")
    return stamp.as_unit("ns")  # raises for dates outside 1677..2262


def _parse_interval(text: str) -> str:
    parse_interval(text)
    return text


_interval = _argument_type(_parse_interval, "interval")
_funding_interval = _argument_type(parse_funding_interval, "funding interval")
_timestamp = _argument_type(_parse_timestamp, "timestamp")


def _fmt(stamp: pd.Timestamp) -> str:
    return stamp.strftime("%Y-%m-%d %H:%M:%S")
