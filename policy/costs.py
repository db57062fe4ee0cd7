"""What a trade costs, in units of the traded notional (a fraction of price), and the rules
of the costs the strategy and the evaluation's simulator both charge: which fee applies to an
execution style, where a maker order rests and when bars fill it, and perpetual funding.

Each rule is written here once; the Nautilus strategy, the backtest's funding module
(``runtime/funding.py``) and the evaluation's simulator (``evaluation/simulate.py``) call it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TAKER = "taker"  # market orders: the taker fee, slippage
MAKER = "maker"  # post-only limits: the maker fee, no slippage, fills only on trade-through
EXECUTION_STYLES = (TAKER, MAKER)


@dataclass(frozen=True)
class Costs:
    """Fee and slippage per side; the venue's fee, the policy's slippage estimate."""

    fee: float  # per side, e.g. Bybit's taker fee 0.00055
    slippage: float  # per side, an estimate (the backtest fills one tick off the open)

    def __post_init__(self) -> None:
        if self.fee < 0.0 or self.slippage < 0.0:
            raise ValueError(f"fee and slippage must be >= 0, got {self.fee}, {self.slippage}")

    @property
    def per_side(self) -> float:
        """Cost of entering or leaving a position: c/2."""
        return self.fee + self.slippage

    @property
    def round_trip(self) -> float:
        """Cost of opening and later closing a position: c = 2 (fee + slippage)."""
        return 2.0 * self.per_side


def execution_fee(execution: str, maker_fee: float, taker_fee: float) -> float:
    """The fee per side under ``execution``: the maker fee for post-only limits (``maker``),
    the taker fee for market orders (``taker``)."""
    if execution == MAKER:
        return maker_fee
    if execution == TAKER:
        return taker_fee
    raise ValueError(f"execution {execution!r} is not one of {', '.join(EXECUTION_STYLES)}")


# ----- maker orders on bars ---------------------------------------------------------------------


def maker_limit_price(close: float, buy: bool, tick: float) -> float:
    """A post-only limit on the passive side of the decision bar's close: a buy one tick below
    it, a sell one tick above (after a bar the book's bid and ask are both its close, so an
    order at the close itself would cross and be rejected as post-only)."""
    return close - tick if buy else close + tick


def trades_through(limit: float, buy: bool, low: float, high: float) -> bool:
    """Whether a bar fills a resting limit: only when it trades *through* the price (a buy when
    a lower price trades, a sell when a higher one does); a touch fills nothing (no queue)."""
    return low < limit if buy else high > limit


def maker_fill_price(limit: float, buy: bool, bar_open: float) -> float:
    """A filled limit's price: its limit, or the better opening price of a bar that gaps
    through it."""
    return min(limit, bar_open) if buy else max(limit, bar_open)


# ----- perpetual funding ------------------------------------------------------------------------


def funding_payment(position: float, mark: float, rate: float) -> float:
    """Funding paid at one funding time: signed position x mark price x rate. Positive leaves
    the account (a long at a positive rate), negative is received (a short at a positive rate,
    a long at a negative one). Works elementwise on numpy arrays."""
    return position * mark * rate


def funding_marks(
    bar_times: np.ndarray, closes: np.ndarray, funding_times: np.ndarray
) -> np.ndarray:
    """The mark price of each funding time: the close of the last bar closing at or before it
    (NaN before the first close). Times are int64 nanoseconds, ``bar_times`` ascending."""
    at = np.searchsorted(bar_times, funding_times, side="right") - 1
    closes = np.asarray(closes, dtype=np.float64)
    return np.where(at >= 0, closes[np.maximum(at, 0)], np.nan)
