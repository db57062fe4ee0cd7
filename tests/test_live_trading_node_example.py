"""The documented TradingNode example runs the strategy from its import path, against the
emulator through the real Nautilus Bybit clients (demo environment)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.live_support import MINUTE_BAR_TYPE
from tests.live_support import PERMISSIVE
from tests.live_support import LiveHarness
from tests.live_support import LiveMarket
from tests.live_support import use_keys
from tests.live_support import venue_position_qty

pytestmark = pytest.mark.bybit_account  # see tests/conftest.py

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "trading_node.py"


def load_example():
    spec = importlib.util.spec_from_file_location("trading_node_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(60)
def test_trading_node_example_trades_by_import_path(live_bars, minute_model, tmp_path, monkeypatch):
    market = LiveMarket(live_bars)
    emu = market.emu
    use_keys(monkeypatch, "demo", emu.credentials.api_key, emu.credentials.api_secret)
    example = load_example()
    config = example.build_node_config(
        str(minute_model),
        base_url_http=emu.base_url_http,
        base_url_ws_public=emu.ws_public_base,
        base_url_ws_private=emu.ws_private_url,
        base_url_ws_trade=emu.ws_trade_url,
        bar_type=MINUTE_BAR_TYPE,  # the test model's bars
        state_path=str(tmp_path / "risk.json"),
        kill_switch_path=str(tmp_path / "KILL"),
        **PERMISSIVE,
    )
    harness = LiveHarness(None, "demo", build=lambda loop: example.build_node(config, loop))
    try:
        harness.start()
        strategy = harness.strategy
        assert type(strategy).__name__ == "ScoreMatchingStrategy"
        assert harness.wait_until(harness.warmed_up, timeout=15)
        assert harness.wait_until(lambda: "kline.1.BTCUSDT" in emu.subscribed_topics(), 10)
        harness.decide(market, bars=3)
        assert emu.order_submissions() >= 1
        assert harness.position_qty() == venue_position_qty(emu)
        assert (tmp_path / "risk.json").is_file()
    finally:
        harness.stop()
        market.stop()
