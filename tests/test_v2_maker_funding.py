"""Maker execution and funding on NautilusTrader 2.0 (runtime.backtest_v2, runtime.live_v2).

Runs on 2.0 only, with ``--noconftest`` (``NAUTILUS=2 make test``). The parity with 1.231 on
the test market is tests/test_engine_parity.py; these tests pin the rules themselves on a few
hand-made bars (no 1.231 venv needed): a post-only limit one tick inside the decision close, a
touch does not fill it and a trade through does (at its limit, as maker, at the maker fee), and
funding is charged as position x last close x rate at each funding time. The live test runs
``run_live.py`` on 2.0 against the emulator (tests/test_live_v2.py's helpers; the 1.231 venv
trains its minute model): post-only orders at the venue, one refused as crossing and counted,
one cancelled by the maker timeout (a minute bar: it waits about a minute).
"""

from __future__ import annotations

import time
from decimal import Decimal

import pandas as pd
import pytest
import yaml

from runtime.engines import engine_major
from tests.test_live_v2 import Node
from tests.test_live_v2 import inputs  # noqa: F401 (a fixture: the minute model, the bars)
from tests.test_live_v2 import market  # noqa: F401 (a fixture: the emulator)
from tests.test_live_v2 import write_config

pytestmark = pytest.mark.skipif(
    engine_major() < 2, reason="NautilusTrader 2.0: NAUTILUS=2 make test"
)

BAR_TYPE = "BTCUSDT-LINEAR.BYBIT-1-HOUR-LAST-EXTERNAL"
INSTRUMENT = {  # a 1.231 catalog's instrument row (runtime.catalog_files)
    "id": "BTCUSDT-LINEAR.BYBIT",
    "raw_symbol": "BTCUSDT",
    "base_currency": "BTC",
    "quote_currency": "USDT",
    "settlement_currency": "USDT",
    "is_inverse": False,
    "price_precision": 2,
    "size_precision": 3,
    "price_increment": "0.10",
    "size_increment": "0.001",
    "multiplier": "1",
    "lot_size": "0.001",
    "max_quantity": "1190.000",
    "min_quantity": "0.001",
    "min_notional": "5.00000000 USDT",
    "margin_init": "0.01",
    "margin_maint": "0.005",
    "maker_fee": "0.0002",
    "taker_fee": "0.00055",
    "ts_event": 0,
    "ts_init": 0,
}
SETTINGS = {  # runtime.run_config.BacktestSettings' defaults that the engine reads
    "starting_balance": 100_000.0,
    "venue_leverage": 10.0,
    "slippage_probability": 0.5,
    "seed": 42,
    "latency_ms": 50.0,
    "log_level": "ERROR",
}
QTY = 0.01
TICK_SIZE = 0.1  # the emulator's BTCUSDT price increment


def hourly(rows: list[tuple[float, float, float, float]]) -> pd.DataFrame:
    index = pd.date_range("2024-01-01 01:00", periods=len(rows), freq="1h", tz="UTC")
    bars = pd.DataFrame(rows, index=index, columns=["open", "high", "low", "close"])
    bars["volume"] = 10.0
    return bars


def run_one_order(bars: pd.DataFrame, execution: str, *, extra: list | None = None):
    """A 2.0 engine (runtime.backtest_v2's venue) over ``bars`` with a strategy that sends one
    order on the second bar: a post-only buy one tick below its close (maker, cancelled after
    one bar if unfilled) or a market buy (taker); returns the order, its fills and the final
    balance."""
    from nautilus_trader.model import BarType
    from nautilus_trader.model import OrderSide
    from nautilus_trader.model import StrategyId
    from nautilus_trader.trading import Strategy
    from nautilus_trader.trading import StrategyConfig

    from policy.costs import maker_limit_price
    from runtime.backtest_v2 import build_engine_v2
    from runtime.backtest_v2 import make_bars
    from runtime.backtest_v2 import make_instrument

    instrument = make_instrument(INSTRUMENT)
    bar_type = BarType.from_str(BAR_TYPE)

    class OneOrder(Strategy):
        def __new__(cls, *_args: object) -> OneOrder:
            return super().__new__(cls)

        def __init__(self) -> None:
            super().__init__(StrategyConfig(strategy_id=StrategyId("ONE-001")))
            self.bars = 0
            self.order_id = None

        def on_start(self) -> None:
            self.subscribe_bars(bar_type)

        def on_bar(self, bar) -> None:
            self.bars += 1
            if self.bars != 2:
                return
            if execution == "maker":
                price = maker_limit_price(bar.close.as_double(), True, 0.1)
                order = self.order_factory.limit(
                    instrument.id,
                    OrderSide.BUY,
                    instrument.make_qty(QTY),
                    instrument.make_price(price),
                    post_only=True,
                )
            else:
                order = self.order_factory.market(
                    instrument.id, OrderSide.BUY, instrument.make_qty(QTY)
                )
            self.order_id = order.client_order_id
            self.submit_order(order)

    engine = build_engine_v2({**SETTINGS, "execution": execution}, instrument, INSTRUMENT)
    try:
        engine.add_instrument(instrument)
        engine.add_data(make_bars(bars, bar_type, instrument))
        if extra:
            engine.add_data(extra)
        strategy = OneOrder()
        engine.add_strategy(strategy)
        engine.run()
        order = engine.cache.order(strategy.order_id)
        fills = [e for e in order.events() if type(e).__name__ == "OrderFilled"]
        account = engine.cache.account_for_venue(instrument.id.venue)
        balance = account.balance_total(instrument.settlement_currency).as_double()
        return order, fills, balance
    finally:
        engine.dispose()


