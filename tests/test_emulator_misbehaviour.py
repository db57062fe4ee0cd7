"""The emulator's misbehaviour options on the wire: split fills, IOC remainders, rejections
after acceptance, shuffled pushes, book deltas, funding settlement, Bybit's funding-history
rules and hostile frames. (Through the real Nautilus adapter: tests/test_live_misbehaviour.py.)
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from decimal import Decimal

import pytest

from tests.bybit_emulator import BTCUSDT
from tests.bybit_emulator import EmulatorConfig
from tests.bybit_emulator import EmulatorServer
from tests.bybit_emulator.hostile import HOSTILE_MUTATIONS
from tests.bybit_emulator.signing import ws_auth_message
from tests.test_bybit_emulator_conformance import ANCHOR_MS
from tests.test_bybit_emulator_conformance import http
from tests.test_bybit_emulator_conformance import market_order
from tests.test_bybit_emulator_conformance import recv_json
from tests.test_bybit_emulator_conformance import ws_connect

pytestmark = pytest.mark.timeout(30)

TICK = BTCUSDT.tick_size
FUNDING_MINUTES = 2


@pytest.fixture
def start_emulator():
    """Start an emulator with these options (stopped after the test)."""
    servers: list[EmulatorServer] = []

    def start(**options) -> EmulatorServer:
        config = EmulatorConfig(history_bars=300, anchor_ms=ANCHOR_MS, **options)
        servers.append(EmulatorServer(config).start())
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def record_pushes(emu: EmulatorServer) -> list[tuple[str, dict]]:
    """Every private push the emulator sends from now on, ``(topic, item)`` in send order
    (``execution.fast`` left out)."""
    sent: list[tuple[str, dict]] = []
    hub = emu.state.hub
    original = hub.publish_private

    async def publish(topic: str, item: dict, now_ms: int) -> None:
        if topic != "execution.fast":
            sent.append((topic, item))
        await original(topic, item, now_ms)

    emu.call(lambda: setattr(hub, "publish_private", publish))
    return sent


def order_pushes(sent: list[tuple[str, dict]], order_id: str) -> list[dict]:
    return [item for topic, item in sent if topic == "order" and item["orderId"] == order_id]


def trades(emu: EmulatorServer) -> list[dict]:
    return [e for e in emu.executions() if e["execType"] == "Trade"]


def test_options_are_off_by_default_and_checked():
    config = EmulatorConfig()
    assert (config.fill_splits, config.ioc_cancel_rate, config.post_accept_reject_rate) == (
        1,
        0.0,
        0.0,
    )
    assert (config.shuffle_window_ms, config.book_deltas, config.funding_settlement) == (
        0.0,
        False,
        False,
    )
    assert config.hostile_frames == ()
    with pytest.raises(ValueError, match="unknown hostile_frames"):
        EmulatorConfig(hostile_frames=("no_such_frame",))


def test_split_fills_arrive_as_several_executions_at_worse_prices(start_emulator):
    emu = start_emulator(fill_splits=3, private_push_latency_ms=0)
    sent = record_pushes(emu)
    last = emu.last_price("BTCUSDT")
    reply = market_order(emu, "Buy", "0.030")
    assert reply["retCode"] == 0
    order_id = reply["result"]["orderId"]

    executions = trades(emu)
    assert [Decimal(e["execPrice"]) for e in executions] == [last, last + TICK, last + 2 * TICK]
    assert sum(Decimal(e["execQty"]) for e in executions) == Decimal("0.030")
    assert all(Decimal(e["execQty"]) > 0 for e in executions)
    statuses = [o["orderStatus"] for o in order_pushes(sent, order_id)]
    assert statuses == ["New", "PartiallyFilled", "PartiallyFilled", "Filled"]
    value = sum(Decimal(e["execQty"]) * Decimal(e["execPrice"]) for e in executions)
    position = emu.position("BTCUSDT")
    assert Decimal(position["size"]) == Decimal("0.030")
    assert Decimal(position["avgPrice"]) == (value / Decimal("0.030")).quantize(Decimal("1e-8"))
    assert len([t for t, _ in sent if t == "execution"]) == 3


@pytest.mark.parametrize("status", ["Cancelled", "PartiallyFilledCanceled"])
def test_ioc_remainder_is_cancelled_after_some_executions(start_emulator, status):
    emu = start_emulator(
        fill_splits=4, ioc_cancel_rate=1.0, ioc_remainder_status=status, private_push_latency_ms=0
    )
    sent = record_pushes(emu)
    order_id = market_order(emu, "Sell", "0.040")["result"]["orderId"]

    [order] = [o for o in emu.orders() if o["orderId"] == order_id]
    filled = sum(Decimal(e["execQty"]) for e in trades(emu))
    assert order["orderStatus"] == status and order["leavesQty"] == "0.000"
    assert 0 < filled < Decimal("0.040") and Decimal(order["cumExecQty"]) == filled
    assert 1 <= len(trades(emu)) <= 3
    assert order_pushes(sent, order_id)[-1]["orderStatus"] == status
    assert Decimal(emu.position("BTCUSDT")["size"]) == filled  # the venue holds what filled


def test_orders_are_rejected_after_acceptance(start_emulator):
    emu = start_emulator(private_push_latency_ms=0)
    sent = record_pushes(emu)
    emu.reject_after_accept(1, "EC_ReachRiskPriceLimit")
    reply = market_order(emu, "Buy", "0.010")
    assert reply["retCode"] == 0 and reply["result"]["orderId"]  # accepted...
    [push] = order_pushes(sent, reply["result"]["orderId"])
    assert (push["orderStatus"], push["rejectReason"]) == ("Rejected", "EC_ReachRiskPriceLimit")
    assert trades(emu) == [] and emu.position("BTCUSDT")["size"] == "0.000"
    assert emu.wallet()["totalWalletBalance"] == "10000"

    market_order(emu, "Buy", "0.010")  # the next order fills again
    assert len(trades(emu)) == 1

    always = start_emulator(post_accept_reject_rate=1.0)
    assert market_order(always, "Buy", "0.010")["retCode"] == 0
    assert [o["orderStatus"] for o in always.orders()] == ["Rejected"]


def test_shuffled_pushes_come_before_the_ack_out_of_order_and_without_new(start_emulator):
    emu = start_emulator(fill_splits=3, shuffle_window_ms=150)
    sent = record_pushes(emu)
    before_ack = []
    orders = []
    for i in range(8):
        reply = market_order(emu, "Buy" if i % 2 == 0 else "Sell", "0.030")
        before_ack.append(len(sent))
        orders.append(reply["result"]["orderId"])
    expected = len(orders) * 3 * 4  # per execution: execution, order, position, wallet
    assert emu.wait_for(lambda: len(sent) >= expected, timeout=5)
    time.sleep(0.3)  # nothing else is due
    news = [o for o in orders if any(p["orderStatus"] == "New" for p in order_pushes(sent, o))]
    assert len(sent) == expected + len(news)

    def own_pushes_before_ack(i: int) -> int:
        return len([item for _, item in sent[: before_ack[i]] if item.get("orderId") == orders[i]])

    assert any(own_pushes_before_ack(i) > 0 for i in range(len(orders)))
    assert 0 < len(news) < len(orders)  # some market orders had no New push
    canonical = []
    for order_id in orders:
        canonical += ["order"] * (order_id in news) + [
            "execution",
            "order",
            "position",
            "wallet",
        ] * 3
    assert [t for t, _ in sent] != canonical  # interleaved across topics
    # ... but each topic's stream stays in order
    execution_seqs = [item["seq"] for t, item in sent if t == "execution"]
    assert execution_seqs == sorted(execution_seqs)
    position_seqs = [item["seq"] for t, item in sent if t == "position"]
    assert position_seqs == sorted(position_seqs)
    assert [e["execId"] for e in trades(emu)] == [
        item["execId"] for t, item in sent if t == "execution"
    ]


def apply_book(book: dict[str, dict[Decimal, Decimal]], message: dict) -> None:
    """Apply a Bybit order book push to ``{"b": {price: size}, "a": ...}``."""
    if message["type"] == "snapshot":
        book["b"].clear()
        book["a"].clear()
    for side in ("b", "a"):
        for price, size in message["data"][side]:
            if Decimal(size) == 0:
                book[side].pop(Decimal(price), None)
            else:
                book[side][Decimal(price)] = Decimal(size)


def test_order_book_snapshot_then_deltas(start_emulator):
    emu = start_emulator(book_deltas=True)

    async def scenario() -> list[dict]:
        async with ws_connect(emu.ws_public_url) as ws:
            await ws.send_json({"op": "subscribe", "args": ["orderbook.50.BTCUSDT"]})
            assert (await recv_json(ws))["success"]
            messages = [await recv_json(ws)]
            price = emu.last_price("BTCUSDT")
            for step in (3, -5, 2, 40, -80, 1):
                price += step * TICK
                await asyncio.to_thread(emu.set_price, "BTCUSDT", price)
                messages.append(await recv_json(ws))
            return messages

    messages = asyncio.run(scenario())
    assert [m["type"] for m in messages] == ["snapshot"] + ["delta"] * 6
    assert [m["data"]["u"] for m in messages] == list(range(1, 8))
    book: dict[str, dict[Decimal, Decimal]] = {"b": {}, "a": {}}
    for message in messages:
        apply_book(book, message)
    assert len(book["b"]) == len(book["a"]) == 50
    assert (book["b"], book["a"]) == emu.book("BTCUSDT", 50)
    deletes = [lvl for m in messages[1:] for side in "ba" for lvl in m["data"][side]]
    assert any(size == "0.000" for _, size in deletes)  # size 0 deletes a level
    assert max(book["b"]) == emu.last_price("BTCUSDT") < min(book["a"])
    # REST agrees with the stream
    _, rest = http(
        emu, "GET", "/v5/market/orderbook", {"category": "linear", "symbol": "BTCUSDT", "limit": 50}
    )
    assert {Decimal(p): Decimal(q) for p, q in rest["result"]["b"]} == book["b"]


def test_funding_settles_at_each_boundary_and_moves_the_rate(start_emulator):
    spec = dataclasses.replace(BTCUSDT, funding_interval_mins=FUNDING_MINUTES)
    emu = start_emulator(
        instruments=(spec,), funding_settlement=True, private_push_latency_ms=0, seed=5
    )
    sent = record_pushes(emu)

    async def tickers() -> list[dict]:
        async with ws_connect(emu.ws_public_url) as ws:
            await ws.send_json({"op": "subscribe", "args": ["tickers.BTCUSDT"]})
            assert (await recv_json(ws))["success"]
            messages = [await recv_json(ws)]
            market_order(emu, "Buy", "0.050")
            await asyncio.to_thread(emu.advance, 2 * FUNDING_MINUTES + 1, "BTCUSDT")
            while True:
                try:
                    messages.append(await recv_json(ws, timeout=0.5))
                except TimeoutError:
                    return messages

    wallet_before = Decimal("10000")
    messages = asyncio.run(tickers())
    settled = emu.funding_settled("BTCUSDT")
    assert len(settled) == 2  # 5 one-minute bars cross two 2-minute boundaries
    assert all(ts % (FUNDING_MINUTES * 60_000) == 0 for ts, _ in settled)

    fundings = [e for e in emu.executions() if e["execType"] == "Funding"]
    assert len(fundings) == 2
    for execution, (_, rate) in zip(fundings, settled, strict=True):
        fee = Decimal(execution["execQty"]) * Decimal(execution["execPrice"]) * rate
        assert Decimal(execution["execFee"]) == fee.quantize(Decimal("1e-8"))
        assert Decimal(execution["feeRate"]) == rate and execution["execQty"] == "0.050"
    paid = sum(Decimal(e["execFee"]) for e in fundings)
    trade_fees = sum(Decimal(e["execFee"]) for e in trades(emu))
    wallet = Decimal(emu.wallet()["totalWalletBalance"])
    assert wallet == wallet_before - trade_fees - paid
    assert Decimal(emu.position("BTCUSDT")["cumRealisedPnl"]) == -trade_fees - paid
    # pushed: a Funding execution, then the position and the wallet
    pushed = [item for topic, item in sent if topic == "execution"]
    assert [e["execType"] for e in pushed] == ["Trade", "Funding", "Funding"]
    # REST: execution/list filters on execType
    _, rest = http(
        emu,
        "GET",
        "/v5/execution/list",
        {
            "category": "linear",
            "execType": "Funding",
            "startTime": ANCHOR_MS,
            "endTime": ANCHOR_MS + 3_600_000,
        },
        signed=True,
    )
    assert [e["execId"] for e in rest["result"]["list"]] == [e["execId"] for e in fundings][::-1]

    # ticker pushes carry the changing funding rate and the next funding time
    rates = [m["data"]["fundingRate"] for m in messages if "fundingRate" in m["data"]]
    assert len(set(rates)) >= 2
    last = [m["data"] for m in messages if "nextFundingTime" in m["data"]][-1]
    assert int(last["nextFundingTime"]) == settled[-1][0] + FUNDING_MINUTES * 60_000
    # funding history holds the settled rates
    _, history = http(
        emu,
        "GET",
        "/v5/market/funding/history",
        {"category": "linear", "symbol": "BTCUSDT", "endTime": settled[-1][0]},
    )
    rows = history["result"]["list"][:2]
    assert [(int(r["fundingRateTimestamp"]), Decimal(r["fundingRate"])) for r in rows] == [
        settled[1],
        settled[0],
    ]


def funding_history(emu: EmulatorServer, **params) -> dict:
    _, payload = http(
        emu,
        "GET",
        "/v5/market/funding/history",
        {"category": "linear", "symbol": "BTCUSDT", **params},
    )
    return payload


def test_funding_history_follows_bybit_rules(start_emulator):
    emu = start_emulator()
    interval = BTCUSDT.funding_interval_mins * 60_000
    launch = BTCUSDT.launch_time_ms

    refused = funding_history(emu, startTime=ANCHOR_MS - 10 * interval)
    assert refused["retCode"] == 10001 and "endTime" in refused["retMsg"]

    newest = funding_history(emu)["result"]["list"]  # no bounds: the latest 200, none ahead
    stamps = [int(r["fundingRateTimestamp"]) for r in newest]
    assert len(stamps) == 200 and stamps[0] == ANCHOR_MS // interval * interval <= ANCHOR_MS
    assert stamps == sorted(stamps, reverse=True) and {
        a - b for a, b in itertools.pairwise(stamps)
    } == {interval}

    end = ANCHOR_MS + 30 * 86_400_000  # a month ahead: still nothing after now
    assert funding_history(emu, endTime=end)["result"]["list"] == newest
    limited = funding_history(emu, endTime=ANCHOR_MS - 5 * interval, limit=3)["result"]["list"]
    assert [int(r["fundingRateTimestamp"]) for r in limited] == stamps[5:8]

    early = funding_history(emu, endTime=launch + 2 * interval)["result"]["list"]
    assert [int(r["fundingRateTimestamp"]) for r in early] == [
        launch + 2 * interval,
        launch + interval,
        launch,
    ]  # the instrument's launch bounds the history
    assert funding_history(emu, endTime=launch - 1)["result"]["list"] == []
    window = funding_history(emu, startTime=launch + interval, endTime=launch + 3 * interval)
    assert len(window["result"]["list"]) == 3


def test_hostile_frames_send_documented_but_unusual_values(start_emulator):
    emu = start_emulator(hostile_frames=tuple(HOSTILE_MUTATIONS), private_push_latency_ms=0)

    async def scenario() -> list[dict]:
        async with ws_connect(emu.ws_private_url) as ws:
            await ws.send_json(ws_auth_message(emu.credentials))
            assert (await recv_json(ws))["success"]
            topics = ["order", "execution", "position", "wallet"]
            await ws.send_json({"op": "subscribe", "args": topics})
            assert (await recv_json(ws))["success"]
            await asyncio.to_thread(market_order, emu, "Buy", "0.010")
            return [await recv_json(ws) for _ in range(5)]

    pushes = {m["topic"]: m["data"][0] for m in asyncio.run(scenario())}
    order, execution = pushes["order"], pushes["execution"]
    assert order["triggerBy"] == order["tpTriggerBy"] == "UNKNOWN"
    assert order["stopOrderType"] == execution["stopOrderType"] == "UNKNOWN"
    assert order["createType"] == "UNKNOWN" and order["orderIv"] is None
    assert execution["markIv"] is None and pushes["position"]["liqPrice"] is None
    assert pushes["wallet"]["coin"][0]["availableToBorrow"] is None
    assert all(item["emuNewField"] == "1" for item in pushes.values())
    assert Decimal(execution["execQty"]) == Decimal("0.010")  # the values that matter intact
