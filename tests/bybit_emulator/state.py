"""Emulator state: configuration, markets, books, fault injection and request log.

Everything here runs on the emulator's event loop; ``EmulatorServer`` marshals calls from
other threads onto it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from dataclasses import dataclass
from dataclasses import field
from decimal import Decimal
from typing import Any

from tests.bybit_emulator.books import BybitError
from tests.bybit_emulator.books import Event
from tests.bybit_emulator.books import Exchange
from tests.bybit_emulator.books import Misbehaviour
from tests.bybit_emulator.books import money
from tests.bybit_emulator.hostile import HOSTILE_MUTATIONS
from tests.bybit_emulator.hostile import mutate
from tests.bybit_emulator.hub import Hub
from tests.bybit_emulator.instruments import DEFAULT_INSTRUMENTS
from tests.bybit_emulator.instruments import InstrumentSpec
from tests.bybit_emulator.instruments import fmt_decimal
from tests.bybit_emulator.market import INTERVAL_MS
from tests.bybit_emulator.market import Kline
from tests.bybit_emulator.market import SymbolMarket
from tests.bybit_emulator.market import group_end
from tests.bybit_emulator.market import group_start
from tests.bybit_emulator.signing import TEST_API_KEY
from tests.bybit_emulator.signing import TEST_API_SECRET


def now_ms() -> int:
    return int(time.time() * 1000)


#: Offsets added to ``seed`` for each misbehaviour's random generator.
_RNG_FILLS, _RNG_PUSHES, _RNG_BOOKS, _RNG_FUNDING = 101, 202, 303, 404
FUNDING_RATE_STEP = Decimal("0.000001")
FUNDING_RATE_CAP = Decimal("0.005")  # the instruments' upper/lowerFundingRate


@dataclass
class BookSide:
    """One side of an emulated order book: price -> size."""

    levels: dict[Decimal, Decimal] = field(default_factory=dict)


@dataclass
class FundingClock:
    """Funding state of one symbol: the rate now, the next boundary, settlements so far, and
    whether the rate or the boundary changed since the last ticker push."""

    rate: Decimal
    next_ms: int
    settled: list[tuple[int, Decimal]] = field(default_factory=list)  # (boundary ms, rate)
    changed: bool = True


@dataclass
class EmulatorConfig:
    """Emulator settings.

    ``anchor_ms`` is the open time of the still-forming bar (default: the current wall-clock
    bar); ``history_bars`` closed bars precede it. ``private_push_latency_ms`` delays private
    pushes (order/execution/position/wallet), in order, as the venue's matching and network do:
    with 0 a client may see the order update before it has processed its own submission.
    """

    instruments: tuple[InstrumentSpec, ...] = DEFAULT_INSTRUMENTS
    api_key: str = TEST_API_KEY
    api_secret: str = TEST_API_SECRET
    base_interval: str = "1"
    history_bars: int = 1500
    seed: int = 7
    volatility: float = 0.0008
    anchor_ms: int | None = None
    starting_balance: Decimal = Decimal("10000")
    leverage: Decimal = Decimal("10")
    slippage_ticks: int = 0
    updates_per_bar: int = 2
    market_order_new_ack: bool = True
    check_recv_window: bool = True
    private_push_latency_ms: float = 25.0
    fill_splits: int = 1
    ioc_cancel_rate: float = 0.0
    ioc_remainder_status: str = "Cancelled"
    post_accept_reject_rate: float = 0.0
    shuffle_window_ms: float = 0.0
    book_deltas: bool = False
    funding_settlement: bool = False
    hostile_frames: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = set(self.hostile_frames) - set(HOSTILE_MUTATIONS)
        if unknown:
            raise ValueError(
                f"unknown hostile_frames {sorted(unknown)}; known: {sorted(HOSTILE_MUTATIONS)}"
            )


@dataclass(frozen=True)
class RequestRecord:
    """One HTTP request as the server saw it."""

    method: str
    path: str
    query: dict[str, str]
    body: str
    api_key: str | None
    ret_code: int
    http_status: int
    ts_ms: int


@dataclass
class PathFault:
    ret_code: int
    ret_msg: str
    remaining: int | None  # None: until cleared
    http_status: int = 200
    skip: int = 0  # requests still let through before the fault starts


@dataclass
class Faults:
    order_rejects: deque[tuple[int, str]] = field(default_factory=deque)
    paths: dict[str, PathFault] = field(default_factory=dict)
    refuse_ws_until: float = 0.0

    def take_order_reject(self) -> BybitError | None:
        if self.order_rejects:
            code, msg = self.order_rejects.popleft()
            return BybitError(code, msg)
        return None

    def take_path_fault(self, path: str) -> PathFault | None:
        fault = self.paths.get(path)
        if fault is None:
            return None
        if fault.skip > 0:
            fault.skip -= 1
            return None
        if fault.remaining is not None:
            fault.remaining -= 1
            if fault.remaining <= 0:
                del self.paths[path]
        return fault


class EmulatorState:
    """Markets, books and plumbing shared by the HTTP and websocket handlers."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.secrets = {config.api_key: config.api_secret}
        self.instruments = {spec.symbol: spec for spec in config.instruments}
        anchor = config.anchor_ms if config.anchor_ms is not None else now_ms()
        rng = random.Random(config.seed)
        self.markets: dict[str, SymbolMarket] = {}
        for spec in config.instruments:
            market = SymbolMarket(spec, config.base_interval, anchor, rng, config.volatility)
            market.seed_history(config.history_bars)
            self.markets[spec.symbol] = market
        self.exchange = Exchange(
            instruments=self.instruments,
            last_price=lambda symbol: self.markets[symbol].last_price,
            starting_balance=config.starting_balance,
            default_leverage=config.leverage,
            slippage_ticks=config.slippage_ticks,
            market_order_new_ack=config.market_order_new_ack,
            misbehaviour=Misbehaviour(
                fill_splits=config.fill_splits,
                ioc_cancel_rate=config.ioc_cancel_rate,
                ioc_remainder_status=config.ioc_remainder_status,
                post_accept_reject_rate=config.post_accept_reject_rate,
                rng=random.Random(config.seed + _RNG_FILLS),
            ),
        )
        self.push_rng = random.Random(config.seed + _RNG_PUSHES)
        self.book_rng = random.Random(config.seed + _RNG_BOOKS)
        self.funding_rng = random.Random(config.seed + _RNG_FUNDING)
        self.books: dict[str, tuple[BookSide, BookSide]] = {}
        self.books_sent: dict[str, tuple[dict, dict]] = {}  # topic -> last pushed levels
        self.book_update_ids: dict[str, int] = {}
        self.funding: dict[str, FundingClock] = {
            symbol: FundingClock(Decimal("0.0001"), self._next_funding_ms(symbol))
            for symbol in self.markets
        }
        self._topic_due: dict[str, float] = {}  # shuffled pushes: last due time per topic
        self._pending: dict[str, int] = {}  # shuffled pushes still scheduled, per topic
        self._timers: set[asyncio.TimerHandle] = set()
        self._sends: set[asyncio.Task] = set()
        self.hub = Hub()
        self.faults = Faults()
        self.requests: list[RequestRecord] = []
        self.unknown: list[str] = []
        self.order_submissions = 0
        self.ticker_seq = 0
        self._push_queue: asyncio.Queue[tuple[float, list[Event]]] | None = None
        self._push_task: asyncio.Task | None = None

    def market(self, symbol: str) -> SymbolMarket:
        market = self.markets.get(symbol)
        if market is None:
            raise BybitError(10001, "params error: symbol invalid")
        return market

    # -- orders (shared by REST and the trade websocket) -------------------------------------

    async def place_order(self, args: dict) -> dict:
        """Create an order (with fault injection) and push the private updates."""
        self.order_submissions += 1
        fault = self.faults.take_order_reject()
        if fault is not None:
            raise fault
        order, events = self.exchange.place(args)
        await self.publish_private(events)
        return {"orderId": order.order_id, "orderLinkId": order.link_id}

    async def cancel_order(self, args: dict) -> dict:
        order, events = self.exchange.cancel(args)
        await self.publish_private(events)
        return {"orderId": order.order_id, "orderLinkId": order.link_id}

    async def amend_order(self, args: dict) -> dict:
        order, events = self.exchange.amend(args)
        await self.publish_private(events)
        return {"orderId": order.order_id, "orderLinkId": order.link_id}

    async def cancel_all(self, args: dict) -> dict:
        orders, events = self.exchange.cancel_all(args)
        await self.publish_private(events)
        return {
            "list": [{"orderId": o.order_id, "orderLinkId": o.link_id} for o in orders],
            "success": "1",
        }

    async def publish_private(self, events: list[Event]) -> None:
        """Queue private pushes; they go out in order after ``private_push_latency_ms``
        (or interleaved at random, some at once, with ``shuffle_window_ms``)."""
        if not events:
            return
        if self.config.shuffle_window_ms > 0:
            await self._publish_shuffled(events)
            return
        latency = self.config.private_push_latency_ms / 1000.0
        if latency <= 0:
            await self._send_private(events)
            return
        if self._push_task is None or self._push_task.done():
            self._push_queue = asyncio.Queue()
            self._push_task = asyncio.get_running_loop().create_task(self._push_worker())
        assert self._push_queue is not None
        self._push_queue.put_nowait((time.monotonic() + latency, events))

    async def _push_worker(self) -> None:
        assert self._push_queue is not None
        while True:
            due, events = await self._push_queue.get()
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await self._send_private(events)

    async def _publish_shuffled(self, events: list[Event]) -> None:
        """Each push gets a random due time in ``[-window/2, window]`` (kept increasing per
        topic, as one topic's stream stays in order); those due now, with nothing of their
        topic still pending, are sent before this returns, so before the ack. A market
        order's ``New`` push is dropped half the time."""
        rng = self.push_rng
        window = self.config.shuffle_window_ms / 1000.0
        kept = [
            e
            for e in events
            if not (
                e[0] == "order"
                and e[1]["orderType"] == "Market"
                and e[1]["orderStatus"] == "New"
                and rng.random() < 0.5
            )
        ]
        loop = asyncio.get_running_loop()
        now = loop.time()
        by_topic: dict[str, list[float]] = {}
        for topic, _ in kept:
            by_topic.setdefault(topic, []).append(now + rng.uniform(-window / 2, window))
        for delays in by_topic.values():
            delays.sort()
        immediate: list[tuple[float, Event]] = []
        for event in kept:
            topic = event[0]
            due = max(by_topic[topic].pop(0), self._topic_due.get(topic, 0.0) + 1e-4)
            self._topic_due[topic] = due
            if due <= now and not self._pending.get(topic):
                immediate.append((due, event))
            else:
                self._pending[topic] = self._pending.get(topic, 0) + 1
                self._timers.add(loop.call_at(due, self._send_later, event))
        for _, event in sorted(immediate, key=lambda pair: pair[0]):
            await self._send_private([event])

    def _send_later(self, event: Event) -> None:
        loop = asyncio.get_running_loop()
        self._timers = {h for h in self._timers if h.when() > loop.time()}
        self._pending[event[0]] -= 1
        task = loop.create_task(self._send_private([event]))
        self._sends.add(task)
        task.add_done_callback(self._sends.discard)

    async def close(self) -> None:
        for handle in self._timers:
            handle.cancel()
        for task in list(self._sends):
            task.cancel()
        if self._push_task is not None:
            self._push_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._push_task

    async def _send_private(self, events: list[Event]) -> None:
        ts = now_ms()
        hostile = self.config.hostile_frames
        for topic, item in events:
            if hostile:
                item = mutate(hostile, topic, item)
            await self.hub.publish_private(topic, item, ts)
            if topic == "execution" and item.get("execType") == "Trade":
                fast = {
                    k: item[k]
                    for k in (
                        "category",
                        "symbol",
                        "execId",
                        "execPrice",
                        "execQty",
                        "orderId",
                        "isMaker",
                        "orderLinkId",
                        "side",
                        "execTime",
                        "seq",
                    )
                }
                await self.hub.publish_private("execution.fast", fast, ts)

    # -- market driving ------------------------------------------------------------------------

    async def trade(self, symbol: str, price: Decimal, qty: Decimal | None, side: str) -> None:
        """A public print at ``price``: moves the market, pushes public data, matches orders."""
        market = self.market(symbol)
        spec = market.spec
        trade = market.apply_trade(price, qty if qty is not None else spec.min_qty, side, now_ms())
        if self.config.book_deltas:
            self._evolve_book(symbol)
        ts = now_ms()
        topics = self.hub.public_topics()
        topic = f"publicTrade.{symbol}"
        if topic in topics:
            await self.hub.publish_public(
                "linear",
                topic,
                {
                    "topic": topic,
                    "type": "snapshot",
                    "ts": ts,
                    "data": [
                        {
                            "T": trade.ts,
                            "s": symbol,
                            "S": trade.side,
                            "v": spec.fmt_qty(trade.qty),
                            "p": spec.fmt_price(trade.price),
                            "L": "PlusTick" if side == "Buy" else "MinusTick",
                            "i": trade.exec_id,
                            "BT": False,
                            "RPI": False,
                            "seq": market.trade_seq,
                        }
                    ],
                },
            )
        topic = f"tickers.{symbol}"
        if topic in topics:
            await self.hub.publish_public("linear", topic, self.ticker_message(symbol, delta=True))
        for depth in (1, 50, 200, 500, 1000):
            topic = f"orderbook.{depth}.{symbol}"
            if topic in topics:
                message = self.orderbook_message(symbol, depth)
                if message is not None:
                    await self.hub.publish_public("linear", topic, message)
        await self.publish_forming_klines(symbol, topics)
        await self.publish_private(self.exchange.match(symbol))

    async def publish_forming_klines(self, symbol: str, topics: set[str]) -> None:
        market = self.markets[symbol]
        for interval in self.kline_intervals(symbol, topics):
            bar = market.current_group(interval)
            await self.publish_kline(symbol, interval, bar, confirm=False)

    def kline_intervals(self, symbol: str, topics: set[str]) -> list[str]:
        out = []
        for topic in topics:
            parts = topic.split(".")
            if len(parts) == 3 and parts[0] == "kline" and parts[2] == symbol:
                out.append(parts[1])
        return sorted(out)

    async def publish_kline(self, symbol: str, interval: str, bar: Kline, confirm: bool) -> None:
        spec = self.instruments[symbol]
        ts = now_ms()
        topic = f"kline.{interval}.{symbol}"
        item = bar.to_ws(spec, interval, group_end(bar.start, interval) - 1, confirm, ts)
        msg = {"topic": topic, "data": [item], "ts": ts, "type": "snapshot"}
        await self.hub.publish_public("linear", topic, msg)

    async def close_bar(self, symbol: str) -> Kline:
        """Close the forming bar: push ``confirm=true`` for every subscribed interval it ends."""
        market = self.markets[symbol]
        closed = market.close_forming()
        topics = self.hub.public_topics()
        for interval in self.kline_intervals(symbol, topics):
            if not market.supports(interval):
                continue
            key = group_start(closed.start, interval)
            if group_start(closed.start + market.base_ms, interval) == key:
                continue  # the higher-interval bar is still forming
            agg = market.group(closed.start, interval, include_forming=False)
            await self.publish_kline(symbol, interval, agg, confirm=True)
        if self.config.funding_settlement:
            await self._funding_after_bar(symbol)
        return closed

    async def advance(self, n_bars: int, symbol: str | None, updates: int | None) -> list[Kline]:
        """Random-walk ``n_bars`` bars for ``symbol`` (default: every symbol)."""
        steps = self.config.updates_per_bar if updates is None else updates
        symbols = [symbol] if symbol else list(self.markets)
        closed: list[Kline] = []
        for _ in range(n_bars):
            for sym in symbols:
                market = self.market(sym)
                for _ in range(max(1, steps)):
                    price = market.random_walk_price(scale=1.0 / max(1, steps) ** 0.5)
                    side = "Buy" if price >= market.last_price else "Sell"
                    qty = market.spec.floor_qty(market.random_volume() / max(1, steps))
                    await self.trade(sym, price, max(qty, market.spec.min_qty), side)
                closed.append(await self.close_bar(sym))
        return closed

    async def push_bar(
        self,
        symbol: str,
        open_: Decimal,
        high: Decimal,
        low: Decimal,
        close: Decimal,
        volume: Decimal | None,
    ) -> Kline:
        """Trade the forming bar through open/low/high/close (O-H-L-C for down bars), then
        close it with exactly these values."""
        market = self.market(symbol)
        spec = market.spec
        path = [open_, low, high, close] if close >= open_ else [open_, high, low, close]
        for price in path:
            side = "Buy" if price >= market.last_price else "Sell"
            await self.trade(symbol, Decimal(str(price)), spec.min_qty, side)
        forming = market.forming
        forming.open = spec.round_price(Decimal(str(open_)))
        forming.high = spec.round_price(Decimal(str(high)))
        forming.low = spec.round_price(Decimal(str(low)))
        forming.close = spec.round_price(Decimal(str(close)))
        if volume is not None:
            forming.volume = spec.floor_qty(Decimal(str(volume)))
            forming.turnover = forming.close * forming.volume
        await self.publish_forming_klines(symbol, self.hub.public_topics())
        return await self.close_bar(symbol)

    # -- funding -------------------------------------------------------------------------------

    def funding_interval_ms(self, symbol: str) -> int:
        return self.instruments[symbol].funding_interval_mins * 60_000

    def _next_funding_ms(self, symbol: str) -> int:
        """The first funding boundary after the forming bar opens (the market's clock)."""
        interval = self.funding_interval_ms(symbol)
        return (self.markets[symbol].forming.start // interval + 1) * interval

    async def _funding_after_bar(self, symbol: str) -> None:
        """Settle every boundary the market clock has reached, then move the rate a little."""
        clock = self.funding[symbol]
        market = self.markets[symbol]
        while market.forming.start >= clock.next_ms:
            boundary = clock.next_ms
            clock.settled.append((boundary, clock.rate))
            clock.next_ms += self.funding_interval_ms(symbol)
            clock.changed = True
            await self.publish_private(
                self.exchange.settle_funding(symbol, clock.rate, market.last_price, boundary)
            )
        step = FUNDING_RATE_STEP * self.funding_rng.randint(-30, 30)
        rate = min(FUNDING_RATE_CAP, max(-FUNDING_RATE_CAP, clock.rate + step))
        clock.changed = clock.changed or rate != clock.rate
        clock.rate = rate

    def funding_rows(
        self, symbol: str, start: int | None, end: int | None, limit: int
    ) -> list[tuple[int, Decimal]]:
        """Funding history, newest first: boundaries from the instrument's launch to the last
        one the market clock has passed, within ``[start, end]``, at most ``limit``. Settled
        boundaries carry their rate, earlier ones (before this emulator ran) the default."""
        spec = self.instruments[symbol]
        interval = self.funding_interval_ms(symbol)
        settled = dict(self.funding[symbol].settled)
        low = -(-max(spec.launch_time_ms, start or 0) // interval) * interval
        high = self.markets[symbol].forming.start // interval * interval
        if end is not None:
            high = min(high, end // interval * interval)
        stamps = range(high, low - 1, -interval)[:limit]
        return [(ts, settled.get(ts, Decimal("0.0001"))) for ts in stamps]

    # -- public views ----------------------------------------------------------------------------

    def quote(self, symbol: str) -> tuple[Decimal, Decimal]:
        """Best bid/ask: the last price and one tick above it."""
        market = self.markets[symbol]
        return market.last_price, market.last_price + market.spec.tick_size

    def ticker_item(self, symbol: str, *, rest: bool) -> dict:
        market = self.markets[symbol]
        spec = market.spec
        bid, ask = self.quote(symbol)
        day_start = market.forming.start - INTERVAL_MS["D"]
        day = [b for b in market.all_bars() if b.start >= day_start]
        hour = [b for b in day if b.start >= market.forming.start - INTERVAL_MS["60"]]
        prev24 = day[0].open if day else market.last_price
        prev1h = hour[0].open if hour else market.last_price
        pct = (market.last_price - prev24) / prev24 if prev24 else Decimal(0)
        size = spec.fmt_qty(spec.min_qty * 1000)
        funding = self.funding[symbol]
        item = {
            "symbol": symbol,
            "lastPrice": spec.fmt_price(market.last_price),
            "indexPrice": spec.fmt_price(market.last_price),
            "markPrice": spec.fmt_price(market.last_price),
            "prevPrice24h": spec.fmt_price(prev24),
            "price24hPcnt": fmt_decimal(pct, 6),
            "highPrice24h": spec.fmt_price(max((b.high for b in day), default=bid)),
            "lowPrice24h": spec.fmt_price(min((b.low for b in day), default=bid)),
            "prevPrice1h": spec.fmt_price(prev1h),
            "openInterest": spec.fmt_qty(spec.min_qty * 100_000),
            "openInterestValue": money(spec.min_qty * 100_000 * market.last_price),
            "turnover24h": money(sum((b.turnover for b in day), Decimal(0))),
            "volume24h": spec.fmt_qty(sum((b.volume for b in day), Decimal(0))),
            "fundingRate": fmt_decimal(funding.rate),
            "nextFundingTime": str(funding.next_ms),
            "bid1Price": spec.fmt_price(bid),
            "bid1Size": size,
            "ask1Price": spec.fmt_price(ask),
            "ask1Size": size,
            "fundingIntervalHour": str(max(1, spec.funding_interval_mins // 60)),
            "fundingCap": "0.005",
        }
        if rest:
            item.update(
                {
                    "predictedDeliveryPrice": "",
                    "basisRate": "",
                    "deliveryFeeRate": "",
                    "deliveryTime": "0",
                    "basis": "",
                    "preOpenPrice": "",
                    "preQty": "",
                    "curPreListingPhase": "",
                    "basisRateYear": "",
                }
            )
        else:
            item["tickDirection"] = "PlusTick"
        return item

    def ticker_message(self, symbol: str, *, delta: bool) -> dict:
        self.ticker_seq += 1
        item = self.ticker_item(symbol, rest=False)
        if delta:
            keep = (
                "symbol",
                "lastPrice",
                "markPrice",
                "indexPrice",
                "bid1Price",
                "bid1Size",
                "ask1Price",
                "ask1Size",
                "tickDirection",
            )
            funding = self.funding[symbol]
            if self.config.funding_settlement and funding.changed:
                keep = (*keep, "fundingRate", "nextFundingTime")
            item = {k: item[k] for k in keep}
        self.funding[symbol].changed = False
        return {
            "topic": f"tickers.{symbol}",
            "type": "delta" if delta else "snapshot",
            "data": item,
            "cs": self.ticker_seq,
            "ts": now_ms(),
        }

    def book_levels(self, symbol: str, depth: int) -> tuple[list[list[str]], list[list[str]]]:
        spec = self.instruments[symbol]
        if self.config.book_deltas:
            bids, asks = self._top_levels(symbol, depth)
            return (
                [[spec.fmt_price(p), spec.fmt_qty(q)] for p, q in bids.items()],
                [[spec.fmt_price(p), spec.fmt_qty(q)] for p, q in asks.items()],
            )
        bid, ask = self.quote(symbol)
        size = spec.fmt_qty(spec.min_qty * 1000)
        bids = [[spec.fmt_price(bid - i * spec.tick_size), size] for i in range(depth)]
        asks = [[spec.fmt_price(ask + i * spec.tick_size), size] for i in range(depth)]
        return [b for b in bids if Decimal(b[0]) > 0], asks

    # -- order books with deltas (``book_deltas``) ---------------------------------------------

    BOOK_LEVELS = 200  # levels kept per side (deeper topics show at most these)

    def _evolve_book(self, symbol: str) -> None:
        """Re-centre the book on the last price (best bid = last, best ask = one tick up);
        about one level in five nearest the top changes size; new levels get random sizes."""
        spec = self.instruments[symbol]
        rng = self.book_rng
        bid, ask = self.quote(symbol)
        if symbol not in self.books:
            self.books[symbol] = (BookSide(), BookSide())
        bids, asks = self.books[symbol]
        for side, best, sign in ((bids, bid, -1), (asks, ask, 1)):
            wanted = [best + sign * i * spec.tick_size for i in range(self.BOOK_LEVELS)]
            wanted = [p for p in wanted if p > 0]
            keep = set(wanted)
            side.levels = {p: q for p, q in side.levels.items() if p in keep}
            for i, price in enumerate(wanted):
                if price not in side.levels or (i < 60 and rng.random() < 0.2):
                    side.levels[price] = spec.min_qty * rng.randint(1, 2000)

    def _top_levels(
        self, symbol: str, depth: int
    ) -> tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]:
        if symbol not in self.books:
            self._evolve_book(symbol)
        bids, asks = self.books[symbol]
        top_bids = sorted(bids.levels, reverse=True)[:depth]
        top_asks = sorted(asks.levels)[:depth]
        return {p: bids.levels[p] for p in top_bids}, {p: asks.levels[p] for p in top_asks}

    def orderbook_snapshot(self, symbol: str, depth: int) -> dict:
        """The message a new subscriber gets first (deltas mode: what later deltas build on)."""
        if not self.config.book_deltas or depth == 1:
            return self.orderbook_message(symbol, depth)
        topic = f"orderbook.{depth}.{symbol}"
        if topic not in self.books_sent:
            self.books_sent[topic] = self._top_levels(symbol, depth)
        bids, asks = self.books_sent[topic]
        return self._book_push(symbol, depth, "snapshot", bids, asks)

    def _book_push(self, symbol: str, depth: int, kind: str, bids: dict, asks: dict) -> dict:
        spec = self.instruments[symbol]
        topic = f"orderbook.{depth}.{symbol}"
        self.book_update_ids[topic] = self.book_update_ids.get(topic, 0) + 1
        self.ticker_seq += 1
        ts = now_ms()
        order = {"b": sorted(bids, reverse=True), "a": sorted(asks)}
        levels = {"b": bids, "a": asks}
        data = {
            key: [[spec.fmt_price(p), spec.fmt_qty(levels[key][p])] for p in order[key]]
            for key in ("b", "a")
        }
        return {
            "topic": topic,
            "type": kind,
            "ts": ts,
            "data": {"s": symbol, **data, "u": self.book_update_ids[topic], "seq": self.ticker_seq},
            "cts": ts,
        }

    def orderbook_delta(self, symbol: str, depth: int) -> dict | None:
        """Changes of the top ``depth`` levels since the last push (None: nothing changed);
        a level that left the top ``depth`` is sent with size 0 (deleted)."""
        topic = f"orderbook.{depth}.{symbol}"
        if topic not in self.books_sent:
            return self.orderbook_snapshot(symbol, depth)
        old_bids, old_asks = self.books_sent[topic]
        new_bids, new_asks = self._top_levels(symbol, depth)
        self.books_sent[topic] = (new_bids, new_asks)
        changes = []
        for old, new in ((old_bids, new_bids), (old_asks, new_asks)):
            side = {p: q for p, q in new.items() if old.get(p) != q}
            side.update({p: Decimal(0) for p in old if p not in new})
            changes.append(side)
        if not changes[0] and not changes[1]:
            return None
        return self._book_push(symbol, depth, "delta", changes[0], changes[1])

    def orderbook_message(self, symbol: str, depth: int) -> dict | None:
        """The push after a print: a snapshot, or with ``book_deltas`` (depth > 1) a delta
        (None when the top ``depth`` levels did not change)."""
        if self.config.book_deltas and depth > 1:
            return self.orderbook_delta(symbol, depth)
        bids, asks = self.book_levels(symbol, depth)
        self.ticker_seq += 1
        ts = now_ms()
        return {
            "topic": f"orderbook.{depth}.{symbol}",
            "type": "snapshot",
            "ts": ts,
            "data": {"s": symbol, "b": bids, "a": asks, "u": self.ticker_seq, "seq": ts},
            "cts": ts,
        }

    def record(self, record: RequestRecord) -> None:
        self.requests.append(record)

    def snapshot(self, what: str, *args: Any) -> Any:
        """Read-only views for tests (called on the loop thread)."""
        ex = self.exchange
        if what == "wallet":
            return ex.wallet_item()
        if what == "position":
            return ex.position_item(args[0])
        if what == "orders":
            return [ex.order_item(o) for o in ex.orders.values()]
        if what == "executions":
            return [ex.execution_item(e) for e in ex.executions]
        raise KeyError(what)
