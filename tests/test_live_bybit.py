"""Demo and testnet end to end through the real Nautilus Bybit execution client: orders,
fills, books against the emulator's, and a restart that reconciles an open position."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from policy.risk import RiskState
from runtime.live import node_config
from tests.live_support import BTC
from tests.live_support import LiveHarness
from tests.live_support import LiveMarket
from tests.live_support import live_run_config
from tests.live_support import streams_ready
from tests.live_support import use_keys
from tests.live_support import venue_position_qty

pytestmark = pytest.mark.bybit_account  # see tests/conftest.py


def connected(harness: LiveHarness, market: LiveMarket) -> bool:
    """Warmed up, market data subscribed, private stream authenticated and subscribed."""
    return harness.warmed_up() and streams_ready(market.emu, trade=False)


def books(harness: LiveHarness, market: LiveMarket) -> tuple[tuple, tuple]:
    """(position, wallet balance) of the node and of the emulator."""
    wallet = Decimal(market.emu.wallet()["totalWalletBalance"])
    return (harness.position_qty(), harness.balance()), (venue_position_qty(market.emu), wallet)


def books_agree(harness: LiveHarness, market: LiveMarket) -> bool:
    """The node's position and wallet balance equal the emulator's books."""
    node, venue = books(harness, market)
    return node == venue


def start(run, mode: str, market: LiveMarket) -> LiveHarness:
    harness = LiveHarness(run, mode)
    harness.start()
    assert harness.wait_until(lambda: connected(harness, market), timeout=15)
    return harness


@pytest.mark.timeout(90)
@pytest.mark.parametrize("mode", ["demo", "testnet"])
def test_trades_through_bybit_execution_client(mode, market, minute_model, tmp_path, monkeypatch):
    emu = market.emu
    use_keys(monkeypatch, mode, emu.credentials.api_key, emu.credentials.api_secret)
    run = live_run_config(minute_model, emu, tmp_path)
    # the keys stay in the environment: no config object holds them (nothing can log them)
    assert emu.credentials.api_secret not in repr(node_config(run, mode))
    assert emu.credentials.api_key not in repr(node_config(run, mode))
    harness = start(run, mode, market)
    try:
        strategy = harness.strategy
        harness.decide(market, bars=6)
        orders = harness.node.cache.orders(strategy_id=strategy.id)
        assert len(orders) >= 3 and all(o.is_closed for o in orders)
        assert emu.order_submissions() == len(orders)  # one venue order per strategy order
        filled = [e for o in orders for e in o.events if type(e).__name__ == "OrderFilled"]
        assert len(filled) == len(emu.executions())
        assert harness.wait_until(lambda: books_agree(harness, market), timeout=10), books(
            harness, market
        )
        position = harness.node.cache.positions_open(instrument_id=BTC)
        if position:
            venue_avg = Decimal(emu.position("BTCUSDT")["avgPrice"])
            assert position[0].avg_px_open == pytest.approx(float(venue_avg), rel=1e-9)

        # Keys came from the environment; demo places orders over REST, testnet over the
        # trade websocket, exactly as Nautilus's adapter does on the real venues
        signed = [r for r in emu.requests() if r.api_key is not None]
        assert signed and all(r.api_key == emu.credentials.api_key for r in signed)
        rest_creates = [r for r in emu.requests() if r.path == "/v5/order/create"]
        ws_creates = [m for m in emu.ws_received("trade") if m.get("op") == "order.create"]
        assert (len(rest_creates), len(ws_creates)) == (
            (len(orders), 0) if mode == "demo" else (0, len(orders))
        )

        # The risk state file follows the strategy's state
        state_path = Path(strategy.config.state_path)
        assert state_path.is_relative_to(tmp_path / "state") and mode in state_path.parts
        assert RiskState.from_json(state_path.read_text()) == strategy.policy.risk
    finally:
        harness.stop()

    # close_positions_on_stop: the venue position is closed, the node disconnected cleanly
    assert venue_position_qty(emu) == 0
    assert harness.node.kernel.exec_engine.check_disconnected()
    assert emu.wait_for(lambda: emu.ws_connections() == 0, timeout=5)
    assert emu.unknown_paths() == []
    assert all(r.ret_code == 0 for r in emu.requests())


@pytest.mark.timeout(90)
def test_restart_reconciles_the_open_position_and_restores_risk_state(
    market, minute_model, tmp_path, monkeypatch
):
    emu = market.emu
    use_keys(monkeypatch, "demo", emu.credentials.api_key, emu.credentials.api_secret)
    run = live_run_config(minute_model, emu, tmp_path, close_positions_on_stop=False)

    first = start(run, "demo", market)
    try:
        for _ in range(10):
            first.decide(market)
            if first.position_qty() != 0:
                break
        assert first.wait_until(lambda: books_agree(first, market), timeout=10), books(
            first, market
        )
        state_path = Path(first.strategy.config.state_path)
    finally:
        first.stop()  # a restart with the position left open (close_positions_on_stop false)
    risk_before = first.session_strategy.policy.risk
    assert risk_before.high_water_mark > 0
    assert RiskState.from_json(state_path.read_text()) == risk_before
    open_qty = venue_position_qty(emu)
    assert open_qty != 0
    orders_before = emu.order_submissions()

    second = start(run, "demo", market)
    try:
        strategy = second.strategy
        assert strategy.policy.risk == risk_before  # restored from the file, not a fresh state
        # Reconciliation: the node's position is the venue's and the strategy owns it
        assert second.wait_until(lambda: books_agree(second, market), timeout=10)
        [position] = second.node.cache.positions_open(instrument_id=BTC)
        assert position.strategy_id == strategy.id
        assert second.strategy_position_qty() == open_qty
        assert emu.order_submissions() == orders_before  # reconciling placed no order

        # The kill switch flattens the reconciled position at once and the halt is persisted
        Path(run.live.kill_switch_path).touch()
        assert second.wait_until(lambda: venue_position_qty(emu) == 0, timeout=10)
        assert second.wait_until(second.settled, timeout=5)
        assert strategy.policy.risk.halted and "kill switch" in strategy.policy.risk.halt_reason
        assert RiskState.from_json(state_path.read_text()).halted
        assert emu.order_submissions() == orders_before + 1
        assert second.position_qty() == 0
    finally:
        second.stop()


@pytest.mark.timeout(60)
def test_stop_while_the_opening_order_is_in_flight_still_ends_flat(
    live_bars, minute_model, tmp_path, monkeypatch
):
    """The fill of an order in flight at the stop arrives after on_stop ran: Nautilus's
    managed stop (set by runtime.live) waits for it and closes the position."""
    market = LiveMarket(live_bars, private_push_latency_ms=400.0)
    emu = market.emu
    try:
        use_keys(monkeypatch, "demo", emu.credentials.api_key, emu.credentials.api_secret)
        harness = start(live_run_config(minute_model, emu, tmp_path), "demo", market)
        try:
            strategy = harness.strategy
            assert strategy.config.manage_stop
            market.push()
            assert harness.wait_until(
                lambda: harness.node.cache.orders_inflight_count(strategy_id=strategy.id) == 1,
                timeout=10,
            )
            assert harness.node.cache.positions_open(instrument_id=BTC) == []  # fill pending
        finally:
            harness.stop()
        assert emu.order_submissions() == 2  # the opening order and the closing one
        assert venue_position_qty(emu) == 0
    finally:
        market.stop()
