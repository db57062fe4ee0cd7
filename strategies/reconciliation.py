"""Check, on a timer, that the strategy's books are the venue's: its position and its balance.

Why: Nautilus (1.231) reconciles with the venue when a node starts, but while it runs it
knows only what the Bybit adapter parsed from the private websocket. A push the adapter cannot
parse is logged at DEBUG and dropped (an execution with a null where it expects text loses
the fill; a wallet push with a null leaves the balance, hence the equity that the drawdown
rules use, stale; an order push with ``triggerBy: "UNKNOWN"`` leaves a cancelled remainder
open for ever, and the strategy, waiting for it, never trades again), and the adapter ignores
Bybit's position pushes altogether. So the strategy asks the venue itself: a signed REST read
of ``/v5/position/list``, ``/v5/account/wallet-balance`` and ``/v5/order/realtime`` through
the adapter's own HTTP client (``nautilus_pyo3.BybitHttpClient``, keys read from the
environment by the client, as the execution client does), compared with the strategy's cached
position, account and open orders.

A disagreement must show, unchanged on the strategy's side, on :data:`CONFIRMATIONS`
consecutive checks spanning at least ``CONFIRMATIONS - 1`` intervals: the same position, the
same balance or the same open order of the strategy's against a different venue value. Pushes
still on their way after a fill, or a fill between the venue's answer and the comparison, are
not one, nor is a run of such transients on successive orders (the strategy's side moves from
one to the next); a lost fill or a stale balance stays put. Then the strategy logs a WARNING and
halts
(see :meth:`policy.decision.Policy.halt`; ``run_live.py resume`` clears it once the books
are put right).

The strategy gets the venue reader from the live node (``ScoreMatchingStrategy.venue_books``,
see :func:`bybit_venue_books`); backtests and sandbox have none, and nothing runs there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

import pandas as pd
from nautilus_trader.common.events import TimeEvent
from nautilus_trader.core import nautilus_pyo3
from nautilus_trader.model.identifiers import InstrumentId

if TYPE_CHECKING:
    from strategies.score_matching import ScoreMatchingStrategy

RECONCILE_TIMER = "venue-reconciliation"
#: Consecutive disagreeing checks (spanning CONFIRMATIONS - 1 intervals) before a halt.
CONFIRMATIONS = 3
#: Balances differing by less than this (settlement currency) agree (rounding of the venue).
BALANCE_TOLERANCE = Decimal("0.01")
#: Bybit's environment per live mode (keys: the client reads the mode's variables itself).
BYBIT_ENVIRONMENTS = {"demo": "DEMO", "testnet": "TESTNET", "mainnet": "MAINNET"}


@dataclass(frozen=True)
class Books:
    """A signed position in one instrument, the balance of its settlement currency and the
    client order ids of the open orders in the instrument."""

    position: Decimal
    balance: Decimal | None  # None: unknown (no account yet)
    open_orders: frozenset[str] = frozenset()


#: Reads the venue's books for the strategy's instrument; raises when the venue cannot answer.
VenueBooks = Callable[[], Awaitable[Books]]


@dataclass(frozen=True)
class Discrepancy:
    """What disagrees, the strategy's value and the venue's."""

    what: str  # "position", "balance" or "open order"
    ours: Decimal | str
    venue: Decimal | str

    def describe(self) -> str:
        return f"{self.what}: strategy {self.ours}, venue {self.venue}"

    @property
    def key(self) -> tuple[str, str]:
        """What identifies it from one check to the next: the field and the strategy's value
        (the venue's may move on while the strategy's stays stale)."""
        return self.what, str(self.ours)


def compare(ours: Books, venue: Books, lot: Decimal) -> list[Discrepancy]:
    """The differences beyond one ``lot`` (position) or :data:`BALANCE_TOLERANCE` (balance),
    and the strategy's open orders that the venue has closed."""
    found = []
    if abs(ours.position - venue.position) > lot:
        found.append(Discrepancy("position", ours.position, venue.position))
    if (
        ours.balance is not None
        and venue.balance is not None
        and abs(ours.balance - venue.balance) > BALANCE_TOLERANCE
    ):
        found.append(Discrepancy("balance", ours.balance, venue.balance))
    for client_order_id in sorted(ours.open_orders - venue.open_orders):
        found.append(Discrepancy("open order", client_order_id, "closed"))
    return found


