"""Backtest the score-matching strategy on NautilusTrader 2.0 (the engine binding for 2.0).

The venue is the one of :mod:`runtime.backtest` (1.231): NETTING positions, a MARGIN account in
the settlement currency, the instrument's maker/taker fees (2.0 needs them as an explicit
``MakerTakerFeeModel``), a static latency, a seeded one-tick slippage model, bar execution with
adaptive high/low ordering, and with ``fill_at: next_open`` one quote per bar 1 s after its
close at the next bar's open (+1 tick ask).

2.0's ``ParquetDataCatalog`` refuses a catalog written by 1.231 ("Legacy catalog schema is not
supported by runtime queries"), so the bars and the instrument are read from the catalog's
Parquet files with pyarrow (:mod:`runtime.catalog_files`) and built as 2.0 objects here; the
strategy's warm-up bars (the 1.231 strategy requests them from the catalog) are handed to it.

Execution ``maker`` is 1.231's (post-only limits one tick inside the decision bar's close,
cancelled unfilled after ``maker_timeout_bars`` bars, a limit fills only when a bar trades
through it: ``prob_fill_on_limit=0``, no slippage, the maker fee).

Funding: 2.0's exchange settles ``FundingRateUpdate`` data itself (1.231 needs the
runtime.funding module). The catalog's rates are handed to it so that it charges 1.231's rule:
each rate due at its funding time (``next_funding_ns``), after a ``MarkPriceUpdate`` at the
close of the last bar at or before that time (2.0 settles at the cached mark price, else at
the book's mid). Without stored rates for the window, funding is not charged and the report
says so.

The report (:func:`write_report_v2`) is 1.231's, HTML tearsheet included (one builder for both
engines, :mod:`runtime.tearsheet`). A job (:class:`BacktestJob`) carries every setting
explicitly: the run configuration's loader and its defaults live in the 1.231-only
runtime.run_config.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from nautilus_trader.backtest import BacktestEngine
from nautilus_trader.backtest import BacktestEngineConfig
from nautilus_trader.common import LoggerConfig
from nautilus_trader.common import LogLevel
from nautilus_trader.execution import DefaultFillModel
from nautilus_trader.execution import MakerTakerFeeModel
from nautilus_trader.execution import StaticLatencyModel
from nautilus_trader.model import AccountType
from nautilus_trader.model import Bar
from nautilus_trader.model import BarType
from nautilus_trader.model import CryptoPerpetual
from nautilus_trader.model import Currency
from nautilus_trader.model import FundingRateUpdate
from nautilus_trader.model import InstrumentId
from nautilus_trader.model import MarkPriceUpdate
from nautilus_trader.model import Money
from nautilus_trader.model import OmsType
from nautilus_trader.model import Price
from nautilus_trader.model import Quantity
from nautilus_trader.model import QuoteTick
from nautilus_trader.model import StandardMarginModel
from nautilus_trader.model import Symbol
from nautilus_trader.model import TraderId

from cli_errors import UserError
from output_paths import claim_output_dir
from output_paths import write_atomically
from policy.costs import MAKER
from policy.costs import TAKER
from policy.costs import funding_marks
from policy.settings import PolicySettings
from runtime.catalog_files import read_catalog_bars
from runtime.catalog_files import read_catalog_funding
from runtime.catalog_files import read_catalog_instrument
from runtime.report_figures import DEFINITIONS
from runtime.report_figures import REPORT_DIR_OPTION
from runtime.report_figures import buy_and_hold_equity
from runtime.report_figures import cost_line
from runtime.report_figures import equity_png
from runtime.report_figures import fill_liquidity
from runtime.report_figures import lifecycle_figures
from runtime.report_figures import returns_statistics
from runtime.report_figures import versions_line
from runtime.tearsheet import GENERAL_STATISTICS
from runtime.tearsheet import MIN_DECIDED_BARS
from runtime.tearsheet import PNL_STATISTICS
from runtime.tearsheet import TearsheetRun
from runtime.tearsheet import backtest_tearsheet_html
from strategies.score_matching_v2 import HistoryBar
from strategies.score_matching_v2 import ScoreMatchingStrategyV2
from strategies.score_matching_v2 import ScoreMatchingV2Config

MIN_WINDOW_BARS = 2


class BacktestV2Error(UserError, ValueError):
    """The 2.0 binding cannot run this backtest (a setting it does not bind, too few bars)."""


@dataclass(frozen=True)
class BacktestJob:
    """Everything one backtest needs, as plain values (JSON-able; runtime.engines)."""

    catalog: str
    bar_type: str
    strategy: dict[str, Any]  # the strategy config's fields (1.231 names)
    backtest: dict[str, Any]  # runtime.run_config.BacktestSettings' fields
    start: str | None = None  # first bar's close time (inclusive); None: the first stored
    end: str | None = None


@dataclass
class BacktestV2Outcome:
    """A finished 2.0 backtest: the engine (dispose it) and the strategy."""

    engine: BacktestEngine
    strategy: ScoreMatchingStrategyV2
    instrument: CryptoPerpetual
    bars: pd.DataFrame
    wall_seconds: float
    bars_rounded: int  # bars whose prices were moved onto the price increment
    funding_times: int  # funding times in the window with a mark price (the catalog's rates)


def run_backtest_v2(job: BacktestJob) -> BacktestV2Outcome:
    """Build the 2.0 engine for ``job``, run it, and return it with the strategy."""
    settings = job.backtest
    fields = read_catalog_instrument(job.catalog, job.strategy["instrument_id"])
    instrument = make_instrument(fields)
    start, end = _utc(job.start), _utc(job.end)
    frame, rounded = on_tick_grid(
        read_catalog_bars(job.catalog, job.bar_type, start=start, end=end), instrument
    )
    if len(frame) < MIN_WINDOW_BARS:
        raise BacktestV2Error(
            f"the backtest window {start or 'first bar'} .. {end or 'last bar'} holds "
            f"{len(frame)} {job.bar_type} bar(s) in {job.catalog}, at least {MIN_WINDOW_BARS} "
            "are needed: widen --start/--end"
        )
    config = dataclasses.replace(
        strategy_config(
            job.strategy, fee=float(fields["taker_fee"]), maker_fee=float(fields["maker_fee"])
        ),
        record_diagnostics=True,
        # the run configuration's style and timeout (backtest.*), as 1.231's execution_fields
        execution=settings.get("execution", TAKER),
        maker_timeout_bars=int(settings.get("maker_timeout_bars", 1)),
        inline_training=True,  # a retraining runs in the engine's thread: deterministic
    )
    first = frame.index[0]
    history = (
        (lambda n: history_bars(job, instrument, first, n))
        if job.strategy.get("warmup_from_history")
        else None
    )
    engine = build_engine_v2(settings, instrument, fields)
    engine.add_instrument(instrument)
    bar_type = BarType.from_str(job.bar_type)
    engine.add_data(make_bars(frame, bar_type, instrument))
    if settings.get("fill_at", "next_open") == "next_open":
        engine.add_data(next_open_quotes(frame, instrument))
    rates = read_catalog_funding(job.catalog, str(instrument.id), frame.index[0], frame.index[-1])
    funding = funding_data(rates, instrument, frame)
    if funding:
        engine.add_data(funding)
    strategy = ScoreMatchingStrategyV2(config, history=history)
    engine.add_strategy(strategy)
    started = time.perf_counter()
    engine.run()
    seconds = time.perf_counter() - started
    return BacktestV2Outcome(
        engine, strategy, instrument, frame, seconds, rounded, len(funding) // 2
    )


def funding_data(
    rates: pd.Series, instrument: CryptoPerpetual, frame: pd.DataFrame
) -> list[MarkPriceUpdate | FundingRateUpdate]:
    """Funding ``rates`` (runtime.catalog_files.read_catalog_funding) as the data 2.0's
    exchange settles funding from, by runtime.funding's rule on 1.231: at each funding time a
    mark price, the close of the last bar at or before it (policy.costs.funding_marks), then
    the rate, due at that time (``next_funding_ns`` = the funding time: the exchange charges
    position x mark x rate on the open position at once). A funding time before the first
    close is not charged."""
    if rates.empty:
        return []
    times = rates.index.asi8
    marks = funding_marks(frame.index.asi8, frame["close"].to_numpy(), times)
    minutes = int(rates.attrs["interval"] / pd.Timedelta(minutes=1))
    data: list[MarkPriceUpdate | FundingRateUpdate] = []
    for ts, mark, rate in zip(times.tolist(), marks, rates.attrs["decimals"], strict=True):
        if np.isnan(mark):
            continue
        data.append(MarkPriceUpdate(instrument.id, instrument.make_price(mark), ts, ts))
        data.append(FundingRateUpdate(instrument.id, Decimal(rate), ts, ts, minutes, ts))
    return data


def funding_settlements_v2(engine: BacktestEngine, instrument: CryptoPerpetual) -> list[float]:
    """The funding the exchange settled on the instrument's positions, one amount per charge
    in time order: positive paid, negative received (the sign of runtime.funding's payments).
    Read from the positions' funding adjustments (closed positions: their snapshots)."""
    charges: dict[str, tuple[int, float]] = {}
    positions = [*engine.cache.positions(instrument_id=instrument.id)]
    for position in [*positions, *engine.cache.position_snapshots()]:
        for adjustment in position.adjustments():
            if adjustment.adjustment_type.name == "FUNDING" and adjustment.pnl_change:
                paid = -adjustment.pnl_change.as_double()
                charges[str(adjustment.event_id)] = (adjustment.ts_event, paid)
    return [paid for _, paid in sorted(charges.values())]


def on_tick_grid(frame: pd.DataFrame, instrument: CryptoPerpetual) -> tuple[pd.DataFrame, int]:
    """The bars with prices on the instrument's price increment, and how many were moved.

    2.0's matching engine skips a fill whose price is off the increment (1.231 fills it), and
    the strategy then waits on that order for ever; a catalog written with the precision but
    not the increment (e.g. 2 decimals on a 0.10 tick) would trade once and stop."""
    tick = instrument.price_increment.as_double()
    columns = ["open", "high", "low", "close"]
    steps = frame[columns].to_numpy() / tick
    moved = (abs(steps - steps.round()) > 1e-6).any(axis=1)
    if not moved.any():
        return frame, 0
    frame = frame.copy()
    frame[columns] = (steps.round() * tick).round(instrument.price_precision)
    return frame, int(moved.sum())


def strategy_config(
    fields: dict[str, Any], fee: float, maker_fee: float | None = None
) -> ScoreMatchingV2Config:
    """The 2.0 strategy config from the 1.231 config's fields (policy fields included), with
    the venue's taker and maker fees (2.0 instruments carry none)."""
    names = set(ScoreMatchingV2Config.__dataclass_fields__) - {"policy", "fee", "maker_fee"}
    return ScoreMatchingV2Config(
        **{name: fields[name] for name in names if name in fields},
        fee=fee,
        maker_fee=maker_fee,
        policy=PolicySettings.from_fields(fields),
    )


def history_bars(
    job: BacktestJob, instrument: CryptoPerpetual, first: pd.Timestamp, n_bars: int
) -> list[HistoryBar]:
    """The bars the 1.231 strategy requests from the catalog on start: ``n_bars`` bar intervals
    before the first bar, up to and including it (the catalog's bounds are inclusive; the first
    bar is then dropped as a duplicate when it arrives)."""
    interval = pd.Timedelta(BarType.from_str(job.bar_type).spec.get_interval_ns(), unit="ns")
    history, _ = on_tick_grid(
        read_catalog_bars(job.catalog, job.bar_type, start=first - n_bars * interval, end=first),
        instrument,
    )
    return [
        (ts.value, open_, high, low, close, volume)
        for ts, open_, high, low, close, volume in zip(
            history.index,
            history["open"].to_numpy(),
            history["high"].to_numpy(),
            history["low"].to_numpy(),
            history["close"].to_numpy(),
            history["volume"].to_numpy(),
            strict=True,
        )
    ]


def build_engine_v2(
    settings: dict[str, Any], instrument: CryptoPerpetual, fields: dict[str, Any]
) -> BacktestEngine:
    """A 2.0 BacktestEngine with the Bybit-like venue of runtime.backtest.build_engine."""
    maker = settings.get("execution", TAKER) == MAKER
    engine = BacktestEngine(
        BacktestEngineConfig(
            trader_id=TraderId("BACKTESTER-001"),
            logging=LoggerConfig(
                stdout_level=LogLevel.from_str(settings.get("log_level", "WARNING"))
            ),
            run_analysis=False,
        )
    )
    engine.add_venue(
        instrument.id.venue,
        OmsType.NETTING,
        AccountType.MARGIN,
        [Money(float(settings["starting_balance"]), instrument.settlement_currency)],
        base_currency=None,
        default_leverage=Decimal(str(settings["venue_leverage"])),
        margin_model=StandardMarginModel(),
        fill_model=DefaultFillModel(
            # maker: a limit fills only when a bar trades through it, and never slips (the
            # fill rule of runtime.backtest, 1.231's FillModel settings)
            prob_fill_on_limit=0.0 if maker else 1.0,
            prob_slippage=0.0 if maker else float(settings["slippage_probability"]),
            random_seed=int(settings["seed"]),
        ),
        fee_model=MakerTakerFeeModel(Decimal(fields["maker_fee"]), Decimal(fields["taker_fee"])),
        latency_model=StaticLatencyModel(
            base_latency_nanos=int(float(settings["latency_ms"]) * 1_000_000)
        ),
        bar_execution=True,
        bar_adaptive_high_low_ordering=True,
    )
    return engine


def make_instrument(fields: dict[str, Any]) -> CryptoPerpetual:
    """A 2.0 CryptoPerpetual from the fields of a 1.231 catalog's instrument row."""
    size_precision = int(fields["size_precision"])
    price_precision = int(fields["price_precision"])
    settlement = Currency.from_str(fields["settlement_currency"])

    def qty(name: str) -> Quantity | None:
        return Quantity(float(fields[name]), size_precision) if fields.get(name) else None

    def money(name: str) -> Money | None:
        value = fields.get(name)
        return Money(float(value.split()[0]), settlement) if value else None

    def decimal(name: str) -> Decimal | None:
        return Decimal(fields[name]) if fields.get(name) else None

    return CryptoPerpetual(
        InstrumentId.from_str(fields["id"]),
        Symbol(fields["raw_symbol"]),
        Currency.from_str(fields["base_currency"]),
        Currency.from_str(fields["quote_currency"]),
        settlement,
        bool(fields["is_inverse"]),
        price_precision,
        size_precision,
        Price.from_str(fields["price_increment"]),
        Quantity.from_str(fields["size_increment"]),
        int(fields["ts_event"]),
        int(fields["ts_init"]),
        multiplier=Quantity.from_str(fields["multiplier"]) if fields.get("multiplier") else None,
        lot_size=qty("lot_size"),
        max_quantity=qty("max_quantity"),
        min_quantity=qty("min_quantity"),
        max_notional=money("max_notional"),
        min_notional=money("min_notional"),
        margin_init=decimal("margin_init"),
        margin_maint=decimal("margin_maint"),
    )


def make_bars(frame: pd.DataFrame, bar_type: BarType, instrument: CryptoPerpetual) -> list[Bar]:
    """2.0 Bars from a canonical bar frame (index: close time, UTC)."""
    price_precision, size_precision = instrument.price_precision, instrument.size_precision
    stamps = frame.index.asi8.tolist()
    return [
        Bar(
            bar_type,
            Price(o, price_precision),
            Price(h, price_precision),
            Price(lo, price_precision),
            Price(c, price_precision),
            Quantity(v, size_precision),
            ts,
            ts,
        )
        for ts, o, h, lo, c, v in zip(
            stamps,
            frame["open"].tolist(),
            frame["high"].tolist(),
            frame["low"].tolist(),
            frame["close"].tolist(),
            frame["volume"].tolist(),
            strict=True,
        )
    ]


def next_open_quotes(frame: pd.DataFrame, instrument: CryptoPerpetual) -> list[QuoteTick]:
    """One quote per bar, 1 s after the previous bar's close, at this bar's open (+1 tick ask):
    runtime.backtest.next_open_quotes on 2.0 objects."""
    tick = instrument.price_increment.as_double()
    precision = instrument.price_precision
    size = Quantity(1_000_000.0, instrument.size_precision)
    opens = frame["open"].tolist()[1:]
    stamps = (frame.index[:-1] + pd.Timedelta(seconds=1)).asi8.tolist()
    return [
        QuoteTick(
            instrument.id, Price(o, precision), Price(o + tick, precision), size, size, ts, ts
        )
        for ts, o in zip(stamps, opens, strict=True)
    ]


def backtest_command(args: dict[str, Any]) -> int:
    """run_backtest.py on NautilusTrader 2.0: the 1.231 venv resolves the arguments (run
    configuration, defaults, the embedded default, input checks) into a job; this process runs
    it and writes the report (fills, positions, account, summary.json, tearsheet.html)."""
    from runtime.engines import in_other_engine

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="resolve-") as work:
        resolved = in_other_engine("resolve", args, Path(work))
    job = BacktestJob(**resolved["job"])
    outcome = run_backtest_v2(job)
    try:
        summary = write_report_v2(outcome, job, resolved["report_dir"])
    finally:
        outcome.engine.dispose()
    print(format_summary_v2(summary, resolved["report_dir"]))
    print(f"  total time      {time.perf_counter() - started:.1f} s")
    return 0


