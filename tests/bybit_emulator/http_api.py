"""Bybit v5 REST endpoints (``/v5/...``) served by aiohttp.

Every response is ``{"retCode", "retMsg", "result", "retExtInfo", "time"}`` with HTTP 200, also
for business errors, as Bybit does. Paths the emulator does not know return HTTP 404 with such
an envelope and are recorded in ``state.unknown`` so tests can assert none were hit.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable
from collections.abc import Callable
from urllib.parse import parse_qsl

from aiohttp import web

from tests.bybit_emulator.books import BybitError
from tests.bybit_emulator.instruments import fmt_decimal
from tests.bybit_emulator.market import VALID_INTERVALS
from tests.bybit_emulator.signing import rest_origin_string
from tests.bybit_emulator.signing import sign_rest
from tests.bybit_emulator.state import EmulatorState
from tests.bybit_emulator.state import RequestRecord
from tests.bybit_emulator.state import now_ms

Params = dict[str, str]
Handler = Callable[[EmulatorState, Params], Awaitable[dict]]
CATEGORIES = ("spot", "linear", "inverse", "option")
MISSING_FILTER = "Missing some parameters that must be filled in, symbol or settleCoin or baseCoin"


def envelope(ret_code: int, ret_msg: str, result: dict | None) -> dict:
    return {
        "retCode": ret_code,
        "retMsg": ret_msg,
        "result": result if result is not None else {},
        "retExtInfo": {},
        "time": now_ms(),
    }


# -- parameter helpers -----------------------------------------------------------------------


def _category(params: Params, allowed: tuple[str, ...] = CATEGORIES) -> str:
    category = params.get("category", "")
    if not category:
        raise BybitError(10001, "params error: category is required")
    if category not in allowed:
        raise BybitError(10001, f"params error: category {category} invalid")
    return category


def _int(params: Params, name: str, default: int | None = None) -> int | None:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise BybitError(10001, f"params error: {name} invalid") from None


def _limit(params: Params, default: int, maximum: int) -> int:
    limit = _int(params, "limit", default)
    assert limit is not None
    if limit < 1:
        raise BybitError(10001, "params error: limit invalid")
    return min(limit, maximum)


def _page(items: list, params: Params, default: int, maximum: int) -> tuple[list, str]:
    """Cursor pagination: the cursor is an opaque offset token."""
    limit = _limit(params, default, maximum)
    cursor = params.get("cursor") or ""
    offset = 0
    if cursor:
        if not cursor.startswith("p") or not cursor[1:].isdigit():
            raise BybitError(10001, "params error: cursor invalid")
        offset = int(cursor[1:])
    page = items[offset : offset + limit]
    nxt = offset + limit
    return page, (f"p{nxt}" if nxt < len(items) else "")


def _time_window(params: Params, items: list, ms_of: Callable) -> list:
    start = _int(params, "startTime")
    end = _int(params, "endTime")
    if start is None and end is None:
        start = now_ms() - 7 * 86_400_000
    if start is not None:
        items = [i for i in items if ms_of(i) >= start]
    if end is not None:
        items = [i for i in items if ms_of(i) <= end]
    return items


# -- market ----------------------------------------------------------------------------------


async def market_time(state: EmulatorState, params: Params) -> dict:
    ns = time.time_ns()
    return {"timeSecond": str(ns // 1_000_000_000), "timeNano": str(ns)}


async def instruments_info(state: EmulatorState, params: Params) -> dict:
    category = _category(params)
    specs = list(state.instruments.values()) if category == "linear" else []
    symbol = params.get("symbol")
    if symbol:
        specs = [s for s in specs if s.symbol == symbol]
    else:
        status = params.get("status") or "Trading"
        specs = [s for s in specs if s.status == status]
    if params.get("baseCoin"):
        specs = [s for s in specs if s.base_coin == params["baseCoin"]]
    page, cursor = _page([s.to_bybit() for s in specs], params, 500, 1000)
    return {"category": category, "list": page, "nextPageCursor": cursor}


async def kline(state: EmulatorState, params: Params) -> dict:
    category = _category(params, ("spot", "linear", "inverse"))
    symbol = params.get("symbol", "")
    interval = params.get("interval", "")
    if not symbol:
        raise BybitError(10001, "params error: symbol is required")
    if interval not in VALID_INTERVALS:
        raise BybitError(10001, "Invalid period!")
    limit = _limit(params, 200, 1000)
    rows: list = []
    market = state.markets.get(symbol) if category == "linear" else None
    if market is None:
        raise BybitError(10001, "Not supported symbols")
    if market.supports(interval):
        bars = market.query(interval, _int(params, "start"), _int(params, "end"), limit)
        rows = [b.to_rest(market.spec) for b in bars]
    return {"category": category, "symbol": symbol, "list": rows}


async def tickers(state: EmulatorState, params: Params) -> dict:
    category = _category(params)
    symbols = list(state.markets) if category == "linear" else []
    if params.get("symbol"):
        if params["symbol"] not in symbols:
            raise BybitError(10001, "Not supported symbols")
        symbols = [params["symbol"]]
    return {"category": category, "list": [state.ticker_item(s, rest=True) for s in symbols]}


async def recent_trade(state: EmulatorState, params: Params) -> dict:
    category = _category(params)
    market = state.market(params.get("symbol", ""))
    limit = _limit(params, 500, 1000)
    spec = market.spec
    rows = [
        {
            "execId": t.exec_id,
            "symbol": spec.symbol,
            "price": spec.fmt_price(t.price),
            "size": spec.fmt_qty(t.qty),
            "side": t.side,
            "time": str(t.ts),
            "isBlockTrade": False,
            "isRPITrade": False,
        }
        for t in reversed(market.trades)
    ][:limit]
    return {"category": category, "list": rows}


async def orderbook(state: EmulatorState, params: Params) -> dict:
    _category(params)
    symbol = params.get("symbol", "")
    state.market(symbol)
    depth = _limit(params, 25, 500)
    bids, asks = state.book_levels(symbol, depth)
    ts = now_ms()
    return {
        "s": symbol,
        "b": bids,
        "a": asks,
        "ts": ts,
        "u": state.ticker_seq,
        "seq": ts,
        "cts": ts,
    }


async def funding_history(state: EmulatorState, params: Params) -> dict:
    """Bybit's rules: rows between the instrument's launch and now (the market clock), newest
    first, at most ``limit`` (200); ``endTime`` alone gives the ``limit`` rows up to it,
    ``startTime`` alone is refused."""
    category = _category(params, ("linear", "inverse"))
    symbol = params.get("symbol", "")
    state.market(symbol)
    limit = _limit(params, 200, 200)
    start = _int(params, "startTime")
    end = _int(params, "endTime")
    if start is not None and end is None:
        raise BybitError(10001, "params error: endTime is required when startTime is set")
    rows = state.funding_rows(symbol, start, end, limit)
    return {
        "category": category,
        "list": [
            {"symbol": symbol, "fundingRate": fmt_decimal(rate), "fundingRateTimestamp": str(ts)}
            for ts, rate in rows
        ],
    }


# -- account / asset / user ------------------------------------------------------------------


async def wallet_balance(state: EmulatorState, params: Params) -> dict:
    if params.get("accountType") != "UNIFIED":
        raise BybitError(10001, "accountType only support UNIFIED")
    item = state.exchange.wallet_item()
    coins = params.get("coin")
    if coins:
        wanted = set(coins.split(","))
        item["coin"] = [c for c in item["coin"] if c["coin"] in wanted]
    return {"list": [item]}


async def account_info(state: EmulatorState, params: Params) -> dict:
    return {
        "unifiedMarginStatus": 5,
        "marginMode": "REGULAR_MARGIN",
        "isMasterTrader": False,
        "spotHedgingStatus": "OFF",
        "updatedTime": str(now_ms() - 86_400_000),
        "dcpStatus": "OFF",
        "timeWindow": 10,
        "smpGroup": 0,
    }


async def fee_rate(state: EmulatorState, params: Params) -> dict:
    category = _category(params)
    specs = list(state.instruments.values()) if category == "linear" else []
    if params.get("symbol"):
        specs = [s for s in specs if s.symbol == params["symbol"]]
    if params.get("baseCoin"):
        specs = [s for s in specs if s.base_coin == params["baseCoin"]]
    return {
        "list": [
            {
                "symbol": s.symbol,
                "takerFeeRate": fmt_decimal(s.taker_fee),
                "makerFeeRate": fmt_decimal(s.maker_fee),
            }
            for s in specs
        ]
    }


async def set_margin_mode(state: EmulatorState, params: Params) -> dict:
    mode = params.get("setMarginMode")
    if mode not in ("REGULAR_MARGIN", "ISOLATED_MARGIN", "PORTFOLIO_MARGIN"):
        raise BybitError(10001, "params error: setMarginMode invalid")
    return {"reasons": []}


async def coin_query_info(state: EmulatorState, params: Params) -> dict:
    coins = sorted({"USDT"} | {s.base_coin for s in state.instruments.values()})
    if params.get("coin"):
        coins = [c for c in coins if c == params["coin"]]
    rows = []
    for coin in coins:
        chain = {
            "chainType": coin,
            "confirmation": "6",
            "withdrawFee": "1" if coin == "USDT" else "0.0005",
            "depositMin": "0",
            "withdrawMin": "2" if coin == "USDT" else "0.001",
            "chain": "ETH",
            "chainDeposit": "1",
            "chainWithdraw": "1",
            "minAccuracy": "4" if coin == "USDT" else "8",
            "withdrawPercentageFee": "0",
            "contractAddress": "",
            "safeConfirmNumber": "6",
        }
        rows.append({"name": coin, "coin": coin, "remainAmount": "1000000", "chains": [chain]})
    return {"rows": rows}


async def query_api(state: EmulatorState, params: Params) -> dict:
    return {
        "id": "1000001",
        "note": "bybit-emulator",
        "apiKey": state.config.api_key,
        "readOnly": 0,
        "secret": "",
        "permissions": {
            "ContractTrade": ["Order", "Position"],
            "Spot": ["SpotTrade"],
            "Wallet": ["AccountTransfer"],
            "Options": ["OptionsTrade"],
            "Derivatives": ["DerivativesTrade"],
            "CopyTrading": [],
            "BlockTrade": [],
            "Exchange": ["ExchangeHistory"],
            "NFT": [],
            "Affiliate": [],
            "Earn": [],
        },
        "ips": ["*"],
        "type": 1,
        "deadlineDay": -1,
        "expiredAt": "",
        "createdAt": "2024-01-01T00:00:00Z",
        "unified": 0,
        "uta": 1,
        "userID": 1000001,
        "inviterID": 0,
        "vipLevel": "No VIP",
        "mktMakerLevel": "0",
        "affiliateID": 0,
        "rsaPublicKey": "",
        "isMaster": True,
        "parentUid": "0",
        "kycLevel": "LEVEL_1",
        "kycRegion": "",
    }


# -- trading ---------------------------------------------------------------------------------


async def order_create(state: EmulatorState, params: Params) -> dict:
    return await state.place_order(params)


async def order_cancel(state: EmulatorState, params: Params) -> dict:
    _category(params, ("linear",))
    return await state.cancel_order(params)


async def order_amend(state: EmulatorState, params: Params) -> dict:
    _category(params, ("linear",))
    return await state.amend_order(params)


async def order_cancel_all(state: EmulatorState, params: Params) -> dict:
    _category(params, ("linear",))
    return await state.cancel_all(params)


def _require_filter(params: Params, *names: str) -> None:
    if not any(params.get(n) for n in names):
        raise BybitError(10001, MISSING_FILTER)


def _orders_filtered(state: EmulatorState, params: Params) -> list:
    orders = sorted(state.exchange.orders.values(), key=lambda o: o.created_ms, reverse=True)
    if params.get("symbol"):
        orders = [o for o in orders if o.symbol == params["symbol"]]
    if params.get("baseCoin"):
        orders = [o for o in orders if state.instruments[o.symbol].base_coin == params["baseCoin"]]
    if params.get("settleCoin"):
        orders = [
            o for o in orders if state.instruments[o.symbol].settle_coin == params["settleCoin"]
        ]
    if params.get("orderId"):
        orders = [o for o in orders if o.order_id == params["orderId"]]
    if params.get("orderLinkId"):
        orders = [o for o in orders if o.link_id == params["orderLinkId"]]
    if params.get("orderFilter") not in (None, "", "Order"):
        orders = []  # no conditional / TP-SL orders in the emulator
    return orders


async def order_realtime(state: EmulatorState, params: Params) -> dict:
    category = _category(params)
    if category == "linear":
        _require_filter(params, "symbol", "settleCoin", "baseCoin", "orderId", "orderLinkId")
    orders = _orders_filtered(state, params) if category == "linear" else []
    by_id = bool(params.get("orderId") or params.get("orderLinkId"))
    if not by_id:
        if params.get("openOnly") in (None, "", "0"):
            orders = [o for o in orders if o.is_open]
        else:
            orders = [o for o in orders if not o.is_open][:500]
    page, cursor = _page(orders, params, 20, 50)
    return {
        "list": [state.exchange.order_item(o) for o in page],
        "nextPageCursor": cursor,
        "category": category,
    }


async def order_history(state: EmulatorState, params: Params) -> dict:
    category = _category(params)
    orders = _orders_filtered(state, params) if category == "linear" else []
    if params.get("orderStatus"):
        orders = [o for o in orders if o.status == params["orderStatus"]]
    orders = _time_window(params, orders, lambda o: o.created_ms)
    page, cursor = _page(orders, params, 20, 50)
    return {
        "list": [state.exchange.order_item(o) for o in page],
        "nextPageCursor": cursor,
        "category": category,
    }


async def execution_list(state: EmulatorState, params: Params) -> dict:
    category = _category(params)
    execs = list(reversed(state.exchange.executions)) if category == "linear" else []
    for key, attr in (("symbol", "symbol"), ("orderId", "order_id"), ("orderLinkId", "link_id")):
        if params.get(key):
            execs = [e for e in execs if getattr(e.order, attr) == params[key]]
    if params.get("execType"):
        execs = [e for e in execs if e.exec_type == params["execType"]]
    execs = _time_window(params, execs, lambda e: e.exec_ms)
    page, cursor = _page(execs, params, 50, 100)
    return {
        "list": [state.exchange.execution_item(e) for e in page],
        "nextPageCursor": cursor,
        "category": category,
    }


async def position_list(state: EmulatorState, params: Params) -> dict:
    category = _category(params, ("linear", "inverse", "option"))
    symbols: list[str] = []
    if category == "linear":
        _require_filter(params, "symbol", "settleCoin")
        if params.get("symbol"):
            state.market(params["symbol"])
            symbols = [params["symbol"]]  # by symbol: returned even when flat
        else:
            symbols = [
                s
                for s, spec in state.instruments.items()
                if spec.settle_coin == params.get("settleCoin")
                and state.exchange.positions[s].size != 0
            ]
        if params.get("baseCoin"):
            symbols = [s for s in symbols if state.instruments[s].base_coin == params["baseCoin"]]
    page, cursor = _page(symbols, params, 20, 200)
    return {
        "list": [state.exchange.position_item(s) for s in page],
        "nextPageCursor": cursor,
        "category": category,
    }


async def set_leverage(state: EmulatorState, params: Params) -> dict:
    _category(params, ("linear",))
    state.exchange.set_leverage(
        params.get("symbol", ""), params.get("buyLeverage", ""), params.get("sellLeverage", "")
    )
    return {}


async def switch_mode(state: EmulatorState, params: Params) -> dict:
    _category(params, ("linear",))
    if str(params.get("mode")) == "0":
        raise BybitError(110025, "Position mode is not modified")
    raise BybitError(10001, "emulator supports one-way (merged single) position mode only")


PUBLIC: dict[str, tuple[str, Handler]] = {
    "/v5/market/time": ("GET", market_time),
    "/v5/market/instruments-info": ("GET", instruments_info),
    "/v5/market/kline": ("GET", kline),
    "/v5/market/tickers": ("GET", tickers),
    "/v5/market/recent-trade": ("GET", recent_trade),
    "/v5/market/orderbook": ("GET", orderbook),
    "/v5/market/funding/history": ("GET", funding_history),
}
PRIVATE: dict[str, tuple[str, Handler]] = {
    "/v5/account/wallet-balance": ("GET", wallet_balance),
    "/v5/account/info": ("GET", account_info),
    "/v5/account/fee-rate": ("GET", fee_rate),
    "/v5/account/set-margin-mode": ("POST", set_margin_mode),
    "/v5/asset/coin/query-info": ("GET", coin_query_info),
    "/v5/user/query-api": ("GET", query_api),
    "/v5/order/create": ("POST", order_create),
    "/v5/order/cancel": ("POST", order_cancel),
    "/v5/order/amend": ("POST", order_amend),
    "/v5/order/cancel-all": ("POST", order_cancel_all),
    "/v5/order/realtime": ("GET", order_realtime),
    "/v5/order/history": ("GET", order_history),
    "/v5/execution/list": ("GET", execution_list),
    "/v5/position/list": ("GET", position_list),
    "/v5/position/set-leverage": ("POST", set_leverage),
    "/v5/position/switch-mode": ("POST", switch_mode),
}


def verify_signature(state: EmulatorState, request: web.Request, payload: str) -> str:
    """Check Bybit's HMAC headers; returns the API key or raises ``BybitError``."""
    headers = request.headers
    api_key = headers.get("X-BAPI-API-KEY", "")
    secret = state.secrets.get(api_key)
    if not api_key or secret is None:
        raise BybitError(10003, "API key is invalid.")
    timestamp = headers.get("X-BAPI-TIMESTAMP", "")
    recv_window = headers.get("X-BAPI-RECV-WINDOW", "5000")
    try:
        ts = int(timestamp)
        window = int(recv_window)
    except ValueError:
        raise BybitError(10001, "params error: X-BAPI-TIMESTAMP or recv_window invalid") from None
    server_ts = now_ms()
    if state.config.check_recv_window and not (server_ts - window <= ts < server_ts + 1000):
        raise BybitError(
            10002,
            "invalid request, please check your server timestamp or recv_window param. "
            f"req_timestamp[{ts}],server_timestamp[{server_ts}],recv_window[{window}]",
        )
    expected = sign_rest(secret, api_key, timestamp, recv_window, payload)
    if headers.get("X-BAPI-SIGN", "").lower() != expected:
        origin = rest_origin_string(api_key, timestamp, recv_window, payload)
        raise BybitError(10004, f"error sign! origin_string[{origin}]")
    return api_key


