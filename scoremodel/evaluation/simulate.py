"""One cost-aware position simulator for the model strategy and every baseline.

Mirrors ``strategies/score_matching.py`` (decision on bar t's close, fill at bar t+1's open):

1. decision rules, vectorised (:func:`decide_leverage`): density filter -> flat; no direction,
   confidence below ``min_confidence`` or a direction not stable for ``consistency_bars`` bars
   -> flat (or hold, with ``hold_when_blocked``); else the volatility-targeted leverage
   L_t = d_t c_t min(sigma* / (sigma_t sqrt(N)), L_max)
   (d direction, c confidence, sigma* target annual volatility, sigma_t the 20-bar volatility,
   N bars per year, L_max max leverage), as ``strategies.sizing.target_notional``;
2. execution, one sequential pass (:func:`simulate`), the only path-dependent part: the risk
   rules of ``strategies.risk`` scale L_t by the allowed exposure (drawdown ladder,
   max-drawdown halt, daily loss stop), the no-trade band of ``strategies.sizing.order_quantity``
   skips small resizes, fills at the next open pay the taker fee on |traded notional|.

Simplifications against the event-level Nautilus backtest: no partial fills, no slippage
(the backtest's one tick is ~0.0003 % at BTC prices), no lot rounding or minimum notional, no
``max_notional`` cap, no funding (Nautilus simulates none either), equity in units of the
starting equity (a linear perpetual: P&L = quantity x price change).
"""

from __future__ import annotations

import math
from dataclasses import asdict
from dataclasses import dataclass

import numpy as np
import pandas as pd

NANOS_PER_DAY = 86_400_000_000_000


@dataclass(frozen=True)
class SimConfig:
    """The strategy's decision, sizing, risk and cost settings (ScoreMatchingConfig defaults)."""

    min_confidence: float = 0.6
    consistency_bars: int = 3
    hold_when_blocked: bool = False
    target_annual_vol: float = 0.30
    max_leverage: float = 2.0
    no_trade_band: float = 0.05
    taker_fee: float = 0.00055  # Bybit non-VIP linear perpetual taker fee
    risk_rules: bool = True
    max_drawdown: float = 0.20
    reduce_drawdown: float = 0.10
    daily_loss_limit: float = 0.05
    close_at_end: bool = True  # flatten at the last close, paying the fee (on_stop)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SimResult:
    """Per-bar paths of one simulated run, indexed by bar close time."""

    equity: pd.Series  # mark-to-market equity at each close, starts at 1
    leverage: pd.Series  # signed notional / equity held over the bar ending here
    fees: pd.Series  # fees paid at the fill inside the bar ending here (equity units)
    traded: pd.Series  # |traded notional| / equity at that fill
    gross_pnl: pd.Series  # P&L of the bar before fees (equity units)
    target: np.ndarray  # the decided leverage per close (NaN: hold)

    @property
    def returns(self) -> pd.Series:
        """Per-bar net returns r_t = E_t / E_{t-1} - 1 (first bar dropped)."""
        return self.equity.pct_change().iloc[1:]


def vol_target_leverage(bar_vol: np.ndarray, bars_per_year: float, cfg: SimConfig) -> np.ndarray:
    """min(sigma* / (sigma_t sqrt(N)), L_max); a flat market (sigma_t = 0) gets L_max."""
    annual = np.asarray(bar_vol, dtype=np.float64) * math.sqrt(bars_per_year)
    safe = np.where(annual > 0.0, annual, 1.0)
    capped = np.minimum(cfg.target_annual_vol / safe, cfg.max_leverage)
    return np.where(annual > 0.0, capped, cfg.max_leverage)


def stable_direction(direction: np.ndarray, bars: int) -> np.ndarray:
    """True where the last ``bars`` directions (this one included) are equal and non-zero."""
    d = np.asarray(direction, dtype=np.int64)
    stable = d != 0
    for lag in range(1, bars):
        same = np.zeros(len(d), dtype=bool)
        same[lag:] = d[lag:] == d[:-lag]
        stable &= same
    return stable


def decide_leverage(
    direction: np.ndarray,
    confidence: np.ndarray,
    in_distribution: np.ndarray,
    bar_vol: np.ndarray,
    bars_per_year: float,
    cfg: SimConfig,
) -> np.ndarray:
    """Target leverage per bar from the strategy's filters; NaN = keep the current position."""
    direction = np.asarray(direction, dtype=np.int64)
    confidence = np.clip(np.asarray(confidence, dtype=np.float64), 0.0, 1.0)
    familiar = np.asarray(in_distribution, dtype=bool)
    trade = (
        familiar
        & (confidence >= cfg.min_confidence)
        & stable_direction(direction, cfg.consistency_bars)
    )
    size = direction * confidence * vol_target_leverage(bar_vol, bars_per_year, cfg)
    blocked = np.nan if cfg.hold_when_blocked else 0.0
    return np.where(trade, size, np.where(familiar, blocked, 0.0))


