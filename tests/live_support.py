"""Shared pieces of the live tests: a synthetic market in the emulator, run configs pointing at
it, and a harness that drives the product's own TradingNode (runtime.live) from test code."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from nautilus_trader.live.node import TradingNode
from nautilus_trader.model.currencies import USDT
from nautilus_trader.model.data import Bar
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.identifiers import Venue

from runtime.live import KEY_ENV_VARS
from runtime.live import LiveSession
from runtime.live import build_node
from runtime.run_config import RunConfig
from runtime.run_config import load_run_config
from strategies.score_matching import ScoreMatchingStrategy
from tests.bybit_emulator import EmulatorConfig
from tests.bybit_emulator import EmulatorServer
from tests.bybit_emulator.harness import run_loop_until
from tests.bybit_emulator.harness import wait_for_bar_headroom
from tests.live_settings import MINUTE_BAR_TYPE
from tests.live_settings import MINUTE_NS
from tests.live_settings import PERMISSIVE

BTC = InstrumentId.from_str("BTCUSDT-LINEAR.BYBIT")
MS = 1_000_000


def market_frames(bars: pd.DataFrame, history: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``bars`` re-indexed by OPEN time: ``history`` closed bars ending where the current
    wall-clock minute opens (the emulator's forming bar), then the rest, to push."""
    wall_minute = time.time_ns() // MINUTE_NS * MINUTE_NS
    opens = bars.index.asi8 - MINUTE_NS
    opens = opens - opens[history - 1] + (wall_minute - MINUTE_NS)
    frame = bars.set_axis(pd.DatetimeIndex(opens, tz="UTC"))
    return frame.iloc[:history], frame.iloc[history:]


class LiveMarket:
    """The emulator holding synthetic history, and the next bars to push, in order."""

    def __init__(
        self, bars: pd.DataFrame, history: int = 200, headroom_s: float = 8.0, **emulator: Any
    ) -> None:
        # the node must request its history before the wall-clock minute (the forming bar)
        # ends; see tests.bybit_emulator.harness.wait_for_bar_headroom
        wait_for_bar_headroom(seconds=headroom_s)
        past, self.upcoming = market_frames(bars, history)
        self.emu = EmulatorServer(EmulatorConfig(history_bars=10, **emulator)).start()
        self.emu.load_bars("BTCUSDT", past)
        self.pushed = 0

    def push(self) -> int:
        """Close the forming bar with the next synthetic bar; returns its close (ns)."""
        row = self.upcoming.iloc[self.pushed]
        self.pushed += 1
        kline = self.emu.push_bar(
            "BTCUSDT", row.open, row.high, row.low, row.close, volume=round(row.volume, 3)
        )
        return (kline.start + 60_000) * MS

    def forming_open_ns(self) -> int:
        return self.emu.forming_bar_start("BTCUSDT") * MS

    def stop(self) -> None:
        self.emu.stop()