def write_report_v2(outcome: BacktestV2Outcome, job: BacktestJob, directory: str) -> dict:
    """fills.csv, positions.csv, account.csv, diagnostics.parquet, equity.png, summary.json
    and, with ``backtest.tearsheet``, tearsheet.html in ``directory`` (each file replaced
    atomically); returns the summary. The statistics, the plot and the tearsheet are 1.231's
    (:mod:`runtime.report_figures` and :mod:`runtime.tearsheet`, on the equity the strategy
    recorded at every bar)."""
    import nautilus_trader

    engine, instrument = outcome.engine, outcome.instrument
    directory = claim_output_dir(directory, REPORT_DIR_OPTION)
    fills = engine.generate_order_fills_report()
    account = engine.cache.account_for_venue(instrument.id.venue)
    final = account.balance_total(instrument.settlement_currency).as_double()
    starting = float(job.backtest["starting_balance"])
    diagnostics = outcome.strategy.recorder.frame()
    left_open = orders_left_open(outcome)
    taker_fee = outcome.strategy.settings.fee
    charges = funding_settlements_v2(engine, instrument)
    summary = {
        "engine": f"NautilusTrader {nautilus_trader.__version__}",
        "bar_type": job.bar_type,
        "signal_mode": outcome.strategy.settings.signal_mode,
        "bars": len(outcome.bars),
        "first_bar": str(outcome.bars.index[0]),
        "last_bar": str(outcome.bars.index[-1]),
        "bars_decided": outcome.strategy.bars_decided,
        "orders": len(engine.cache.orders()),
        "fills": len(fills),
        # 2.0 skips a fill at a price off the instrument's price increment (1.231 fills it):
        # such an order stays open and the strategy waits on it (README, "NautilusTrader 2.0")
        "orders_left_open": left_open,
        "bars_rounded_to_tick": outcome.bars_rounded,
        "starting_equity": starting,
        "final_equity": final,
        **returns_statistics(diagnostics["equity"], starting),
        **maker_orders_v2(outcome.strategy),
        **fill_liquidity(engine.cache.orders()),
        "taker_fee": taker_fee,
        **funding_figures_v2(charges, outcome.funding_times, job.catalog, instrument),
        "wall_seconds": outcome.wall_seconds,
        **lifecycle_figures(outcome.strategy.lifecycle),
        "definitions": DEFINITIONS,
    }
    # the final balance, not the last decision's equity: a position still open at the end is
    # closed on stop (1.231's summary uses the same)
    summary["total_return"] = final / starting - 1.0
    summary["fees"] = summary["fees_maker"] + summary["fees_taker"]
    if len(diagnostics):
        hold = buy_and_hold_equity(diagnostics["close"], starting, taker_fee)
        summary["buy_and_hold"] = returns_statistics(hold, starting) | {
            "final_equity": float(hold.iloc[-1])
        }
    for name, frame in (
        ("fills.csv", fills),
        ("positions.csv", engine.generate_positions_report()),
        ("account.csv", engine.generate_account_report(instrument.id.venue)),
    ):
        write_atomically(directory / name, frame.to_csv())
    write_atomically(directory / "diagnostics.parquet", diagnostics.to_parquet())
    if len(diagnostics):
        write_atomically(directory / "equity.png", equity_png(diagnostics, summary))
    if job.backtest.get("tearsheet", True) and len(diagnostics) >= MIN_DECIDED_BARS:
        path = directory / "tearsheet.html"
        write_atomically(path, backtest_tearsheet_html(tearsheet_run_v2(outcome, job, summary)))
        summary["tearsheet"] = str(path)
    elif job.backtest.get("tearsheet", True):
        summary["tearsheet"] = "not written: the backtest decided fewer than 2 bars"
    write_atomically(directory / "summary.json", json.dumps(summary, indent=2))
    return summary