def build_http_handler(state: EmulatorState) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The catch-all REST handler: routing, signature checks, faults, envelope and logging."""

    async def handle(request: web.Request) -> web.Response:
        path = request.path
        raw_query = request.rel_url.raw_query_string
        body = await request.text() if request.can_read_body else ""
        query = dict(parse_qsl(raw_query, keep_blank_values=True))
        api_key = request.headers.get("X-BAPI-API-KEY")
        status = 200
        route = PUBLIC.get(path) or PRIVATE.get(path)
        try:
            if route is None or route[0] != request.method:
                state.unknown.append(f"{request.method} {path}")
                status = 404
                raise BybitError(404, f"Not Found: {request.method} {path} is not emulated")
            if path in PRIVATE:
                verify_signature(state, request, body if request.method == "POST" else raw_query)
            fault = state.faults.take_path_fault(path)
            if fault is not None:
                status = fault.http_status
                raise BybitError(fault.ret_code, fault.ret_msg)
            params = query
            if request.method == "POST":
                try:
                    parsed = json.loads(body or "{}")
                except json.JSONDecodeError:
                    raise BybitError(10001, "params error: request body is not JSON") from None
                if not isinstance(parsed, dict):
                    raise BybitError(10001, "params error: request body is not an object")
                params = parsed
            result = await route[1](state, params)
            payload = envelope(0, "OK", result)
        except BybitError as e:
            payload = envelope(e.code, e.msg, {})
        state.record(
            RequestRecord(
                method=request.method,
                path=path,
                query=query,
                body=body,
                api_key=api_key,
                ret_code=payload["retCode"],
                http_status=status,
                ts_ms=now_ms(),
            )
        )
        return web.json_response(payload, status=status)

    return handle
