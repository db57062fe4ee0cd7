"""The decision per bar: filters -> target position -> risk rules -> order size.

:class:`Policy` holds what the rules remember between bars (recent directions, the risk state)
and turns one bar's model view, account and price into a :class:`Decision`. The Nautilus
strategy calls it on every bar; the evaluation's simulator calls the same object on every
simulated bar, so a rule changed here is changed for both.
"""

from __future__ import annotations

import math
from collections import deque
from typing import NamedTuple

from policy.costs import Costs
from policy.edge import ForecastView
from policy.edge import edge_confidence
from policy.edge import entry_side
from policy.edge import keeps_position
from policy.edge import kelly_leverage
from policy.filters import Blocker
from policy.filters import direction_is_stable
from policy.filters import signal_blocker
from policy.risk import RiskDecision
from policy.risk import RiskState
from policy.risk import RiskStatus
from policy.risk import assess_risk
from policy.risk import halt
from policy.settings import PolicySettings
from policy.sizing import LotRules
from policy.sizing import leverage_cap
from policy.sizing import order_quantity
from policy.sizing import target_notional
from policy.sizing import to_quantity

UNROUNDED = LotRules(qty_step=0.0, min_qty=0.0, min_notional=0.0)  # no exchange rounding
NO_COSTS = Costs(fee=0.0, slippage=0.0)


class Decision(NamedTuple):
    """One bar's outcome: why (blocker), where to be (target), what to send now (order)."""

    blocker: Blocker
    target: float  # signed quantity wanted
    order: float  # signed quantity to trade now; 0.0: no order
    reduce_only: bool  # the order only reduces the position (or a risk stop forces it)
    risk: RiskDecision