def tearsheet_run_v2(outcome: BacktestV2Outcome, job: BacktestJob, summary: dict) -> TearsheetRun:
    """The finished 2.0 backtest as runtime.tearsheet draws it (1.231: runtime.reports).

    The PnL statistics are 2.0's portfolio analysis of the account and positions
    (``Portfolio.statistics()``): a standalone 2.0 ``PortfolioAnalyzer`` takes positions but
    no account (1.231's ``calculate_statistics(account, positions)`` is gone), so its PnL
    (total) would be 0."""
    engine, instrument = outcome.engine, outcome.instrument
    currency = instrument.settlement_currency
    for statistic in (*PNL_STATISTICS, *GENERAL_STATISTICS):
        engine.portfolio.register_statistic(statistic)
    statistics = engine.portfolio.statistics()
    return TearsheetRun(
        recorded=outcome.strategy.recorder.frame(),
        bars=outcome.bars.index,
        bar_type=job.bar_type,
        signal_mode=summary["signal_mode"],
        execution=summary["execution"],
        currency=currency.code,
        starting_balance=summary["starting_equity"],
        ending_balance=summary["final_equity"],
        taker_fee=summary["taker_fee"],
        run_id=str(engine.run_id),
        orders=engine.cache.orders_total_count(),
        positions=len(engine.cache.positions()) + len(engine.cache.position_snapshots()),
        costs=summary,
        funding_paid=summary["funding_paid"],
        stats_pnls=statistics.pnls.get(currency.code, {}),
        stats_general=statistics.general,
    )


