"""backtest.execution: maker — post-only limits at the passive side of the decision bar's close,
filled only when a later bar trades through them, cancelled unfilled after N bars."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from nautilus_trader.config import StrategyConfig
from nautilus_trader.model.data import BarType
from nautilus_trader.model.enums import LiquiditySide
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.enums import OrderStatus
from nautilus_trader.model.enums import OrderType
from nautilus_trader.model.events import OrderFilled
from nautilus_trader.trading.strategy import Strategy

from runtime.backtest import run_backtest
from runtime.reports import summarise

REPO_ROOT = Path(__file__).resolve().parents[1]
TICK = 0.1  # BTCUSDT's price increment


@pytest.fixture(scope="module")
def maker_run(synthetic_catalog, trained_model, tmp_path_factory):
    """A maker backtest on the test catalog: the summary, its bars, its orders and the fee
    the strategy's cost-aware policy prices a trade at."""
    import dataclasses

    from runtime.run_config import load_run_config

    run = load_run_config(model_path=str(trained_model), signal_mode="score")  # trades here
    settings = dataclasses.replace(
        run.backtest,
        catalog=str(synthetic_catalog),
        report_dir=str(tmp_path_factory.mktemp("maker-report")),
        tearsheet=False,
        execution="maker",
        maker_timeout_bars=2,
    )
    outcome = run_backtest(dataclasses.replace(run, backtest=settings))
    try:
        summary = summarise(outcome)
        orders = list(outcome.engine.cache.orders())
        closes = outcome.bars
        yield summary, closes, orders, outcome.strategy.policy.costs.fee
    finally:
        outcome.engine.dispose()


def test_maker_orders_are_post_only_limits_one_tick_inside_the_decision_close(maker_run):
    summary, bars, orders, _ = maker_run
    limits = [o for o in orders if o.order_type == OrderType.LIMIT]
    assert summary["maker_orders"] == len(limits) > 20
    for order in limits:
        assert order.is_post_only
        decided = pd.Timestamp(order.ts_init, tz="UTC").floor("1h")  # the decision bar's close
        close = bars["close"][decided]
        expected = close - TICK if order.side == OrderSide.BUY else close + TICK
        assert order.price.as_double() == pytest.approx(expected)


def test_a_maker_fill_needs_a_later_bar_trading_through_its_price(maker_run):
    summary, bars, orders, _ = maker_run
    fills = 0
    for order in orders:
        if order.order_type != OrderType.LIMIT:
            continue
        for event in order.events:
            if not isinstance(event, OrderFilled):
                continue
            fills += 1
            assert event.liquidity_side == LiquiditySide.MAKER
            # at the limit, or better when the next bar opens through it
            if order.side == OrderSide.BUY:
                assert event.last_px.as_double() <= order.price.as_double() + 1e-9
            else:
                assert event.last_px.as_double() >= order.price.as_double() - 1e-9
            # the first bar closing at or after the fill is the one that traded through it
            after = bars[bars.index >= pd.Timestamp(event.ts_event, tz="UTC")].iloc[0]
            assert pd.Timestamp(event.ts_event, tz="UTC") > pd.Timestamp(order.ts_init, tz="UTC")
            if order.side == OrderSide.BUY:
                assert after["low"] < order.price.as_double()  # a touch is not enough
            else:
                assert after["high"] > order.price.as_double()
    assert fills == summary["fills_maker"] > 0


def test_the_report_gives_fill_shares_fees_by_side_and_unfilled_orders(maker_run):
    summary, _, orders, _ = maker_run
    assert summary["execution"] == "maker"
    assert summary["fills_taker"] == 0 and summary["fees_taker"] == 0.0
    assert summary["maker_fill_share"] == 1.0
    assert summary["fees_maker"] == pytest.approx(summary["fees"])
    canceled = [o for o in orders if o.is_canceled]
    assert summary["unfilled_orders"] == len(canceled) > 0
    filled = sum(1 for o in orders if o.is_closed and not o.is_canceled)
    assert filled + summary["unfilled_orders"] + summary["post_only_rejected"] <= len(orders)