class Policy:
    """The trading rules with their memory; one instance per traded instrument."""

    def __init__(
        self,
        settings: PolicySettings,
        annualisation: float,
        lots: LotRules = UNROUNDED,
        risk: RiskState | None = None,
        risk_rules: bool = True,
        costs: Costs = NO_COSTS,
        horizon: int = 1,
    ) -> None:
        self.settings = settings
        self.annualisation = annualisation  # bars per year
        self.lots = lots
        self.risk_rules = risk_rules  # False: never scale or stop (a buy-and-hold baseline)
        self.risk = risk if risk is not None else RiskState()
        self.directions: deque[int] = deque(maxlen=settings.consistency_bars)
        self.costs = costs  # forecast mode: what a round trip costs
        self.horizon = horizon  # forecast mode: bars the forecast looks ahead
        self.held_side = 0  # the position's side at the last decision
        self.bars_held = 0  # decisions since the position took that side

    def observe(self, direction: int) -> None:
        """Remember a bar's direction (every bar, warm-up history included)."""
        self.directions.append(direction)

    def forget_directions(self) -> None:
        """After a gap in the bars the direction history no longer describes consecutive bars."""
        self.directions.clear()

    def halt(self, ts_ns: int, reason: str) -> None:
        """Halt now (the kill switch): flat, and no new positions until resumed."""
        self.risk = halt(self.risk, ts_ns, reason)

    def decide(
        self,
        ts_ns: int,
        in_distribution: bool,
        direction: int,
        confidence: float,
        bar_volatility: float,
        equity: float,
        price: float,
        position: float,
    ) -> Decision:
        """This bar's decision; call :meth:`observe` with its direction first."""
        risk = self.assess_risk(equity, ts_ns)
        if risk.exposure == 0.0:
            blocker = Blocker.RISK
        else:
            stable = direction_is_stable(self.directions, self.settings.consistency_bars)
            blocker = signal_blocker(in_distribution, direction, confidence, stable, self.settings)
        target = self.target_quantity(
            blocker, direction, confidence * risk.exposure, bar_volatility, equity, price, position
        )
        return self.order_towards(target, position, price, equity, blocker, risk)

    def decide_forecast(
        self,
        ts_ns: int,
        in_distribution: bool,
        view: ForecastView,
        bar_volatility: float,
        equity: float,
        price: float,
        position: float,
    ) -> Decision:
        """Edge mode: enter only an edge that beats its costs (else ``EDGE``) with enough
        confidence that the trade clears them (else ``CONFIDENCE``), hold for the horizon with
        hysteresis, size by fractional Kelly under the caps (:mod:`policy.edge`)."""
        side = (position > 0.0) - (position < 0.0)
        self._track_holding(side)
        risk = self.assess_risk(equity, ts_ns)
        if risk.exposure == 0.0:
            return self.order_towards(0.0, position, price, equity, Blocker.RISK, risk)
        if not in_distribution:
            return self.order_towards(0.0, position, price, equity, Blocker.DENSITY, risk)
        s = self.settings
        wanted = entry_side(view, self.costs, s.edge_margin)
        blocker = Blocker.EDGE
        if wanted != 0 and edge_confidence(view) < s.min_confidence:
            wanted, blocker = 0, Blocker.CONFIDENCE
        if wanted != 0:
            kelly = kelly_leverage(view, self.costs, s.kelly_fraction)
            cap = leverage_cap(bar_volatility, self.annualisation, s.sizing)
            notional = target_notional(
                wanted, kelly / cap * risk.exposure, bar_volatility, equity, self.annualisation,
                s.sizing,
            )  # fmt: skip
            target = self.to_quantity(notional, price)
            return self.order_towards(target, position, price, equity, Blocker.NONE, risk)
        if side != 0 and keeps_position(side, self.bars_held, self.horizon, view, self.costs):
            return self.order_towards(position, position, price, equity, Blocker.NONE, risk)
        return self.order_towards(0.0, position, price, equity, blocker, risk)

    def _track_holding(self, side: int) -> None:
        if side != self.held_side:
            self.held_side, self.bars_held = side, 0
        else:
            self.bars_held += 1

    def decide_leverage(
        self, ts_ns: int, leverage: float, equity: float, price: float, position: float
    ) -> Decision:
        """A baseline that dictates its leverage (NaN: hold) under the same risk and order
        rules: the risk rules scale it, the no-trade band and lot rules apply."""
        risk = self.assess_risk(equity, ts_ns)
        if risk.exposure == 0.0:
            target, blocker = 0.0, Blocker.RISK
        elif math.isnan(leverage):
            target, blocker = position, Blocker.NONE
        else:
            target = self.to_quantity(leverage * risk.exposure * equity, price)
            blocker = Blocker.NONE
        return self.order_towards(target, position, price, equity, blocker, risk)

    def assess_risk(self, equity: float, ts_ns: int) -> RiskDecision:
        """Apply the risk rules to ``equity`` at ``ts_ns`` and remember the new risk state."""
        if not self.risk_rules:
            return RiskDecision(self.risk, 1.0, RiskStatus.NORMAL, 0.0, 0.0)
        decision = assess_risk(self.risk, equity, ts_ns, self.settings.limits)
        self.risk = decision.state
        return decision

    def target_quantity(
        self,
        blocker: Blocker,
        direction: int,
        scale: float,
        bar_volatility: float,
        equity: float,
        price: float,
        position: float,
    ) -> float:
        """Where to be: flat when risk or density block, the current position or flat when
        another filter blocks, else the volatility-targeted size x ``scale``."""
        if blocker in (Blocker.RISK, Blocker.DENSITY):
            return 0.0
        if blocker != Blocker.NONE:
            return position if self.settings.hold_when_blocked else 0.0
        notional = target_notional(
            direction, scale, bar_volatility, equity, self.annualisation, self.settings.sizing
        )
        return self.to_quantity(notional, price)

    def to_quantity(self, notional: float, price: float) -> float:
        """Signed quantity for ``notional`` at ``price``, rounded to the lot rules if any."""
        if self.lots.qty_step > 0.0:
            return to_quantity(notional, price, self.lots)
        return notional / price if price > 0.0 else 0.0

    def order_towards(
        self,
        target: float,
        position: float,
        price: float,
        equity: float,
        blocker: Blocker,
        risk: RiskDecision,
    ) -> Decision:
        """The order that moves ``position`` to ``target``: none inside the no-trade band or
        below the minimum notional (unless it reduces); reduce-only when it only reduces."""
        quantity = order_quantity(target, position, price, equity, self.settings.sizing)
        reduces = abs(target) < abs(position) and target * position >= 0.0
        if not reduces and abs(quantity) * price < self.lots.min_notional:
            quantity = 0.0
        reduce_only = reduces or risk.exposure == 0.0
        return Decision(blocker, target, quantity, reduce_only, risk)
