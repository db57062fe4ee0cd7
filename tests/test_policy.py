"""The trading policy without an engine: risk rules, sizing, filters and the per-bar decision."""

from __future__ import annotations

import math

import numpy as np
import pytest

from policy.calendar import NANOS_PER_DAY
from policy.calendar import NANOS_PER_HOUR
from policy.calendar import bars_per_year
from policy.costs import Costs
from policy.decision import Policy
from policy.edge import ForecastView
from policy.edge import edge_confidence
from policy.edge import entry_side
from policy.edge import shrink_view
from policy.filters import Blocker
from policy.filters import direction_is_stable
from policy.filters import signal_blocker
from policy.risk import RiskState
from policy.risk import RiskStatus
from policy.risk import assess_risk
from policy.risk import halt
from policy.settings import DEFAULT_POLICY
from policy.settings import PolicySettings
from policy.settings import inactive_settings
from policy.sizing import LotRules
from policy.sizing import order_quantity
from policy.sizing import target_notional
from policy.sizing import to_quantity
from scoremodel.calibration import mean_shrinkage

LIMITS = PolicySettings(max_drawdown=0.20, reduce_drawdown=0.10, daily_loss_limit=0.05).limits
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
    limits = PolicySettings(max_drawdown=0.20, reduce_drawdown=0.10, daily_loss_limit=0.9).limits
    d = run([100.0, 95.0, 90.0, 85.0], limits=limits, step=NANOS_PER_DAY)
    assert [x.status for x in d] == [RiskStatus.NORMAL] * 3 + [RiskStatus.REDUCING]
    assert d[2].exposure == 1.0  # exactly at reduce_drawdown: still full
    assert d[3].exposure == pytest.approx(0.5)  # halfway between 10 % and 20 %


def test_max_drawdown_halts_and_stays_halted_without_resume():
    limits = PolicySettings(max_drawdown=0.20, reduce_drawdown=0.10, daily_loss_limit=0.9).limits
    d = run([100.0, 79.0, 120.0, 130.0], limits=limits, step=NANOS_PER_DAY)
    assert d[1].status == RiskStatus.HALTED and d[1].exposure == 0.0
    assert "max drawdown" in d[1].state.halt_reason
    assert all(x.status == RiskStatus.HALTED and x.exposure == 0.0 for x in d[2:])


def test_halt_resumes_after_cooldown_with_a_fresh_high_water_mark():
    settings = PolicySettings(resume_after_halt=True, halt_cooldown_hours=2.0, daily_loss_limit=0.9)
    limits = settings.limits
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
    with pytest.raises(ValueError, match=r"reduce_drawdown = 0\.2 must be at most max_drawdown"):
        PolicySettings(max_drawdown=0.1, reduce_drawdown=0.2)
    with pytest.raises(ValueError, match=r"daily_loss_limit = 1\.5 is invalid"):
        PolicySettings(daily_loss_limit=1.5)


# ----- sizing -------------------------------------------------------------------------------

RULES = PolicySettings(target_annual_vol=0.30, max_leverage=2.0, no_trade_band=0.05).sizing
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
    capped = PolicySettings(max_notional=10_000.0).sizing
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


# ----- filters and the per-bar decision --------------------------------------------------------


def test_filters_block_in_order_density_direction_confidence_consistency():
    settings = PolicySettings(min_confidence=0.5, consistency_bars=3)
    assert direction_is_stable([1, 1, 1], 3) and not direction_is_stable([1, -1, 1], 3)
    assert not direction_is_stable([1, 1], 3) and not direction_is_stable([0, 0, 0], 3)
    cases = [
        ((False, 0, 0.0, False), Blocker.DENSITY),
        ((True, 0, 0.9, True), Blocker.NO_DIRECTION),
        ((True, 1, 0.4, True), Blocker.CONFIDENCE),
        ((True, 1, 0.9, False), Blocker.CONSISTENCY),
        ((True, -1, 0.9, True), Blocker.NONE),
    ]
    for (familiar, direction, confidence, stable), expected in cases:
        assert signal_blocker(familiar, direction, confidence, stable, settings) == expected


def _policy(**settings):
    return Policy(PolicySettings(**settings), annualisation=bars_per_year(3600), lots=LOTS)


def test_decision_needs_k_stable_bars_then_sizes_by_volatility_and_confidence():
    policy = _policy(consistency_bars=2, min_confidence=0.5, no_trade_band=0.0)
    bar_vol = 0.30 / math.sqrt(bars_per_year(3600))  # 30 % a year: leverage 1 at scale 1
    policy.observe(1)
    first = policy.decide(DAY0, True, 1, 0.8, bar_vol, 100_000.0, 40_000.0, 0.0)
    assert (first.blocker, first.target, first.order) == (Blocker.CONSISTENCY, 0.0, 0.0)
    policy.observe(1)
    second = policy.decide(DAY0 + NANOS_PER_HOUR, True, 1, 0.8, bar_vol, 1e5, 40_000.0, 0.0)
    assert second.blocker == Blocker.NONE
    assert second.target == pytest.approx(2.0)  # 0.8 x 100,000 / 40,000
    assert second.order == pytest.approx(2.0) and not second.reduce_only