def live_settings(emu: EmulatorServer, tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    """``live:`` section values pointing every endpoint at the emulator (fast timeouts)."""
    return {
        "base_url_http": emu.base_url_http,
        "base_url_ws_public": emu.ws_public_base,
        "base_url_ws_private": emu.ws_private_url,
        "base_url_ws_trade": emu.ws_trade_url,
        "state_dir": str(tmp_path / "state"),
        "kill_switch_path": str(tmp_path / "KILL"),
        "kill_switch_poll_secs": 0.2,
        "timeout_connection": 10.0,
        "timeout_post_stop": 5.0,  # an upper bound: the stop returns once flat
        "log_level": "WARNING",
        **overrides,
    }


def strategy_settings(model_path: Path, **overrides: Any) -> dict[str, Any]:
    return {
        "instrument_id": str(BTC),
        "bar_type": MINUTE_BAR_TYPE,
        "model_path": str(model_path),
        **PERMISSIVE,
        **overrides,
    }


def write_run_yaml(path: Path, strategy: dict[str, Any], live: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({"strategy": strategy, "live": live}))
    return path


def live_run_config(
    model_path: Path,
    emu: EmulatorServer,
    tmp_path: Path,
    live: dict[str, Any] | None = None,
    **strategy: Any,
) -> RunConfig:
    """The RunConfig a user's YAML would give, aimed at the emulator (read through the file)."""
    path = write_run_yaml(
        tmp_path / "live.yaml",
        strategy_settings(model_path, **strategy),
        live_settings(emu, tmp_path, **(live or {})),
    )
    run = load_run_config(path)
    return dataclasses.replace(run, source=str(path))


def clear_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Bybit key variable in the environment."""
    for names in KEY_ENV_VARS.values():
        for name in names:
            monkeypatch.delenv(name, raising=False)


def use_keys(monkeypatch: pytest.MonkeyPatch, mode: str, key: str, secret: str) -> None:
    """Only ``mode``'s key variables in the environment (no other Bybit keys)."""
    clear_keys(monkeypatch)
    key_var, secret_var = KEY_ENV_VARS[mode]
    monkeypatch.setenv(key_var, key)
    monkeypatch.setenv(secret_var, secret)


class RecordingStrategy(ScoreMatchingStrategy):
    """ScoreMatchingStrategy that also records the history bars and live bars it receives."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.history: list[Bar] = []
        self.live_bars: list[Bar] = []

    def on_historical_data(self, data: object) -> None:
        if isinstance(data, Bar):
            self.history.append(data)
        super().on_historical_data(data)

    def on_bar(self, bar: Bar) -> None:
        self.live_bars.append(bar)
        super().on_bar(bar)


class LiveHarness:
    """The product's node (``runtime.live.build_node``, or ``build(loop)``) on its own loop,
    started and stopped by the product's ``LiveSession``, driven from test code."""

    def __init__(
        self,
        run: RunConfig | None,
        mode: str,
        build: Callable[[asyncio.AbstractEventLoop], TradingNode] | None = None,
    ) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        if build is None:
            self.node = build_node(run, mode, self.loop, strategy_class=RecordingStrategy)
        else:
            self.node = build(self.loop)
        self.session = LiveSession(self.node, mode, timeout_connection=10.0, timeout_stop=5.0)
        self.session_strategy = self.session.strategy  # kept: disposing clears the trader
        self.stopped = False

    @property
    def strategy(self) -> Any:
        return self.session_strategy

    def start(self) -> None:
        self.loop.run_until_complete(self.session.start())

    def wait_until(self, condition: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Run the node's loop until ``condition()`` or ``timeout`` seconds."""

        return run_loop_until(self.loop, condition, timeout)

    def sleep(self, seconds: float) -> None:
        self.loop.run_until_complete(asyncio.sleep(seconds))

    def warmed_up(self) -> bool:
        """Running, and the warm-up history has arrived (up to the last closed bar)."""
        strategy = self.strategy
        return (
            strategy.is_running
            and not strategy._history_pending
            and strategy.decider is not None
            and strategy.decider.last_bar_ns > 0
        )

    def settled(self) -> bool:
        """No order of the strategy is queued, in flight or working (a live submit goes
        through the execution engine's queue: until it is processed the order is INITIALIZED,
        neither in flight nor open)."""
        cache, strategy_id = self.node.cache, self.strategy.id
        return (
            cache.orders_inflight_count(strategy_id=strategy_id) == 0
            and cache.orders_open_count(strategy_id=strategy_id) == 0
            and not any(
                o.status_string() == "INITIALIZED" for o in cache.orders(strategy_id=strategy_id)
            )
        )

    def decide(self, market: LiveMarket, bars: int = 1, timeout: float = 10.0) -> None:
        """Push ``bars`` bars, each time until the strategy decided it and its orders settled."""
        for _ in range(bars):
            before = self.strategy.bars_decided
            market.push()
            done = self.wait_until(
                lambda before=before: self.strategy.bars_decided > before and self.settled(),
                timeout,
            )
            assert done, f"bar {market.pushed} not decided/settled: {self.node.cache.orders()}"

    def position_qty(self) -> Decimal:
        """The node's signed net position in BTCUSDT."""
        return sum(
            (p.signed_decimal_qty() for p in self.node.cache.positions_open(instrument_id=BTC)),
            Decimal(0),
        )

    def strategy_position_qty(self) -> Decimal:
        """The signed position the strategy owns (its sizing and risk apply to it)."""
        positions = self.node.cache.positions_open(instrument_id=BTC, strategy_id=self.strategy.id)
        return sum((p.signed_decimal_qty() for p in positions), Decimal(0))

    def balance(self) -> Decimal:
        account = self.node.cache.account_for_venue(Venue("BYBIT"))
        return account.balance_total(USDT).as_decimal()

    def stop(self) -> None:
        """Stop the strategy and the node, dispose (idempotent)."""
        if self.stopped:
            return
        self.stopped = True
        try:
            self.loop.run_until_complete(self.session.stop())
        finally:
            self.session.dispose()
            asyncio.set_event_loop(None)


def venue_position_qty(emu: EmulatorServer) -> Decimal:
    """The emulator's signed BTCUSDT position."""
    position = emu.position("BTCUSDT")
    size = Decimal(position["size"] or "0")
    return -size if position["side"] == "Sell" else size


def env_without_bybit_keys() -> dict[str, str]:
    """The current environment minus every Bybit key variable (for subprocesses)."""
    names = {name for pair in KEY_ENV_VARS.values() for name in pair}
    return {k: v for k, v in os.environ.items() if k not in names}


PRIVATE_TOPICS = frozenset({"order", "execution", "position", "wallet"})


def streams_ready(emu: EmulatorServer, trade: bool = True) -> bool:
    """Public kline subscribed, private stream authenticated and subscribed to every private
    topic, and (``trade``) the trade stream authenticated, on the emulator's websockets."""
    sessions = emu.ws_sessions()
    public = any(k == "public" and "kline.1.BTCUSDT" in t for k, _, t in sessions)
    private = any(k == "private" and a and t >= PRIVATE_TOPICS for k, a, t in sessions)
    if not trade:
        return public and private
    traded = any(k == "trade" and a for k, a, _ in sessions)
    return public and private and traded and len(sessions) == 3
