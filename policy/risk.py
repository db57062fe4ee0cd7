"""Drawdown and daily-loss rules as pure functions of (state, equity, time).

- High-water mark from equity (account balance + unrealised PnL).
- Reduce ladder: between ``reduce_drawdown`` and ``max_drawdown`` the allowed exposure falls
  linearly from 1 to 0.
- Max drawdown: flatten (reduce-only) and halt; with ``resume_after_halt`` trading resumes
  after ``halt_cooldown_hours`` with the high-water mark reset to the equity of that moment.
- Daily loss limit: flatten and stop trading until the next UTC midnight.

No engine is needed to use or test these; the strategy stores :class:`RiskState` in its saved
state so a restart resumes with the same high-water mark, halt and daily baseline.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import replace
from enum import IntEnum
from typing import NamedTuple

from policy.calendar import NANOS_PER_DAY
from policy.calendar import NANOS_PER_HOUR


class RiskStatus(IntEnum):
    NORMAL = 0
    REDUCING = 1  # on the drawdown ladder
    DAILY_STOP = 2  # daily loss limit hit; flat until the next UTC day
    HALTED = 3  # max drawdown hit (or the kill switch); flat until resumed


@dataclass(frozen=True)
class RiskLimits:
    """The drawdown and daily-loss limits (defaults: :class:`policy.settings.PolicySettings`)."""

    max_drawdown: float
    reduce_drawdown: float
    daily_loss_limit: float
    resume_after_halt: bool
    halt_cooldown_hours: float

    def __post_init__(self) -> None:
        if self.reduce_drawdown > self.max_drawdown:
            raise ValueError(
                f"reduce_drawdown = {self.reduce_drawdown} must be at most max_drawdown = "
                f"{self.max_drawdown} (the ladder starts before the halt)"
            )


@dataclass(frozen=True)
class RiskState:
    """What the rules remember between bars (and across restarts)."""

    high_water_mark: float = 0.0
    day: int = -1  # UTC day number (ns // NANOS_PER_DAY) of day_start_equity
    day_start_equity: float = 0.0
    day_stopped: bool = False  # the daily loss limit was hit today
    halted: bool = False
    halted_at_ns: int = 0
    halt_reason: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RiskState:
        return cls(**json.loads(text))


class RiskDecision(NamedTuple):
    """The risk rules' verdict on one bar: the new state and the exposure they allow."""

    state: RiskState
    exposure: float  # allowed fraction of the strategy's target, in [0, 1]
    status: RiskStatus
    drawdown: float
    daily_loss: float


def assess_risk(state: RiskState, equity: float, ts_ns: int, limits: RiskLimits) -> RiskDecision:
    """Apply the rules to the equity at ``ts_ns``; returns the new state and allowed exposure."""
    state = _roll_day(state, equity, ts_ns)
    if equity > state.high_water_mark:  # (a new state only when something changes: per-bar path)
        state = replace(state, high_water_mark=equity)
    high_water_mark = state.high_water_mark
    drawdown = 1.0 - equity / high_water_mark if high_water_mark > 0 else 0.0
    daily_loss = 1.0 - equity / state.day_start_equity if state.day_start_equity > 0 else 0.0

    if state.halted and _may_resume(state, ts_ns, limits):
        state = replace(state, halted=False, halt_reason="", high_water_mark=equity)
        drawdown = 0.0
    if state.halted:
        return RiskDecision(state, 0.0, RiskStatus.HALTED, drawdown, daily_loss)
    if drawdown >= limits.max_drawdown:
        state = halt(state, ts_ns, f"max drawdown {drawdown:.1%} >= {limits.max_drawdown:.1%}")
        return RiskDecision(state, 0.0, RiskStatus.HALTED, drawdown, daily_loss)
    if state.day_stopped or daily_loss >= limits.daily_loss_limit:
        if not state.day_stopped:
            state = replace(state, day_stopped=True)
        return RiskDecision(state, 0.0, RiskStatus.DAILY_STOP, drawdown, daily_loss)
    if drawdown > limits.reduce_drawdown:
        span = limits.max_drawdown - limits.reduce_drawdown
        exposure = (limits.max_drawdown - drawdown) / span
        return RiskDecision(state, exposure, RiskStatus.REDUCING, drawdown, daily_loss)
    return RiskDecision(state, 1.0, RiskStatus.NORMAL, drawdown, daily_loss)


def halt(state: RiskState, ts_ns: int, reason: str) -> RiskState:
    """The halted state (also used by the kill switch)."""
    return replace(state, halted=True, halted_at_ns=ts_ns, halt_reason=reason)


def _roll_day(state: RiskState, equity: float, ts_ns: int) -> RiskState:
    """At the first update of a new UTC day the daily baseline becomes the current equity."""
    day = ts_ns // NANOS_PER_DAY
    if day == state.day:
        return state
    return replace(state, day=day, day_start_equity=equity, day_stopped=False)


def _may_resume(state: RiskState, ts_ns: int, limits: RiskLimits) -> bool:
    cooldown_ns = limits.halt_cooldown_hours * NANOS_PER_HOUR
    return limits.resume_after_halt and ts_ns - state.halted_at_ns >= cooldown_ns