def orders_left_open(outcome: BacktestV2Outcome) -> int:
    """Orders never filled though sent before the end of the data (they were cancelled on
    stop): off-tick prices do that on 2.0. Not counted: orders sent on the last bar, post-only
    orders rejected as crossing, those the maker timeout cancelled, and maker orders whose
    timeout runs past the last bar."""
    strategy = outcome.strategy
    settings = strategy.settings
    last_bar = outcome.bars.index[-1].value
    if settings.execution == MAKER:
        last_bar -= (settings.maker_timeout_bars - 1) * strategy.bar_type.spec.get_interval_ns()
    return sum(
        1
        for order in outcome.engine.cache.orders()
        if float(order.filled_qty) == 0.0
        and order.ts_init < last_bar
        and order.status.name != "REJECTED"
        and order.client_order_id not in strategy.maker_cancelled
    )


def funding_figures_v2(
    charges: list[float], funding_times: int, catalog: str, instrument: CryptoPerpetual
) -> dict[str, Any]:
    """funding_paid (signed: positive paid, negative received, None when not charged), the
    number of charges and a one-line note (the fields of 1.231's runtime.reports)."""
    if not funding_times:
        symbol = instrument.id.symbol.value.split("-")[0]
        return {
            "funding_paid": None,
            "funding_charges": 0,
            "funding": (
                f"not charged: {catalog} holds no funding rates for {instrument.id} in this "
                f"window (fetch them with `python -m catalogs fetch-funding --symbol {symbol} "
                f"--catalog {catalog}`, on the 1.231 venv)"
            ),
        }
    paid = float(sum(charges))
    return {
        "funding_paid": paid,
        "funding_charges": len(charges),
        "funding": (
            f"charged from the catalog's funding rates: {funding_times} funding times in the "
            f"window, {len(charges)} with an open position; "
            f"{'paid' if paid >= 0 else 'received'} {abs(paid):,.2f}"
        ),
    }


