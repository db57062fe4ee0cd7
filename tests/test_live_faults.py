"""Faults on the live path, through the real Nautilus Bybit adapter against the emulator:
websocket drop and reconnect, an order rejected by the venue, bad credentials."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest

import run_live
from tests.bybit_emulator import EmulatorConfig
from tests.bybit_emulator import EmulatorServer
from tests.live_support import LiveHarness
from tests.live_support import LiveMarket
from tests.live_support import live_run_config
from tests.live_support import streams_ready
from tests.live_support import use_keys
from tests.live_support import venue_position_qty

pytestmark = pytest.mark.bybit_account  # see tests/conftest.py


def start_testnet(market: LiveMarket, minute_model, tmp_path, monkeypatch) -> LiveHarness:
    emu = market.emu
    use_keys(monkeypatch, "testnet", emu.credentials.api_key, emu.credentials.api_secret)
    harness = LiveHarness(live_run_config(minute_model, emu, tmp_path), "testnet")
    harness.start()
    assert harness.wait_until(lambda: harness.warmed_up() and streams_ready(market.emu), timeout=15)
    return harness


@pytest.mark.timeout(90)
def test_websocket_drop_reconnects_without_duplicate_orders(
    market, minute_model, tmp_path, monkeypatch
):
    emu = market.emu
    harness = start_testnet(market, minute_model, tmp_path, monkeypatch)
    try:
        strategy = harness.strategy
        harness.decide(market, bars=2)
        accepted = emu.ws_accepted()
        assert emu.drop_websockets(refuse_for_s=1.0) == 3  # public, private and trade
        harness.sleep(1.2)
        assert harness.wait_until(lambda: streams_ready(market.emu), timeout=20), emu.ws_sessions()
        assert emu.ws_accepted() >= accepted + 3

        harness.decide(market, bars=3)
        harness.sleep(0.3)  # a duplicated bar or order would show up now
        orders = harness.node.cache.orders(strategy_id=strategy.id)
        assert len(orders) >= 3
        assert emu.order_submissions() == len(orders)
        stamps = [bar.ts_event for bar in strategy.live_bars]
        assert len(stamps) == market.pushed == strategy.bars_decided == 5
        assert stamps == sorted(set(stamps))
        assert harness.position_qty() == venue_position_qty(emu)
        assert harness.node.trader.is_running and strategy.is_running
    finally:
        harness.stop()
    assert emu.unknown_paths() == []


@pytest.mark.timeout(90)
def test_order_rejected_by_the_venue_and_the_strategy_carries_on(
    market, minute_model, tmp_path, monkeypatch
):
    emu = market.emu
    harness = start_testnet(market, minute_model, tmp_path, monkeypatch)
    try:
        strategy = harness.strategy
        emu.reject_next_order(ret_code=110007, ret_msg="ab not enough for new order")
        harness.decide(market)
        [rejected] = harness.node.cache.orders(strategy_id=strategy.id)
        assert rejected.status_string() == "REJECTED"
        rejection = next(e for e in rejected.events if type(e).__name__ == "OrderRejected")
        assert "ab not enough for new order" in rejection.reason
        assert harness.position_qty() == 0

        harness.decide(market, bars=2)  # the next bars trade again
        orders = harness.node.cache.orders(strategy_id=strategy.id)
        assert any(o.status_string() == "FILLED" for o in orders)
        assert emu.order_submissions() == len(orders)
        assert harness.position_qty() == venue_position_qty(emu) != 0
        assert harness.node.trader.is_running and strategy.is_running
    finally:
        harness.stop()


@pytest.mark.timeout(60)
def test_bad_credentials_fail_once_with_a_clear_error(minute_model, tmp_path, monkeypatch, capsys):
    with EmulatorServer(EmulatorConfig(history_bars=100)) as emu:
        check_bad_credentials(emu, minute_model, tmp_path, monkeypatch, capsys)


def check_bad_credentials(emu, minute_model, tmp_path, monkeypatch, capsys) -> None:
    secret = "wrong-secret-for-this-key-1234567"
    use_keys(monkeypatch, "demo", emu.credentials.api_key, secret)
    run = live_run_config(minute_model, emu, tmp_path)

    assert run_live.main(["--mode", "demo", "--config", run.source]) == 2

    err = capsys.readouterr().err
    [line] = err.strip().splitlines()
    assert line.startswith("error: ") and "BYBIT_DEMO_API_KEY" in line and "10004" in line
    assert secret not in err and emu.credentials.api_key not in err
    calls = Counter((r.path, r.ret_code) for r in emu.requests())
    assert calls == {("/v5/user/query-api", 10004): 1}  # one signed request, no retries
    assert emu.ws_accepted() == 0 and emu.order_submissions() == 0
    assert Decimal(emu.wallet()["totalWalletBalance"]) == Decimal("10000")
