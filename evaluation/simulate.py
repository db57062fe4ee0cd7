"""One position simulator for the model strategy and every baseline, on the strategy's rules.

Each bar's decision is made by :class:`policy.decision.Policy`, the object the Nautilus
strategy calls on every bar: filters -> target -> risk rules -> order size, with the same
settings. A decision on bar t's close fills at bar t+1's open and pays the taker fee on the
traded notional:

    E_{t+1} = E_t + q_t (o_{t+1} - c_t) - f |dq| o_{t+1} + q_{t+1} (c_{t+1} - o_{t+1})

(q quantity, f taker fee, o open, c close). Simplifications against the event-level Nautilus
backtest: no partial fills, no slippage or latency (the backtest's one tick is ~0.0003 % at BTC
prices), no funding (Nautilus 1.231 charges none either). Equity is tracked in the quote
currency from ``starting_balance`` (so ``max_notional`` and minimum notionals apply) and
reported in units of the starting balance.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from policy.decision import UNROUNDED
from policy.decision import Decision
from policy.decision import Policy
from policy.edge import NO_VIEW
from policy.edge import shrink_view
from policy.settings import PolicySettings
from policy.sizing import LotRules

TAKER_FEE = 0.00055  # Bybit non-VIP linear perpetual taker fee (catalogs.instruments' default)


@dataclass(frozen=True)
class Execution:
    """The simulated venue: fees, account size, exchange lot rules."""

    taker_fee: float = TAKER_FEE
    starting_balance: float = 100_000.0  # quote currency, as the backtest's default
    lots: LotRules = UNROUNDED
    close_at_end: bool = True  # flatten at the last close, paying the fee (the strategy's on_stop)


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
    gross_pnl: pd.Series  # P&L of the bar before fees (equity units)
    target: np.ndarray  # the decided leverage per close (target notional / equity)
    decisions: list[Decision]  # the policy's decision per close

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
    """The sequential pass: decide at each close, fill at the next open, mark at each close."""
    opens = bars["open"].to_numpy(np.float64).tolist()
    closes = bars["close"].to_numpy(np.float64).tolist()
    stamps = bars.index.asi8.tolist()
    n = len(closes)
    fee_rate, start = execution.taker_fee, execution.starting_balance
    equity, leverage, fees, traded, gross, target = ([0.0] * n for _ in range(6))
    decisions: list[Decision] = []
    equity[0] = start
    q, e = 0.0, start
    for t in range(n - 1):
        o_next, c_now, c_next = opens[t + 1], closes[t], closes[t + 1]
        dq = 0.0
        if e > 0.0:
            decision = decide(t, stamps[t], e, c_now, q)
            decisions.append(decision)
            dq = decision.order
            target[t] = decision.target * c_now / e
        pnl = q * (o_next - c_now)
        q += dq
        pnl += q * (c_next - o_next)
        fee = fee_rate * abs(dq) * o_next
        traded[t + 1] = abs(dq) * o_next / e if e > 0.0 else 0.0
        e = max(e + pnl - fee, 0.0)  # ruin ends the run
        q = q if e > 0.0 else 0.0
        equity[t + 1], fees[t + 1], gross[t + 1] = e, fee, pnl
        leverage[t + 1] = q * c_next / e if e > 0.0 else 0.0
    if execution.close_at_end and q != 0.0 and equity[-1] > 0.0:
        fee = fee_rate * abs(q) * closes[-1]
        traded[-1] += abs(q) * closes[-1] / equity[-1]
        equity[-1] -= fee
        fees[-1] += fee
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


def simulate_forecasts(
    bars: pd.DataFrame,
    forecasts: ForecastPath,
    settings: PolicySettings,
    bars_per_year: float,
    horizon: int,
    execution: Execution = Execution(),
) -> SimResult:
    """Trade a forecaster through the policy's edge mode, as the Nautilus strategy would: only
    an edge that beats the round-trip cost at ``execution``'s fee (:mod:`policy.edge`)."""
    policy = Policy(
        settings,
        bars_per_year,
        lots=execution.lots,
        costs=settings.costs(fee=execution.taker_fee),
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
        shrink_view(*values, forecasts.shrinkage, costs) if np.isfinite(values).all() else NO_VIEW
        for values in zip(*(np.asarray(c, dtype=np.float64).tolist() for c in columns), strict=True)
    ]
    familiar = np.asarray(forecasts.in_distribution, dtype=bool).tolist()
    volatility = np.asarray(forecasts.bar_volatility, dtype=np.float64).tolist()

    def decide(t: int, ts: int, equity: float, price: float, position: float) -> Decision:
        return policy.decide_forecast(
            ts, familiar[t], views[t], volatility[t], equity, price, position
        )

    return _run(bars, decide, execution)
