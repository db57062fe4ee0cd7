"""The shared simulator: hand-computed P&L with fees, and the strategy's rules mirrored."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from scoremodel.evaluation.simulate import SimConfig
from scoremodel.evaluation.simulate import _Risk
from scoremodel.evaluation.simulate import decide_leverage
from scoremodel.evaluation.simulate import order_quantity
from scoremodel.evaluation.simulate import simulate
from scoremodel.evaluation.simulate import stable_direction
from scoremodel.evaluation.simulate import vol_target_leverage
from strategies import risk as live_risk
from strategies import sizing as live_sizing

NANOS_PER_HOUR = 3_600_000_000_000


def frame(opens, closes, start="2024-01-01 01:00"):
    index = pd.date_range(start, periods=len(closes), freq="1h", tz="UTC")
    opens, closes = np.asarray(opens, float), np.asarray(closes, float)
    return pd.DataFrame(
        {
            "open": opens,
            "high": np.maximum(opens, closes),
            "low": np.minimum(opens, closes),
            "close": closes,
            "volume": 1.0,
        },
        index=index,
    )


def test_pnl_and_fees_match_a_hand_computation():
    bars = frame([100, 101, 108, 98], [100, 110, 99, 99])  # opens gap away from the closes
    cfg = SimConfig(taker_fee=0.001, no_trade_band=0.0, risk_rules=False)
    result = simulate(bars, np.array([1.0, -1.0, 0.0, 0.0]), cfg)
    # t=0: buy E0/c0 = 1/100 units, filled at o1 = 101; bar 1 earns q1 (c1 - o1)
    q1 = 1.0 / 100
    e1 = 1.0 - 0.001 * q1 * 101 + q1 * (110 - 101)
    # t=1: target -E1/c1 units; the old position earns the gap c1 -> o2, the new one o2 -> c2
    q2 = -e1 / 110
    e2 = e1 + q1 * (108 - 110) - 0.001 * abs(q2 - q1) * 108 + q2 * (99 - 108)
    # t=2: flatten at o3 = 98 (the short earns the gap 99 -> 98)
    e3 = e2 + q2 * (98 - 99) - 0.001 * abs(q2) * 98
    np.testing.assert_allclose(result.equity.to_numpy(), [1.0, e1, e2, e3], rtol=1e-12)
    fees = 0.001 * (q1 * 101 + abs(q2 - q1) * 108 + abs(q2) * 98)
    np.testing.assert_allclose(result.fees.sum(), fees, rtol=1e-12)
    np.testing.assert_allclose(result.leverage.to_numpy()[1:3], [q1 * 110 / e1, q2 * 99 / e2])
    assert result.leverage.iloc[-1] == 0.0


def test_a_gap_between_close_and_next_open_is_earned_by_the_old_position():
    bars = frame([100, 105, 105], [100, 104, 104])
    cfg = SimConfig(taker_fee=0.0, no_trade_band=0.0, risk_rules=False, close_at_end=False)
    result = simulate(bars, np.array([1.0, 1.0, 1.0]), cfg)
    q = 0.01  # bought at o1 = 105: the gap 100 -> 105 is not earned (flat before the fill)
    assert result.equity.iloc[1] == pytest.approx(1.0 + q * (104 - 105))


def test_the_no_trade_band_skips_small_resizes_but_never_blocks_going_flat():
    bars = frame([100] * 5, [100] * 5)
    cfg = SimConfig(taker_fee=0.0, no_trade_band=0.05, risk_rules=False, close_at_end=False)
    result = simulate(bars, np.array([1.0, 1.03, 1.10, 0.0, 0.0]), cfg)
    np.testing.assert_allclose(result.leverage.to_numpy(), [0.0, 1.0, 1.0, 1.10, 0.0])
    assert int((result.traded > 0).sum()) == 3


def test_sizing_and_order_rules_equal_the_live_strategy_functions():
    rng = np.random.default_rng(0)
    cfg = SimConfig()
    rules = live_sizing.SizingRules(
        target_annual_vol=cfg.target_annual_vol,
        max_leverage=cfg.max_leverage,
        no_trade_band=cfg.no_trade_band,
    )
    per_year = live_sizing.bars_per_year(3600)
    for _ in range(200):
        direction = int(rng.choice([-1, 1]))
        confidence, vol = rng.uniform(0.6, 1.0), rng.choice([0.0, rng.uniform(1e-4, 0.03)])
        equity, price = rng.uniform(0.5, 2.0), rng.uniform(10, 100)
        expected = live_sizing.target_notional(direction, confidence, vol, equity, per_year, rules)
        ours = direction * confidence * vol_target_leverage(np.array([vol]), per_year, cfg)[0]
        assert equity * ours == pytest.approx(expected, rel=1e-12)
        target, current = rng.normal(0, 0.02, size=2) * rng.choice([0.0, 1.0], size=2)
        assert order_quantity(target, current, price, equity, cfg.no_trade_band) == pytest.approx(
            live_sizing.order_quantity(target, current, price, equity, rules)
        )


def test_risk_rules_equal_the_live_strategy_rules():
    cfg = SimConfig()
    limits = live_risk.RiskLimits(
        max_drawdown=cfg.max_drawdown,
        reduce_drawdown=cfg.reduce_drawdown,
        daily_loss_limit=cfg.daily_loss_limit,
    )
    rng = np.random.default_rng(1)
    equity = np.cumprod(1 + rng.normal(0, 0.01, 600))
    ours, state = _Risk(cfg), live_risk.RiskState()
    for hour, e in enumerate(equity):
        decision = live_risk.assess_risk(state, float(e), hour * NANOS_PER_HOUR, limits)
        state = decision.state
        assert ours.exposure(float(e), hour // 24) == pytest.approx(decision.exposure)
    assert ours.halted == state.halted


def test_decision_filters_mirror_the_strategy():
    direction = np.array([1, 1, 1, 1, -1, -1, -1, 0, 1, 1, 1])
    assert stable_direction(direction, 3).tolist() == [
        False, False, True, True, False, False, True, False, False, False, True,
    ]  # fmt: skip
    confidence = np.array([0.9, 0.9, 0.9, 0.5, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9])
    familiar = np.ones(11, dtype=bool)
    familiar[-1] = False
    vol = np.full(11, 0.3 / math.sqrt(8766) / 1.5)  # leverage 1.5 before the confidence scale
    target = decide_leverage(direction, confidence, familiar, vol, 8766.0, SimConfig())
    expected = np.zeros(11)
    expected[2], expected[6] = 1.5 * 0.9, -1.5 * 0.9
    np.testing.assert_allclose(target, expected)
    held = decide_leverage(
        direction, confidence, familiar, vol, 8766.0, SimConfig(hold_when_blocked=True)
    )
    assert np.isnan(held[3]) and held[-1] == 0.0  # confidence: hold; density: always flat


def test_the_drawdown_ladder_reduces_and_a_max_drawdown_halts_for_the_rest_of_the_window():
    closes = [100, 100, 100, 94, 94, 94, 85, 85, 90, 95, 100, 100]
    bars = frame([100, *closes[:-1]], closes)
    cfg = SimConfig(taker_fee=0.0, daily_loss_limit=0.99, close_at_end=False)
    result = simulate(bars, np.full(len(closes), 2.0), cfg)
    lev = result.leverage.to_numpy()
    drawdown = 1 - result.equity.iloc[3] / result.equity.iloc[:4].max()
    assert drawdown == pytest.approx(0.12, rel=1e-9)  # 2x long through a 6 % drop
    exposure = (0.20 - drawdown) / 0.10  # the ladder between 10 % and 20 %
    assert lev[4] == pytest.approx(2.0 * exposure)
    assert 1 - result.equity.iloc[6] / result.equity.max() > 0.20
    assert (lev[7:] == 0.0).all()  # halted: flat while the price recovers
    unguarded = simulate(bars, np.full(len(closes), 2.0), replace(cfg, risk_rules=False))
    assert unguarded.leverage.iloc[-1] > 0  # without the rules it would still be long
