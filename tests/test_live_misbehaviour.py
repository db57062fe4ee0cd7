"""The strategy live through the real Nautilus Bybit adapter against an emulator that
misbehaves like Bybit: split fills and IOC remainders, rejections after acceptance, shuffled
pushes, funding settlements, hostile frames, and a restart in the middle of a split fill.

Under each option the strategy's position, the venue's position and the account balance must
agree at the end, counted order by order and fill by fill; where the adapter drops a frame,
the strategy's reconciliation check (strategies.reconciliation) must warn and halt.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from nautilus_trader.config import StrategyConfig
from nautilus_trader.live.node import TradingNode
from nautilus_trader.model.data import FundingRateUpdate
from nautilus_trader.model.enums import BookType
from nautilus_trader.model.events import OrderAccepted
from nautilus_trader.model.events import OrderFilled
from nautilus_trader.trading.strategy import Strategy

from policy.risk import RiskState
from runtime.bybit_clients import BybitEndpointsDataClientFactory
from runtime.live import build_node
from strategies.reconciliation import CONFIRMATIONS
from strategies.reconciliation import bybit_venue_books
from tests.bybit_emulator import BTCUSDT
from tests.bybit_emulator import EmulatorConfig
from tests.bybit_emulator import EmulatorServer
from tests.bybit_emulator.harness import NodeHarness
from tests.bybit_emulator.harness import wait_for_bar_headroom
from tests.bybit_emulator.hostile import HOSTILE_MUTATIONS
from tests.bybit_emulator.nautilus_clients import emulator_data_config
from tests.live_support import BTC
from tests.live_support import LiveHarness
from tests.live_support import LiveMarket
from tests.live_support import RecordingStrategy
from tests.live_support import live_run_config
from tests.live_support import use_keys
from tests.live_support import venue_position_qty
from tests.test_live_bybit import connected

pytestmark = pytest.mark.bybit_account  # see tests/conftest.py

RECONCILE_SECS = 0.5
#: Bybit order status -> Nautilus order status (Nautilus's names).
STATUSES = {
    "Filled": "FILLED",
    "Cancelled": "CANCELED",
    "PartiallyFilledCanceled": "CANCELED",
    "Rejected": "REJECTED",
}
#: Frames the adapter (1.231) drops with what they carry lost for good (found by these
#: tests); it drops order pushes too (unknown_trigger_by, null_order_fields, null_avg_price)
#: and position pushes (it ignores them), which do no harm while executions complete orders.
LOSSY_FRAMES = ("null_execution_fields", "null_wallet_fields")
HANDLED_FRAMES = tuple(name for name in HOSTILE_MUTATIONS if name not in LOSSY_FRAMES)


class ReconcilingStrategy(RecordingStrategy):
    """The strategy with its diagnostics recorded and a fast reconciliation timer."""

    def __init__(self, config: Any) -> None:
        super().__init__(
            msgspec.structs.replace(
                config, record_diagnostics=True, reconcile_interval_secs=RECONCILE_SECS
            )
        )


def start(run, market: LiveMarket, mode: str = "demo") -> LiveHarness:
    """The product's node, its strategy reading the venue's books as the live node does."""

    def build(loop: asyncio.AbstractEventLoop) -> TradingNode:
        node = build_node(run, mode, loop, strategy_class=ReconcilingStrategy)
        [strategy] = node.trader.strategies()
        strategy.venue_books = bybit_venue_books(mode, market.emu.base_url_http, BTC)
        return node

    harness = LiveHarness(run, mode, build=build)
    harness.start()
    assert harness.wait_until(lambda: connected(harness, market), timeout=15)
    return harness


def differences(harness: LiveHarness, market: LiveMarket) -> list[str]:
    """Where the node's books differ from the venue's, order by order and fill by fill."""
    emu = market.emu
    found = []
    orders = harness.node.cache.orders(strategy_id=harness.strategy.id)
    venue_orders = {o["orderLinkId"]: o for o in emu.orders()}
    if emu.order_submissions() != len(orders):
        found.append(f"{emu.order_submissions()} venue orders for {len(orders)} strategy orders")
    for order in orders:
        venue = venue_orders.get(order.client_order_id.value)
        if venue is None:
            found.append(f"{order.client_order_id} never reached the venue")
            continue
        ours = (order.status_string(), order.filled_qty.as_decimal())
        theirs = (STATUSES.get(venue["orderStatus"]), Decimal(venue["cumExecQty"]))
        if ours != theirs:
            found.append(f"{order.client_order_id}: node {ours}, venue {theirs}")
    fills = sorted(e.trade_id.value for o in orders for e in o.events if isinstance(e, OrderFilled))
    trades = sorted(e["execId"] for e in emu.executions() if e["execType"] == "Trade")
    if fills != trades:
        found.append(f"{len(fills)} fills in the node, {len(trades)} venue executions")
    positions = (harness.strategy_position_qty(), harness.position_qty(), venue_position_qty(emu))
    if len(set(positions)) != 1:
        found.append(f"positions strategy/node/venue {positions}")
    wallet = Decimal(emu.wallet()["totalWalletBalance"])
    if harness.balance() != wallet:
        found.append(f"balance: node {harness.balance()}, venue {wallet}")
    return found


def assert_books_agree(harness: LiveHarness, market: LiveMarket) -> None:
    harness.wait_until(lambda: not differences(harness, market), timeout=10)
    assert differences(harness, market) == []


def assert_reconciled_without_halt(harness: LiveHarness) -> None:
    """The reconciliation check ran and found the books in agreement."""
    reconciler = harness.strategy.reconciler
    checks = reconciler.checks
    # books at rest: the next check agrees (one mid-fill may not, which is why it confirms)
    assert harness.wait_until(lambda: reconciler.checks > checks, timeout=5)
    assert reconciler.streak == 0 and reconciler.failures == 0
    risk = harness.strategy.policy.risk
    assert not risk.halted, risk


def fills_per_order(harness: LiveHarness) -> list[int]:
    orders = harness.node.cache.orders(strategy_id=harness.strategy.id)
    return [sum(isinstance(e, OrderFilled) for e in o.events) for o in orders]


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    "options",
    [
        {"fill_splits": 3, "ioc_cancel_rate": 0.5},
        {
            "fill_splits": 3,
            "ioc_cancel_rate": 1.0,
            "ioc_remainder_status": "PartiallyFilledCanceled",
        },
        {"post_accept_reject_rate": 0.4},
        {"shuffle_window_ms": 300.0, "fill_splits": 2},
        {"hostile_frames": HANDLED_FRAMES, "fill_splits": 2},
    ],
    ids=["split-fills", "spot-remainder-status", "rejections", "shuffled", "hostile-handled"],
)
def test_books_agree_with_the_venue_under_misbehaviour(
    options, live_bars, minute_model, tmp_path, monkeypatch
):
    market = LiveMarket(live_bars, **options)
    emu = market.emu
    try:
        use_keys(monkeypatch, "demo", emu.credentials.api_key, emu.credentials.api_secret)
        harness = start(live_run_config(minute_model, emu, tmp_path), market)
        try:
            harness.decide(market, bars=6)
            assert_books_agree(harness, market)
            orders = harness.node.cache.orders(strategy_id=harness.strategy.id)
            assert len(orders) >= 3
            statuses = [o.status_string() for o in orders]
            if options.get("fill_splits", 1) > 1:
                assert max(fills_per_order(harness)) >= 2  # a split fill was counted whole
            if options.get("ioc_cancel_rate"):
                partial = [
                    o
                    for o in orders
                    if o.status_string() == "CANCELED" and o.filled_qty.as_decimal() > 0
                ]
                assert partial  # an IOC remainder cancelled after some fills
            if options.get("post_accept_reject_rate"):
                assert "REJECTED" in statuses and "FILLED" in statuses
            if "hostile_frames" in options:
                # the adapter drops order pushes with triggerBy UNKNOWN or nulls: no
                # OrderAccepted, yet the executions complete every order
                accepted = [
                    o for o in orders if any(isinstance(e, OrderAccepted) for e in o.events)
                ]
                assert len(accepted) < len(orders)
            assert_reconciled_without_halt(harness)
        finally:
            harness.stop()
        assert venue_position_qty(emu) == 0  # the stop closed the position, IOC remainders too
        assert emu.unknown_paths() == []
    finally:
        market.stop()


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    "case",
    [
        {"hostile_frames": ("null_execution_fields",)},
        {"hostile_frames": ("null_wallet_fields",)},
        {"hostile_frames": ("unknown_trigger_by",), "fill_splits": 3, "ioc_cancel_rate": 1.0},
    ],
    ids=["lost-fill", "stale-balance", "stuck-order"],
)
def test_reconciliation_halts_when_the_adapter_drops_a_frame(
    case, live_bars, minute_model, tmp_path, monkeypatch
):
    """lost-fill: the adapter drops every execution push (a null in an unset field), the
    strategy's position stays flat. stale-balance: it drops every wallet push, the balance
    (the drawdown rules' equity) stays stale. stuck-order: it drops the order push that
    cancels an IOC remainder (triggerBy "UNKNOWN"), the order stays open in Nautilus and the
    strategy waits for it for ever. The check sees each, warns and halts."""
    market = LiveMarket(live_bars, **case)
    emu = market.emu
    try:
        use_keys(monkeypatch, "demo", emu.credentials.api_key, emu.credentials.api_secret)
        run = live_run_config(minute_model, emu, tmp_path)
        harness = start(run, market)
        try:
            strategy = harness.strategy
            for _ in range(8):
                before = strategy.bars_decided
                market.push()
                assert harness.wait_until(lambda b=before: strategy.bars_decided > b, timeout=10)
                if venue_position_qty(emu) != 0:
                    break
            venue_qty = venue_position_qty(emu)
            assert venue_qty != 0  # the venue filled an order
            assert harness.wait_until(lambda: strategy.policy.risk.halted, timeout=10)
            assert strategy.reconciler.streak >= CONFIRMATIONS
            reason = strategy.policy.risk.halt_reason
            assert reason.startswith("reconciliation:")
            frame = case["hostile_frames"][0]
            if frame == "null_execution_fields":
                assert harness.strategy_position_qty() == 0  # the fill never reached it
                assert f"position: strategy 0, venue {venue_qty}" in reason
            elif frame == "null_wallet_fields":
                assert harness.strategy_position_qty() == venue_qty  # fills were fine...
                assert harness.balance() == Decimal("10000")  # ...the balance is stale
                wallet = emu.wallet()["totalWalletBalance"]
                assert f"balance: strategy 10000, venue {wallet}" in reason
            else:
                assert harness.strategy_position_qty() == venue_qty  # fills were fine...
                [stuck] = harness.node.cache.orders_open(strategy_id=strategy.id)
                assert stuck.status_string() == "PARTIALLY_FILLED"  # ...the cancel was lost
                venue_order = next(
                    o for o in emu.orders() if o["orderLinkId"] == stuck.client_order_id.value
                )
                assert venue_order["orderStatus"] == "Cancelled"
                assert f"open order: strategy {stuck.client_order_id}, venue closed" in reason

            submitted = emu.order_submissions()
            before = strategy.bars_decided
            market.push()  # halted: no new position
            assert harness.wait_until(lambda: strategy.bars_decided > before, timeout=10)
            harness.sleep(0.5)
            assert emu.order_submissions() - submitted <= 1  # at most a flattening order
            state_path = Path(strategy.config.state_path)
        finally:
            harness.stop()
        assert RiskState.from_json(state_path.read_text()).halted  # the halt survives a restart
    finally:
        market.stop()


@pytest.mark.timeout(90)
def test_funding_reaches_the_balance_and_the_drawdown_rules_equity(
    live_bars, minute_model, tmp_path, monkeypatch
):
    """Funding every 2 minutes of the market clock: the wallet pushes carry it to the
    account; the equity each decision used is the venue's at that bar's close."""
    spec = dataclasses.replace(BTCUSDT, funding_interval_mins=2)
    market = LiveMarket(live_bars, instruments=(spec,), funding_settlement=True)
    emu = market.emu
    try:
        use_keys(monkeypatch, "demo", emu.credentials.api_key, emu.credentials.api_secret)
        harness = start(live_run_config(minute_model, emu, tmp_path), market)
        try:
            strategy = harness.strategy
            expected = []
            for _ in range(8):
                assert_books_agree(harness, market)
                wallet = Decimal(emu.wallet()["totalWalletBalance"])
                position = emu.position("BTCUSDT")
                size = venue_position_qty(emu)
                entry = Decimal(position["avgPrice"]) if size else Decimal(0)
                row = market.upcoming.iloc[market.pushed]
                close = BTCUSDT.round_price(Decimal(str(row.close)))
                expected.append(float(wallet + size * (close - entry)))
                harness.decide(market)
            assert_books_agree(harness, market)
            fundings = [e for e in emu.executions() if e["execType"] == "Funding"]
            assert fundings and emu.funding_settled("BTCUSDT")
            assert sum(Decimal(e["execFee"]) for e in fundings) != 0
            equity = list(strategy.recorder.columns["equity"])[-len(expected) :]
            assert equity == pytest.approx(expected, rel=1e-9)
            assert strategy.policy.risk.high_water_mark == pytest.approx(
                max(strategy.recorder.columns["equity"]), rel=1e-9
            )
            assert_reconciled_without_halt(harness)
        finally:
            harness.stop()
    finally:
        market.stop()


@pytest.mark.timeout(90)
def test_restart_in_the_middle_of_a_split_fill_reconciles_to_the_venue(
    live_bars, minute_model, tmp_path, monkeypatch
):
    """The node stops after some executions of an order reached it (the rest of its pushes
    are still due); the restarted node takes the venue's whole position."""
    market = LiveMarket(live_bars, fill_splits=4, shuffle_window_ms=3000.0)
    emu = market.emu
    try:
        use_keys(monkeypatch, "demo", emu.credentials.api_key, emu.credentials.api_secret)
        run = live_run_config(minute_model, emu, tmp_path, close_positions_on_stop=False)
        first = start(run, market)
        try:
            strategy = first.strategy

            def partly_filled() -> bool:
                orders = first.node.cache.orders(strategy_id=strategy.id)
                return any(
                    o.filled_qty.as_decimal() > 0 and o.leaves_qty.as_decimal() > 0 for o in orders
                )

            for _ in range(6):
                market.push()
                if first.wait_until(partly_filled, timeout=5):
                    break
            assert partly_filled()
            known = first.strategy_position_qty()
        finally:
            first.stop()
        venue_qty = venue_position_qty(emu)
        assert venue_qty != 0 and abs(known) < abs(venue_qty)  # stopped mid split fill
        submissions = emu.order_submissions()

        second = start(run, market)
        try:
            assert second.wait_until(lambda: second.strategy_position_qty() == venue_qty, 10)
            [position] = second.node.cache.positions_open(instrument_id=BTC)
            assert position.strategy_id == second.strategy.id
            assert emu.order_submissions() == submissions  # reconciling placed no order
            assert second.wait_until(
                lambda: second.balance() == Decimal(emu.wallet()["totalWalletBalance"]), 10
            )
            assert_reconciled_without_halt(second)
        finally:
            second.stop()
    finally:
        market.stop()


class MarketDataRecorder(Strategy):
    """Keeps an L2 book (depth 50) from the adapter, funding rate updates and the funding
    history the adapter requests."""

    def __init__(self) -> None:
        super().__init__(StrategyConfig(strategy_id="MarketDataRecorder-001"))
        self.book_updates = 0
        self.funding: list[FundingRateUpdate] = []
        self.history: list[FundingRateUpdate] = []
        self.history_done = False

    def on_start(self) -> None:
        self.subscribe_order_book_deltas(BTC, BookType.L2_MBP, depth=50)
        self.subscribe_funding_rates(BTC)
        start = self.clock.utc_now() - dt.timedelta(hours=1)
        self.request_funding_rates(BTC, start=start, callback=self._history_done)

    def _history_done(self, _request_id: object) -> None:
        self.history_done = True

    def on_order_book_deltas(self, deltas: object) -> None:
        self.book_updates += 1

    def on_funding_rate(self, funding_rate: FundingRateUpdate) -> None:
        self.funding.append(funding_rate)

    def on_historical_data(self, data: object) -> None:
        if isinstance(data, FundingRateUpdate):
            self.history.append(data)


def node_book(node: TradingNode) -> tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]:
    book = node.cache.order_book(BTC)
    if book is None:
        return {}, {}
    sides = (book.bids()[:50], book.asks()[:50])
    return tuple(
        {level.price.as_decimal(): Decimal(str(level.size())) for level in side} for side in sides
    )


