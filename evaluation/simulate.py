"""One position simulator for the model strategy and every baseline, on the strategy's rules.

Each bar's decision is made by :class:`policy.decision.Policy`, the object the Nautilus
strategy calls on every bar: filters -> target -> risk rules -> order size, with the same
settings. With ``taker`` execution (market orders) a decision on bar t's close fills at bar
t+1's open and pays the taker fee on the traded notional:

    E_{t+1} = E_t + q_t (c_{t+1} - c_t) + dq (c_{t+1} - p) - f |dq| p - q_{t+1} F_{t+1}

(q quantity, p the fill price, f the fee, c close; F_{t+1} the funding per unit of position of
the funding times in (c_t's time, c_{t+1}'s time], below). With ``maker`` execution (post-only
limits, :mod:`policy.costs`) the decision rests a limit one ``price_tick`` on the passive side
of bar t's close; it fills only on a later bar that trades *through* it (a buy when the bar's
low is below the limit, a sell when the high is above), at the limit or at a better open, pays
the maker fee and never slips; unfilled after ``maker_timeout_bars`` bars it is cancelled (and
counted). As in the strategy, no new order is sent while one rests (decisions still update
the policy's memory), nor at the close where it times out.

Funding (:func:`with_funding`): at each funding time T the position held into T pays position
x the last close at or before T x rate (:func:`policy.costs.funding_payment`, the rule of the
backtest's funding module): a long pays a positive rate, a short receives it. A funding time
inside a bar sees the position at that bar's close. Bars without the funding column are
simulated without funding (the report says funding was not charged).

Simplifications against the event-level Nautilus backtest: no partial fills, no slippage or
latency on market orders (the backtest's one tick is ~0.0003 % at BTC prices), no queue for
limits. Equity is tracked in the quote currency from ``starting_balance`` (so ``max_notional``
and minimum notionals apply) and reported in units of the starting balance.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from policy.costs import MAKER
from policy.costs import TAKER
from policy.costs import execution_fee
from policy.costs import funding_marks
from policy.costs import funding_payment
from policy.costs import maker_fill_price
from policy.costs import maker_limit_price
from policy.costs import trades_through
from policy.decision import UNROUNDED
from policy.decision import Decision
from policy.decision import Policy
from policy.edge import NO_VIEW
from policy.edge import shrink_view
from policy.settings import PolicySettings
from policy.sizing import LotRules

TAKER_FEE = 0.00055  # Bybit non-VIP linear perpetual taker fee (catalogs.instruments' default)
MAKER_FEE = 0.0002  # Bybit non-VIP linear perpetual maker fee (catalogs.instruments' default)
FUNDING = "funding_per_unit"  # bars column: sum of mark x rate over the bar's funding times
FUNDING_TIMES = "funding_times"  # bars column: how many funding times fall in the bar


@dataclass(frozen=True)
class Execution:
    """The simulated venue: execution style, fees, account size, exchange lot rules."""

    taker_fee: float = TAKER_FEE
    starting_balance: float = 100_000.0  # quote currency, as the backtest's default
    lots: LotRules = UNROUNDED
    close_at_end: bool = True  # flatten at the last close, paying the fee (the strategy's on_stop)
    style: str = TAKER  # the run configuration's execution: taker (market) | maker (post-only)
    maker_fee: float = MAKER_FEE
    maker_timeout_bars: int = 1  # maker: cancel an unfilled limit after this many bars
    price_tick: float = 0.0  # maker: the limit rests this far from the close (0: at the close)

    def __post_init__(self) -> None:
        execution_fee(self.style, self.maker_fee, self.taker_fee)  # a known style
        if self.maker_timeout_bars < 1:
            raise ValueError(f"maker_timeout_bars must be >= 1, got {self.maker_timeout_bars}")

    @property
    def fee(self) -> float:
        """The fee per side of the style in force (:func:`policy.costs.execution_fee`)."""
        return execution_fee(self.style, self.maker_fee, self.taker_fee)


def with_funding(bars: pd.DataFrame, rates: pd.Series) -> pd.DataFrame:
    """``bars`` with the funding of each bar per unit of position: for the funding times T in
    (previous close, this close], the sum of mark(T) x rate(T), the mark being the last close at
    or before T (:func:`policy.costs.funding_marks`); and how many funding times fall in it.
    Times after the last close or before the first are left out (outside the bars)."""
    closes = bars["close"].to_numpy(np.float64)
    bar_times = bars.index.asi8
    times = pd.DatetimeIndex(rates.index).asi8
    marks = funding_marks(bar_times, closes, times)
    at = np.searchsorted(bar_times, times, side="left")  # the bar whose close is at or after T
    inside = (at < len(bars)) & ~np.isnan(marks)
    per_unit = funding_payment(1.0, marks[inside], rates.to_numpy(np.float64)[inside])
    out = bars.copy()
    out[FUNDING] = np.bincount(at[inside], weights=per_unit, minlength=len(bars))
    out[FUNDING_TIMES] = np.bincount(at[inside], minlength=len(bars))
    return out


@dataclass(frozen=True)
class SignalPath:
    """A strategy's view per bar; the first ``lead`` bars only feed the direction history."""

    direction: np.ndarray
    confidence: np.ndarray
    in_distribution: np.ndarray
    bar_volatility: np.ndarray
    lead: int = 0