def test_decision_flattens_reduce_only_when_the_risk_rules_halt():
    policy = _policy(consistency_bars=1, min_confidence=0.0, max_drawdown=0.2, no_trade_band=0.0)
    bar_vol = 0.30 / math.sqrt(bars_per_year(3600))
    policy.observe(1)
    policy.decide(DAY0, True, 1, 1.0, bar_vol, 100_000.0, 40_000.0, 0.0)
    policy.observe(1)
    halted = policy.decide(DAY0 + NANOS_PER_DAY, True, 1, 1.0, bar_vol, 79_000.0, 40_000.0, 2.0)
    assert halted.blocker == Blocker.RISK and halted.risk.status == RiskStatus.HALTED
    assert halted.target == 0.0 and halted.order == -2.0 and halted.reduce_only
    assert policy.risk.halted


def test_decision_caps_notional_and_skips_orders_below_the_minimum_notional():
    policy = _policy(consistency_bars=1, min_confidence=0.0, max_notional=20_000.0)
    bar_vol = 0.30 / math.sqrt(bars_per_year(3600))
    policy.observe(-1)
    capped = policy.decide(DAY0, True, -1, 1.0, bar_vol, 100_000.0, 40_000.0, 0.0)
    assert capped.target == pytest.approx(-0.5)  # 20,000 / 40,000
    tiny = Policy(
        PolicySettings(consistency_bars=1, min_confidence=0.0, no_trade_band=0.0),
        annualisation=bars_per_year(3600),
        lots=LotRules(qty_step=0.001, min_qty=0.001, min_notional=500.0),
    )
    tiny.observe(1)
    small = tiny.decide(DAY0, True, 1, 0.1, bar_vol, 10_000.0, 40_000.0, 0.02)  # +200 USDT
    assert small.target == pytest.approx(0.025) and small.order == 0.0
    exit_ = tiny.decide(DAY0, False, 1, 0.1, bar_vol, 10_000.0, 40_000.0, 0.002)  # 80 USDT
    assert exit_.order == pytest.approx(-0.002) and exit_.reduce_only  # exits always go


def test_hold_when_blocked_keeps_the_position_unless_density_or_risk_block():
    policy = _policy(consistency_bars=1, min_confidence=0.7, hold_when_blocked=True)
    bar_vol = 0.30 / math.sqrt(bars_per_year(3600))
    policy.observe(1)
    weak = policy.decide(DAY0, True, 1, 0.5, bar_vol, 100_000.0, 40_000.0, 1.5)
    assert (weak.blocker, weak.target, weak.order) == (Blocker.CONFIDENCE, 1.5, 0.0)
    unfamiliar = policy.decide(DAY0, False, 1, 0.9, bar_vol, 100_000.0, 40_000.0, 1.5)
    assert (unfamiliar.blocker, unfamiliar.target) == (Blocker.DENSITY, 0.0)
    assert unfamiliar.order == -1.5 and unfamiliar.reduce_only


# ----- forecast mode: only an edge that beats its costs ----------------------------------------

COSTS = Costs(fee=0.00055, slippage=0.0001)  # round trip c = 0.0013


def _forecaster(horizon=5, **settings):
    return Policy(
        PolicySettings(**{"no_trade_band": 0.0, **settings}),
        annualisation=bars_per_year(60),
        lots=LOTS,
        costs=COSTS,
        horizon=horizon,
    )


def view(mean, std=0.002, p=0.6):
    return ForecastView(mean=mean, std=std, p_above_cost=p, p_below_cost=p)


MINUTE_VOL = 0.5 / math.sqrt(bars_per_year(60))  # 50 % a year


def test_forecast_mode_enters_only_when_the_edge_beats_the_round_trip_cost():
    policy = _forecaster()
    assert COSTS.round_trip == pytest.approx(0.0013)
    below = policy.decide_forecast(DAY0, True, view(0.0015), MINUTE_VOL, 1e5, 40_000.0, 0.0)
    assert below.blocker == Blocker.EDGE and below.order == 0.0  # 0.0015 < 1.25 c
    unlikely = policy.decide_forecast(DAY0, True, view(0.003, p=0.4), MINUTE_VOL, 1e5, 4e4, 0.0)
    assert unlikely.blocker == Blocker.CONFIDENCE and unlikely.order == 0.0  # P(r > c) < 0.6
    short = policy.decide_forecast(DAY0, True, view(-0.003), MINUTE_VOL, 1e5, 40_000.0, 0.0)
    assert short.blocker == Blocker.NONE and short.target < 0 and short.order < 0
    # fractional Kelly: 0.25 (0.003 - 0.0013) / 0.002^2 = 106x: the volatility target decides
    assert short.target == pytest.approx(-0.30 / 0.50 * 1e5 / 40_000.0)
    small = policy.decide_forecast(
        DAY0, True, view(0.0017, std=0.02), MINUTE_VOL, 1e5, 40_000.0, 0.0
    )  # 0.25 x 0.0004 / 0.0004 = 0.25x
    assert small.target == pytest.approx(0.25 * 1e5 / 40_000.0, rel=1e-2)


