"""Run a real NautilusTrader ``TradingNode`` inside a (synchronous) test.

The node gets a fresh event loop; ``wait_until`` runs that loop until a condition holds, and
between waits the test can drive the emulator (its control calls run on the emulator thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import pandas as pd
from nautilus_trader.adapters.bybit.factories import get_cached_bybit_http_client
from nautilus_trader.adapters.bybit.factories import get_cached_bybit_instrument_provider
from nautilus_trader.config import LiveExecEngineConfig
from nautilus_trader.config import LoggingConfig
from nautilus_trader.config import StrategyConfig
from nautilus_trader.config import TradingNodeConfig
from nautilus_trader.live.node import TradingNode
from nautilus_trader.model.data import Bar
from nautilus_trader.model.data import BarType
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.objects import Quantity
from nautilus_trader.trading.strategy import Strategy


def wait_for_bar_headroom(seconds: float = 8.0, interval_ms: int = 60_000) -> None:
    """Sleep into the next bar if fewer than ``seconds`` remain in the current wall-clock bar.

    The emulator's forming bar is the wall-clock bar when it starts and does not roll by
    itself, while the Nautilus adapter drops requested bars whose end is not yet past. Starting
    with headroom keeps "the newest historical bar closes where the forming bar opens" exact.
    """
    now_ms = time.time() * 1000
    left_ms = interval_ms - now_ms % interval_ms
    if left_ms < seconds * 1000:
        time.sleep(left_ms / 1000 + 0.05)


def run_loop_until(
    loop: asyncio.AbstractEventLoop, condition: Callable[[], bool], timeout: float
) -> bool:
    """Run ``loop`` until ``condition()`` holds or ``timeout`` seconds pass; return it."""

    async def poll() -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            await asyncio.sleep(0.02)
        return condition()

    return loop.run_until_complete(poll())


class RecorderConfig(StrategyConfig, frozen=True):
    """Test strategy settings: request ``history_minutes`` of bars, subscribe to live bars and
    submit a market order on the live bars numbered in ``order_on_bars`` (1-based)."""

    instrument_id: str = "BTCUSDT-LINEAR.BYBIT"
    bar_spec: str = "1-MINUTE-LAST-EXTERNAL"
    history_minutes: int = 120
    trade_qty: str = "0.010"
    order_on_bars: tuple[int, ...] = (1,)
    order_sides: tuple[str, ...] = ("BUY",)
    subscribe_quotes: bool = False


class RecorderStrategy(Strategy):
    """Records historical bars, live bars, quotes and order/position events."""

    def __init__(self, config: RecorderConfig) -> None:
        super().__init__(config)
        self.instrument_id = InstrumentId.from_str(config.instrument_id)
        self.bar_type = BarType.from_str(f"{config.instrument_id}-{config.bar_spec}")
        self.historical: list[Bar] = []
        self.live: list[Bar] = []
        self.quotes: list[Any] = []
        self.events: list[Any] = []
        self.instrument_at_start: Any = None

    def on_start(self) -> None:
        self.instrument_at_start = self.cache.instrument(self.instrument_id)
        now_ns = self.clock.timestamp_ns()
        start = pd.Timestamp(now_ns - self.config.history_minutes * 60_000_000_000, tz="UTC")
        self.request_bars(self.bar_type, start=start)
        self.subscribe_bars(self.bar_type)
        if self.config.subscribe_quotes:
            self.subscribe_quote_ticks(self.instrument_id)

    def on_historical_data(self, data: Any) -> None:
        if isinstance(data, Bar):
            self.historical.append(data)

    def on_quote_tick(self, tick: Any) -> None:
        self.quotes.append(tick)

    def on_bar(self, bar: Bar) -> None:
        self.live.append(bar)
        n = len(self.live)
        if n in self.config.order_on_bars:
            side = self.config.order_sides[self.config.order_on_bars.index(n)]
            order = self.order_factory.market(
                self.instrument_id,
                OrderSide.BUY if side == "BUY" else OrderSide.SELL,
                Quantity.from_str(self.config.trade_qty),
            )
            self.submit_order(order)

    def on_event(self, event: Any) -> None:
        self.events.append(event)

    def on_stop(self) -> None:
        self.unsubscribe_bars(self.bar_type)

    def event_names(self) -> list[str]:
        return [type(e).__name__ for e in self.events]


class NodeHarness:
    """A ``TradingNode`` on its own loop, started and stopped from synchronous test code."""

    def __init__(
        self,
        *,
        data_clients: dict[str, Any],
        exec_clients: dict[str, Any],
        data_factories: dict[str, type],
        exec_factories: dict[str, type],
        strategies: list[Strategy],
        log_level: str = "ERROR",
        timeout_connection: float = 10.0,
    ) -> None:
        # nautilus_trader 1.231 caches the Bybit HTTP client (lru_cache) and cancels it when a
        # client disconnects: a second node with the same settings in this process would get
        # a cancelled client ("Request canceled: Adapter disconnecting or shutting down").
        get_cached_bybit_http_client.cache_clear()
        get_cached_bybit_instrument_provider.cache_clear()
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        config = TradingNodeConfig(
            logging=LoggingConfig(log_level=log_level),
            data_clients=data_clients,
            exec_clients=exec_clients,
            exec_engine=LiveExecEngineConfig(reconciliation=True),
            timeout_connection=timeout_connection,
            timeout_reconciliation=5.0,
            timeout_portfolio=5.0,
            timeout_disconnection=5.0,
            timeout_post_stop=0.5,
        )
        self.node = TradingNode(config=config, loop=self.loop)
        for name, factory in data_factories.items():
            self.node.add_data_client_factory(name, factory)
        for name, factory in exec_factories.items():
            self.node.add_exec_client_factory(name, factory)
        for strategy in strategies:
            self.node.trader.add_strategy(strategy)
        self.node.build()
        self._run_task: asyncio.Task | None = None
        self.disposed = False

    def start(self) -> None:
        self._run_task = self.loop.create_task(self.node.run_async())

    def wait_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Run the node's loop until ``condition()`` or ``timeout`` seconds."""

        return run_loop_until(self.loop, condition, timeout)

    def sleep(self, seconds: float) -> None:
        self.loop.run_until_complete(asyncio.sleep(seconds))

    def stop(self) -> None:
        """``stop_async`` then ``dispose`` (idempotent)."""
        if self.disposed:
            return
        self.disposed = True
        try:
            self.loop.run_until_complete(self.node.stop_async())
        finally:
            pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
            for task in pending:  # the run task, actor executors, client loops...
                task.cancel()
            with contextlib.suppress(BaseException):
                self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.node.dispose()
            asyncio.set_event_loop(None)
