"""Account, order, position and execution books with a simple matching engine.

One-way (netting) positions on linear perpetuals settled in USDT, a unified (cross margin)
wallet, market orders filled at the last price (plus optional slippage) as taker, limit orders
resting until the last price crosses them (filled at the limit price as maker). By default
orders fill in full, in one execution; ``Misbehaviour`` makes the book act more like Bybit's:
taker fills split into several executions at different prices, IOC remainders cancelled,
orders rejected after acceptance, funding settled on open positions.
"""

from __future__ import annotations

import itertools
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from decimal import Decimal
from decimal import InvalidOperation

from tests.bybit_emulator.instruments import InstrumentSpec
from tests.bybit_emulator.instruments import fmt_decimal

Event = tuple[str, dict]  # (private topic, one ``data`` item)

OPEN_STATUSES = ("New", "PartiallyFilled", "Untriggered")
ZERO = Decimal(0)
#: Closed statuses an IOC (market) order may end in after a partial fill: Bybit documents
#: ``Cancelled`` (with an executed qty) for derivatives and ``PartiallyFilledCanceled`` for spot.
IOC_REMAINDER_STATUSES = ("Cancelled", "PartiallyFilledCanceled")


class BybitError(Exception):
    """A Bybit business error: ``retCode`` / ``retMsg``."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg


def money(value: Decimal) -> str:
    """Format an account amount as Bybit does (up to 8 decimals, no exponent)."""
    return fmt_decimal(value.quantize(Decimal("0.00000001")))


def _dec(value: object, name: str) -> Decimal:
    try:
        out = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise BybitError(10001, f"params error: {name} invalid") from None
    if not out.is_finite():
        raise BybitError(10001, f"params error: {name} invalid")
    return out


@dataclass
class Misbehaviour:
    """How the matching engine departs from "every order fills in full, at one price".

    ``fill_splits``: taker fills come in up to this many executions, each one tick worse.
    ``ioc_cancel_rate``: chance that an IOC/market order split in several executions fills
    only some of them, the remainder cancelled with ``ioc_remainder_status``.
    ``post_accept_reject_rate``: chance that an accepted order is then rejected (``Rejected``
    push, no fill). Draws come from ``rng`` (seeded by the emulator config).
    """

    fill_splits: int = 1
    ioc_cancel_rate: float = 0.0
    ioc_remainder_status: str = "Cancelled"
    post_accept_reject_rate: float = 0.0
    rng: random.Random = field(default_factory=lambda: random.Random(0))

    def __post_init__(self) -> None:
        if self.fill_splits < 1:
            raise ValueError(f"fill_splits must be >= 1, got {self.fill_splits}")
        if self.ioc_remainder_status not in IOC_REMAINDER_STATUSES:
            raise ValueError(f"ioc_remainder_status must be one of {IOC_REMAINDER_STATUSES}")


@dataclass
class Order:
    order_id: str
    link_id: str
    symbol: str
    side: str
    order_type: str
    qty: Decimal
    price: Decimal
    tif: str
    reduce_only: bool
    close_on_trigger: bool
    created_ms: int
    updated_ms: int
    last_price_on_created: Decimal
    status: str = "New"
    cum_qty: Decimal = ZERO
    cum_value: Decimal = ZERO
    cum_fee: Decimal = ZERO
    reject_reason: str = "EC_NoError"
    cancel_type: str = "UNKNOWN"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def leaves_qty(self) -> Decimal:
        return self.qty - self.cum_qty if self.is_open else ZERO

    @property
    def avg_price(self) -> Decimal:
        return self.cum_value / self.cum_qty if self.cum_qty else ZERO


@dataclass
class Execution:
    exec_id: str
    order: Order
    price: Decimal
    qty: Decimal
    fee: Decimal
    fee_rate: Decimal
    is_maker: bool
    exec_ms: int
    closed_size: Decimal
    exec_pnl: Decimal
    mark_price: Decimal
    leaves_qty: Decimal
    seq: int
    exec_type: str = "Trade"


@dataclass
class Position:
    symbol: str
    leverage: Decimal
    size: Decimal = ZERO  # signed: > 0 long, < 0 short
    entry_price: Decimal = ZERO
    cum_realised: Decimal = ZERO
    cur_realised: Decimal = ZERO
    created_ms: int = 0
    updated_ms: int = 0
    seq: int = 0

    @property
    def side(self) -> str:
        return "Buy" if self.size > 0 else "Sell" if self.size < 0 else ""


@dataclass
class Exchange:
    """The emulated unified trading account and matching engine."""

    instruments: dict[str, InstrumentSpec]
    last_price: Callable[[str], Decimal]
    starting_balance: Decimal = Decimal("10000")
    coin: str = "USDT"
    default_leverage: Decimal = Decimal("10")
    slippage_ticks: int = 0
    market_order_new_ack: bool = True
    now_ms: Callable[[], int] = field(default=lambda: int(time.time() * 1000))
    misbehaviour: Misbehaviour = field(default_factory=Misbehaviour)

    def __post_init__(self) -> None:
        self.wallet_balance = self.starting_balance
        self.cum_realised = ZERO
        self.orders: dict[str, Order] = {}
        self.orders_by_link: dict[str, Order] = {}
        self.executions: list[Execution] = []
        self.positions: dict[str, Position] = {
            s: Position(s, self.default_leverage) for s in self.instruments
        }
        self._seq = itertools.count(1_000_000)
        self.pending_rejects: list[str] = []  # reject reasons for the next accepted orders

    # -- helpers -----------------------------------------------------------------------------

    def spec(self, symbol: str) -> InstrumentSpec:
        spec = self.instruments.get(symbol)
        if spec is None:
            raise BybitError(10001, "params error: symbol invalid")
        return spec

    def unrealised(self, pos: Position) -> Decimal:
        if pos.size == 0:
            return ZERO
        return pos.size * (self.last_price(pos.symbol) - pos.entry_price)

    def position_im(self, pos: Position) -> Decimal:
        return abs(pos.size) * pos.entry_price / pos.leverage

    def position_mm(self, pos: Position) -> Decimal:
        rate = self.instruments[pos.symbol].maintenance_margin_rate
        return abs(pos.size) * pos.entry_price * rate

    def order_im(self, order: Order) -> Decimal:
        if not order.is_open or order.reduce_only:
            return ZERO
        lev = self.positions[order.symbol].leverage
        return order.leaves_qty * order.price / lev

    def totals(self) -> dict[str, Decimal]:
        upl = sum((self.unrealised(p) for p in self.positions.values()), ZERO)
        pos_im = sum((self.position_im(p) for p in self.positions.values()), ZERO)
        pos_mm = sum((self.position_mm(p) for p in self.positions.values()), ZERO)
        ord_im = sum((self.order_im(o) for o in self.orders.values()), ZERO)
        equity = self.wallet_balance + upl
        return {
            "upl": upl,
            "position_im": pos_im,
            "position_mm": pos_mm,
            "order_im": ord_im,
            "equity": equity,
            "available": equity - pos_im - ord_im,
        }

    def find_order(self, order_id: str | None, link_id: str | None) -> Order | None:
        if order_id:
            return self.orders.get(order_id)
        if link_id:
            return self.orders_by_link.get(link_id)
        return None

    # -- commands ----------------------------------------------------------------------------

    def place(self, args: dict) -> tuple[Order, list[Event]]:
        """``order/create``: validate, accept and (maybe) match. Raises ``BybitError``."""
        if args.get("category") != "linear":
            raise BybitError(10001, "params error: category only support linear")
        spec = self.spec(str(args.get("symbol", "")))
        side = args.get("side")
        if side not in ("Buy", "Sell"):
            raise BybitError(10001, "params error: side invalid")
        order_type = args.get("orderType")
        if order_type not in ("Market", "Limit"):
            raise BybitError(10001, "params error: orderType invalid")
        qty = _dec(args.get("qty"), "qty")
        if qty <= 0 or not spec.is_qty_on_step(qty):
            raise BybitError(10001, "Qty invalid")
        if qty < spec.min_qty:
            raise BybitError(10001, "The number of contracts is below the minimum allowed")
        max_qty = spec.max_mkt_qty if order_type == "Market" else spec.max_qty
        if qty > max_qty:
            raise BybitError(10001, "The number of contracts exceeds maximum limit allowed")
        if int(args.get("positionIdx", 0) or 0) != 0:
            raise BybitError(10001, "position idx not match position mode")
        link_id = str(args.get("orderLinkId") or "")
        if link_id and link_id in self.orders_by_link:
            raise BybitError(110072, "OrderLinkedID is duplicate")
        last = self.last_price(spec.symbol)
        if order_type == "Limit":
            price = _dec(args.get("price"), "price")
            if price <= 0 or not spec.is_price_on_tick(price):
                raise BybitError(10001, "params error: price invalid")
            tif = str(args.get("timeInForce") or "GTC")
            if tif not in ("GTC", "IOC", "FOK", "PostOnly"):
                raise BybitError(10001, "params error: timeInForce invalid")
        else:
            price = ZERO
            tif = "IOC"
        reduce_only = _truthy(args.get("reduceOnly"))
        pos = self.positions[spec.symbol]
        if reduce_only:
            closing_side = "Sell" if pos.size > 0 else "Buy" if pos.size < 0 else None
            if closing_side != side:
                raise BybitError(
                    110017, "current position is zero, cannot fix reduce-only order qty"
                )
            qty = min(qty, abs(pos.size))
        ref_price = price if order_type == "Limit" else last
        if qty * ref_price < spec.min_notional and not reduce_only:
            raise BybitError(110094, "Order does not meet minimum order value 5USDT")
        opening = self._opening_qty(pos, side, qty)
        if opening > 0:
            need = opening * ref_price / pos.leverage + opening * ref_price * spec.taker_fee
            if need > self.totals()["available"]:
                raise BybitError(110007, "ab not enough for new order")
        now = self.now_ms()
        order = Order(
            order_id=str(uuid.uuid4()),
            link_id=link_id,
            symbol=spec.symbol,
            side=side,
            order_type=order_type,
            qty=qty,
            price=price,
            tif=tif,
            reduce_only=reduce_only,
            close_on_trigger=_truthy(args.get("closeOnTrigger")),
            created_ms=now,
            updated_ms=now,
            last_price_on_created=last,
        )
        self.orders[order.order_id] = order
        if link_id:
            self.orders_by_link[link_id] = order
        reason = self._post_accept_reject_reason()
        if reason is not None:
            order.status = "Rejected"
            order.reject_reason = reason
            return order, [("order", self.order_item(order, ws=True))]
        return order, self._on_new(order, spec)

    def _post_accept_reject_reason(self) -> str | None:
        """Why the order just accepted is rejected after all (None: it is not)."""
        if self.pending_rejects:
            return self.pending_rejects.pop(0)
        rate = self.misbehaviour.post_accept_reject_rate
        if rate > 0 and self.misbehaviour.rng.random() < rate:
            return "EC_ReachRiskPriceLimit"
        return None

    def _on_new(self, order: Order, spec: InstrumentSpec) -> list[Event]:
        last = self.last_price(spec.symbol)
        events: list[Event] = []
        if order.order_type == "Market":
            if self.market_order_new_ack:
                events.append(("order", self.order_item(order, ws=True)))
            ticks = spec.tick_size * self.slippage_ticks
            px = last + ticks if order.side == "Buy" else max(last - ticks, spec.tick_size)
            events += self._take(order, px, spec)
            return events
        crosses = last <= order.price if order.side == "Buy" else last >= order.price
        if crosses and order.tif == "PostOnly":
            order.status = "Cancelled"
            order.reject_reason = "EC_PostOnlyWillTakeLiquidity"
            order.cancel_type = "CancelByUser"
            return [("order", self.order_item(order, ws=True))]
        if crosses:
            events.append(("order", self.order_item(order, ws=True)))
            events += self._take(order, last, spec)
            return events
        if order.tif in ("IOC", "FOK"):
            order.status = "Cancelled"
            order.reject_reason = "EC_NoImmediateQtyToFill"
            order.cancel_type = "CancelByUser"
            return [("order", self.order_item(order, ws=True))]
        events.append(("order", self.order_item(order, ws=True)))
        events.append(("wallet", self.wallet_item(ws=True)))
        return events

    def cancel(self, args: dict) -> tuple[Order, list[Event]]:
        """``order/cancel``."""
        self.spec(str(args.get("symbol", "")))
        order = self.find_order(args.get("orderId"), args.get("orderLinkId"))
        if order is None or not order.is_open:
            raise BybitError(110001, "order not exists or too late to cancel")
        order.status = "Cancelled"
        order.cancel_type = "CancelByUser"
        order.updated_ms = self.now_ms()
        return order, [("order", self.order_item(order, ws=True)), ("wallet", self.wallet_item())]

    def cancel_all(self, args: dict) -> tuple[list[Order], list[Event]]:
        """``order/cancel-all`` (by symbol, baseCoin or settleCoin)."""
        symbol = args.get("symbol")
        base = args.get("baseCoin")
        settle = args.get("settleCoin")
        if not (symbol or base or settle):
            raise BybitError(10001, "Missing some parameters that must be filled in")
        cancelled = []
        events: list[Event] = []
        for order in list(self.orders.values()):
            spec = self.instruments[order.symbol]
            if not order.is_open:
                continue
            if symbol and order.symbol != symbol:
                continue
            if base and spec.base_coin != base:
                continue
            if settle and spec.settle_coin != settle:
                continue
            order.status = "Cancelled"
            order.cancel_type = "CancelByUser"
            order.updated_ms = self.now_ms()
            cancelled.append(order)
            events.append(("order", self.order_item(order, ws=True)))
        if cancelled:
            events.append(("wallet", self.wallet_item()))
        return cancelled, events

    def amend(self, args: dict) -> tuple[Order, list[Event]]:
        """``order/amend`` (price and/or quantity of a resting limit order)."""
        spec = self.spec(str(args.get("symbol", "")))
        order = self.find_order(args.get("orderId"), args.get("orderLinkId"))
        if order is None or not order.is_open:
            raise BybitError(110001, "order not exists or too late to replace")
        new_qty = args.get("qty")
        new_price = args.get("price")
        if new_qty in (None, "") and new_price in (None, ""):
            raise BybitError(10001, "params error: no field to amend")
        if new_qty not in (None, ""):
            qty = _dec(new_qty, "qty")
            if qty <= order.cum_qty or not spec.is_qty_on_step(qty):
                raise BybitError(10001, "Qty invalid")
            order.qty = qty
        if new_price not in (None, ""):
            price = _dec(new_price, "price")
            if price <= 0 or not spec.is_price_on_tick(price):
                raise BybitError(10001, "params error: price invalid")
            order.price = price
        order.updated_ms = self.now_ms()
        events: list[Event] = [("order", self.order_item(order, ws=True))]
        events += self.match(order.symbol)
        return order, events

    def set_leverage(self, symbol: str, buy: str, sell: str) -> None:
        spec = self.spec(symbol)
        buy_lev = _dec(buy, "buyLeverage")
        if buy_lev != _dec(sell, "sellLeverage"):
            raise BybitError(10001, "buy leverage must equal sell leverage in one-way mode")
        if not Decimal(1) <= buy_lev <= Decimal(spec.max_leverage):
            raise BybitError(10001, "leverage invalid")
        pos = self.positions[symbol]
        if pos.leverage == buy_lev:
            raise BybitError(110043, "Set leverage not modified")
        pos.leverage = buy_lev

    # -- matching ----------------------------------------------------------------------------

    def match(self, symbol: str) -> list[Event]:
        """Fill resting limit orders the last price has crossed (at their limit, as maker)."""
        last = self.last_price(symbol)
        events: list[Event] = []
        for order in sorted(self.orders.values(), key=lambda o: o.created_ms):
            if order.symbol != symbol or not order.is_open or order.order_type != "Limit":
                continue
            crossed = last <= order.price if order.side == "Buy" else last >= order.price
            if not crossed:
                continue
            qty = order.leaves_qty
            if order.reduce_only:
                pos = self.positions[symbol]
                closing = "Sell" if pos.size > 0 else "Buy" if pos.size < 0 else None
                qty = min(qty, abs(pos.size)) if closing == order.side else ZERO
                if qty <= 0:
                    order.status = "Cancelled"
                    order.cancel_type = "CancelByReduceOnly"
                    order.updated_ms = self.now_ms()
                    events.append(("order", self.order_item(order, ws=True)))
                    continue
            events += self._fill(order, qty, order.price, is_maker=True)
        return events

    def _take(self, order: Order, price: Decimal, spec: InstrumentSpec) -> list[Event]:
        """Fill a taker order: in one execution, or (misbehaviour) in several executions at
        successively worse prices, an IOC remainder possibly cancelled."""
        mis = self.misbehaviour
        steps = int(order.qty / spec.qty_step)
        n = max(1, min(mis.fill_splits, steps))
        slices = split_qty(order.qty, n, spec.qty_step, mis.rng)
        cancel_rest = (
            n > 1
            and order.tif == "IOC"
            and mis.ioc_cancel_rate > 0
            and mis.rng.random() < mis.ioc_cancel_rate
        )
        if cancel_rest:
            slices = slices[: mis.rng.randint(1, n - 1)]
        events: list[Event] = []
        for i, qty in enumerate(slices):
            worse = spec.tick_size * i
            px = price + worse if order.side == "Buy" else max(price - worse, spec.tick_size)
            events += self._fill(order, qty, px, is_maker=False)
        if cancel_rest:
            order.status = mis.ioc_remainder_status
            order.cancel_type = "CancelByUser"
            order.reject_reason = "EC_NoImmediateQtyToFill"
            order.updated_ms = self.now_ms()
            events.append(("order", self.order_item(order, ws=True)))
        return events

    @staticmethod
    def _opening_qty(pos: Position, side: str, qty: Decimal) -> Decimal:
        signed = qty if side == "Buy" else -qty
        if pos.size == 0 or (pos.size > 0) == (signed > 0):
            return qty
        return max(ZERO, qty - abs(pos.size))

    def _fill(self, order: Order, qty: Decimal, price: Decimal, *, is_maker: bool) -> list[Event]:
        spec = self.instruments[order.symbol]
        pos = self.positions[order.symbol]
        now = self.now_ms()
        rate = spec.maker_fee if is_maker else spec.taker_fee
        value = qty * price
        fee = (value * rate).quantize(Decimal("0.00000001"))
        signed = qty if order.side == "Buy" else -qty
        closed = ZERO
        pnl = ZERO
        if pos.size != 0 and (pos.size > 0) != (signed > 0):
            closed = min(qty, abs(pos.size))
            pnl = closed * (price - pos.entry_price) * (1 if pos.size > 0 else -1)
        new_size = pos.size + signed
        if pos.size == 0 or (pos.size > 0) == (signed > 0):
            pos.entry_price = (abs(pos.size) * pos.entry_price + qty * price) / abs(new_size)
            if pos.size == 0:
                pos.created_ms = now
                pos.cur_realised = ZERO
        elif new_size == 0:
            pos.entry_price = ZERO
        elif (new_size > 0) != (pos.size > 0):  # flipped: the remainder opens at this price
            pos.entry_price = price
            pos.created_ms = now
        pos.size = new_size
        pos.cur_realised += pnl - fee
        pos.cum_realised += pnl - fee
        pos.updated_ms = now
        pos.seq = next(self._seq)
        self.wallet_balance += pnl - fee
        self.cum_realised += pnl - fee
        order.cum_qty += qty
        order.cum_value += value
        order.cum_fee += fee
        order.status = "Filled" if order.cum_qty >= order.qty else "PartiallyFilled"
        order.updated_ms = now
        execution = Execution(
            exec_id=str(uuid.uuid4()),
            order=order,
            price=price,
            qty=qty,
            fee=fee,
            fee_rate=rate,
            is_maker=is_maker,
            exec_ms=now,
            closed_size=closed,
            exec_pnl=pnl,
            mark_price=self.last_price(order.symbol),
            leaves_qty=order.leaves_qty,
            seq=next(self._seq),
        )
        self.executions.append(execution)
        return [
            ("execution", self.execution_item(execution, ws=True)),
            ("order", self.order_item(order, ws=True)),
            ("position", self.position_item(order.symbol, ws=True)),
            ("wallet", self.wallet_item(ws=True)),
        ]

    def settle_funding(self, symbol: str, rate: Decimal, mark: Decimal, ts_ms: int) -> list[Event]:
        """Funding at a funding boundary: the position pays ``size x mark x rate`` (a long pays
        a positive rate, a short receives it). Wallet balance and the position's realised PnL
        change by it, and an ``execType: Funding`` execution records it, as on Bybit."""
        pos = self.positions[symbol]
        if pos.size == 0:
            return []
        fee = (pos.size * mark * rate).quantize(Decimal("0.00000001"))
        pos.cur_realised -= fee
        pos.cum_realised -= fee
        pos.updated_ms = ts_ms
        pos.seq = next(self._seq)
        self.wallet_balance -= fee
        self.cum_realised -= fee
        funding_order = Order(
            order_id=f"{ts_ms // 1000}-{symbol}-funding",
            link_id="",
            symbol=symbol,
            side=pos.side,
            order_type="UNKNOWN",
            qty=ZERO,
            price=ZERO,
            tif="UNKNOWN",
            reduce_only=False,
            close_on_trigger=False,
            created_ms=ts_ms,
            updated_ms=ts_ms,
            last_price_on_created=mark,
            status="Filled",
        )
        execution = Execution(
            exec_id=str(uuid.uuid4()),
            order=funding_order,
            price=mark,
            qty=abs(pos.size),
            fee=fee,
            fee_rate=rate,
            is_maker=False,
            exec_ms=ts_ms,
            closed_size=ZERO,
            exec_pnl=ZERO,
            mark_price=mark,
            leaves_qty=ZERO,
            seq=next(self._seq),
            exec_type="Funding",
        )
        self.executions.append(execution)
        return [
            ("execution", self.execution_item(execution, ws=True)),
            ("position", self.position_item(symbol, ws=True)),
            ("wallet", self.wallet_item(ws=True)),
        ]

    # -- views (Bybit JSON shapes) -------------------------------------------------------------

    def order_item(self, order: Order, *, ws: bool = False) -> dict:
        spec = self.instruments[order.symbol]
        item = {
            "orderId": order.order_id,
            "orderLinkId": order.link_id,
            "blockTradeId": "",
            "symbol": order.symbol,
            "price": spec.fmt_price(order.price) if order.price else "0",
            "qty": spec.fmt_qty(order.qty),
            "side": order.side,
            "isLeverage": "",
            "positionIdx": 0,
            "orderStatus": order.status,
            "cancelType": order.cancel_type,
            "rejectReason": order.reject_reason,
            "avgPrice": spec.fmt_price(order.avg_price) if order.cum_qty else "0",
            "leavesQty": spec.fmt_qty(order.leaves_qty),
            "leavesValue": money(order.leaves_qty * order.price),
            "cumExecQty": spec.fmt_qty(order.cum_qty),
            "cumExecValue": money(order.cum_value),
            "cumExecFee": money(order.cum_fee),
            "timeInForce": order.tif,
            "orderType": order.order_type,
            "stopOrderType": "",
            "orderIv": "",
            "triggerPrice": "0",
            "takeProfit": "0",
            "stopLoss": "0",
            "tpTriggerBy": "",
            "slTriggerBy": "",
            "triggerDirection": 0,
            "triggerBy": "",
            "lastPriceOnCreated": spec.fmt_price(order.last_price_on_created),
            "reduceOnly": order.reduce_only,
            "closeOnTrigger": order.close_on_trigger,
            "smpType": "None",
            "smpGroup": 0,
            "smpOrderId": "",
            "tpslMode": "",
            "tpLimitPrice": "0",
            "slLimitPrice": "0",
            "placeType": "",
            "createType": "CreateByUser",
            "createdTime": str(order.created_ms),
            "updatedTime": str(order.updated_ms),
        }
        if ws:
            item["category"] = "linear"
            item["feeCurrency"] = ""
        return item

    def execution_item(self, exe: Execution, *, ws: bool = False) -> dict:
        order = exe.order
        spec = self.instruments[order.symbol]
        item = {
            "symbol": order.symbol,
            "orderId": order.order_id,
            "orderLinkId": order.link_id,
            "side": order.side,
            "orderPrice": spec.fmt_price(order.price) if order.price else "0",
            "orderQty": spec.fmt_qty(order.qty),
            "leavesQty": spec.fmt_qty(exe.leaves_qty),
            "createType": "CreateByUser",
            "orderType": order.order_type,
            "stopOrderType": "",
            "execFee": money(exe.fee),
            "execPnl": money(exe.exec_pnl),
            "execId": exe.exec_id,
            "execPrice": spec.fmt_price(exe.price),
            "execQty": spec.fmt_qty(exe.qty),
            "execType": exe.exec_type,
            "execValue": money(exe.qty * exe.price),
            "execTime": str(exe.exec_ms),
            "feeCurrency": self.coin,
            "isMaker": exe.is_maker,
            "feeRate": fmt_decimal(exe.fee_rate),
            "tradeIv": "",
            "markIv": "",
            "markPrice": spec.fmt_price(exe.mark_price),
            "indexPrice": "",
            "underlyingPrice": "",
            "blockTradeId": "",
            "closedSize": spec.fmt_qty(exe.closed_size),
            "seq": exe.seq,
        }
        if ws:
            item["category"] = "linear"
            item["isLeverage"] = "0"
        return item

    def position_item(self, symbol: str, *, ws: bool = False) -> dict:
        spec = self.instruments[symbol]
        pos = self.positions[symbol]
        mark = self.last_price(symbol)
        value = abs(pos.size) * pos.entry_price
        im = money(self.position_im(pos))
        mm = money(self.position_mm(pos))
        item = {
            "positionIdx": 0,
            "riskId": 1,
            "riskLimitValue": "2000000",
            "symbol": symbol,
            "side": pos.side,
            "size": spec.fmt_qty(abs(pos.size)),
            "avgPrice": money(pos.entry_price) if pos.size else "0",
            "positionValue": money(value),
            "tradeMode": 0,
            "positionStatus": "Normal",
            "autoAddMargin": 0,
            "adlRankIndicator": 1 if pos.size else 0,
            "leverage": fmt_decimal(pos.leverage),
            "positionBalance": im,
            "markPrice": spec.fmt_price(mark),
            "liqPrice": "",
            "bustPrice": "",
            "positionMM": mm,
            "positionIM": im,
            "positionIMByMp": im,
            "positionMMByMp": mm,
            "tpslMode": "Full",
            "takeProfit": "0",
            "stopLoss": "0",
            "trailingStop": "0",
            "sessionAvgPrice": "",
            "unrealisedPnl": money(self.unrealised(pos)),
            "curRealisedPnl": money(pos.cur_realised),
            "cumRealisedPnl": money(pos.cum_realised),
            "isReduceOnly": False,
            "mmrSysUpdatedTime": "",
            "leverageSysUpdatedTime": "",
            "createdTime": str(pos.created_ms or self.now_ms()),
            "updatedTime": str(pos.updated_ms or self.now_ms()),
            "seq": pos.seq,
        }
        if ws:
            item["category"] = "linear"
            item["entryPrice"] = item["avgPrice"]
        return item

    def wallet_item(self, *, ws: bool = False) -> dict:
        t = self.totals()
        coin = {
            "coin": self.coin,
            "equity": money(t["equity"]),
            "usdValue": money(t["equity"]),
            "walletBalance": money(self.wallet_balance),
            "locked": "0",
            "spotHedgingQty": "0",
            "borrowAmount": "0.000000000000000000",
            "availableToBorrow": "",
            "availableToWithdraw": "",
            "accruedInterest": "0",
            "totalOrderIM": money(t["order_im"]),
            "totalPositionIM": money(t["position_im"]),
            "totalPositionMM": money(t["position_mm"]),
            "unrealisedPnl": money(t["upl"]),
            "cumRealisedPnl": money(self.cum_realised),
            "bonus": "0",
            "collateralSwitch": True,
            "marginCollateral": True,
            "spotBorrow": "0",
        }
        equity = t["equity"]
        return {
            "accountType": "UNIFIED",
            "accountIMRate": money(t["position_im"] / equity) if equity > 0 else "0",
            "accountMMRate": money(t["position_mm"] / equity) if equity > 0 else "0",
            "accountLTV": "0",
            "totalEquity": money(equity),
            "totalWalletBalance": money(self.wallet_balance),
            "totalMarginBalance": money(equity),
            "totalAvailableBalance": money(t["available"]),
            "totalPerpUPL": money(t["upl"]),
            "totalInitialMargin": money(t["position_im"] + t["order_im"]),
            "totalMaintenanceMargin": money(t["position_mm"]),
            "coin": [coin],
        }


def split_qty(qty: Decimal, n: int, step: Decimal, rng: random.Random) -> list[Decimal]:
    """``qty`` cut into ``n`` positive multiples of ``step`` (random sizes, summing to it)."""
    steps = int(qty / step)
    if n <= 1 or steps < n:
        return [qty]
    cuts = sorted(rng.sample(range(1, steps), n - 1))
    bounds = [0, *cuts, steps]
    return [(step * (b - a)).quantize(step) for a, b in itertools.pairwise(bounds)]


def _truthy(value: object) -> bool:
    if isinstance(value, str):
        return value.lower() in ("true", "1")
    return bool(value)