def order_quantity(
    target: float, current: float, price: float, equity: float, band: float
) -> float:
    """strategies.sizing.order_quantity: skip resizes smaller than ``band`` x equity."""
    difference = target - current
    if difference == 0.0:
        return 0.0
    if target == 0.0 or target * current < 0.0:
        return difference
    if abs(difference) * price < band * equity:
        return 0.0
    return difference


class _Risk:
    """strategies.risk.assess_risk without resume: allowed exposure from the equity path."""

    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.high_water = 0.0
        self.day = -1
        self.day_start = 0.0
        self.day_stopped = False
        self.halted = False

    def exposure(self, equity: float, day: int) -> float:
        cfg = self.cfg
        if day != self.day:
            self.day, self.day_start, self.day_stopped = day, equity, False
        self.high_water = max(self.high_water, equity)
        drawdown = 1.0 - equity / self.high_water if self.high_water > 0 else 0.0
        daily_loss = 1.0 - equity / self.day_start if self.day_start > 0 else 0.0
        if self.halted or drawdown >= cfg.max_drawdown:
            self.halted = True
            return 0.0
        if self.day_stopped or daily_loss >= cfg.daily_loss_limit:
            self.day_stopped = True
            return 0.0
        if drawdown > cfg.reduce_drawdown:
            return (cfg.max_drawdown - drawdown) / (cfg.max_drawdown - cfg.reduce_drawdown)
        return 1.0


def simulate(bars: pd.DataFrame, target: np.ndarray, cfg: SimConfig) -> SimResult:
    """Trade ``target`` leverage (decided at each close) from the next open, with fees.

    E_{t+1} = E_t + q_t (o_{t+1} - c_t) - f |dq| o_{t+1} + q_{t+1} (c_{t+1} - o_{t+1}),
    q quantity (per unit of starting equity), f taker fee, o open, c close.
    """
    opens = bars["open"].to_numpy(np.float64).tolist()
    closes = bars["close"].to_numpy(np.float64).tolist()
    days = (bars.index.asi8 // NANOS_PER_DAY).tolist()
    targets = np.asarray(target, dtype=np.float64).tolist()
    n = len(closes)
    equity, leverage, fees, traded, gross = ([0.0] * n for _ in range(5))
    equity[0] = 1.0
    risk = _Risk(cfg) if cfg.risk_rules else None
    q, e = 0.0, 1.0
    for t in range(n - 1):
        o_next, c_now, c_next = opens[t + 1], closes[t], closes[t + 1]
        dq = 0.0
        scale = risk.exposure(e, days[t]) if risk and e > 0.0 else 1.0
        if e > 0.0 and (scale == 0.0 or not math.isnan(targets[t])):  # a risk stop flattens
            wanted = 0.0 if scale == 0.0 else targets[t] * scale * e / c_now
            dq = order_quantity(wanted, q, c_now, e, cfg.no_trade_band)
        pnl = q * (o_next - c_now)
        q += dq
        pnl += q * (c_next - o_next)
        fee = cfg.taker_fee * abs(dq) * o_next
        traded[t + 1] = abs(dq) * o_next / e if e > 0.0 else 0.0
        e = max(e + pnl - fee, 0.0)  # ruin ends the run
        q = q if e > 0.0 else 0.0
        equity[t + 1], fees[t + 1], gross[t + 1] = e, fee, pnl
        leverage[t + 1] = q * c_next / e if e > 0.0 else 0.0
    if cfg.close_at_end and q != 0.0:
        fee = cfg.taker_fee * abs(q) * closes[-1]
        traded[-1] += abs(q) * closes[-1] / equity[-1]
        equity[-1] -= fee
        fees[-1] += fee
    index = bars.index
    return SimResult(
        equity=pd.Series(equity, index=index, name="equity"),
        leverage=pd.Series(leverage, index=index, name="leverage"),
        fees=pd.Series(fees, index=index, name="fees"),
        traded=pd.Series(traded, index=index, name="traded"),
        gross_pnl=pd.Series(gross, index=index, name="gross_pnl"),
        target=np.asarray(target, dtype=np.float64),
    )