def test_the_maker_fee_is_charged_not_the_taker_fee(maker_run):
    orders, policy_fee = maker_run[2], maker_run[3]
    assert policy_fee == pytest.approx(0.0002)  # and the policy's costs are the maker fee's
    for order in orders:
        for event in order.events:
            if isinstance(event, OrderFilled):
                notional = event.last_qty.as_double() * event.last_px.as_double()
                assert event.commission.as_double() == pytest.approx(notional * 0.0002, rel=1e-3)


def test_taker_execution_is_unchanged_market_orders(run_config):
    outcome = run_backtest(run_config())
    try:
        summary = summarise(outcome)
        types = {o.order_type for o in outcome.engine.cache.orders()}
        policy_fee = outcome.strategy.policy.costs.fee
    finally:
        outcome.engine.dispose()
    assert types == {OrderType.MARKET}
    assert policy_fee == pytest.approx(0.00055)  # the cost-aware policy prices the taker fee
    assert summary["execution"] == "taker" and summary["fills_maker"] == 0
    assert summary["maker_orders"] == summary["unfilled_orders"] == 0


def test_a_wrong_execution_setting_is_one_line(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("backtest:\n  execution: makr\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = subprocess.run(
        [sys.executable, "run_backtest.py", "--config", str(config)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: {config}: backtest.execution = 'makr' is invalid; expected one of taker, maker"
    )
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_maker_timeout_bars_must_be_a_whole_number_of_at_least_one(tmp_path):
    from runtime.run_config import ConfigError
    from runtime.run_config import load_run_config

    config = tmp_path / "run.yaml"
    config.write_text("backtest:\n  maker_timeout_bars: 0\n")
    with pytest.raises(ConfigError, match=r"backtest.maker_timeout_bars = 0 is invalid"):
        load_run_config(config)


# -- live: post-only orders through Nautilus's Bybit adapter against the emulator ----------------


@pytest.mark.bybit_account  # see tests/conftest.py
@pytest.mark.timeout(90)
def test_live_post_only_orders_rest_and_a_crossing_one_is_refused(
    market, minute_model, tmp_path, monkeypatch
):
    from tests.live_support import LiveHarness
    from tests.live_support import live_run_config
    from tests.live_support import streams_ready
    from tests.live_support import use_keys
    from tests.live_support import venue_position_qty

    emu = market.emu
    use_keys(monkeypatch, "demo", emu.credentials.api_key, emu.credentials.api_secret)
    harness = LiveHarness(live_run_config(minute_model, emu, tmp_path), "demo")
    harness.start()
    try:
        assert harness.wait_until(
            lambda: harness.warmed_up() and streams_ready(emu, trade=False), timeout=15
        )
        strategy = harness.strategy
        instrument = strategy.instrument
        last = strategy.cache.bar(strategy.config.bar_type).close.as_double()

        def post_only_buy(price: float):
            order = strategy.order_factory.limit(
                instrument_id=instrument.id,
                order_side=OrderSide.BUY,
                quantity=instrument.make_qty(0.01),
                price=instrument.make_price(price),
                post_only=True,
            )
            strategy.submit_order(order)
            return order

        crossing = post_only_buy(last + 50.0)  # above the ask: it would take liquidity
        assert harness.wait_until(lambda: crossing.is_closed, timeout=10), crossing
        assert crossing.status == OrderStatus.REJECTED and crossing.filled_qty.as_double() == 0
        assert strategy.maker_stats["post_only_rejected"] == 1  # Nautilus: due_post_only=False
        resting = post_only_buy(last - 50.0)  # below the bid: it rests on the book
        assert harness.wait_until(lambda: resting.is_open and resting.venue_order_id, timeout=10)
        venue = {o["orderLinkId"]: o for o in emu.orders()}
        assert venue[resting.client_order_id.value]["timeInForce"] == "PostOnly"
        assert venue[resting.client_order_id.value]["orderStatus"] == "New"
        assert venue[crossing.client_order_id.value]["rejectReason"] == (
            "EC_PostOnlyWillTakeLiquidity"
        )
        assert venue_position_qty(emu) == 0
    finally:
        harness.stop()


# -- the fill rule on hand-made bars -------------------------------------------------------------


class _OneLimitConfig(StrategyConfig, frozen=True):
    bar_type: str
    price: float


class _OneLimit(Strategy):
    """Places one post-only buy limit at ``price`` on the second bar."""

    def __init__(self, config: _OneLimitConfig) -> None:
        super().__init__(config)
        self.bars = 0
        self.order = None

    def on_start(self) -> None:
        self.subscribe_bars(BarType.from_str(self.config.bar_type))

    def on_bar(self, bar) -> None:
        self.bars += 1
        if self.bars == 2:
            instrument = self.cache.instrument(bar.bar_type.instrument_id)
            self.order = self.order_factory.limit(
                instrument.id,
                OrderSide.BUY,
                instrument.make_qty(0.01),
                instrument.make_price(self.config.price),
                post_only=True,
            )
            self.submit_order(self.order)


def test_a_touch_does_not_fill_a_maker_limit_a_trade_through_does(tmp_path):
    import dataclasses

    from catalogs import make_perpetual
    from catalogs import open_catalog
    from catalogs import write_bars
    from runtime.backtest import build_engine
    from runtime.run_config import load_run_config

    bar_type = "BTCUSDT-LINEAR.BYBIT-1-HOUR-LAST-EXTERNAL"
    rows = [  # open, high, low, close; the limit is 39,999.9
        (40000.0, 40010.0, 39990.0, 40000.0),
        (40000.0, 40010.0, 39995.0, 40000.0),  # decision bar: buy one tick below its close
        (40000.0, 40010.0, 39999.9, 40005.0),  # touches the limit
        (40005.0, 40010.0, 39999.8, 40000.0),  # trades through it
        (40000.0, 40010.0, 39990.0, 40000.0),
    ]
    index = pd.date_range("2024-01-01 01:00", periods=len(rows), freq="1h", tz="UTC")
    bars = pd.DataFrame(rows, index=index, columns=["open", "high", "low", "close"])
    bars["volume"] = 10.0
    instrument = make_perpetual("BTCUSDT")
    write_bars(tmp_path, bars, instrument, "1h")
    run = load_run_config()
    backtest = dataclasses.replace(run.backtest, catalog=str(tmp_path), execution="maker")
    engine = build_engine(dataclasses.replace(run, backtest=backtest), instrument)
    try:
        engine.add_instrument(instrument)
        engine.add_data(open_catalog(tmp_path).bars([bar_type]))
        strategy = _OneLimit(_OneLimitConfig(bar_type=bar_type, price=39999.9))
        engine.add_strategy(strategy)
        engine.run()
        fills = [e for e in strategy.order.events if isinstance(e, OrderFilled)]
    finally:
        engine.dispose()
    # the bar touching the limit leaves it open; the bar trading through fills it, at the limit
    assert len(fills) == 1 and pd.Timestamp(fills[0].ts_event, tz="UTC") == index[3]
    assert fills[0].last_px.as_double() == pytest.approx(39999.9)
    assert fills[0].liquidity_side == LiquiditySide.MAKER


def test_a_strategy_execution_that_contradicts_the_run_configuration_s_is_refused(tmp_path):
    from runtime.backtest import execution_fields
    from runtime.run_config import ConfigError
    from runtime.run_config import load_run_config

    config = tmp_path / "run.yaml"
    config.write_text("strategy:\n  execution: maker\nbacktest:\n  maker_timeout_bars: 2\n")
    with pytest.raises(ConfigError, match=r"strategy.execution = 'maker' disagrees with backtest"):
        execution_fields(load_run_config(config))
    config.write_text("backtest:\n  execution: maker\n  maker_timeout_bars: 2\n")
    fields = execution_fields(load_run_config(config))
    assert fields == {"execution": "maker", "maker_timeout_bars": 2}