@dataclass(frozen=True)
class SimResult:
    """Per-bar paths of one simulated run, indexed by bar close time."""

    equity: pd.Series  # mark-to-market equity at each close, starts at 1
    leverage: pd.Series  # signed notional / equity held over the bar ending here
    fees: pd.Series  # fees paid at the fill inside the bar ending here (equity units)
    traded: pd.Series  # |traded notional| / equity at that fill
    gross_pnl: pd.Series  # P&L of the bar before fees and funding (equity units)
    target: np.ndarray  # the decided leverage per close (target notional / equity)
    decisions: list[Decision]  # the policy's decision per close
    funding: pd.Series  # funding paid over the bar ending here (equity units; < 0 received)
    fills_maker: int = 0  # limits filled (maker execution)
    fills_taker: int = 0  # market fills (taker execution; the final flatten)
    unfilled: int = 0  # maker limits cancelled unfilled after the timeout
    funding_times: int | None = None  # funding times inside the bars; None: no funding data

    @property
    def returns(self) -> pd.Series:
        """Per-bar net returns r_t = E_t / E_{t-1} - 1 (first bar dropped)."""
        return self.equity.pct_change().iloc[1:]


def simulate_signals(
    bars: pd.DataFrame,
    signals: SignalPath,
    settings: PolicySettings,
    bars_per_year: float,
    execution: Execution = Execution(),
) -> SimResult:
    """Trade a strategy's per-bar view through the policy, as the Nautilus strategy would."""
    policy = Policy(settings, bars_per_year, lots=execution.lots)
    for direction in signals.direction[: signals.lead]:
        policy.observe(int(direction))
    lead = signals.lead
    direction = signals.direction[lead:].astype(np.int64).tolist()
    confidence = np.asarray(signals.confidence[lead:], dtype=np.float64).tolist()
    familiar = np.asarray(signals.in_distribution[lead:], dtype=bool).tolist()
    volatility = np.asarray(signals.bar_volatility[lead:], dtype=np.float64).tolist()

    def decide(t: int, ts: int, equity: float, price: float, position: float) -> Decision:
        policy.observe(direction[t])
        return policy.decide(
            ts, familiar[t], direction[t], confidence[t], volatility[t], equity, price, position
        )

    return _run(bars, decide, execution)


def simulate_leverage(
    bars: pd.DataFrame,
    leverage: np.ndarray,
    settings: PolicySettings,
    bars_per_year: float,
    execution: Execution = Execution(),
    risk_rules: bool = True,
) -> SimResult:
    """Trade a dictated leverage path (NaN: hold) under the policy's risk and order rules."""
    policy = Policy(settings, bars_per_year, lots=execution.lots, risk_rules=risk_rules)
    path = np.asarray(leverage, dtype=np.float64).tolist()

    def decide(t: int, ts: int, equity: float, price: float, position: float) -> Decision:
        return policy.decide_leverage(ts, path[t], equity, price, position)

    return _run(bars, decide, execution)


Decide = Callable[[int, int, float, float, float], Decision]