def test_a_touch_does_not_fill_a_maker_limit_a_trade_through_does():
    """1.231's fill rule (tests/test_maker_execution.py) on 2.0: prob_fill_on_limit=0 leaves
    a limit the bar only touches open; the bar trading through fills it at its limit, as maker,
    at the maker fee, without slippage."""
    bars = hourly(
        [  # open, high, low, close; the limit is 39,999.9
            (40000.0, 40010.0, 39990.0, 40000.0),
            (40000.0, 40010.0, 39995.0, 40000.0),  # decision bar: buy one tick below its close
            (40000.0, 40010.0, 39999.9, 40005.0),  # touches the limit
            (40005.0, 40010.0, 39999.8, 40000.0),  # trades through it
            (40000.0, 40010.0, 39990.0, 40000.0),
        ]
    )
    order, fills, _ = run_one_order(bars, "maker")
    assert order.is_post_only and order.price.as_double() == pytest.approx(39999.9)
    assert len(fills) == 1 and pd.Timestamp(fills[0].ts_event, tz="UTC") == bars.index[3]
    assert fills[0].last_px.as_double() == pytest.approx(39999.9)
    assert fills[0].liquidity_side.name == "MAKER"
    assert fills[0].commission.as_double() == pytest.approx(QTY * 39999.9 * 0.0002)


def test_the_strategy_binds_maker_execution_and_prices_costs_at_the_maker_fee():
    """ScoreMatchingV2Config: execution maker needs the maker fee and the cost rules use it;
    taker keeps the taker fee; a wrong style or timeout is refused."""
    from strategies.score_matching_v2 import ScoreMatchingV2Config

    common = {"instrument_id": INSTRUMENT["id"], "bar_type": BAR_TYPE, "model_path": "m"}
    maker = ScoreMatchingV2Config(**common, fee=0.00055, maker_fee=0.0002, execution="maker")
    assert maker.cost_fee == 0.0002
    assert ScoreMatchingV2Config(**common, fee=0.00055, maker_fee=0.0002).cost_fee == 0.00055
    with pytest.raises(ValueError, match="needs the venue's maker fee"):
        ScoreMatchingV2Config(**common, fee=0.00055, execution="maker")
    with pytest.raises(ValueError, match="is not one of taker, maker"):
        ScoreMatchingV2Config(**common, fee=0.00055, execution="makr")
    with pytest.raises(ValueError, match="maker_timeout_bars must be >= 1"):
        ScoreMatchingV2Config(**common, fee=0.00055, maker_fee=0.0002, maker_timeout_bars=0)


def test_funding_is_position_times_last_close_times_rate_at_each_funding_time():
    """A long of 0.01 bought after the second bar: funding at 01:30 (flat; the mark would be
    the 01:00 close) is not charged, at 05:00 and 06:00 it is, at those bars' closes (a long
    pays a positive rate and receives a negative one)."""
    from runtime.backtest_v2 import funding_data
    from runtime.backtest_v2 import make_instrument

    bars = hourly(
        [
            (40000.0, 40010.0, 39990.0, 40000.0),
            (40000.0, 40110.0, 39995.0, 40100.0),  # decision bar (02:00): market buy
            (40100.0, 40200.0, 40050.0, 40150.0),  # 03:00: filled by now
            (40150.0, 40300.0, 40100.0, 40250.0),  # 04:00
            (40250.0, 40400.0, 40200.0, 40350.0),  # 05:00
            (40350.0, 40500.0, 40300.0, 40450.0),  # 06:00
        ]
    )
    times = pd.DatetimeIndex(["2024-01-01 01:30", "2024-01-01 05:00", "2024-01-01 06:00"], tz="UTC")
    decimals = ["0.00100000", "0.00010000", "-0.00020000"]
    rates = pd.Series([float(d) for d in decimals], index=times.as_unit("ns"), name="rate")
    rates.attrs.update(interval=pd.Timedelta(hours=8), decimals=decimals)
    instrument = make_instrument(INSTRUMENT)
    data = funding_data(rates, instrument, bars)
    assert len(data) == 6  # a mark price and a rate per funding time
    assert [float(d.value) for d in data[::2]] == [40000.0, 40350.0, 40450.0]

    _, fills, funded = run_one_order(bars, "taker", extra=data)
    _, _, unfunded = run_one_order(bars, "taker")
    assert len(fills) == 1 and pd.Timestamp(fills[0].ts_event, tz="UTC") < times[1]
    expected = QTY * 40350.0 * 0.0001 + QTY * 40450.0 * -0.0002  # 01:30: not yet long
    assert unfunded - funded == pytest.approx(expected, abs=1e-8)


