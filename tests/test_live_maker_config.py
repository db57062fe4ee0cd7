"""The run configuration's ``execution: maker`` drives the live node as it drives the backtest:
the strategy's own decisions reach Bybit (the emulator) as post-only limits through Nautilus's
Bybit adapter, one tick on the passive side of the decision bar's close, costed at the maker
fee by the cost-aware policy."""

from __future__ import annotations

import pytest
import yaml

from policy.costs import maker_limit_price
from runtime.run_config import load_run_config
from tests.live_support import LiveHarness
from tests.live_support import live_settings
from tests.live_support import strategy_settings
from tests.live_support import streams_ready
from tests.live_support import use_keys

pytestmark = pytest.mark.bybit_account  # see tests/conftest.py


@pytest.mark.timeout(90)
def test_demo_node_with_execution_maker_sends_post_only_limits(
    market, minute_model, tmp_path, monkeypatch
):
    emu = market.emu
    use_keys(monkeypatch, "demo", emu.credentials.api_key, emu.credentials.api_secret)
    config = tmp_path / "live.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "strategy": strategy_settings(minute_model),
                "backtest": {"execution": "maker", "maker_timeout_bars": 3},
                "live": live_settings(emu, tmp_path),
            }
        )
    )
    harness = LiveHarness(load_run_config(config), "demo")
    harness.start()
    try:
        strategy = harness.strategy
        assert strategy.config.execution == "maker" and strategy.config.maker_timeout_bars == 3
        assert harness.wait_until(
            lambda: harness.warmed_up() and streams_ready(emu, trade=False), timeout=15
        )
        assert strategy.policy.costs.fee == pytest.approx(float(strategy.instrument.maker_fee))
        decided = {}
        for _ in range(6):  # the permissive settings trade on (almost) every bar
            before = strategy.bars_decided
            market.push()
            assert harness.wait_until(lambda before=before: strategy.bars_decided > before)
            decided[strategy.bars_decided] = strategy.cache.bar(strategy.config.bar_type)
            if strategy.maker_stats["submitted"]:
                break
        [order] = harness.node.cache.orders(strategy_id=strategy.id)
        close = decided[strategy.bars_decided].close.as_double()
        tick = strategy.instrument.price_increment.as_double()
        assert order.order_type.name == "LIMIT" and order.is_post_only
        assert order.price.as_double() == pytest.approx(
            maker_limit_price(close, order.side.name == "BUY", tick)
        )
        link = order.client_order_id.value
        assert harness.wait_until(lambda: link in {o["orderLinkId"] for o in emu.orders()})
        venue = {o["orderLinkId"]: o for o in emu.orders()}[link]
        assert venue["timeInForce"] == "PostOnly" and venue["orderType"] == "Limit"
        assert float(venue["price"]) == pytest.approx(order.price.as_double())
    finally:
        harness.stop()
