"""Engine runs for the benchmark: a do-nothing strategy and the instrumented full strategy."""

from __future__ import annotations

import os
import time
from pathlib import Path

import msgspec
import numpy as np
from nautilus_trader.config import StrategyConfig
from nautilus_trader.model.data import Bar
from nautilus_trader.model.data import BarType
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.trading.strategy import Strategy

from catalogs.catalog import load_instrument
from catalogs.catalog import open_catalog
from catalogs.catalog import read_bars_frame
from runtime.backtest import build_engine
from runtime.backtest import next_open_quotes
from runtime.run_config import load_run_config
from scoremodel.inference import SIGNAL_MODES
from strategies.score_matching import ScoreMatchingStrategy

BAR_TYPE = "BTCUSDT-LINEAR.BYBIT-1-MINUTE-LAST-EXTERNAL"
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
# Trades on almost every bar: shows how Nautilus's own cost grows with orders.
ORDER_HEAVY = {"min_confidence": 0.0, "consistency_bars": 1, "density_percentile": 0.0,
               "no_trade_band": 0.0}  # fmt: skip


class BareConfig(StrategyConfig, frozen=True):
    bar_type: BarType


class BareStrategy(Strategy):
    """Subscribes to the bars and does nothing with them: the engine's own cost."""

    def on_start(self) -> None:
        self.subscribe_bars(self.config.bar_type)

    def on_bar(self, bar: Bar) -> None:
        pass

    def on_stop(self) -> None:
        self.unsubscribe_bars(self.config.bar_type)


class HoldConfig(StrategyConfig, frozen=True):
    bar_type: BarType
    quantity: str = "1.000"


class HoldStrategy(BareStrategy):
    """Opens one position on the first bar and holds it: the engine's cost of an open position
    (Nautilus marks it to market and updates the margin account on every price update)."""

    def on_bar(self, bar: Bar) -> None:
        if self.portfolio.is_flat(bar.bar_type.instrument_id) and not self.cache.orders():
            instrument = self.cache.instrument(bar.bar_type.instrument_id)
            order = self.order_factory.market(
                instrument.id, OrderSide.BUY, instrument.make_qty(float(self.config.quantity))
            )
            self.submit_order(order)


class TimedScoreMatchingStrategy(ScoreMatchingStrategy):
    """ScoreMatchingStrategy with on_bar wall time and RSS sampled inside the engine."""

    def __init__(self, config, n_bars: int) -> None:
        super().__init__(config)
        self.latency_ns = np.zeros(n_bars, dtype=np.int64)
        self.ordered = np.zeros(n_bars, dtype=bool)  # the bar submitted an order
        self.calls = 0
        self.rss_half = self.rss_end = 0
        self._half = n_bars // 2
        self._last = n_bars - 1

    _submitted = False

    def _submit(self, decision) -> None:
        self._submitted = True
        super()._submit(decision)

    def on_bar(self, bar: Bar) -> None:
        started = time.perf_counter_ns()
        super().on_bar(bar)
        i = self.calls
        if i <= self._last:
            self.latency_ns[i] = time.perf_counter_ns() - started
            self.ordered[i] = self._submitted
            self._submitted = False
        if i == self._half:
            self.rss_half = current_rss()
        elif i == self._last:
            self.rss_end = current_rss()
        self.calls = i + 1


def current_rss() -> int:
    """Resident set size of this process in bytes (Linux /proc)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * PAGE_BYTES


def run_engine(catalog: Path, model_dir: Path, mode: str, order_heavy: bool = False) -> dict:
    """One backtest over every bar of the catalog; ``mode``: bare, hold or a signal mode."""
    overrides = ORDER_HEAVY if order_heavy else {}
    run = load_run_config(
        model_path=str(model_dir), bar_type=BAR_TYPE,
        signal_mode=mode if mode in SIGNAL_MODES else "score", **overrides,
    )  # fmt: skip
    instrument = load_instrument(catalog, str(run.strategy.instrument_id))
    bars = open_catalog(catalog).bars([BAR_TYPE])
    engine = build_engine(run, instrument)
    engine.add_instrument(instrument)
    engine.add_data(bars)
    engine.add_data(next_open_quotes(read_bars_frame(catalog, BAR_TYPE), instrument))
    if mode == "bare":
        strategy = BareStrategy(BareConfig(bar_type=run.strategy.bar_type))
    elif mode == "hold":
        strategy = HoldStrategy(HoldConfig(bar_type=run.strategy.bar_type))
    else:
        config = msgspec.structs.replace(run.strategy, warmup_from_history=False)
        strategy = TimedScoreMatchingStrategy(config, len(bars))
    engine.add_strategy(strategy)
    started = time.perf_counter()
    engine.run()
    seconds = time.perf_counter() - started
    result = {"bars_per_s": len(bars) / seconds, "orders": len(engine.cache.orders())}
    if mode not in ("bare", "hold"):
        latency = strategy.latency_ns[: strategy.calls] / 1_000
        quiet = latency[~strategy.ordered[: strategy.calls]]
        result["latency_us"] = {
            "mean": float(latency.mean()),
            "p50": float(np.percentile(latency, 50)),
            "p99": float(np.percentile(latency, 99)),
            "max": float(latency.max()),
            "p99_without_order": float(np.percentile(quiet, 99)),
            "mean_without_order": float(quiet.mean()),
        }
        result["rss_mb"] = {
            "at_half": strategy.rss_half / 2**20,
            "at_end": strategy.rss_end / 2**20,
            "growth_mb": (strategy.rss_end - strategy.rss_half) / 2**20,
        }
    engine.dispose()
    return result
