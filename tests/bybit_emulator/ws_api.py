"""Bybit v5 websocket endpoints: public (``/v5/public/{category}``), private (``/v5/private``)
and order entry (``/v5/trade``), all on the HTTP port."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable
from collections.abc import Callable

from aiohttp import WSMsgType
from aiohttp import web

from tests.bybit_emulator.books import BybitError
from tests.bybit_emulator.hub import PRIVATE_TOPICS
from tests.bybit_emulator.hub import WsConn
from tests.bybit_emulator.market import VALID_INTERVALS
from tests.bybit_emulator.signing import sign_ws_auth
from tests.bybit_emulator.state import EmulatorState
from tests.bybit_emulator.state import now_ms

ORDERBOOK_DEPTHS = ("1", "50", "200", "500", "1000")
TRADE_OPS = (
    "order.create",
    "order.amend",
    "order.cancel",
    "order.create-batch",
    "order.amend-batch",
    "order.cancel-batch",
)


def _public_topic_error(state: EmulatorState, category: str, topic: str) -> str | None:
    parts = topic.split(".")
    symbols = state.markets if category == "linear" else {}
    if parts[0] == "kline" and len(parts) == 3 and parts[1] in VALID_INTERVALS:
        symbol = parts[2]
    elif parts[0] in ("tickers", "publicTrade") and len(parts) == 2:
        symbol = parts[1]
    elif parts[0] == "orderbook" and len(parts) == 3 and parts[1] in ORDERBOOK_DEPTHS:
        symbol = parts[2]
    else:
        return f"error:handler not found,topic:{topic}"
    if symbol not in symbols:
        return f"error:symbol not exist,topic:{topic}"
    return None


def _private_topic_ok(topic: str) -> bool:
    return topic in PRIVATE_TOPICS or any(
        topic == f"{t}.{c}" for t in PRIVATE_TOPICS for c in ("linear", "spot", "option", "inverse")
    )


def _auth_error(state: EmulatorState, args: list) -> tuple[int, str] | None:
    """Validate ``["key", expires_ms, "signature"]``; returns (code, message) on failure."""
    if not isinstance(args, list) or len(args) != 3:
        return 10001, "Params Error"
    api_key, expires, signature = args
    secret = state.secrets.get(str(api_key))
    if secret is None:
        return 10003, "Invalid apikey"
    try:
        expires_ms = int(expires)
    except (TypeError, ValueError):
        return 10001, "Params Error"
    if expires_ms < now_ms():
        return 10002, "Request expired"
    if str(signature) != sign_ws_auth(secret, expires_ms):
        return 10004, "Invalid sign"
    return None


async def _on_public(state: EmulatorState, conn: WsConn, msg: dict) -> None:
    op = msg.get("op")
    req_id = msg.get("req_id", "")
    if op == "ping":
        await conn.send(
            {
                "success": True,
                "ret_msg": "pong",
                "conn_id": conn.conn_id,
                "req_id": req_id,
                "op": "ping",
            }
        )
        return
    if op not in ("subscribe", "unsubscribe"):
        await conn.send(
            {
                "success": False,
                "ret_msg": f"error:unsupported op {op}",
                "conn_id": conn.conn_id,
                "req_id": req_id,
                "op": op,
            }
        )
        return
    topics = [str(t) for t in msg.get("args") or []]
    error = None
    for topic in topics:
        if op == "subscribe":
            error = error or _public_topic_error(state, conn.category, topic)
            if error is None and topic in conn.topics:
                error = f"error:already subscribed,topic:{topic}"
    if op == "subscribe" and error is None:
        conn.topics.update(topics)
    if op == "unsubscribe":
        conn.topics.difference_update(topics)
    await conn.send(
        {
            "success": error is None,
            "ret_msg": error or op,
            "conn_id": conn.conn_id,
            "req_id": req_id,
            "op": op,
        }
    )
    if op == "subscribe" and error is None:
        await _send_initial(state, conn, topics)


async def _send_initial(state: EmulatorState, conn: WsConn, topics: list[str]) -> None:
    """Bybit sends a snapshot right after subscribing to tickers/orderbook and the current
    (unconfirmed) kline shortly after subscribing to a kline topic."""
    for topic in topics:
        parts = topic.split(".")
        if parts[0] == "tickers":
            await conn.send(state.ticker_message(parts[1], delta=False))
        elif parts[0] == "orderbook":
            await conn.send(state.orderbook_snapshot(parts[2], int(parts[1])))
        elif parts[0] == "kline":
            market = state.markets[parts[2]]
            if market.supports(parts[1]):
                bar = market.current_group(parts[1])
                await state.publish_kline(parts[2], parts[1], bar, confirm=False)


async def _on_private(state: EmulatorState, conn: WsConn, msg: dict) -> None:
    op = msg.get("op")
    req_id = msg.get("req_id", "")
    if op == "ping":
        await conn.send(
            {"req_id": req_id, "op": "pong", "args": [str(now_ms())], "conn_id": conn.conn_id}
        )
        return
    if op == "auth":
        failure = _auth_error(state, msg.get("args"))
        if failure is None and conn.authed:
            failure = (20001, "Repeat auth")
        if failure is None:
            conn.authed = True
            conn.api_key = str(msg["args"][0])
        await conn.send(
            {
                "success": failure is None,
                "ret_msg": "" if failure is None else failure[1],
                "op": "auth",
                "conn_id": conn.conn_id,
                **({"req_id": req_id} if req_id else {}),
            }
        )
        return
    if op in ("subscribe", "unsubscribe"):
        topics = [str(t) for t in msg.get("args") or []]
        error = None
        if not conn.authed:
            error = "Request not authorized"
        elif op == "subscribe":
            bad = [t for t in topics if not _private_topic_ok(t)]
            if bad:
                error = f"error:handler not found,topic:{bad[0]}"
        if error is None:
            if op == "subscribe":
                conn.topics.update(topics)
            else:
                conn.topics.difference_update(topics)
        await conn.send(
            {
                "success": error is None,
                "ret_msg": error or "",
                "op": op,
                "conn_id": conn.conn_id,
                **({"req_id": req_id} if req_id else {}),
            }
        )
        return
    await conn.send(
        {
            "success": False,
            "ret_msg": f"error:unsupported op {op}",
            "op": op,
            "conn_id": conn.conn_id,
        }
    )


def _trade_reply(conn: WsConn, msg: dict, code: int, text: str, data: object = None) -> dict:
    reply = {
        "retCode": code,
        "retMsg": text,
        "op": msg.get("op"),
        "data": data if data is not None else {},
        "retExtInfo": {},
        "header": {
            "X-Bapi-Limit": "10",
            "X-Bapi-Limit-Status": "9",
            "X-Bapi-Limit-Reset-Timestamp": str(now_ms()),
            "Traceid": uuid.uuid4().hex,
            "Timenow": str(now_ms()),
        },
        "connId": conn.conn_id,
    }
    if msg.get("reqId") is not None:
        reply["reqId"] = msg["reqId"]
    return reply


async def _trade_one(state: EmulatorState, op: str, args: dict) -> dict:
    if op == "order.create":
        return await state.place_order(args)
    if op == "order.amend":
        return await state.amend_order(args)
    return await state.cancel_order(args)


async def _on_trade(state: EmulatorState, conn: WsConn, msg: dict) -> None:
    op = msg.get("op")
    if op == "ping":
        await conn.send(
            {
                "retCode": 0,
                "retMsg": "OK",
                "op": "pong",
                "data": [str(now_ms())],
                "connId": conn.conn_id,
            }
        )
        return
    if op == "auth":
        failure = _auth_error(state, msg.get("args"))
        if failure is None and conn.authed:
            failure = (20001, "Repeat auth")
        if failure is None:
            conn.authed = True
            conn.api_key = str(msg["args"][0])
        reply = {
            "retCode": 0 if failure is None else failure[0],
            "retMsg": "OK" if failure is None else failure[1],
            "op": "auth",
            "connId": conn.conn_id,
        }
        if msg.get("reqId") is not None:
            reply["reqId"] = msg["reqId"]
        await conn.send(reply)
        return
    if op not in TRADE_OPS:
        await conn.send(_trade_reply(conn, msg, 10001, f"Illegal op: {op}"))
        return
    if not conn.authed:
        await conn.send(_trade_reply(conn, msg, 10003, "Request not authorized"))
        return
    header = msg.get("header") or {}
    try:
        ts = int(header.get("X-BAPI-TIMESTAMP", ""))
        window = int(header.get("X-BAPI-RECV-WINDOW", 5000))
    except ValueError:
        await conn.send(_trade_reply(conn, msg, 10001, "params error: X-BAPI-TIMESTAMP invalid"))
        return
    server_ts = now_ms()
    if state.config.check_recv_window and not (server_ts - window <= ts < server_ts + 1000):
        await conn.send(_trade_reply(conn, msg, 10002, "invalid request, check timestamp"))
        return
    args = msg.get("args") or []
    if not op.endswith("-batch"):
        if len(args) != 1 or not isinstance(args[0], dict):
            await conn.send(_trade_reply(conn, msg, 10001, "params error: args"))
            return
        try:
            result = await _trade_one(state, op, args[0])
        except BybitError as e:
            await conn.send(_trade_reply(conn, msg, e.code, e.msg))
            return
        await conn.send(_trade_reply(conn, msg, 0, "OK", result))
        return
    # Batch: ``args = [{"category": ..., "request": [...]}]`` (or a list of per-order params).
    if len(args) == 1 and isinstance(args[0], dict) and "request" in args[0]:
        category = args[0].get("category", "linear")
        items = [{"category": category, **r} for r in args[0]["request"]]
    else:
        items = [a for a in args if isinstance(a, dict)]
    single = op.replace("-batch", "")
    results, codes = [], []
    for item in items:
        try:
            res = await _trade_one(state, single, item)
            codes.append({"code": 0, "msg": "OK"})
        except BybitError as e:
            res = {"orderId": "", "orderLinkId": item.get("orderLinkId", "")}
            codes.append({"code": e.code, "msg": e.msg})
        res.update({"category": item.get("category", "linear"), "symbol": item.get("symbol", "")})
        res["createAt"] = str(now_ms())
        results.append(res)
    reply = _trade_reply(conn, msg, 0, "OK", {"list": results})
    reply["retExtInfo"] = {"list": codes}
    await conn.send(reply)


Dispatcher = Callable[[EmulatorState, WsConn, dict], Awaitable[None]]
_DISPATCH: dict[str, Dispatcher] = {
    "public": _on_public,
    "private": _on_private,
    "trade": _on_trade,
}


def build_ws_handler(
    state: EmulatorState, kind: str
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Websocket endpoint for ``kind`` (public/private/trade)."""
    dispatch = _DISPATCH[kind]

    async def handle(request: web.Request) -> web.StreamResponse:
        if time.monotonic() < state.faults.refuse_ws_until:
            return web.Response(status=503, text="service unavailable (emulated outage)")
        category = request.match_info.get("category", "")
        if kind == "public" and category not in ("spot", "linear", "inverse", "option"):
            return web.Response(status=404, text="unknown public stream")
        ws = web.WebSocketResponse(autoping=True, heartbeat=None)
        await ws.prepare(request)
        conn = WsConn(kind=kind, category=category, ws=ws)
        state.hub.add(conn)
        try:
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    continue
                try:
                    msg = json.loads(frame.data)
                except json.JSONDecodeError:
                    await conn.send({"success": False, "ret_msg": "invalid json", "op": ""})
                    continue
                if not isinstance(msg, dict):
                    continue
                state.hub.received.append((kind, msg))
                await dispatch(state, conn, msg)
        finally:
            state.hub.discard(conn)
        return ws

    return handle