def _run(bars: pd.DataFrame, decide: Decide, execution: Execution) -> SimResult:
    """The sequential pass: decide at each close, fill at the next open (taker) or when a later
    bar trades through the limit (maker), charge funding, mark at each close."""
    opens = bars["open"].to_numpy(np.float64).tolist()
    closes = bars["close"].to_numpy(np.float64).tolist()
    lows = bars["low"].to_numpy(np.float64).tolist()
    highs = bars["high"].to_numpy(np.float64).tolist()
    stamps = bars.index.asi8.tolist()
    n = len(closes)
    charged = FUNDING in bars.columns
    unit_funding = bars[FUNDING].to_numpy(np.float64).tolist() if charged else [0.0] * n
    maker, tick = execution.style == MAKER, execution.price_tick
    fee_rate, start = execution.fee, execution.starting_balance
    equity, leverage, fees, traded, gross, target, funding = ([0.0] * n for _ in range(7))
    decisions: list[Decision] = []
    equity[0] = start
    q, e = 0.0, start
    fills_maker = fills_taker = unfilled = 0
    resting = 0.0  # maker: the quantity of the limit resting, its price and last live bar
    limit, expires = 0.0, 0
    for t in range(n - 1):
        c_now, c_next = closes[t], closes[t + 1]
        order = 0.0
        if e > 0.0:
            decision = decide(t, stamps[t], e, c_now, q)
            decisions.append(decision)
            order = decision.order
            target[t] = decision.target * c_now / e
        if resting != 0.0:
            order = 0.0  # the strategy sends nothing while an order rests
            if t >= expires:  # timed out: cancelled after this close
                resting, unfilled = 0.0, unfilled + 1
        elif order != 0.0 and maker:
            resting, expires = order, t + execution.maker_timeout_bars
            limit = maker_limit_price(c_now, order > 0.0, tick)
            order = 0.0
        price = opens[t + 1]
        if resting != 0.0 and trades_through(limit, resting > 0.0, lows[t + 1], highs[t + 1]):
            order, price = resting, maker_fill_price(limit, resting > 0.0, opens[t + 1])
            resting, fills_maker = 0.0, fills_maker + 1
        elif order != 0.0:
            fills_taker += 1
        pnl = q * (c_next - c_now) + order * (c_next - price)
        q += order
        fee = fee_rate * abs(order) * price
        paid = q * unit_funding[t + 1]
        traded[t + 1] = abs(order) * price / e if e > 0.0 else 0.0
        e = max(e + pnl - fee - paid, 0.0)  # ruin ends the run
        q, resting = (q, resting) if e > 0.0 else (0.0, 0.0)
        equity[t + 1], fees[t + 1], gross[t + 1], funding[t + 1] = e, fee, pnl, paid
        leverage[t + 1] = q * c_next / e if e > 0.0 else 0.0
    if execution.close_at_end and q != 0.0 and equity[-1] > 0.0:
        fee = execution.taker_fee * abs(q) * closes[-1]  # on_stop closes with a market order
        traded[-1] += abs(q) * closes[-1] / equity[-1]
        equity[-1] -= fee
        fees[-1] += fee
        fills_taker += 1
    index = bars.index
    scale = 1.0 / start

    def series(values: list[float], name: str, scaled: bool) -> pd.Series:
        data = np.asarray(values) * scale if scaled else np.asarray(values)
        return pd.Series(data, index=index, name=name)

    return SimResult(
        equity=series(equity, "equity", True),
        leverage=series(leverage, "leverage", False),
        fees=series(fees, "fees", True),
        traded=series(traded, "traded", False),
        gross_pnl=series(gross, "gross_pnl", True),
        target=np.asarray(target, dtype=np.float64),
        decisions=decisions,
        funding=series(funding, "funding", True),
        fills_maker=fills_maker,
        fills_taker=fills_taker,
        unfilled=unfilled,
        funding_times=int(bars[FUNDING_TIMES].iloc[1:].sum()) if charged else None,
    )


@dataclass(frozen=True)
class ForecastPath:
    """A forecaster's predictive summary per bar (the traded horizon), and the density gate."""

    mean: np.ndarray  # E[r_h]
    std: np.ndarray
    p_above_cost: np.ndarray  # P(r_h > c)
    p_below_cost: np.ndarray  # P(r_h < -c)
    in_distribution: np.ndarray
    bar_volatility: np.ndarray
    shrinkage: float = 1.0  # the forecaster's validated mean slope (policy.edge.shrink_view)
    cdf_map: Callable[[float], float] | None = None  # its validated CDF map g (shrink_view)


def simulate_forecasts(
    bars: pd.DataFrame,
    forecasts: ForecastPath,
    settings: PolicySettings,
    bars_per_year: float,
    horizon: int,
    execution: Execution = Execution(),
) -> SimResult:
    """Trade a forecaster through the policy's edge mode, as the Nautilus strategy would: only
    an edge that beats the round-trip cost at the fee of ``execution``'s style (:mod:`policy.edge`,
    :func:`policy.costs.execution_fee`)."""
    policy = Policy(
        settings,
        bars_per_year,
        lots=execution.lots,
        costs=settings.costs(fee=execution.fee),
        horizon=horizon,
    )
    columns = (
        forecasts.mean,
        forecasts.std,
        forecasts.p_above_cost,
        forecasts.p_below_cost,
    )
    costs = policy.costs
    views = [
        shrink_view(*values, forecasts.shrinkage, costs, forecasts.cdf_map)
        if np.isfinite(values).all()
        else NO_VIEW
        for values in zip(*(np.asarray(c, dtype=np.float64).tolist() for c in columns), strict=True)
    ]
    familiar = np.asarray(forecasts.in_distribution, dtype=bool).tolist()
    volatility = np.asarray(forecasts.bar_volatility, dtype=np.float64).tolist()

    def decide(t: int, ts: int, equity: float, price: float, position: float) -> Decision:
        return policy.decide_forecast(
            ts, familiar[t], views[t], volatility[t], equity, price, position
        )

    return _run(bars, decide, execution)
