"""Market simulation: kline history (base interval), the still-forming bar and recent trades."""

from __future__ import annotations

import calendar
import math
import random
from collections import deque
from dataclasses import dataclass
from dataclasses import replace
from datetime import UTC
from datetime import datetime
from decimal import Decimal
from typing import Any

from tests.bybit_emulator.instruments import InstrumentSpec
from tests.bybit_emulator.instruments import fmt_decimal

MINUTE_MS = 60_000
#: Bybit kline intervals with a fixed length ("M" is calendar months, handled separately).
INTERVAL_MS: dict[str, int] = {
    "1": MINUTE_MS,
    "3": 3 * MINUTE_MS,
    "5": 5 * MINUTE_MS,
    "15": 15 * MINUTE_MS,
    "30": 30 * MINUTE_MS,
    "60": 60 * MINUTE_MS,
    "120": 120 * MINUTE_MS,
    "240": 240 * MINUTE_MS,
    "360": 360 * MINUTE_MS,
    "720": 720 * MINUTE_MS,
    "D": 1440 * MINUTE_MS,
    "W": 7 * 1440 * MINUTE_MS,
}
VALID_INTERVALS = (*INTERVAL_MS, "M")
_WEEK_OFFSET_MS = 4 * 1440 * MINUTE_MS  # 1970-01-01 was a Thursday; Bybit weeks start Monday


@dataclass
class Kline:
    """One OHLCV bar keyed by its open time (ms)."""

    start: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    turnover: Decimal

    def add_trade(self, price: Decimal, qty: Decimal) -> None:
        self.high = max(self.high, price)
        self.low = min(self.low, price)
        self.close = price
        self.volume += qty
        self.turnover += price * qty

    def to_rest(self, spec: InstrumentSpec) -> list[str]:
        """``[startTime, open, high, low, close, volume, turnover]`` as Bybit's REST list."""
        return [
            str(self.start),
            spec.fmt_price(self.open),
            spec.fmt_price(self.high),
            spec.fmt_price(self.low),
            spec.fmt_price(self.close),
            spec.fmt_qty(self.volume),
            fmt_decimal(self.turnover, 4),
        ]

    def to_ws(self, spec: InstrumentSpec, interval: str, end: int, confirm: bool, ts: int) -> dict:
        """One ``data`` item of a ``kline.{interval}.{symbol}`` push."""
        return {
            "start": self.start,
            "end": end,
            "interval": interval,
            "open": spec.fmt_price(self.open),
            "close": spec.fmt_price(self.close),
            "high": spec.fmt_price(self.high),
            "low": spec.fmt_price(self.low),
            "volume": spec.fmt_qty(self.volume),
            "turnover": fmt_decimal(self.turnover, 4),
            "confirm": confirm,
            "timestamp": ts,
        }


@dataclass(frozen=True)
class Trade:
    """A public trade print."""

    exec_id: str
    price: Decimal
    qty: Decimal
    side: str  # taker side, "Buy" | "Sell"
    ts: int


def merge_bars(bars: list[Kline], start: int) -> Kline:
    """Combine consecutive bars (ascending) into one bar opening at ``start``."""
    first = bars[0]
    return Kline(
        start,
        first.open,
        max(b.high for b in bars),
        min(b.low for b in bars),
        bars[-1].close,
        sum((b.volume for b in bars), Decimal(0)),
        sum((b.turnover for b in bars), Decimal(0)),
    )


def group_start(start_ms: int, interval: str) -> int:
    """Open time of the ``interval`` bar that contains ``start_ms`` (UTC-aligned, as Bybit)."""
    if interval == "M":
        dt = datetime.fromtimestamp(start_ms / 1000, tz=UTC)
        return int(datetime(dt.year, dt.month, 1, tzinfo=UTC).timestamp() * 1000)
    length = INTERVAL_MS[interval]
    if interval == "W":
        return (start_ms - _WEEK_OFFSET_MS) // length * length + _WEEK_OFFSET_MS
    return start_ms // length * length


