"""Sandbox mode end to end: Bybit market data from the emulator through the real Nautilus
Bybit data client, paper fills by Nautilus's sandbox execution client, the product's node."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from itertools import pairwise

import pytest

from runtime.live import LiveError
from runtime.live import build_node
from tests.bybit_emulator import EmulatorConfig
from tests.bybit_emulator import EmulatorServer
from tests.live_support import BTC
from tests.live_support import MINUTE_NS
from tests.live_support import LiveHarness
from tests.live_support import clear_keys
from tests.live_support import live_run_config
from tests.live_support import use_keys

TAKER_FEE = Decimal("0.0007")  # differs from the instrument's, to see the config applied


@pytest.mark.timeout(90)
def test_sandbox_warms_up_trades_and_stops_cleanly(market, minute_model, tmp_path, monkeypatch):
    clear_keys(monkeypatch)  # sandbox needs no key at all
    run = live_run_config(
        minute_model, market.emu, tmp_path, live={"sandbox_taker_fee": float(TAKER_FEE)}
    )
    harness = LiveHarness(run, "sandbox")
    emu = market.emu
    try:
        harness.start()
        strategy = harness.strategy
        assert harness.wait_until(harness.warmed_up, timeout=15)
        assert harness.wait_until(
            lambda: {"kline.1.BTCUSDT", "tickers.BTCUSDT"} <= emu.subscribed_topics(), timeout=10
        )

        # Warm-up history: three pages, sorted, no duplicates, closed bars only
        stamps = [bar.ts_event for bar in strategy.history]
        assert stamps == sorted(set(stamps)), "history unsorted or duplicated across pages"
        assert stamps[-1] == market.forming_open_ns(), "forming bar included or last bar missing"
        assert all(b - a == MINUTE_NS for a, b in pairwise(stamps))
        assert len(stamps) >= 62  # 61 warm-up bars + consistency_bars
        assert strategy.gaps_seen == 0 and strategy.bars_decided == 0

        # The first closed bar after start is decided and traded at once
        first_close = market.push()
        assert harness.wait_until(lambda: strategy.bars_decided == 1, timeout=10)
        assert strategy.live_bars[0].ts_event == first_close
        assert len(harness.node.cache.orders(strategy_id=strategy.id)) == 1
        assert harness.wait_until(harness.settled, timeout=10)
        assert harness.position_qty() != 0

        # More bars: the paper position follows the model (changes size and side)
        positions = {harness.position_qty()}
        for _ in range(8):
            harness.decide(market)
            assert harness.position_qty() == harness.strategy_position_qty()
            positions.add(harness.position_qty())
        assert len(positions) >= 3, positions
        assert min(positions) < 0 < max(positions), positions

        fills = [f for f in harness.node.cache.orders(strategy_id=strategy.id) if f.is_closed]
        fill_events = [e for o in fills for e in o.events if type(e).__name__ == "OrderFilled"]
        notional = fill_events[0].last_qty.as_decimal() * fill_events[0].last_px.as_decimal()
        assert fill_events[0].commission.as_decimal() == pytest.approx(notional * TAKER_FEE)
        assert strategy.config.state_path is None  # the paper account does not survive restarts
    finally:
        harness.stop()

    # on_stop closed the paper position; the node shut down cleanly; the venue saw no order
    assert harness.node.cache.positions_open(instrument_id=BTC) == []
    assert harness.node.kernel.data_engine.check_disconnected()
    assert harness.node.kernel.exec_engine.check_disconnected()
    assert harness.loop.is_closed()
    assert emu.wait_for(lambda: emu.ws_connections() == 0, timeout=5)
    assert emu.order_submissions() == 0
    assert emu.unknown_paths() == []
    assert all(r.api_key is None for r in emu.requests())  # no key was used or needed


def test_a_venue_account_is_refused_after_a_sandbox_in_the_same_process(
    minute_model, tmp_path, monkeypatch
):
    """After a sandbox (or backtest) on BYBIT, Nautilus would compute a real BYBIT account from
    fills on top of the venue's wallet updates; the product refuses instead of double counting."""
    with EmulatorServer(EmulatorConfig(history_bars=10)) as emu:
        use_keys(monkeypatch, "demo", emu.credentials.api_key, emu.credentials.api_secret)
        run = live_run_config(minute_model, emu, tmp_path)
        build_node(run, "sandbox", asyncio.new_event_loop()).dispose()  # BYBIT now simulated
        loop = asyncio.new_event_loop()
        try:
            with pytest.raises(LiveError, match="run live trading in a fresh process"):
                build_node(run, "demo", loop)
        finally:
            loop.close()
            asyncio.set_event_loop(None)
