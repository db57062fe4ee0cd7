"""``EmulatorServer``: the emulator on 127.0.0.1 in a background thread with its own loop.

All control methods are thread-safe: they run on the emulator's loop and wait for the result,
so they can be called from a test (or from another event loop, e.g. a Nautilus node's).
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from aiohttp import web

from tests.bybit_emulator.books import BybitError
from tests.bybit_emulator.http_api import build_http_handler
from tests.bybit_emulator.market import Kline
from tests.bybit_emulator.signing import Credentials
from tests.bybit_emulator.state import EmulatorConfig
from tests.bybit_emulator.state import EmulatorState
from tests.bybit_emulator.state import PathFault
from tests.bybit_emulator.state import RequestRecord
from tests.bybit_emulator.ws_api import build_ws_handler


def build_app(state: EmulatorState) -> web.Application:
    """The aiohttp application: websocket routes first, then the REST catch-all."""
    app = web.Application()
    app.router.add_get("/v5/public/{category}", build_ws_handler(state, "public"))
    app.router.add_get("/v5/private", build_ws_handler(state, "private"))
    app.router.add_get("/v5/trade", build_ws_handler(state, "trade"))
    app.router.add_route("*", "/{tail:.*}", build_http_handler(state))
    return app


class EmulatorServer:
    """A Bybit v5 emulator serving HTTP and websockets on one loopback port."""

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        call_timeout: float = 10.0,
    ) -> None:
        self.config = config or EmulatorConfig()
        self.host = host
        self._requested_port = port
        self._call_timeout = call_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._state: EmulatorState | None = None
        self.port: int = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> EmulatorServer:
        """Start serving; returns ``self`` once the port is bound."""
        if self._thread is not None:
            raise RuntimeError("emulator already started")
        loop = asyncio.new_event_loop()
        self._loop = loop
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run_loop, args=(loop, ready), name="bybit-emulator", daemon=True
        )
        self._thread.start()
        ready.wait()
        future = asyncio.run_coroutine_threadsafe(self._serve(), loop)
        self.port = future.result(timeout=self._call_timeout)
        return self

    @staticmethod
    def _run_loop(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_forever()

    async def _serve(self) -> int:
        self._state = EmulatorState(self.config)
        self._runner = web.AppRunner(build_app(self._state), access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._requested_port)
        await site.start()
        sockets = site._server.sockets if site._server else ()
        return int(sockets[0].getsockname()[1])

    def stop(self) -> None:
        """Close every websocket, stop serving and join the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def shutdown() -> None:
            if self._state is not None:
                await self._state.close()
                await self._state.hub.close_all()
            if self._runner is not None:
                await self._runner.cleanup()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=self._call_timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=self._call_timeout)
            loop.close()
            self._loop = None
            self._thread = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses ---------------------------------------------------------------------------

    @property
    def base_url_http(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_public_base(self) -> str:
        """Public stream prefix; Bybit appends the category (``/linear``, ``/spot``...)."""
        return f"ws://{self.host}:{self.port}/v5/public"

    @property
    def ws_public_url(self) -> str:
        return f"{self.ws_public_base}/linear"

    @property
    def ws_private_url(self) -> str:
        return f"ws://{self.host}:{self.port}/v5/private"

    @property
    def ws_trade_url(self) -> str:
        return f"ws://{self.host}:{self.port}/v5/trade"

    @property
    def credentials(self) -> Credentials:
        return Credentials(self.config.api_key, self.config.api_secret)

    # -- plumbing ----------------------------------------------------------------------------

    @property
    def state(self) -> EmulatorState:
        if self._state is None:
            raise RuntimeError("emulator not started")
        return self._state

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` (sync or async) on the emulator loop and return its result."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("emulator not started")

        async def run() -> Any:
            result = fn(*args)
            if inspect.isawaitable(result):
                result = await result
            return result

        if threading.current_thread() is self._thread:
            raise RuntimeError("EmulatorServer.call() must not be used from the emulator loop")
        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout=self._call_timeout)

    # -- market control ------------------------------------------------------------------------

    def advance(
        self, n_bars: int = 1, symbol: str | None = None, updates_per_bar: int | None = None
    ) -> list[Kline]:
        """Random-walk ``n_bars`` bars (every symbol by default) and push them: per bar
        ``updates_per_bar`` trades (tickers, trades, ``confirm=false`` klines), then the
        ``confirm=true`` kline. Faster than real time: bar times run ahead of the wall clock."""
        return self.call(self.state.advance, n_bars, symbol, updates_per_bar)

    def push_bar(
        self,
        symbol: str,
        open: float | str | Decimal,
        high: float | str | Decimal,
        low: float | str | Decimal,
        close: float | str | Decimal,
        volume: float | str | Decimal | None = None,
    ) -> Kline:
        """Complete the forming bar of ``symbol`` with exactly these values and push it."""
        d = [Decimal(str(v)) for v in (open, high, low, close)]
        vol = None if volume is None else Decimal(str(volume))
        return self.call(self.state.push_bar, symbol, *d, vol)

    def set_price(
        self,
        symbol: str,
        price: float | str | Decimal,
        qty: float | str | Decimal | None = None,
        side: str = "Buy",
    ) -> None:
        """Print a public trade at ``price`` (moves the market, fills crossed limit orders)."""
        q = None if qty is None else Decimal(str(qty))
        self.call(self.state.trade, symbol, Decimal(str(price)), q, side)

    def load_bars(self, symbol: str, frame: Any) -> None:
        """Replace ``symbol``'s history with a frame (index: open times; columns open, high,
        low, close, volume). The forming bar opens one interval after the last row."""
        self.call(lambda: self.state.market(symbol).load_frame(frame))

    def remove_bars(self, symbol: str, start_ms: int, end_ms: int) -> int:
        """Make a gap: delete closed bars opening within ``[start_ms, end_ms]``."""
        return self.call(lambda: self.state.market(symbol).remove_range(start_ms, end_ms))

    def last_price(self, symbol: str) -> Decimal:
        return self.call(lambda: self.state.market(symbol).last_price)

    def forming_bar_start(self, symbol: str) -> int:
        """Open time (ms) of the still-forming bar."""
        return self.call(lambda: self.state.market(symbol).forming.start)

    def bars(self, symbol: str, interval: str | None = None) -> list[Kline]:
        """All bars (ascending, the forming one last) at ``interval`` (default: base)."""
        return self.call(
            lambda: self.state.market(symbol).aggregate(interval or self.config.base_interval)
        )

    # -- faults --------------------------------------------------------------------------------

    def reject_next_order(
        self, ret_code: int = 110007, ret_msg: str = "ab not enough for new order", count: int = 1
    ) -> None:
        """Reject the next ``count`` order creations (REST or trade websocket) with this error."""
        self.call(lambda: self.state.faults.order_rejects.extend([(ret_code, ret_msg)] * count))

    def reject_after_accept(self, count: int = 1, reason: str = "EC_ReachRiskPriceLimit") -> None:
        """Accept the next ``count`` order creations (retCode 0, an orderId), then push each
        as ``orderStatus: Rejected`` with ``rejectReason`` ``reason`` (no fill)."""
        self.call(lambda: self.state.exchange.pending_rejects.extend([reason] * count))

    def fail_path(
        self,
        path: str,
        ret_code: int = 10016,
        ret_msg: str = "Internal server error",
        count: int | None = None,
        http_status: int = 200,
        after: int = 0,
    ) -> None:
        """Answer ``path`` with this error (``count`` times, or until ``clear_faults``), once
        the next ``after`` requests to it have been served normally."""
        fault = PathFault(ret_code, ret_msg, count, http_status, skip=after)
        self.call(lambda: self.state.faults.paths.__setitem__(path, fault))

    def clear_faults(self) -> None:
        def clear() -> None:
            self.state.faults.order_rejects.clear()
            self.state.faults.paths.clear()
            self.state.faults.refuse_ws_until = 0.0

        self.call(clear)

    def drop_websockets(self, kind: str | None = None, refuse_for_s: float = 0.0) -> int:
        """Close every websocket (or those of ``kind``: public/private/trade) from the server
        side; optionally refuse new websocket upgrades for ``refuse_for_s`` seconds."""

        async def drop() -> int:
            if refuse_for_s > 0:
                self.state.faults.refuse_ws_until = time.monotonic() + refuse_for_s
            return await self.state.hub.close_all(kind)

        return self.call(drop)

    # -- views -------------------------------------------------------------------------------

    def wallet(self) -> dict:
        """The ``wallet-balance`` list item (REST shape)."""
        return self.call(self.state.snapshot, "wallet")

    def position(self, symbol: str) -> dict:
        """The ``position/list`` item for ``symbol`` (REST shape)."""
        return self.call(self.state.snapshot, "position", symbol)

    def orders(self) -> list[dict]:
        """Every order (REST shape), any status."""
        return self.call(self.state.snapshot, "orders")

    def executions(self) -> list[dict]:
        """Every execution (REST shape), oldest first."""
        return self.call(self.state.snapshot, "executions")

    def funding_settled(self, symbol: str) -> list[tuple[int, Decimal]]:
        """``(boundary ms, rate)`` of every funding settlement so far (``funding_settlement``)."""
        return self.call(lambda: list(self.state.funding[symbol].settled))

    def book(
        self, symbol: str, depth: int
    ) -> tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]:
        """The top ``depth`` levels (price -> size) of each side the order book topic of that
        depth last pushed (``book_deltas``); what a client's book must equal."""
        topic = f"orderbook.{depth}.{symbol}"
        return self.call(lambda: self.state.books_sent[topic])

    def requests(self) -> list[RequestRecord]:
        """Every HTTP request seen so far."""
        return self.call(lambda: list(self.state.requests))

    def unknown_paths(self) -> list[str]:
        """``METHOD /path`` of requests to endpoints the emulator does not implement."""
        return self.call(lambda: list(self.state.unknown))

    def order_submissions(self) -> int:
        """Order creations received (REST and trade websocket, rejected ones included)."""
        return self.call(lambda: self.state.order_submissions)

    def ws_connections(self, kind: str | None = None) -> int:
        """Open websockets (of ``kind``)."""
        return self.call(self.state.hub.count, kind)

    def ws_accepted(self) -> int:
        """Websocket upgrades accepted since start (reconnects included)."""
        return self.call(lambda: self.state.hub.accepted)

    def ws_received(self, kind: str | None = None) -> list[dict]:
        """Client messages received over websockets (of ``kind``)."""
        return self.call(
            lambda: [m for k, m in self.state.hub.received if kind is None or k == kind]
        )

    def ws_sessions(self, kind: str | None = None) -> list[tuple[str, bool, frozenset[str]]]:
        """``(kind, authenticated, topics)`` for each open websocket."""
        return self.call(
            lambda: [
                (c.kind, c.authed, frozenset(c.topics))
                for c in self.state.hub.conns
                if (kind is None or c.kind == kind) and not c.ws.closed
            ]
        )

    def subscribed_topics(self) -> set[str]:
        """Public topics with at least one subscriber (linear)."""
        return self.call(self.state.hub.public_topics)

    def wait_for(
        self, predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02
    ) -> bool:
        """Poll ``predicate`` (in the caller's thread) until true or ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(interval)
        return predicate()


__all__ = ["BybitError", "EmulatorConfig", "EmulatorServer", "build_app"]
