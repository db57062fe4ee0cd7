"""Event-level backtest of ScoreMatchingStrategy over a ParquetDataCatalog (BacktestEngine).

The venue models Bybit linear perpetuals: NETTING positions, a MARGIN account in USDT, the
instrument's maker/taker fees, a latency model and a seeded one-tick slippage model.

Execution timing: a decision made on bar t's close cannot trade at that close for free. Bars
alone would make Nautilus fill a delayed order at bar t+1's *close* (an hour later on hourly
bars). With ``fill_at: next_open`` (the default) the engine also receives one quote per bar,
1 s after bar t's close, at bar t+1's opening price (bid = open, ask = open + 1 tick): the
order, arriving ``latency_ms`` after the close, fills at the next bar's open plus spread and
slippage, which is what a live order sent at the close would get. ``next_close`` keeps the
bar-only behaviour.

Execution style (``execution``): ``taker`` sends market orders. ``maker`` sends post-only limit
orders on the passive side of the decision bar's close (a buy one tick below it, a sell one
tick above: after a bar the simulated book's bid and ask are both its close, so an order at
the close itself would cross and be rejected, as Bybit rejects a crossing post-only order).
Fill rule for bar data (conservative): a limit fills only when a later bar trades *through*
its price (a buy when a price below it trades, a sell above it); a bar that merely touches
the price does not fill it (Nautilus's bar matching, and ``FillModel(prob_fill_on_limit=0)``
for quotes at the limit: no queue priority at the touch). It fills at its limit price, or at
a better price when a bar opens through it (Nautilus's matching), never slips, and pays the
maker fee. An order still open ``maker_timeout_bars`` bars after submission is cancelled
(counted as unfilled); the next decision places a fresh order at its own bar's close.

Funding: Nautilus charges none; when the catalog holds funding rates for the instrument
(:mod:`catalogs.funding`), :class:`runtime.funding.FundingModule` charges them on the open
position at each funding time (position x last bar close x rate). Without stored rates for
the window, funding is not charged and the report says so.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import msgspec
import pandas as pd
from nautilus_trader.accounting.margin_models import StandardMarginModel
from nautilus_trader.backtest.engine import BacktestEngine
from nautilus_trader.backtest.models import FillModel
from nautilus_trader.backtest.models import LatencyModel
from nautilus_trader.common.actor import Actor
from nautilus_trader.config import BacktestEngineConfig
from nautilus_trader.config import DataCatalogConfig
from nautilus_trader.config import LoggingConfig
from nautilus_trader.model.data import Bar
from nautilus_trader.model.data import QuoteTick
from nautilus_trader.model.enums import AccountType
from nautilus_trader.model.enums import OmsType
from nautilus_trader.model.identifiers import TraderId
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.model.objects import Money
from nautilus_trader.persistence.wranglers import QuoteTickDataWrangler

from catalogs.bars import format_interval
from catalogs.bars import interval_of_bar_type
from catalogs.bars import validate_bars
from catalogs.catalog import bars_to_frame
from catalogs.catalog import describe_bar_types
from catalogs.catalog import list_bar_types
from catalogs.catalog import load_instrument
from catalogs.catalog import open_catalog
from catalogs.catalog import read_bars_frame
from catalogs.funding import read_funding
from catalogs.storage import local_catalog_path
from cli_errors import UserError
from output_paths import claim_output_dir
from output_paths import fresh_subdirectory
from policy.costs import TAKER
from runtime.funding import FundingModule
from runtime.report_figures import REPORT_DIR_OPTION
from runtime.run_config import BacktestSettings
from runtime.run_config import ConfigError
from runtime.run_config import RunConfig
from runtime.run_config import default_strategy_fields
from scoremodel.checkpoint import MANIFEST
from scoremodel.checkpoint import CheckpointError
from scoremodel.inference import ScoreModel
from strategies.model_loading import ModelMismatchError
from strategies.model_loading import load_model_for
from strategies.score_matching import ScoreMatchingStrategy

MIN_WINDOW_BARS = 2  # the next-open quotes pair each bar with the one after it
BACKTEST_REGISTRY = "models"  # REPORT_DIR/models: a retraining backtest's model versions


class BacktestInputError(UserError, ValueError):
    """The backtest cannot run on these inputs (catalog, dates, bars)."""


@dataclass
class BacktestOutcome:
    """A finished backtest: the engine (for Nautilus's reports) and what the strategy saw."""

    run: RunConfig
    engine: BacktestEngine
    strategy: ScoreMatchingStrategy
    model: ScoreModel
    bars: pd.DataFrame  # the bars the strategy traded (canonical frame)
    wall_seconds: float
    funding: FundingModule | None  # None: the catalog holds no funding rates for the window


def check_inputs(run: RunConfig) -> None:
    """The catalog holds the strategy's bars and the model loads for the strategy.

    Reads only. Raises one :class:`BacktestInputError` that says what is wrong and which
    command creates the missing input (run_backtest.py calls it before anything else).
    """
    catalog = Path(run.backtest.catalog)
    bar_type = str(run.strategy.bar_type)
    if catalog.exists() and not catalog.is_dir():
        raise BacktestInputError(
            f"catalog {catalog} is not a directory; give the catalog's directory with --catalog "
            "/ backtest.catalog"
        )
    if not catalog.is_dir():
        what = "does not exist"
        raise BacktestInputError(
            f"catalog {catalog} {what}; import bars into it with `{import_command(run)}` (or "
            f"`python -m catalogs fetch`), or give the right --catalog / backtest.catalog"
            f"{_default_hint(catalog, BacktestSettings().catalog)}"
        )
    stored = list_bar_types(catalog)
    if bar_type not in stored:
        raise BacktestInputError(
            f"catalog {catalog} holds no {bar_type} bars (it holds: "
            f"{', '.join(stored) or 'no bars'}); import them with `{import_command(run)}`, or "
            "choose a stored bar type with --bar-type / strategy.bar_type"
        )
    model_dir = Path(run.strategy.model_path)
    train = f"python -m scoremodel train --catalog {catalog} --bar-type {bar_type} --out"
    if not model_dir.is_dir():
        what = "is not a directory" if model_dir.exists() else "does not exist"
        out = "NEW_MODEL_DIR" if model_dir.exists() else model_dir  # train refuses a file
        raise BacktestInputError(
            f"model directory {model_dir} {what}; train one with `{train} {out}`, or give "
            "the right --model / strategy.model_path"
            f"{_default_hint(model_dir, default_strategy_fields()['model_path'])}"
        )
    try:
        load_model_for(run.strategy)
    except ModelMismatchError as error:
        raise BacktestInputError(
            f"model {model_dir} does not fit this run: {error}. Nothing was changed; to train "
            f"a model for these bars run `{train} NEW_MODEL_DIR` and pass it with --model"
        ) from error
    except CheckpointError as error:
        # train --overwrite replaces only a model directory (one with a manifest)
        replaceable = (model_dir / MANIFEST).is_file() or not any(model_dir.iterdir())
        advice = (
            f"to replace it with a model trained on these bars run `{train} {model_dir} "
            "--overwrite`"
            if replaceable
            else f"it is not a model directory, so train one elsewhere with `{train} "
            "NEW_MODEL_DIR` and pass it with --model"
        )
        raise BacktestInputError(
            f"model {model_dir} cannot be used: {error}. Nothing was changed; {advice}"
        ) from error


def with_local_catalog(run: RunConfig) -> RunConfig:
    """``run`` with a ``file://`` catalog URL as its path; another URL (``s3://``, ...) is
    refused in one line: Nautilus's backtest engine reads its catalog from local disk."""
    local = local_catalog_path(run.backtest.catalog, "run_backtest.py backtests over")
    if str(local) == run.backtest.catalog:
        return run
    return dataclasses.replace(run, backtest=dataclasses.replace(run.backtest, catalog=str(local)))


def import_command(run: RunConfig) -> str:
    """The ``python -m catalogs import-csv`` line that adds the strategy's bars to the catalog."""
    symbol = run.strategy.instrument_id.symbol.value.split("-")[0]
    interval = format_interval(interval_of_bar_type(run.strategy.bar_type))
    return (
        f"python -m catalogs import-csv FILE.csv --symbol {symbol} --interval {interval} "
        f"--catalog {run.backtest.catalog}"
    )


def _default_hint(path: Path, default: str) -> str:
    if path != Path(default):
        return ""
    return f" (`python run_backtest.py` with no arguments builds the embedded default in {path})"


def run_backtest(run: RunConfig, actors: Sequence[Actor] = ()) -> BacktestOutcome:
    """Check inputs, build the engine, run it; the engine is kept for reports (dispose it).

    ``actors``: your own actors, added beside the strategy (for instance one that subscribes
    to the strategy's diagnostics, published with ``publish_diagnostics: true``)."""
    settings, config = run.backtest, run.strategy
    model = load_model_for(config)  # fail fast: before any engine is built
    start, end = backtest_window(run, model)
    bar_type = str(config.bar_type)
    frame = read_bars_frame(settings.catalog, bar_type, start=start, end=end)
    if len(frame) < MIN_WINDOW_BARS:
        stored = next(s for s in describe_bar_types(settings.catalog) if s.bar_type == bar_type)
        raise BacktestInputError(
            f"the backtest window {start or 'first bar'} .. {end or 'last bar'} holds "
            f"{len(frame)} {bar_type} bar(s) in {settings.catalog}, at least "
            f"{MIN_WINDOW_BARS} are needed; the catalog holds {stored.first} .. {stored.last}: "
            "widen --start/--end"
        )
    validate_bars(frame, interval_of_bar_type(bar_type), gap_policy="report")
    catalog = open_catalog(settings.catalog)
    bars: list[Bar] = catalog.bars([bar_type], start=frame.index[0], end=frame.index[-1])
    instrument = load_instrument(settings.catalog, str(config.instrument_id))

    rates = read_funding(
        settings.catalog, str(config.instrument_id), frame.index[0], frame.index[-1]
    )
    funding = FundingModule(instrument.id, rates, frame["close"]) if len(rates) else None
    engine = build_engine(run, instrument, [funding] if funding is not None else [])
    engine.add_instrument(instrument)
    engine.add_data(bars)
    if settings.fill_at == "next_open":
        engine.add_data(next_open_quotes(frame, instrument))
    strategy = ScoreMatchingStrategy(
        msgspec.structs.replace(
            config,
            record_diagnostics=True,
            **execution_fields(run),  # the strategy's own fields: the same in live
            **backtest_retrain_fields(run),
        )
    )
    engine.add_strategy(strategy)
    for actor in actors:
        engine.add_actor(actor)
    started = time.perf_counter()
    engine.run()
    return BacktestOutcome(
        run=run,
        engine=engine,
        strategy=strategy,
        model=model,
        bars=bars_to_frame(bars),
        wall_seconds=time.perf_counter() - started,
        funding=funding,
    )


def execution_fields(run: RunConfig) -> dict[str, object]:
    """The run configuration's execution style and maker timeout (``backtest.execution``,
    ``backtest.maker_timeout_bars``) as the strategy config's fields, for the backtest and the
    live node alike. Another style or timeout in the strategy section is refused, not replaced."""
    backtest, strategy = run.backtest, run.strategy
    defaults = {"execution": TAKER, "maker_timeout_bars": 1}  # ScoreMatchingConfig's defaults
    fields = {name: getattr(backtest, name) for name in defaults}
    for name, value in fields.items():
        given = getattr(strategy, name)
        if given != defaults[name] and given != value:
            raise ConfigError(
                f"{run.source}: strategy.{name} = {given!r} disagrees with backtest.{name} = "
                f"{value!r}; set it once, in backtest.{name} (it applies to run_backtest.py and "
                "run_live.py alike)"
            )
    return fields


def backtest_retrain_fields(run: RunConfig) -> dict[str, object]:
    """The strategy's ``retrain`` field for a backtest: its versions go into the report
    directory (``REPORT_DIR/models``, claimed and emptied now), never into the model directory,
    which is the live node's registry."""
    if not run.retrain.enabled:
        return {}
    report_dir = claim_output_dir(run.backtest.report_dir, REPORT_DIR_OPTION)
    # a fresh registry: a backtest starts from its model, never from an earlier run's versions
    registry = fresh_subdirectory(report_dir, BACKTEST_REGISTRY, REPORT_DIR_OPTION)
    if run.retrain.registry is not None:
        print(
            f"retrain.registry is the live node's; this backtest stores its versions in {registry}"
        )
    return {"retrain": {**run.strategy.retrain, "registry": str(registry)}}


def next_open_quotes(bars: pd.DataFrame, instrument: Instrument) -> list[QuoteTick]:
    """One quote per bar, 1 s after the previous bar's close, at this bar's open (+1 tick ask)."""
    if len(bars) < 2:
        return []
    tick = instrument.price_increment.as_double()
    quotes = pd.DataFrame(
        {"bid_price": bars["open"].to_numpy()[1:], "ask_price": bars["open"].to_numpy()[1:] + tick},
        index=bars.index[:-1] + pd.Timedelta(seconds=1),
    )
    return QuoteTickDataWrangler(instrument).process(quotes, default_volume=1_000_000.0)


def build_engine(
    run: RunConfig, instrument: Instrument, modules: list[FundingModule] | None = None
) -> BacktestEngine:
    """A BacktestEngine with a Bybit-like venue (with ``modules``, e.g. funding); the catalog
    serves warm-up history requests."""
    settings = run.backtest
    engine = BacktestEngine(
        BacktestEngineConfig(
            trader_id=TraderId("BACKTESTER-001"),
            logging=LoggingConfig(log_level=settings.log_level),
            catalogs=[DataCatalogConfig(path=str(settings.catalog))],
            run_analysis=False,  # reports compute their own statistics
        )
    )
    venue = run.strategy.instrument_id.venue
    engine.add_venue(
        venue=venue,
        oms_type=OmsType.NETTING,
        account_type=AccountType.MARGIN,
        starting_balances=[Money(settings.starting_balance, instrument.settlement_currency)],
        base_currency=None,
        default_leverage=Decimal(str(settings.venue_leverage)),
        margin_model=StandardMarginModel(),  # Bybit's initial/maintenance rates as given
        modules=modules or [],
        fill_model=FillModel(
            # maker: a limit fills only when a bar trades through it (see the module docstring)
            prob_fill_on_limit=0.0 if settings.execution == "maker" else 1.0,
            # a limit never fills worse than its price: no slippage for maker execution
            prob_slippage=0.0 if settings.execution == "maker" else settings.slippage_probability,
            random_seed=settings.seed,
        ),
        latency_model=LatencyModel(base_latency_nanos=int(settings.latency_ms * 1_000_000)),
        bar_execution=True,
        bar_adaptive_high_low_ordering=True,
    )
    return engine


def backtest_window(
    run: RunConfig, model: ScoreModel
) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """The configured start/end; by default the model's held-out test block onwards.

    Backtesting on the bars a model was trained on measures memory, not skill; a window that
    overlaps the training block is allowed but flagged in the report.
    """
    settings = run.backtest
    start = _timestamp(settings.start, "start")
    end = _timestamp(settings.end, "end")
    if start is None and model.bar_type == str(run.strategy.bar_type):
        start = pd.Timestamp(model.manifest["data"]["blocks"]["test"]["first"])
    if start is not None and end is not None and start >= end:
        raise BacktestInputError(f"start {start} is not before end {end}; widen the date range")
    return start, end


def overlaps_training(model: ScoreModel, first_bar: pd.Timestamp) -> bool:
    """True if the backtest starts before the model's training/validation blocks end."""
    val_last = pd.Timestamp(model.manifest["data"]["blocks"]["val"]["last"])
    return model.bar_type is not None and first_bar <= val_last


def _timestamp(value: str | None, name: str) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        stamp = pd.Timestamp(value)
    except ValueError as error:
        raise BacktestInputError(
            f"backtest {name} {value!r} is not a date/time: {error}"
        ) from error
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
