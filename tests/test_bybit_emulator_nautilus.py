"""The real NautilusTrader Bybit clients (Rust-backed, 1.231) against the emulator."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal

import pytest
from nautilus_trader.adapters.bybit.factories import BybitLiveExecClientFactory
from nautilus_trader.adapters.sandbox.config import SandboxExecutionClientConfig
from nautilus_trader.adapters.sandbox.factory import SandboxLiveExecClientFactory
from nautilus_trader.core import nautilus_pyo3
from nautilus_trader.model.currencies import USDT
from nautilus_trader.model.enums import LiquiditySide
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.identifiers import Venue
from nautilus_trader.model.objects import Price
from nautilus_trader.model.objects import Quantity

from runtime.bybit_clients import BybitEndpointsDataClientFactory
from tests.bybit_emulator import EmulatorConfig
from tests.bybit_emulator import EmulatorServer
from tests.bybit_emulator.harness import NodeHarness
from tests.bybit_emulator.harness import RecorderConfig
from tests.bybit_emulator.harness import RecorderStrategy
from tests.bybit_emulator.harness import wait_for_bar_headroom
from tests.bybit_emulator.nautilus_clients import emulator_data_config
from tests.bybit_emulator.nautilus_clients import emulator_exec_config

BTC = InstrumentId.from_str("BTCUSDT-LINEAR.BYBIT")
NS = 1_000_000
#: What the Bybit data + execution clients call on connect, reconciliation and bar requests.
CONNECT_PATHS = {
    "/v5/market/instruments-info",
    "/v5/account/fee-rate",
    "/v5/account/wallet-balance",
    "/v5/user/query-api",
    "/v5/order/realtime",
    "/v5/order/history",
    "/v5/execution/list",
    "/v5/position/list",
    "/v5/market/kline",
}


@pytest.fixture
def emu():
    wait_for_bar_headroom()
    server = EmulatorServer(EmulatorConfig(history_bars=600)).start()
    yield server
    server.stop()


def bybit_node(emu: EmulatorServer, strategy: RecorderStrategy, **exec_kwargs) -> NodeHarness:
    return NodeHarness(
        data_clients={"BYBIT": emulator_data_config(emu)},
        exec_clients={"BYBIT": emulator_exec_config(emu, **exec_kwargs)},
        data_factories={"BYBIT": BybitEndpointsDataClientFactory},
        exec_factories={"BYBIT": BybitLiveExecClientFactory},
        strategies=[strategy],
    )


@pytest.mark.bybit_account  # before any sandbox/backtest in the process: see conftest.py
@pytest.mark.timeout(60)
def test_trading_node_trades_against_emulator(emu):
    strategy = RecorderStrategy(RecorderConfig(history_minutes=120, order_on_bars=(1,)))
    harness = bybit_node(emu, strategy)
    try:
        harness.start()
        node = harness.node
        assert harness.wait_until(
            lambda: (
                node.trader.is_running
                and len(strategy.historical) > 0
                and "kline.1.BTCUSDT" in emu.subscribed_topics()
            ),
            timeout=30,
        ), "node did not start"

        # Instrument loaded with Bybit's BTCUSDT specs (and the emulator's fee rates)
        instrument = node.cache.instrument(BTC)
        assert strategy.instrument_at_start is not None
        assert instrument.price_increment == Price.from_str("0.10")
        assert instrument.size_increment == Quantity.from_str("0.001")
        assert instrument.min_quantity == Quantity.from_str("0.001")
        assert instrument.min_notional.as_decimal() == Decimal(5)
        assert instrument.taker_fee == Decimal("0.00055")

        # Historical bars: sorted, closed bars only, stamped at close, equal to the emulator's
        forming = emu.forming_bar_start("BTCUSDT")
        hist = strategy.historical
        stamps = [b.ts_event for b in hist]
        assert stamps == sorted(set(stamps))
        assert 119 <= len(hist) <= 121
        assert stamps[-1] == forming * NS  # the last closed bar closes where the forming opens
        by_close = {(b.start + 60_000) * NS: b for b in emu.bars("BTCUSDT")}
        for bar in hist:
            ref = by_close[bar.ts_event]
            assert (bar.open.as_decimal(), bar.close.as_decimal()) == (ref.open, ref.close)
            assert bar.volume.as_decimal() == ref.volume

        # A live bar: the first one triggers a market order
        closed = emu.advance(1, "BTCUSDT")[0]
        assert harness.wait_until(lambda: len(strategy.live) >= 1, timeout=10)
        live = strategy.live[0]
        assert live.ts_event == (closed.start + 60_000) * NS > stamps[-1]
        assert live.close.as_decimal() == closed.close
        assert harness.wait_until(lambda: "OrderFilled" in strategy.event_names(), timeout=10)
        names = strategy.event_names()
        assert names.index("OrderSubmitted") < names.index("OrderAccepted")
        assert names.index("OrderAccepted") < names.index("OrderFilled")
        fill = next(e for e in strategy.events if type(e).__name__ == "OrderFilled")
        execution = emu.executions()[0]
        assert fill.last_px.as_decimal() == Decimal(execution["execPrice"])
        assert fill.commission.as_decimal() == Decimal(execution["execFee"])
        assert emu.order_submissions() == 1

        # The node's position and account agree with the emulator's books
        def books_agree() -> bool:  # re-read the venue each time: its pushes may still be due
            venue_balance = Decimal(emu.wallet()["totalWalletBalance"])
            positions = node.cache.positions_open(instrument_id=BTC)
            account = node.cache.account_for_venue(Venue("BYBIT"))
            return (
                len(positions) == 1
                and account is not None
                and account.balance_total(USDT).as_decimal() == venue_balance
            )

        assert harness.wait_until(books_agree, timeout=10)
        position = node.cache.positions_open(instrument_id=BTC)[0]
        venue_position = emu.position("BTCUSDT")
        assert position.quantity.as_decimal() == Decimal(venue_position["size"])
        assert Decimal(str(position.avg_px_open)) == Decimal(venue_position["avgPrice"])
        assert venue_position["side"] == "Buy" and position.is_long
    finally:
        harness.stop()

    # Clean shutdown: engines disconnected, loop closed, websockets gone, nothing unknown
    assert harness.node.kernel.data_engine.check_disconnected()
    assert harness.node.kernel.exec_engine.check_disconnected()
    assert harness.loop.is_closed()
    assert emu.wait_for(lambda: emu.ws_connections() == 0, timeout=5)
    assert emu.unknown_paths() == []
    requests = emu.requests()
    assert {r.path for r in requests} == CONNECT_PATHS
    assert all(r.ret_code == 0 for r in requests)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("subscribe_quotes", [True, False], ids=["quotes", "bars-only"])
def test_sandbox_execution_with_emulator_data(emu, subscribe_quotes):
    """The Sandbox matching engine needs quotes (or trades): bars alone give 'no market'."""
    strategy = RecorderStrategy(
        RecorderConfig(history_minutes=5, order_on_bars=(1,), subscribe_quotes=subscribe_quotes)
    )
    sandbox = SandboxExecutionClientConfig(
        venue="BYBIT", starting_balances=["10000 USDT"], account_type="MARGIN", oms_type="NETTING"
    )
    harness = NodeHarness(
        data_clients={"BYBIT": emulator_data_config(emu)},
        exec_clients={"BYBIT": sandbox},
        data_factories={"BYBIT": BybitEndpointsDataClientFactory},
        exec_factories={"BYBIT": SandboxLiveExecClientFactory},
        strategies=[strategy],
    )
    try:
        harness.start()
        expected = {"kline.1.BTCUSDT"} | ({"tickers.BTCUSDT"} if subscribe_quotes else set())
        assert harness.wait_until(
            lambda: harness.node.trader.is_running and expected <= emu.subscribed_topics(),
            timeout=30,
        )
        emu.advance(1, "BTCUSDT")
        done = {"OrderFilled", "OrderRejected"}
        assert harness.wait_until(lambda: done & set(strategy.event_names()), timeout=10)
        if subscribe_quotes:
            fill = next(e for e in strategy.events if type(e).__name__ == "OrderFilled")
            last_quote = strategy.quotes[-1]
            assert fill.last_px == last_quote.ask_price  # a market buy lifts the emulated ask
            assert fill.last_qty == Quantity.from_str("0.010")
        else:
            rejected = next(e for e in strategy.events if type(e).__name__ == "OrderRejected")
            assert "no market" in rejected.reason
        assert emu.order_submissions() == 0  # the sandbox never reaches the venue
    finally:
        harness.stop()


@pytest.mark.timeout(30)
def test_nautilus_http_client_bars_across_a_gap(emu):
    forming = emu.forming_bar_start("BTCUSDT")
    gap = forming - 30 * 60_000
    assert emu.remove_bars("BTCUSDT", gap, gap + 2 * 60_000) == 3

    async def fetch() -> list:
        client = nautilus_pyo3.BybitHttpClient(
            api_key=None,
            api_secret=None,
            base_url=emu.base_url_http,
            demo=False,
            testnet=False,
        )
        for instrument in await client.request_instruments(nautilus_pyo3.BybitProductType.LINEAR):
            client.cache_instrument(instrument)
        end = dt.datetime.fromtimestamp(forming / 1000, tz=dt.UTC)
        return await client.request_bars(
            product_type=nautilus_pyo3.BybitProductType.LINEAR,
            bar_type=nautilus_pyo3.BarType.from_str("BTCUSDT-LINEAR.BYBIT-1-MINUTE-LAST-EXTERNAL"),
            start=end - dt.timedelta(minutes=59, seconds=59),
            end=end,
            limit=None,
            timestamp_on_close=True,
        )

    bars = asyncio.run(fetch())
    stamps = [b.ts_event for b in bars]
    assert stamps == sorted(set(stamps))
    assert len(bars) == 60 - 3
    missing = {(gap + i * 60_000 + 60_000) * NS for i in range(3)}
    assert missing.isdisjoint(stamps)
    assert stamps[-1] == forming * NS  # the still-forming bar is not returned as a bar


@pytest.mark.timeout(60)
def test_limit_orders_amend_cancel_and_maker_fill(emu):
    strategy = RecorderStrategy(RecorderConfig(history_minutes=5, order_on_bars=()))
    harness = bybit_node(emu, strategy)
    try:
        harness.start()
        assert harness.wait_until(
            lambda: harness.node.trader.is_running and emu.ws_connections() == 3, timeout=30
        )
        last = emu.last_price("BTCUSDT")
        qty = Quantity.from_str("0.010")

        def limit(side, price):
            order = strategy.order_factory.limit(BTC, side, qty, Price.from_str(f"{price:.2f}"))
            strategy.submit_order(order)
            return order

        resting = limit(OrderSide.BUY, last - 500)
        assert harness.wait_until(lambda: resting.status_string() == "ACCEPTED", timeout=10)
        strategy.modify_order(resting, price=Price.from_str(f"{last - 400:.2f}"))
        assert harness.wait_until(lambda: resting.price.as_decimal() == last - 400, timeout=10)
        venue = {o["orderLinkId"]: o for o in emu.orders()}[resting.client_order_id.value]
        assert Decimal(venue["price"]) == last - 400
        strategy.cancel_order(resting)
        assert harness.wait_until(lambda: resting.status_string() == "CANCELED", timeout=10)

        maker = limit(OrderSide.SELL, last + 50)
        assert harness.wait_until(lambda: maker.status_string() == "ACCEPTED", timeout=10)
        emu.set_price("BTCUSDT", last + 60)
        assert harness.wait_until(lambda: maker.status_string() == "FILLED", timeout=10)
        fill = [e for e in strategy.events if type(e).__name__ == "OrderFilled"][-1]
        assert fill.last_px == Price.from_str(f"{last + 50:.2f}")
        assert fill.liquidity_side == LiquiditySide.MAKER
        assert emu.position("BTCUSDT")["side"] == "Sell"
    finally:
        harness.stop()
    assert emu.unknown_paths() == []


@pytest.mark.timeout(60)
def test_demo_environment_keys_from_env_orders_over_rest(emu, monkeypatch):
    """DEMO reads BYBIT_DEMO_API_KEY/SECRET and places orders over REST (no trade websocket)."""
    for name in ("BYBIT_API_KEY", "BYBIT_API_SECRET", "BYBIT_TESTNET_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BYBIT_DEMO_API_KEY", emu.credentials.api_key)
    monkeypatch.setenv("BYBIT_DEMO_API_SECRET", emu.credentials.api_secret)
    demo = nautilus_pyo3.BybitEnvironment.DEMO
    strategy = RecorderStrategy(RecorderConfig(history_minutes=5, order_on_bars=(1,)))
    harness = NodeHarness(
        data_clients={
            "BYBIT": emulator_data_config(emu, api_key=None, api_secret=None, environment=demo)
        },
        exec_clients={
            "BYBIT": emulator_exec_config(emu, api_key=None, api_secret=None, environment=demo)
        },
        data_factories={"BYBIT": BybitEndpointsDataClientFactory},
        exec_factories={"BYBIT": BybitLiveExecClientFactory},
        strategies=[strategy],
    )
    try:
        harness.start()
        assert harness.wait_until(
            lambda: harness.node.trader.is_running and emu.ws_connections("private") == 1,
            timeout=30,
        )
        assert harness.wait_until(lambda: "kline.1.BTCUSDT" in emu.subscribed_topics(), 10)
        emu.advance(1, "BTCUSDT")
        assert harness.wait_until(lambda: "OrderFilled" in strategy.event_names(), timeout=10)
    finally:
        harness.stop()
    creates = [r for r in emu.requests() if r.path == "/v5/order/create"]
    assert len(creates) == 1 and creates[0].api_key == emu.credentials.api_key
    assert not any(m.get("op", "").startswith("order.") for m in emu.ws_received("trade"))
    assert emu.ws_accepted() == 2  # public + private: demo never opens the trade stream