@pytest.mark.parametrize(
    "min_confidence, blocker", [(0.5, Blocker.NONE), (0.6, Blocker.CONFIDENCE)]
)
def test_edge_mode_confidence_is_the_probability_of_clearing_the_cost(min_confidence, blocker):
    """min_confidence in edge mode: P(r > c) for a long, P(r < -c) for a short (the side the
    mean points to), apart from the cost band (EDGE)."""
    policy = _forecaster(min_confidence=min_confidence)
    long = ForecastView(mean=0.003, std=0.002, p_above_cost=0.55, p_below_cost=0.01)
    assert edge_confidence(long) == 0.55
    decision = policy.decide_forecast(DAY0, True, long, MINUTE_VOL, 1e5, 4e4, 0.0)
    assert decision.blocker == blocker and (decision.order > 0) == (blocker == Blocker.NONE)
    short = ForecastView(mean=-0.003, std=0.002, p_above_cost=0.99, p_below_cost=0.55)
    assert edge_confidence(short) == 0.55
    assert policy.decide_forecast(DAY0, True, short, MINUTE_VOL, 1e5, 4e4, 0.0).blocker == blocker


@pytest.mark.parametrize(
    "mode, field, value",
    [("edge", "consistency_bars", 5), ("edge", "hold_when_blocked", True),
     ("score", "edge_margin", 0.5), ("score", "kelly_fraction", 0.5)],
)  # fmt: skip
def test_a_setting_that_does_nothing_in_the_mode_is_reported(mode, field, value):
    assert inactive_settings({field: value}, mode) == [field]
    assert inactive_settings({field: getattr(DEFAULT_POLICY, field)}, mode) == []  # default
    other = "score" if mode == "edge" else "edge"
    assert inactive_settings({field: value}, other) == []


def test_forecast_mode_holds_for_the_horizon_unless_the_forecast_crosses_the_band():
    policy = _forecaster(horizon=3)
    held = 2.0
    for _ in range(3):  # inside the horizon: a mildly negative forecast keeps the long
        decision = policy.decide_forecast(DAY0, True, view(-0.0005), MINUTE_VOL, 1e5, 4e4, held)
        assert (decision.blocker, decision.target, decision.order) == (Blocker.NONE, held, 0.0)
    late = policy.decide_forecast(DAY0, True, view(-0.0001), MINUTE_VOL, 1e5, 4e4, held)
    assert late.target == 0.0 and late.blocker == Blocker.EDGE and late.reduce_only  # h passed
    fresh = _forecaster(horizon=3)
    crossed = fresh.decide_forecast(DAY0, True, view(-0.0008), MINUTE_VOL, 1e5, 4e4, held)
    assert crossed.target == 0.0  # -0.0008 < -c/2: staying costs more than leaving
    unfamiliar = fresh.decide_forecast(DAY0, False, view(0.01), MINUTE_VOL, 1e5, 4e4, held)
    assert unfamiliar.blocker == Blocker.DENSITY and unfamiliar.target == 0.0


def test_forecast_mode_never_trades_a_market_without_edge():
    rng = np.random.default_rng(0)
    policy = _forecaster()
    position, orders = 0.0, 0
    for bar in range(5_000):  # a calibrated forecaster on a random walk: |mean| << cost
        mean = rng.normal(0.0, 0.0002)
        decision = policy.decide_forecast(
            DAY0 + bar * 60_000_000_000, True, view(mean, p=0.3), MINUTE_VOL, 1e5, 4e4, position
        )
        orders += decision.order != 0.0
        position += decision.order
    assert orders == 0


def test_a_forecaster_whose_means_the_validation_block_did_not_bear_out_trades_nothing():
    mean, std = 0.004, 0.002  # 3x the round-trip cost: an entry at face value
    full = shrink_view(mean, std, 0.9, 0.0, 1.0, COSTS)
    assert (full.mean, full.p_above_cost) == (mean, 0.9)  # beta = 1: the model's own view
    assert entry_side(full, COSTS, 0.25) == 1
    none = shrink_view(mean, std, 0.9, 0.0, 0.0, COSTS)
    assert none.mean == 0.0 and entry_side(none, COSTS, 0.25) == 0
    half = shrink_view(mean, std, 0.9, 0.0, 0.5, COSTS)
    assert half.mean == pytest.approx(0.002)
    assert half.p_above_cost == pytest.approx(
        0.5 * (1 + math.erf((0.002 - 0.0013) / 0.002 / 2**0.5))
    )


def test_mean_shrinkage_is_the_clipped_slope_of_realised_on_predicted():
    rng = np.random.default_rng(1)
    predicted = rng.normal(0, 1, (5_000, 3))
    realised = np.column_stack(
        [0.5 * predicted[:, 0], -predicted[:, 1], rng.normal(0, 1, 5_000)]
    ) + rng.normal(0, 0.01, (5_000, 3))
    beta = mean_shrinkage(predicted, realised)
    assert beta[0] == pytest.approx(0.5, abs=0.01)
    assert beta[1] == 0.0  # an anti-signal is not traded the other way
    assert beta[2] < 0.05