@pytest.mark.timeout(90)
def test_book_deltas_and_funding_rates_through_the_data_client():
    """Snapshot-then-delta books rebuild the venue's book; ticker pushes with a changing
    funding rate become FundingRateUpdates; the funding history request obeys Bybit's rules."""
    wait_for_bar_headroom()
    spec = dataclasses.replace(BTCUSDT, funding_interval_mins=2)
    emu = EmulatorServer(
        EmulatorConfig(
            history_bars=300, instruments=(spec,), book_deltas=True, funding_settlement=True
        )
    ).start()
    strategy = MarketDataRecorder()
    harness = NodeHarness(
        data_clients={"BYBIT": emulator_data_config(emu)},
        exec_clients={},
        data_factories={"BYBIT": BybitEndpointsDataClientFactory},
        exec_factories={},
        strategies=[strategy],
    )
    try:
        harness.start()
        assert harness.wait_until(
            lambda: "orderbook.50.BTCUSDT" in emu.subscribed_topics() and strategy.history_done,
            timeout=30,
        )
        for _ in range(5):
            emu.advance(1, "BTCUSDT", updates_per_bar=4)
            assert harness.wait_until(lambda: node_book(harness.node) == emu.book("BTCUSDT", 50), 5)
        assert strategy.book_updates >= 20  # one snapshot, then a delta per print

        settled = emu.funding_settled("BTCUSDT")
        assert len(settled) >= 2
        current = emu.call(lambda: emu.state.funding["BTCUSDT"].rate)
        emu.set_price("BTCUSDT", emu.last_price("BTCUSDT"))  # a ticker push after the change

        def rates() -> set[Decimal]:
            return {Decimal(str(u.rate)) for u in strategy.funding}

        assert harness.wait_until(lambda: current in rates(), 5)  # the ticker's rate, updated
        assert len(rates()) >= 3
        next_ns = {u.next_funding_ns for u in strategy.funding}
        assert (settled[-1][0] + 120_000) * 1_000_000 in next_ns

        # Funding history: an hour back, no row in the future nor before the hour
        stamps = sorted(u.ts_event for u in strategy.history)
        assert len(stamps) >= 25 and stamps[-1] <= emu.forming_bar_start("BTCUSDT") * 1_000_000
        requests = [r for r in emu.requests() if r.path == "/v5/market/funding/history"]
        assert requests and all(r.ret_code == 0 for r in requests)
        assert all("endTime" in r.query for r in requests)  # never startTime alone
    finally:
        harness.stop()
        emu.stop()


