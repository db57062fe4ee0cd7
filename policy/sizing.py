"""Position sizing as pure functions: volatility target, caps, exchange rounding, no-trade band."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class SizingRules:
    """Volatility target and caps (defaults: :class:`policy.settings.PolicySettings`)."""

    target_annual_vol: float  # of equity
    max_leverage: float  # |notional| <= max_leverage * equity
    max_notional: float | None  # quote currency; None: no cap
    no_trade_band: float  # skip changes smaller than this fraction of equity


@dataclass(frozen=True)
class LotRules:
    """The instrument's order-size constraints."""

    qty_step: float
    min_qty: float
    min_notional: float
    max_qty: float = math.inf


def leverage_cap(bar_volatility: float, annualisation: float, rules: SizingRules) -> float:
    """min(sigma* / (sigma_bar sqrt(N)), L_max): the volatility target's leverage, capped;
    a flat market (sigma_bar = 0) gets L_max."""
    annual_volatility = bar_volatility * math.sqrt(annualisation)
    if annual_volatility <= 0.0:
        return rules.max_leverage
    return min(rules.target_annual_vol / annual_volatility, rules.max_leverage)


def target_notional(
    direction: int,
    scale: float,
    bar_volatility: float,
    equity: float,
    annualisation: float,
    rules: SizingRules,
) -> float:
    """Signed notional for a volatility-targeted position.

    |notional| = equity * scale * target_vol / (bar_vol * sqrt(bars per year)), capped at
    max_leverage * equity and max_notional. ``scale`` in [0, 1] carries confidence and the
    risk rules' allowed exposure.
    """
    if direction == 0 or scale <= 0.0 or equity <= 0.0:
        return 0.0
    leverage = leverage_cap(bar_volatility, annualisation, rules)
    notional = equity * leverage * min(scale, 1.0)
    if rules.max_notional is not None:
        notional = min(notional, rules.max_notional)
    return math.copysign(notional, direction)


def to_quantity(notional: float, price: float, lots: LotRules) -> float:
    """Signed quantity for ``notional``, rounded toward zero to the qty step; 0 below minimums."""
    if price <= 0.0 or notional == 0.0:
        return 0.0
    steps = math.floor(abs(notional) / price / lots.qty_step + 1e-9)
    qty = min(steps * lots.qty_step, lots.max_qty)
    if qty < lots.min_qty or qty * price < lots.min_notional:
        return 0.0
    return math.copysign(qty, notional)


def order_quantity(
    target_qty: float, current_qty: float, price: float, equity: float, rules: SizingRules
) -> float:
    """Signed quantity to trade (0: none); changes inside the no-trade band are skipped.

    Going flat, or reversing, is always allowed: the band only stops resizing churn.
    """
    difference = target_qty - current_qty
    if difference == 0.0:
        return 0.0
    if target_qty == 0.0 or target_qty * current_qty < 0.0:
        return difference
    if abs(difference) * price < rules.no_trade_band * equity:
        return 0.0
    return difference