def test_funding_rates_keep_their_stored_decimals():
    from nautilus_trader.model import FundingRateUpdate

    from runtime.backtest_v2 import funding_data
    from runtime.backtest_v2 import make_instrument

    bars = hourly([(40000.0, 40010.0, 39990.0, 40000.0)] * 2)
    rates = pd.Series([1.234e-5], index=bars.index[-1:], name="rate")
    rates.attrs.update(interval=pd.Timedelta(hours=8), decimals=["0.00001234"])
    updates = [d for d in funding_data(rates, make_instrument(INSTRUMENT), bars)]
    assert isinstance(updates[1], FundingRateUpdate)
    assert updates[1].rate == Decimal("0.00001234")
    assert updates[1].next_funding_ns == updates[1].ts_event == bars.index[-1].value


# ----- live: post-only orders through 2.0's Bybit adapter against the emulator ---------------


def test_live_maker_orders_rest_time_out_and_a_crossing_one_is_counted(
    inputs,  # noqa: F811
    market,  # noqa: F811
    tmp_path,
):
    """Demo mode with ``backtest.execution: maker``: the strategy's orders reach the venue as
    post-only limits one tick inside the decision bar's close; the market then drops 2 % at
    once (before the order arrives), so a buy crosses and the venue refuses it
    (EC_PostOnlyWillTakeLiquidity), which the strategy counts; a resting order the market
    does not reach is cancelled after ``maker_timeout_bars`` (1 minute bar)."""
    config = write_config(tmp_path, inputs, market)
    data = yaml.safe_load(config.read_text())
    data["backtest"] = {"execution": "maker", "maker_timeout_bars": 1}
    config.write_text(yaml.safe_dump(data))
    emu = market.emu

    def venue_orders() -> list[dict]:
        return [o for o in emu.orders() if o["orderType"] == "Limit"]

    def refused() -> list[dict]:
        return [o for o in venue_orders() if o["rejectReason"] == "EC_PostOnlyWillTakeLiquidity"]

    closes = {}
    node = Node(config, "demo", tmp_path / "maker.log")
    try:
        node.wait_for(lambda: "warm-up history received" in node.output(), 60, "warm-up")
        for _ in range(40):  # until a buy was refused and a sell rests
            row = market.upcoming.iloc[market.pushed]
            market.push()
            closes[market.pushed] = row.close
            emu.set_price("BTCUSDT", round(row.close * 0.98, 1))  # before the order arrives
            time.sleep(0.4)
            resting = [o for o in venue_orders() if o["orderStatus"] == "New"]
            if refused() and resting:
                break
        assert refused(), node.output()[-4000:]
        assert resting, node.output()[-4000:]
        for order in venue_orders():
            assert order["timeInForce"] == "PostOnly", order
        # one tick inside a pushed bar's close
        assert any(
            abs(float(resting[0]["price"]) - (close + TICK_SIZE)) < 1e-6
            for close in closes.values()
        ), (resting[0], closes)
        waiting = resting[0]["orderLinkId"]
        node.wait_for(  # the strategy has seen the cancel (2.0 calls no stopped strategy)
            lambda: (
                f"OrderCanceled(instrument_id=BTCUSDT-LINEAR.BYBIT, client_order_id={waiting},"
                in node.output()
            ),
            75,
            "the maker timeout's cancel",
        )
        timed_out = [
            o
            for o in venue_orders()
            if o["orderStatus"] == "Cancelled"
            and o not in refused()
            and float(o["cumExecQty"]) == 0.0
        ]
    finally:
        status = node.stop()
    assert status == 0, node.output()[-4000:]
    assert "Traceback" not in node.output()
    submitted = len(venue_orders())
    stats = [text for text in node.output().splitlines() if "maker orders:" in text]
    assert stats, node.output()[-4000:]
    assert f"{len(refused())} rejected as crossing" in stats[-1], stats[-1]
    assert f"maker orders: {submitted} post-only" in stats[-1], stats[-1]
    assert f"{len(timed_out)} cancelled unfilled" in stats[-1] and timed_out, stats[-1]
