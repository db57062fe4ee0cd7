"""Wire-level conformance of the Bybit v5 emulator (raw HTTP and websockets)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from collections.abc import Callable
from decimal import Decimal

import aiohttp
import pandas as pd
import pytest

from tests.bybit_emulator import Credentials
from tests.bybit_emulator import EmulatorConfig
from tests.bybit_emulator import EmulatorServer
from tests.bybit_emulator.signing import rest_headers
from tests.bybit_emulator.signing import ws_auth_message

pytestmark = pytest.mark.timeout(30)

ANCHOR_MS = 1_700_000_040_000  # open time of the forming 1-minute bar (a minute boundary)
HISTORY = 300


@pytest.fixture
def emu():
    server = EmulatorServer(EmulatorConfig(history_bars=HISTORY, anchor_ms=ANCHOR_MS)).start()
    yield server
    server.stop()


def http(
    emu: EmulatorServer,
    method: str,
    path: str,
    params: dict | None = None,
    *,
    signed: bool = False,
    creds: Credentials | None = None,
    timestamp_ms: int | None = None,
) -> tuple[int, dict]:
    """One REST call; GET params go in the query string, POST params in a JSON body."""
    creds = creds or emu.credentials
    query = urllib.parse.urlencode(params or {}) if method == "GET" else ""
    body = json.dumps(params or {}) if method == "POST" else ""
    headers = {"Content-Type": "application/json"}
    if signed:
        payload = query if method == "GET" else body
        headers.update(rest_headers(creds, payload, timestamp_ms=timestamp_ms))
    url = emu.base_url_http + path + (f"?{query}" if query else "")
    req = urllib.request.Request(url, data=body.encode() or None, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def klines(emu: EmulatorServer, **params) -> list[list[str]]:
    status, payload = http(
        emu, "GET", "/v5/market/kline", {"category": "linear", "symbol": "BTCUSDT", **params}
    )
    assert status == 200 and payload["retCode"] == 0, payload
    return payload["result"]["list"]


def market_order(emu: EmulatorServer, side: str, qty: str, **extra) -> dict:
    params = {"category": "linear", "symbol": "BTCUSDT", "side": side, "orderType": "Market"}
    _, payload = http(emu, "POST", "/v5/order/create", {**params, "qty": qty, **extra}, signed=True)
    return payload


# -- REST ------------------------------------------------------------------------------------


def test_envelope_and_server_time(emu):
    status, payload = http(emu, "GET", "/v5/market/time")
    assert status == 200
    assert set(payload) == {"retCode", "retMsg", "result", "retExtInfo", "time"}
    assert payload["retCode"] == 0 and payload["retMsg"] == "OK" and payload["retExtInfo"] == {}
    assert abs(payload["time"] - time.time() * 1000) < 5_000
    assert int(payload["result"]["timeNano"]) // 1_000_000_000 == int(
        payload["result"]["timeSecond"]
    )


def test_instruments_info_specs_and_cursor_paging(emu):
    _, payload = http(emu, "GET", "/v5/market/instruments-info", {"category": "linear"})
    btc = next(i for i in payload["result"]["list"] if i["symbol"] == "BTCUSDT")
    assert btc["contractType"] == "LinearPerpetual" and btc["status"] == "Trading"
    assert btc["priceFilter"]["tickSize"] == "0.10"
    assert btc["lotSizeFilter"]["qtyStep"] == "0.001"
    assert btc["lotSizeFilter"]["minOrderQty"] == "0.001"
    assert btc["lotSizeFilter"]["minNotionalValue"] == "5"
    assert btc["deliveryTime"] == "0" and btc["settleCoin"] == "USDT"

    seen, cursor = [], None
    for _ in range(5):
        params = {"category": "linear", "limit": 1, **({"cursor": cursor} if cursor else {})}
        _, page = http(emu, "GET", "/v5/market/instruments-info", params)
        seen += [i["symbol"] for i in page["result"]["list"]]
        cursor = page["result"]["nextPageCursor"]
        if not cursor:
            break
    assert seen == ["BTCUSDT", "ETHUSDT"]

    _, one = http(emu, "GET", "/v5/market/instruments-info", {"category": "linear", "symbol": "X"})
    assert one["retCode"] == 0 and one["result"]["list"] == []
    status, bad = http(emu, "GET", "/v5/market/instruments-info", {})
    assert status == 200 and bad["retCode"] == 10001


def test_kline_newest_first_with_forming_bar(emu):
    rows = klines(emu, interval="1")
    assert len(rows) == 200  # Bybit's default limit
    assert all(len(r) == 7 and all(isinstance(v, str) for v in r) for r in rows)
    starts = [int(r[0]) for r in rows]
    assert starts[0] == ANCHOR_MS == emu.forming_bar_start("BTCUSDT")  # still-forming bar first
    assert all(a - b == 60_000 for a, b in itertools.pairwise(starts))
    for r in rows:
        o, h, low, c = (Decimal(v) for v in r[1:5])
        assert low <= min(o, c) <= max(o, c) <= h
        assert all(Decimal(v) % Decimal("0.10") == 0 for v in r[1:5])


def test_kline_start_end_limit_paging(emu):
    first = ANCHOR_MS - HISTORY * 60_000
    # end only: the newest `limit` bars up to `end`, newest first
    rows = klines(emu, interval="1", end=first + 99 * 60_000, limit=10)
    assert [int(r[0]) for r in rows] == [first + (99 - i) * 60_000 for i in range(10)]
    # start only: the oldest `limit` bars from the bar containing `start` (mid-minute here)
    rows = klines(emu, interval="1", start=first + 10 * 60_000 + 123, limit=5)
    assert [int(r[0]) for r in rows] == [first + (14 - i) * 60_000 for i in range(5)]
    # limit is capped at 1000
    assert len(klines(emu, interval="1", limit=5000)) == HISTORY + 1
    # Nautilus-style backward paging (start + moving end) rebuilds the whole history
    got: dict[int, list[str]] = {}
    end = ANCHOR_MS + 59_999
    while True:
        page = klines(emu, interval="1", start=first, end=end, limit=120)
        if not page:
            break
        got.update({int(r[0]): r for r in page})
        if int(page[-1][0]) <= first:
            break
        end = int(page[-1][0]) - 1
    assert sorted(got) == [b.start for b in emu.bars("BTCUSDT")]
    status, bad = http(
        emu, "GET", "/v5/market/kline", {"category": "linear", "symbol": "BTCUSDT", "interval": "7"}
    )
    assert status == 200 and bad["retCode"] == 10001 and bad["retMsg"] == "Invalid period!"


def test_kline_higher_interval_is_aggregated(emu):
    rows = klines(emu, interval="5", limit=1000)
    bars5 = emu.bars("BTCUSDT", "5")
    assert [int(r[0]) for r in rows] == [b.start for b in reversed(bars5)]
    assert all(int(r[0]) % 300_000 == 0 for r in rows)
    base = {b.start: b for b in emu.bars("BTCUSDT")}
    start = int(rows[3][0])
    members = [base[start + i * 60_000] for i in range(5)]
    assert Decimal(rows[3][1]) == members[0].open
    assert Decimal(rows[3][2]) == max(m.high for m in members)
    assert Decimal(rows[3][3]) == min(m.low for m in members)
    assert Decimal(rows[3][4]) == members[-1].close


def test_kline_gap(emu):
    gap_start = ANCHOR_MS - 50 * 60_000
    assert emu.remove_bars("BTCUSDT", gap_start, gap_start + 4 * 60_000) == 5
    starts = [int(r[0]) for r in klines(emu, interval="1", limit=100)]
    assert gap_start not in starts and gap_start + 4 * 60_000 not in starts
    assert gap_start - 60_000 in starts and gap_start + 5 * 60_000 in starts
    assert len(starts) == 100 and starts == sorted(starts, reverse=True)


def test_load_frame_round_trips(emu):
    index = pd.date_range("2024-01-01", periods=4, freq="1min", tz="UTC")
    frame = pd.DataFrame(
        {
            "open": [100.0, 101.0, 102.0, 101.5],
            "high": [101.2, 102.5, 102.2, 103.0],
            "low": [99.5, 100.8, 101.0, 101.1],
            "close": [101.0, 102.0, 101.5, 102.9],
            "volume": [3.5, 1.25, 2.0, 4.0],
        },
        index=index,
    )
    emu.load_bars("BTCUSDT", frame)
    rows = klines(emu, interval="1", limit=10)
    assert int(rows[0][0]) == int(index[-1].value // 1_000_000) + 60_000  # forming bar next
    assert rows[1][1:6] == ["101.50", "103.00", "101.10", "102.90", "4.000"]
    assert rows[4][1:6] == ["100.00", "101.20", "99.50", "101.00", "3.500"]
    assert len(rows) == 5


def test_signature_accepted_and_rejected_with_bybit_codes(emu):
    params = {"accountType": "UNIFIED"}
    status, ok = http(emu, "GET", "/v5/account/wallet-balance", params, signed=True)
    assert status == 200 and ok["retCode"] == 0
    assert ok["result"]["list"][0]["coin"][0]["walletBalance"] == "10000"

    wrong_secret = Credentials(emu.credentials.api_key, "not-the-secret")
    status, bad = http(
        emu, "GET", "/v5/account/wallet-balance", params, signed=True, creds=wrong_secret
    )
    assert status == 200 and bad["retCode"] == 10004
    assert bad["retMsg"].startswith("error sign! origin_string[")
    assert bad["retMsg"].endswith(f"{emu.credentials.api_key}5000accountType=UNIFIED]")

    wrong_key = Credentials("UNKNOWNKEY", emu.credentials.api_secret)
    _, bad = http(emu, "GET", "/v5/account/wallet-balance", params, signed=True, creds=wrong_key)
    assert (bad["retCode"], bad["retMsg"]) == (10003, "API key is invalid.")

    _, unsigned = http(emu, "GET", "/v5/account/wallet-balance", params)
    assert unsigned["retCode"] == 10003

    stale = int(time.time() * 1000) - 60_000
    _, late = http(
        emu, "GET", "/v5/account/wallet-balance", params, signed=True, timestamp_ms=stale
    )
    assert late["retCode"] == 10002

    body = json.dumps({"category": "linear", "symbol": "BTCUSDT", "side": "Buy"})
    headers = rest_headers(emu.credentials, body.replace("Buy", "Sell"))
    req = urllib.request.Request(
        emu.base_url_http + "/v5/order/create", data=body.encode(), method="POST", headers=headers
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert json.loads(resp.read())["retCode"] == 10004
    assert emu.order_submissions() == 0


def test_unknown_path_and_path_fault_are_recorded(emu):
    status, payload = http(emu, "GET", "/v5/spot-lever-token/info")
    assert status == 404 and payload["retCode"] != 0
    assert emu.unknown_paths() == ["GET /v5/spot-lever-token/info"]

    emu.fail_path("/v5/market/tickers", ret_code=10006, ret_msg="Too many visits!", count=1)
    _, first = http(emu, "GET", "/v5/market/tickers", {"category": "linear"})
    _, second = http(emu, "GET", "/v5/market/tickers", {"category": "linear"})
    assert (first["retCode"], first["retMsg"]) == (10006, "Too many visits!")
    assert second["retCode"] == 0 and len(second["result"]["list"]) == 2
    assert [r.ret_code for r in emu.requests() if r.path == "/v5/market/tickers"] == [10006, 0]


def test_rest_market_and_limit_orders_update_books(emu):
    price = emu.last_price("BTCUSDT")
    payload = market_order(emu, "Buy", "0.010", orderLinkId="buy-1")
    assert payload["retCode"] == 0 and payload["result"]["orderLinkId"] == "buy-1"
    pos = emu.position("BTCUSDT")
    assert (pos["side"], pos["size"], Decimal(pos["avgPrice"])) == ("Buy", "0.010", price)
    fee = (Decimal("0.010") * price * Decimal("0.00055")).quantize(Decimal("1e-8"))
    assert Decimal(emu.wallet()["totalWalletBalance"]) == Decimal(10000) - fee

    limit_px = price + 100
    params = {"category": "linear", "symbol": "BTCUSDT", "side": "Sell", "orderType": "Limit"}
    params.update(qty="0.010", price=str(limit_px), timeInForce="GTC", orderLinkId="tp-1")
    _, placed = http(emu, "POST", "/v5/order/create", params, signed=True)
    assert placed["retCode"] == 0
    query = {"category": "linear", "settleCoin": "USDT"}
    _, open_orders = http(emu, "GET", "/v5/order/realtime", query, signed=True)
    assert [o["orderLinkId"] for o in open_orders["result"]["list"]] == ["tp-1"]
    assert open_orders["result"]["list"][0]["orderStatus"] == "New"

    emu.set_price("BTCUSDT", limit_px + Decimal("0.5"))  # trades through the limit
    assert emu.position("BTCUSDT")["side"] == ""
    maker_fee = (Decimal("0.010") * limit_px * Decimal("0.0002")).quantize(Decimal("1e-8"))
    expected = Decimal(10000) - fee - maker_fee + Decimal("0.010") * 100
    assert Decimal(emu.wallet()["totalWalletBalance"]) == expected

    _, history = http(emu, "GET", "/v5/order/history", {"category": "linear"}, signed=True)
    assert {o["orderLinkId"]: o["orderStatus"] for o in history["result"]["list"]} == {
        "buy-1": "Filled",
        "tp-1": "Filled",
    }
    _, execs = http(emu, "GET", "/v5/execution/list", {"category": "linear"}, signed=True)
    assert [e["isMaker"] for e in execs["result"]["list"]] == [True, False]  # newest first
    _, positions = http(emu, "GET", "/v5/position/list", query, signed=True)
    assert positions["retCode"] == 0 and positions["result"]["list"] == []  # flat: not listed
    _, missing = http(emu, "GET", "/v5/position/list", {"category": "linear"}, signed=True)
    assert missing["retCode"] == 10001


def test_order_validation_reduce_only_and_injected_reject(emu):
    assert market_order(emu, "Sell", "0.010", reduceOnly=True)["retCode"] == 110017
    assert market_order(emu, "Buy", "0.0105")["retCode"] == 10001  # not a multiple of 0.001
    emu.reject_next_order(ret_code=110007, ret_msg="ab not enough for new order")
    rejected = market_order(emu, "Buy", "0.010")
    assert (rejected["retCode"], rejected["retMsg"]) == (110007, "ab not enough for new order")
    assert market_order(emu, "Buy", "0.010")["retCode"] == 0
    closed = market_order(emu, "Sell", "0.050", reduceOnly=True)  # capped to the position
    assert closed["retCode"] == 0 and emu.position("BTCUSDT")["size"] == "0.000"
    assert emu.order_submissions() == 5


# -- websockets --------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def ws_connect(url: str) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        yield ws


async def recv_json(ws: aiohttp.ClientWebSocketResponse, timeout: float = 3.0) -> dict:
    msg = await asyncio.wait_for(ws.receive(), timeout)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return json.loads(msg.data)


async def recv_until(
    ws: aiohttp.ClientWebSocketResponse, pred: Callable[[dict], bool], timeout: float = 3.0
) -> list[dict]:
    """Collect messages until one satisfies ``pred`` (returned last)."""
    out: list[dict] = []
    deadline = time.monotonic() + timeout
    while True:
        msg = await recv_json(ws, max(0.05, deadline - time.monotonic()))
        out.append(msg)
        if pred(msg):
            return out


def test_ws_public_subscribe_ping_and_kline_pushes(emu):
    async def scenario() -> None:
        async with ws_connect(emu.ws_public_url) as ws:
            await ws.send_json({"op": "ping", "req_id": "p1"})
            pong = await recv_json(ws)
            assert pong["op"] == "ping" and pong["ret_msg"] == "pong" and pong["success"]

            await ws.send_json({"op": "subscribe", "args": ["kline.1.BTCUSDT"], "req_id": "k1"})
            ack = await recv_json(ws)
            assert set(ack) == {"success", "ret_msg", "conn_id", "req_id", "op"}
            assert ack["success"] is True and ack["req_id"] == "k1"
            assert ack["op"] == "subscribe"
            first = await recv_json(ws)  # current (unconfirmed) kline right after subscribing
            assert first["data"][0]["confirm"] is False

            await asyncio.to_thread(emu.advance, 1, "BTCUSDT", 3)
            msgs = await recv_until(ws, lambda m: m["data"][0]["confirm"])
            assert [m["data"][0]["confirm"] for m in msgs] == [False, False, False, True]
            final = msgs[-1]
            assert final["topic"] == "kline.1.BTCUSDT" and final["type"] == "snapshot"
            item = final["data"][0]
            assert item["start"] == ANCHOR_MS and item["end"] == ANCHOR_MS + 59_999
            assert item["interval"] == "1"
            for key in ("open", "close", "high", "low", "volume", "turnover"):
                assert isinstance(item[key], str)
            assert isinstance(item["timestamp"], int) and isinstance(final["ts"], int)
            bars = emu.bars("BTCUSDT")
            assert Decimal(item["close"]) == bars[-2].close  # the bar just closed

            await ws.send_json({"op": "subscribe", "args": ["kline.1.BTCUSDT"], "req_id": "k2"})
            dup = await recv_json(ws)
            assert dup["success"] is False and "already subscribed" in dup["ret_msg"]
            await ws.send_json({"op": "subscribe", "args": ["nonsense.BTCUSDT"], "req_id": "x"})
            bad = await recv_json(ws)
            assert bad["success"] is False and bad["req_id"] == "x"

            await ws.send_json({"op": "subscribe", "args": ["tickers.BTCUSDT"], "req_id": "t"})
            await recv_json(ws)
            snap = await recv_json(ws)
            assert snap["type"] == "snapshot" and snap["data"]["symbol"] == "BTCUSDT"
            assert Decimal(snap["data"]["ask1Price"]) > Decimal(snap["data"]["bid1Price"])

    asyncio.run(scenario())


def test_ws_private_auth_and_account_pushes(emu):
    async def scenario() -> None:
        async with ws_connect(emu.ws_private_url) as ws:
            await ws.send_json({"op": "subscribe", "args": ["order"]})
            early = await recv_json(ws)
            assert early["success"] is False and early["ret_msg"] == "Request not authorized"

            bad = ws_auth_message(Credentials(emu.credentials.api_key, "wrong"))
            await ws.send_json(bad)
            reply = await recv_json(ws)
            assert reply["op"] == "auth" and reply["success"] is False

            await ws.send_json(ws_auth_message(emu.credentials))
            reply = await recv_json(ws)
            assert reply["op"] == "auth" and reply["success"] is True

            topics = ["order", "execution", "position", "wallet"]
            await ws.send_json({"op": "subscribe", "args": topics, "req_id": "s"})
            assert (await recv_json(ws))["success"] is True
            await ws.send_json({"op": "ping", "req_id": "p"})
            assert (await recv_json(ws))["op"] == "pong"

            await asyncio.to_thread(market_order, emu, "Buy", "0.010", orderLinkId="ws-1")
            msgs = await recv_until(ws, lambda m: m["topic"] == "wallet")
            assert [m["topic"] for m in msgs] == [
                "order",
                "execution",
                "order",
                "position",
                "wallet",
            ]
            assert all(set(m) == {"id", "topic", "creationTime", "data"} for m in msgs)
            assert msgs[0]["data"][0]["orderStatus"] == "New"
            assert msgs[2]["data"][0]["orderStatus"] == "Filled"
            execution = msgs[1]["data"][0]
            assert execution["orderLinkId"] == "ws-1" and execution["execQty"] == "0.010"
            assert msgs[3]["data"][0]["size"] == "0.010"
            wallet = msgs[4]["data"][0]
            assert wallet == {**emu.wallet(), "totalPerpUPL": wallet["totalPerpUPL"]}

    asyncio.run(scenario())


def test_ws_trade_order_entry(emu):
    async def scenario() -> None:
        async with ws_connect(emu.ws_trade_url) as ws:
            bad = ws_auth_message(Credentials(emu.credentials.api_key, "wrong"))
            await ws.send_json(bad)
            assert (await recv_json(ws))["retCode"] == 10004
            await ws.send_json(ws_auth_message(emu.credentials))
            auth = await recv_json(ws)
            assert (auth["retCode"], auth["op"]) == (0, "auth")

            def create(req_id: str) -> dict:
                return {
                    "reqId": req_id,
                    "op": "order.create",
                    "header": {"X-BAPI-TIMESTAMP": str(int(time.time() * 1000))},
                    "args": [
                        {
                            "category": "linear",
                            "symbol": "BTCUSDT",
                            "side": "Buy",
                            "orderType": "Market",
                            "qty": "0.001",
                            "orderLinkId": req_id,
                        }
                    ],
                }

            await ws.send_json(create("r1"))
            ok = await recv_json(ws)
            assert (ok["retCode"], ok["op"], ok["reqId"]) == (0, "order.create", "r1")
            assert ok["data"]["orderLinkId"] == "r1" and ok["data"]["orderId"]
            await asyncio.to_thread(emu.reject_next_order, 110007, "ab not enough for new order")
            await ws.send_json(create("r2"))
            rejected = await recv_json(ws)
            assert (rejected["retCode"], rejected["reqId"]) == (110007, "r2")

            batch = create("b1")
            good = {k: v for k, v in batch["args"][0].items() if k != "category"}
            bad = {**good, "qty": "0.0001", "orderLinkId": "b1-bad"}
            batch.update(
                op="order.create-batch", args=[{"category": "linear", "request": [good, bad]}]
            )
            await ws.send_json(batch)
            reply = await recv_json(ws)
            assert reply["retCode"] == 0 and reply["op"] == "order.create-batch"
            assert [c["code"] for c in reply["retExtInfo"]["list"]] == [0, 10001]
            assert [o["orderLinkId"] for o in reply["data"]["list"]] == ["b1", "b1-bad"]

    asyncio.run(scenario())
    assert emu.position("BTCUSDT")["size"] == "0.002"


def test_drop_websockets_closes_and_refuses_reconnect(emu):
    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(emu.ws_public_url)
            assert await asyncio.to_thread(emu.ws_connections, "public") == 1
            assert await asyncio.to_thread(emu.drop_websockets, None, 1.0) == 1
            msg = await asyncio.wait_for(ws.receive(), 3)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            with pytest.raises(aiohttp.WSServerHandshakeError):
                await session.ws_connect(emu.ws_public_url)
            await asyncio.sleep(1.1)
            ws2 = await session.ws_connect(emu.ws_public_url)
            await ws2.close()

    asyncio.run(scenario())


def test_market_account_and_order_management_endpoints(emu):
    _, tick = http(emu, "GET", "/v5/market/tickers", {"category": "linear", "symbol": "BTCUSDT"})
    ticker = tick["result"]["list"][0]
    last = emu.last_price("BTCUSDT")
    assert Decimal(ticker["lastPrice"]) == last == Decimal(ticker["bid1Price"])
    assert Decimal(ticker["ask1Price"]) == last + Decimal("0.10")
    _, book = http(emu, "GET", "/v5/market/orderbook", {"category": "linear", "symbol": "BTCUSDT"})
    assert len(book["result"]["b"]) == 25 and book["result"]["a"][0][0] == ticker["ask1Price"]
    emu.set_price("BTCUSDT", last + 1, qty="0.5", side="Buy")
    _, trades = http(
        emu, "GET", "/v5/market/recent-trade", {"category": "linear", "symbol": "BTCUSDT"}
    )
    newest = trades["result"]["list"][0]
    assert (newest["price"], newest["size"], newest["side"]) == (f"{last + 1:.2f}", "0.500", "Buy")

    _, fees = http(emu, "GET", "/v5/account/fee-rate", {"category": "linear"}, signed=True)
    assert {f["symbol"]: f["takerFeeRate"] for f in fees["result"]["list"]} == {
        "BTCUSDT": "0.00055",
        "ETHUSDT": "0.00055",
    }
    _, info = http(emu, "GET", "/v5/account/info", signed=True)
    assert info["result"]["unifiedMarginStatus"] == 5
    _, key = http(emu, "GET", "/v5/user/query-api", signed=True)
    assert key["result"]["apiKey"] == emu.credentials.api_key
    _, coins = http(emu, "GET", "/v5/asset/coin/query-info", signed=True)
    assert {r["coin"] for r in coins["result"]["rows"]} == {"BTC", "ETH", "USDT"}

    lev = {"category": "linear", "symbol": "BTCUSDT", "buyLeverage": "5", "sellLeverage": "5"}
    assert http(emu, "POST", "/v5/position/set-leverage", lev, signed=True)[1]["retCode"] == 0
    assert http(emu, "POST", "/v5/position/set-leverage", lev, signed=True)[1]["retCode"] == 110043
    mode = {"category": "linear", "symbol": "BTCUSDT", "mode": 0}
    assert http(emu, "POST", "/v5/position/switch-mode", mode, signed=True)[1]["retCode"] == 110025

    price = emu.last_price("BTCUSDT")
    base = {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit"}
    for i in range(3):
        order = {**base, "qty": "0.010", "price": f"{price - 100 - i:.2f}", "orderLinkId": f"l{i}"}
        assert http(emu, "POST", "/v5/order/create", order, signed=True)[1]["retCode"] == 0
    wallet = emu.wallet()
    assert Decimal(wallet["totalInitialMargin"]) > 0  # resting orders reserve order IM
    amend = {"category": "linear", "symbol": "BTCUSDT", "orderLinkId": "l0", "price": "1000.00"}
    assert http(emu, "POST", "/v5/order/amend", amend, signed=True)[1]["retCode"] == 0
    cancel = {"category": "linear", "symbol": "BTCUSDT", "orderLinkId": "l1"}
    assert http(emu, "POST", "/v5/order/cancel", cancel, signed=True)[1]["retCode"] == 0
    assert http(emu, "POST", "/v5/order/cancel", cancel, signed=True)[1]["retCode"] == 110001
    _, rt = http(
        emu, "GET", "/v5/order/realtime", {"category": "linear", "orderLinkId": "l0"}, signed=True
    )
    assert rt["result"]["list"][0]["price"] == "1000.00"
    _, all_cancel = http(
        emu,
        "POST",
        "/v5/order/cancel-all",
        {"category": "linear", "symbol": "BTCUSDT"},
        signed=True,
    )
    assert {o["orderLinkId"] for o in all_cancel["result"]["list"]} == {"l0", "l2"}
    query = {"category": "linear", "symbol": "BTCUSDT", "limit": 2}
    _, page1 = http(emu, "GET", "/v5/order/history", query, signed=True)
    cursor = page1["result"]["nextPageCursor"]
    _, page2 = http(emu, "GET", "/v5/order/history", {**query, "cursor": cursor}, signed=True)
    statuses = [o["orderStatus"] for o in page1["result"]["list"] + page2["result"]["list"]]
    assert statuses == ["Cancelled"] * 3 and page2["result"]["nextPageCursor"] == ""
    assert Decimal(emu.wallet()["totalInitialMargin"]) == 0


def test_push_bar_emits_exact_bar_and_moves_unrealised_pnl(emu):
    assert market_order(emu, "Buy", "0.100")["retCode"] == 0
    entry = Decimal(emu.position("BTCUSDT")["avgPrice"])

    async def scenario() -> list[dict]:
        async with ws_connect(emu.ws_public_url) as ws:
            topics = ["kline.1.BTCUSDT", "kline.5.BTCUSDT"]
            await ws.send_json({"op": "subscribe", "args": topics, "req_id": "k"})
            assert (await recv_json(ws))["success"] is True
            await asyncio.to_thread(
                emu.push_bar, "BTCUSDT", entry, entry + 250, entry - 120, entry + 200, 42
            )
            return await recv_until(
                ws, lambda m: m["topic"] == "kline.1.BTCUSDT" and m["data"][0]["confirm"]
            )

    msgs = asyncio.run(scenario())
    final = msgs[-1]["data"][0]
    fmt = "{:.2f}".format
    assert (final["open"], final["high"], final["low"], final["close"], final["volume"]) == (
        fmt(entry),
        fmt(entry + 250),
        fmt(entry - 120),
        fmt(entry + 200),
        "42.000",
    )
    rows = klines(emu, interval="1", limit=2)
    assert rows[1][0] == str(final["start"]) and rows[1][4] == final["close"]
    upl = Decimal(emu.position("BTCUSDT")["unrealisedPnl"])
    assert upl == Decimal("0.100") * 200
    wallet = emu.wallet()
    assert Decimal(wallet["totalEquity"]) == Decimal(wallet["totalWalletBalance"]) + upl


def test_market_orders_pay_configured_slippage():
    config = EmulatorConfig(history_bars=10, anchor_ms=ANCHOR_MS, slippage_ticks=3)
    with EmulatorServer(config) as server:
        last = server.last_price("BTCUSDT")
        assert market_order(server, "Buy", "0.010")["retCode"] == 0
        assert market_order(server, "Sell", "0.010")["retCode"] == 0
        prices = [Decimal(e["execPrice"]) for e in server.executions()]
        assert prices == [last + Decimal("0.30"), last - Decimal("0.30")]