def maker_orders_v2(strategy: ScoreMatchingStrategyV2) -> dict[str, Any]:
    """The execution style and, for maker, what became of its post-only orders (the fields
    of 1.231's report, runtime.reports.maker_orders)."""
    execution = strategy.settings.execution
    stats = strategy.maker_stats if execution == MAKER else {}
    return {
        "execution": execution,
        "maker_orders": stats.get("submitted", 0),
        "unfilled_orders": stats.get("unfilled", 0),
        "post_only_rejected": stats.get("post_only_rejected", 0),
    }


def format_summary_v2(summary: dict, report_dir: str) -> str:
    """A readable block for the terminal."""
    rows = [
        ("engine", summary["engine"]),
        (
            "bars",
            f"{summary['bars']:,} ({summary['first_bar'][:16]} .. {summary['last_bar'][:16]})",
        ),
        (
            "orders / fills",
            f"{summary['orders']:,} / {summary['fills']:,} ({summary['execution']} execution)",
        ),
        *(
            [
                (
                    "maker orders",
                    f"{summary['maker_orders']:,} post-only, {summary['unfilled_orders']:,} "
                    f"cancelled unfilled, {summary['post_only_rejected']:,} rejected as "
                    f"crossing; fills {summary['fills_maker']} maker / "
                    f"{summary['fills_taker']} taker",
                )
            ]
            if summary["execution"] == MAKER
            else []
        ),
        *(
            [
                (
                    "left open",
                    f"{summary['orders_left_open']} order(s) never filled: off-tick prices?",
                )
            ]
            if summary["orders_left_open"]
            else []
        ),
        (
            "final equity",
            f"{summary['final_equity']:,.2f} (start {summary['starting_equity']:,.0f})",
        ),
        (
            "total return",
            f"{summary['total_return']:+.2%}  (buy & hold "
            f"{summary.get('buy_and_hold', {}).get('total_return', 0.0):+.2%})",
        ),
        ("Sharpe", f"{summary['sharpe']:.2f}  (Sortino {summary['sortino']:.2f})"),
        ("max drawdown", f"{summary['max_drawdown']:.2%}"),
        ("costs", cost_line(summary)),
        ("funding", summary["funding"]),
        *(
            [("prices", f"{summary['bars_rounded_to_tick']:,} bars rounded to the price increment")]
            if summary["bars_rounded_to_tick"]
            else []
        ),
        ("model", versions_line(summary)),
        ("report", str(report_dir)),
    ]
    return "\n".join(f"  {name:<15} {value}" for name, value in rows)


def _utc(value: str | None) -> pd.Timestamp | None:
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