class VenueReconciler:
    """Runs the check for a strategy: on each timer event one venue read (never two at once),
    then :func:`compare`; a disagreement (by :attr:`Discrepancy.key`) seen on
    :data:`CONFIRMATIONS` checks in a row, over at least ``CONFIRMATIONS - 1`` intervals,
    halts."""

    def __init__(
        self, strategy: ScoreMatchingStrategy, venue_books: VenueBooks, interval_secs: float
    ) -> None:
        self.strategy = strategy
        self.venue_books = venue_books
        self.interval = pd.Timedelta(seconds=interval_secs)
        self.loop = asyncio.get_event_loop()
        self.checks = 0  # completed checks
        self.failures = 0  # checks the venue could not answer
        self.seen: dict[tuple[str, str], tuple[int, int]] = {}  # key -> (first ns, checks)
        self.last: list[Discrepancy] = []
        self.reported = ""  # the confirmed disagreement last warned about
        self._in_flight = False

    def start(self, callback: Callable[[TimeEvent], None]) -> None:
        """Check every ``interval`` on the strategy's clock, calling ``callback``."""
        self.strategy.clock.set_timer(RECONCILE_TIMER, self.interval, callback=callback)

    def check(self) -> None:
        """Start one check (the venue read runs on the node's loop)."""
        if self._in_flight:
            return
        self._in_flight = True
        asyncio.run_coroutine_threadsafe(self._check(), self.loop)

    async def _check(self) -> None:
        try:
            venue = await self.venue_books()
        except Exception as error:  # the venue or the network; the next check tries again
            self.failures += 1
            self.strategy.log.warning(f"reconciliation: cannot read the venue's books: {error}")
            return
        finally:
            self._in_flight = False
        if self.strategy.is_running:  # not once it stopped (its timers are cancelled)
            self.observe(strategy_books(self.strategy), venue)

    @property
    def streak(self) -> int:
        """Consecutive checks on which the longest-standing current disagreement was seen."""
        return max((count for _, count in self.seen.values()), default=0)

    def observe(self, ours: Books, venue: Books) -> list[Discrepancy]:
        """Record one comparison; warn and halt once a disagreement is confirmed."""
        strategy = self.strategy
        self.checks += 1
        lot = Decimal(str(strategy.instrument.size_increment))
        self.last = compare(ours, venue, lot)
        now = strategy.clock.timestamp_ns()
        previous = self.seen
        self.seen = {}
        for discrepancy in self.last:
            first_ns, count = previous.get(discrepancy.key, (now, 0))
            self.seen[discrepancy.key] = (first_ns, count + 1)
        confirmed = [d for d in self.last if self._confirmed(d, now)]
        if not confirmed:
            if not self.last:
                self.reported = ""
            return self.last
        details = "; ".join(d.describe() for d in confirmed)
        if details == self.reported:
            return self.last
        self.reported = details
        strategy.log.warning(
            f"the strategy's books disagree with the venue's on {self.streak} checks in a row "
            f"({details}): Nautilus missed or could not parse a venue update; trading halted. "
            "Check the position and balance on Bybit, put them right there, then run "
            "`run_live.py resume`"
        )
        if not strategy.policy.risk.halted:
            strategy.policy.halt(now, f"reconciliation: {details}")
        return self.last

    def _confirmed(self, discrepancy: Discrepancy, now_ns: int) -> bool:
        first_ns, count = self.seen[discrepancy.key]
        lasting = now_ns - first_ns >= (CONFIRMATIONS - 1) * self.interval.value
        return count >= CONFIRMATIONS and lasting


def strategy_books(strategy: ScoreMatchingStrategy) -> Books:
    """The strategy's position in its instrument (from its own fills), account balance and
    open orders (accepted at the venue; orders still in flight are Nautilus's to resolve)."""
    instrument_id = strategy.config.instrument_id
    position = sum(
        (
            p.signed_decimal_qty()
            for p in strategy.cache.positions_open(
                instrument_id=instrument_id, strategy_id=strategy.id
            )
        ),
        Decimal(0),
    )
    account = strategy.portfolio.account(instrument_id.venue)
    currency = strategy.instrument.settlement_currency
    balance = None if account is None else account.balance_total(currency)
    open_orders = strategy.cache.orders_open(instrument_id=instrument_id, strategy_id=strategy.id)
    return Books(
        position,
        None if balance is None else balance.as_decimal(),
        frozenset(o.client_order_id.value for o in open_orders),
    )


def bybit_venue_books(
    mode: str, base_url_http: str | None, instrument_id: InstrumentId
) -> VenueBooks:
    """A reader of the Bybit account's position in ``instrument_id``, its USDT wallet balance
    and open orders, for live ``mode`` (demo/testnet/mainnet) at ``base_url_http`` (None:
    Bybit's)."""
    environment = getattr(nautilus_pyo3.BybitEnvironment, BYBIT_ENVIRONMENTS[mode])
    client = nautilus_pyo3.BybitHttpClient(
        api_key=None,  # the client reads the mode's key variables itself
        api_secret=None,
        base_url=base_url_http or nautilus_pyo3.get_bybit_http_base_url(environment),
        demo=mode == "demo",
        testnet=mode == "testnet",
        max_retries=1,
    )
    account_id = nautilus_pyo3.AccountId("BYBIT-UNIFIED")
    product_type = nautilus_pyo3.BybitProductType.LINEAR
    pyo3_instrument_id = nautilus_pyo3.InstrumentId.from_str(instrument_id.value)
    instruments_cached = False

    async def read() -> Books:
        nonlocal instruments_cached
        if not instruments_cached:
            for instrument in await client.request_instruments(product_type):
                client.cache_instrument(instrument)
            instruments_cached = True
        reports = await client.request_position_status_reports(
            account_id=account_id, product_type=product_type, instrument_id=pyo3_instrument_id
        )
        position = sum((signed_quantity(r) for r in reports), Decimal(0))
        state = await client.request_account_state(
            nautilus_pyo3.BybitAccountType.UNIFIED, account_id
        )
        orders = await client.request_order_status_reports(
            account_id=account_id,
            product_type=product_type,
            instrument_id=pyo3_instrument_id,
            open_only=True,
        )
        open_ids = frozenset(str(o.client_order_id) for o in orders if o.client_order_id)
        return Books(position, usdt_balance(state), open_ids)

    return read


def signed_quantity(report: nautilus_pyo3.PositionStatusReport) -> Decimal:
    """A position report's quantity, negative when short."""
    qty = abs(Decimal(str(report.quantity)))
    return -qty if report.is_short else qty


def usdt_balance(state: nautilus_pyo3.AccountState) -> Decimal | None:
    """The total USDT balance in a venue account state (None if it has no USDT)."""
    for balance in state.balances:
        values = balance.to_dict()
        total = str(values.get("total", ""))
        if total.endswith(" USDT") or values.get("currency") == "USDT":
            return Decimal(total.split()[0])
    return None