def group_end(group_open_ms: int, interval: str) -> int:
    """Exclusive end (ms) of the ``interval`` bar opening at ``group_open_ms``."""
    if interval == "M":
        dt = datetime.fromtimestamp(group_open_ms / 1000, tz=UTC)
        days = calendar.monthrange(dt.year, dt.month)[1]
        return group_open_ms + days * 1440 * MINUTE_MS
    return group_open_ms + INTERVAL_MS[interval]


def _to_ms(value: Any) -> int:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    ts = getattr(value, "value", None)  # pandas.Timestamp: ns since epoch
    if isinstance(ts, int):
        return ts // 1_000_000
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return int(value.timestamp() * 1000)
    raise TypeError(f"cannot convert {value!r} to epoch milliseconds")


class SymbolMarket:
    """History, forming bar and trades for one symbol at one base interval."""

    def __init__(
        self,
        spec: InstrumentSpec,
        base_interval: str,
        anchor_ms: int,
        rng: random.Random,
        volatility: float,
    ) -> None:
        if base_interval not in INTERVAL_MS or base_interval in ("W",):
            raise ValueError(f"unsupported base interval {base_interval!r}")
        self.spec = spec
        self.base_interval = base_interval
        self.base_ms = INTERVAL_MS[base_interval]
        self.rng = rng
        self.volatility = volatility
        self.bars: dict[int, Kline] = {}
        self.last_price = spec.round_price(spec.initial_price)
        self.forming = self._new_forming(group_start(anchor_ms, base_interval), self.last_price)
        self.trades: deque[Trade] = deque(maxlen=1000)
        self.trade_seq = 0

    # -- construction ------------------------------------------------------------------------

    def _new_forming(self, start: int, price: Decimal) -> Kline:
        return Kline(start, price, price, price, price, Decimal(0), Decimal(0))

    def random_volume(self) -> Decimal:
        raw = Decimal(str(round(self.rng.uniform(1.0, 25.0), 6)))
        return max(self.spec.floor_qty(raw), self.spec.qty_step)

    def _step_price(self, price: Decimal, scale: float = 1.0) -> Decimal:
        factor = math.exp(self.rng.gauss(0.0, self.volatility * scale))
        return max(self.spec.round_price(price * Decimal(str(factor))), self.spec.tick_size)

    def random_bar(self, start: int, open_: Decimal) -> Kline:
        """A random-walk bar opening at ``open_``."""
        close = self._step_price(open_)
        wick = Decimal(str(abs(self.rng.gauss(0.0, self.volatility / 2)))) * open_
        high = self.spec.round_price(max(open_, close) + wick)
        low = max(self.spec.round_price(min(open_, close) - wick), self.spec.tick_size)
        volume = self.random_volume()
        return Kline(start, open_, high, low, close, volume, close * volume)

    def seed_history(self, n_bars: int) -> None:
        """Generate ``n_bars`` closed random-walk bars ending where the forming bar opens."""
        self.bars.clear()
        start = self.forming.start - n_bars * self.base_ms
        price = self.spec.round_price(self.spec.initial_price)
        for i in range(n_bars):
            bar = self.random_bar(start + i * self.base_ms, price)
            self.bars[bar.start] = bar
            price = bar.close
        self.last_price = price
        self.forming = self._new_forming(self.forming.start, price)

    def load_frame(self, frame: Any) -> None:
        """Replace the history with a frame (index: bar open times; columns open/high/low/close/
        volume, optional turnover). The forming bar opens one base interval after the last row."""
        self.bars.clear()
        columns = {str(c).lower(): c for c in frame.columns}
        missing = {"open", "high", "low", "close", "volume"} - set(columns)
        if missing:
            raise ValueError(f"frame lacks columns {sorted(missing)}")
        last: Kline | None = None
        for idx, row in zip(frame.index, frame.itertuples(index=False), strict=True):
            values = dict(zip(frame.columns, row, strict=True))
            start = _to_ms(idx)
            if start % self.base_ms:
                raise ValueError(f"bar open time {start} not aligned to {self.base_interval}")

            def px(name: str, values: dict = values) -> Decimal:
                return self.spec.round_price(Decimal(str(values[columns[name]])))

            volume = self.spec.floor_qty(Decimal(str(values[columns["volume"]])))
            close = px("close")
            turnover = (
                Decimal(str(values[columns["turnover"]]))
                if "turnover" in columns
                else close * volume
            )
            bar = Kline(start, px("open"), px("high"), px("low"), close, volume, turnover)
            self.bars[start] = bar
            if last is None or start > last.start:
                last = bar
        if last is None:
            raise ValueError("empty frame")
        self.last_price = last.close
        self.forming = self._new_forming(last.start + self.base_ms, last.close)

    def remove_range(self, start_ms: int, end_ms: int) -> int:
        """Delete closed bars opening in ``[start_ms, end_ms]``; returns how many (a data gap)."""
        doomed = [s for s in self.bars if start_ms <= s <= end_ms]
        for s in doomed:
            del self.bars[s]
        return len(doomed)

    # -- live updates ------------------------------------------------------------------------

    def next_trade_id(self) -> str:
        self.trade_seq += 1
        return f"{self.spec.symbol.lower()}-{self.forming.start // 1000}-{self.trade_seq:08d}"

    def apply_trade(self, price: Decimal, qty: Decimal, side: str, ts: int) -> Trade:
        """Record a public trade: moves the last price and updates the forming bar."""
        price = self.spec.round_price(price)
        trade = Trade(self.next_trade_id(), price, qty, side, ts)
        if self.forming.volume == 0:  # the first print of a bar sets its open
            self.forming = self._new_forming(self.forming.start, price)
        self.forming.add_trade(price, qty)
        self.last_price = price
        self.trades.append(trade)
        return trade

    def random_walk_price(self, scale: float = 1.0) -> Decimal:
        return self._step_price(self.last_price, scale)

    def close_forming(self) -> Kline:
        """Close the forming bar into the history and open the next one at its close."""
        closed = replace(self.forming)
        if closed.volume == 0:  # never traded: make it a flat bar with a minimum print
            closed.volume = self.spec.qty_step
            closed.turnover = closed.close * closed.volume
        self.bars[closed.start] = closed
        self.forming = self._new_forming(closed.start + self.base_ms, closed.close)
        return closed

    # -- queries -----------------------------------------------------------------------------

    def all_bars(self, include_forming: bool = True) -> list[Kline]:
        """Base-interval bars in ascending time order."""
        out = [self.bars[s] for s in sorted(self.bars)]
        if include_forming:
            out.append(self.forming)
        return out

    def supports(self, interval: str) -> bool:
        if interval == "M":
            return INTERVAL_MS["D"] % self.base_ms == 0
        return interval in INTERVAL_MS and INTERVAL_MS[interval] % self.base_ms == 0

    def aggregate(self, interval: str) -> list[Kline]:
        """Bars at ``interval`` (a multiple of the base), ascending, the forming one last."""
        if interval == self.base_interval:
            return [replace(b) for b in self.all_bars()]
        groups: dict[int, list[Kline]] = {}
        for bar in self.all_bars():
            groups.setdefault(group_start(bar.start, interval), []).append(bar)
        return [merge_bars(groups[k], k) for k in sorted(groups)]

    def group(self, start_ms: int, interval: str, include_forming: bool = True) -> Kline:
        """The ``interval`` bar containing ``start_ms`` built from base bars."""
        key = group_start(start_ms, interval)
        members = [
            b for b in self.all_bars(include_forming) if group_start(b.start, interval) == key
        ]
        return merge_bars(members, key)

    def current_group(self, interval: str) -> Kline:
        """The still-forming bar at ``interval``."""
        return self.group(self.forming.start, interval)

    def query(
        self,
        interval: str,
        start: int | None,
        end: int | None,
        limit: int,
    ) -> list[Kline]:
        """Klines as ``GET /v5/market/kline`` returns them (newest first).

        The range holds every bar whose span touches ``[start, end]`` (the bar containing
        ``start`` is included). With ``end`` (or neither bound) the newest ``limit`` bars of the
        range are returned; with ``start`` alone the oldest ``limit`` from ``start`` onwards.
        """
        bars = self.aggregate(interval)
        if start is not None:
            bars = [b for b in bars if group_end(b.start, interval) > start]
        if end is not None:
            bars = [b for b in bars if b.start <= end]
        bars = bars[:limit] if start is not None and end is None else bars[-limit:]
        return list(reversed(bars))