@pytest.mark.timeout(90)
def test_restart_after_funding_settlements_is_caught_by_the_check(
    live_bars, minute_model, tmp_path, monkeypatch
):
    """The node is down while the open position pays funding. At start Nautilus rebuilds the
    position from the venue's execution list, Funding rows included: the adapter (1.231)
    takes those for fills, so the restarted strategy's position is not the venue's. The
    reconciliation check sees it and halts."""
    spec = dataclasses.replace(BTCUSDT, funding_interval_mins=2)
    market = LiveMarket(live_bars, instruments=(spec,), funding_settlement=True)
    emu = market.emu
    try:
        use_keys(monkeypatch, "demo", emu.credentials.api_key, emu.credentials.api_secret)
        run = live_run_config(minute_model, emu, tmp_path, close_positions_on_stop=False)
        first = start(run, market)
        try:
            for _ in range(10):
                first.decide(market)
                if venue_position_qty(emu) != 0:
                    break
            assert_books_agree(first, market)
        finally:
            first.stop()
        venue_qty = venue_position_qty(emu)
        assert venue_qty != 0
        market.push()
        market.push()  # two bars while the node is down: a funding boundary passes
        funding = [e for e in emu.executions() if e["execType"] == "Funding"]
        assert funding and emu.executions()[-1]["execType"] == "Funding"

        second = start(run, market)
        try:
            strategy = second.strategy
            # the node counted the Funding row as a buy (or sell) fill of the position and
            # closed the difference with a synthetic order: it believes another position
            assert second.strategy_position_qty() != venue_qty
            assert second.wait_until(lambda: strategy.policy.risk.halted, timeout=10)
            assert "reconciliation: position" in strategy.policy.risk.halt_reason
        finally:
            second.stop()
    finally:
        market.stop()
