"""Risk rules and sizing as pure functions, without an engine."""

from __future__ import annotations

import math

import pytest

from strategies.risk import NANOS_PER_DAY
from strategies.risk import NANOS_PER_HOUR
from strategies.risk import RiskLimits
from strategies.risk import RiskState
from strategies.risk import RiskStatus
from strategies.risk import assess_risk
from strategies.risk import halt
from strategies.sizing import LotRules
from strategies.sizing import SizingRules
from strategies.sizing import bars_per_year
from strategies.sizing import order_quantity
from strategies.sizing import target_notional
from strategies.sizing import to_quantity

LIMITS = RiskLimits(max_drawdown=0.20, reduce_drawdown=0.10, daily_loss_limit=0.05)
DAY0 = 19_000 * NANOS_PER_DAY  # a UTC midnight


def run(equities, limits=LIMITS, start=DAY0, step=NANOS_PER_HOUR, state=None):
    state = state or RiskState()
    decisions = []
    for i, equity in enumerate(equities):
        decision = assess_risk(state, equity, start + i * step, limits)
        state = decision.state
        decisions.append(decision)
    return decisions


def test_high_water_mark_follows_equity_up_only():
    decisions = run([100.0, 110.0, 105.0, 120.0])
    assert [d.state.high_water_mark for d in decisions] == [100.0, 110.0, 110.0, 120.0]
    assert decisions[2].drawdown == pytest.approx(1 - 105 / 110)


def test_reduce_ladder_is_linear_between_thresholds():
    limits = RiskLimits(max_drawdown=0.20, reduce_drawdown=0.10, daily_loss_limit=0.9)
    d = run([100.0, 95.0, 90.0, 85.0], limits=limits, step=NANOS_PER_DAY)
    assert [x.status for x in d] == [RiskStatus.NORMAL] * 3 + [RiskStatus.REDUCING]
    assert d[2].exposure == 1.0  # exactly at reduce_drawdown: still full
    assert d[3].exposure == pytest.approx(0.5)  # halfway between 10 % and 20 %


def test_max_drawdown_halts_and_stays_halted_without_resume():
    limits = RiskLimits(max_drawdown=0.20, reduce_drawdown=0.10, daily_loss_limit=0.9)
    d = run([100.0, 79.0, 120.0, 130.0], limits=limits, step=NANOS_PER_DAY)
    assert d[1].status == RiskStatus.HALTED and d[1].exposure == 0.0
    assert "max drawdown" in d[1].state.halt_reason
    assert all(x.status == RiskStatus.HALTED and x.exposure == 0.0 for x in d[2:])


def test_halt_resumes_after_cooldown_with_a_fresh_high_water_mark():
    limits = RiskLimits(resume_after_halt=True, halt_cooldown_hours=2.0, daily_loss_limit=0.9)
    d = run([100.0, 75.0, 76.0, 77.0, 78.0], limits=limits)
    assert [x.status for x in d] == [
        RiskStatus.NORMAL, RiskStatus.HALTED, RiskStatus.HALTED, RiskStatus.NORMAL,
        RiskStatus.NORMAL,
    ]  # fmt: skip
    assert d[3].state.high_water_mark == 77.0 and d[3].drawdown == 0.0


def test_daily_loss_limit_blocks_until_the_next_utc_day():
    d = run([100.0, 96.0, 94.9, 100.0], step=6 * NANOS_PER_HOUR)  # 00:00, 06:00, 12:00, 18:00
    assert d[2].status == RiskStatus.DAILY_STOP and d[2].exposure == 0.0
    assert d[3].status == RiskStatus.DAILY_STOP  # a recovery the same day does not reset it
    next_day = assess_risk(d[3].state, 100.0, DAY0 + NANOS_PER_DAY, LIMITS)
    assert next_day.status == RiskStatus.NORMAL and next_day.state.day_start_equity == 100.0


def test_kill_switch_halt_and_state_round_trip():
    state = halt(RiskState(high_water_mark=100.0), DAY0, "kill switch")
    assert assess_risk(state, 150.0, DAY0 + 1, LIMITS).status == RiskStatus.HALTED
    assert RiskState.from_json(state.to_json()) == state


def test_limits_are_validated():
    with pytest.raises(ValueError, match="reduce_drawdown <= max_drawdown"):
        RiskLimits(max_drawdown=0.1, reduce_drawdown=0.2)
    with pytest.raises(ValueError, match="daily_loss_limit"):
        RiskLimits(daily_loss_limit=1.5)


# ----- sizing -------------------------------------------------------------------------------

RULES = SizingRules(target_annual_vol=0.30, max_leverage=2.0, no_trade_band=0.05)
LOTS = LotRules(qty_step=0.001, min_qty=0.001, min_notional=5.0)


def test_annualisation_is_24_7():
    assert bars_per_year(3600) == pytest.approx(8766.0)
    assert bars_per_year(60) == pytest.approx(525_960.0)


def test_volatility_target_and_caps():
    hourly = bars_per_year(3600)
    bar_vol = 0.60 / math.sqrt(hourly)  # 60 % annualised
    assert target_notional(1, 1.0, bar_vol, 100_000.0, hourly, RULES) == pytest.approx(50_000.0)
    assert target_notional(-1, 0.5, bar_vol, 100_000.0, hourly, RULES) == pytest.approx(-25_000.0)
    calm = 0.05 / math.sqrt(hourly)  # 5 %: 6x leverage wanted, capped at 2x
    assert target_notional(1, 1.0, calm, 100_000.0, hourly, RULES) == pytest.approx(200_000.0)
    capped = SizingRules(max_notional=10_000.0)
    assert target_notional(1, 1.0, bar_vol, 100_000.0, hourly, capped) == 10_000.0
    assert target_notional(0, 1.0, bar_vol, 100_000.0, hourly, RULES) == 0.0


def test_size_falls_as_volatility_rises():
    hourly = bars_per_year(3600)
    sizes = [
        target_notional(1, 1.0, v / math.sqrt(hourly), 1e5, hourly, RULES) for v in (0.3, 0.6, 1.2)
    ]
    assert sizes[0] > sizes[1] > sizes[2]


def test_quantity_rounds_toward_zero_and_respects_minimums():
    assert to_quantity(1_000.0, 40_000.0, LOTS) == pytest.approx(0.025)
    assert to_quantity(-1_039.0, 40_000.0, LOTS) == pytest.approx(-0.025)
    assert to_quantity(30.0, 40_000.0, LOTS) == 0.0  # below min qty
    assert to_quantity(4.0, 1.0, LotRules(qty_step=1.0, min_qty=1.0, min_notional=5.0)) == 0.0


def test_no_trade_band_skips_small_resizes_but_never_blocks_exits_or_reversals():
    assert order_quantity(1.02, 1.0, 40_000.0, 100_000.0, RULES) == 0.0  # 800 < 5 % of equity
    assert order_quantity(1.2, 1.0, 40_000.0, 100_000.0, RULES) == pytest.approx(0.2)
    assert order_quantity(0.0, 0.001, 40_000.0, 100_000.0, RULES) == pytest.approx(-0.001)
    assert order_quantity(-0.01, 0.01, 40_000.0, 100_000.0, RULES) == pytest.approx(-0.02)
