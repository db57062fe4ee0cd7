"""The evaluation's simulator: fills, fees and P&L by hand, and the policy's rules applied."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evaluation.simulate import Execution
from evaluation.simulate import SignalPath
from evaluation.simulate import simulate_leverage
from evaluation.simulate import simulate_signals
from policy.calendar import bars_per_year
from policy.filters import Blocker
from policy.settings import PolicySettings

HOURLY = bars_per_year(3600)
POLICY = PolicySettings()


def unit_account(taker_fee: float, close_at_end: bool = True) -> Execution:
    """Equity 1 at the start, so the hand computations read in equity units."""
    return Execution(taker_fee=taker_fee, starting_balance=1.0, close_at_end=close_at_end)


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
    policy = PolicySettings(no_trade_band=0.0)
    result = simulate_leverage(
        bars, np.array([1.0, -1.0, 0.0, 0.0]), policy, HOURLY, unit_account(0.001), False
    )
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
    policy = PolicySettings(no_trade_band=0.0)
    result = simulate_leverage(
        bars, np.array([1.0, 1.0, 1.0]), policy, HOURLY, unit_account(0.0, False), False
    )
    q = 0.01  # bought at o1 = 105: the gap 100 -> 105 is not earned (flat before the fill)
    assert result.equity.iloc[1] == pytest.approx(1.0 + q * (104 - 105))


def test_the_no_trade_band_skips_small_resizes_but_never_blocks_going_flat():
    bars = frame([100] * 5, [100] * 5)
    policy = PolicySettings(no_trade_band=0.05)
    leverage = np.array([1.0, 1.03, 1.10, 0.0, 0.0])
    result = simulate_leverage(bars, leverage, policy, HOURLY, unit_account(0.0, False), False)
    np.testing.assert_allclose(result.leverage.to_numpy(), [0.0, 1.0, 1.0, 1.10, 0.0])
    assert int((result.traded > 0).sum()) == 3


def test_signals_go_through_the_policy_filters_and_volatility_target():
    bars = frame([100.0] * 11, [100.0] * 11)
    direction = np.array([1, 1, 1, 1, -1, -1, -1, 0, 1, 1, 1])
    confidence = np.array([0.9, 0.9, 0.9, 0.5, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9])
    familiar = np.ones(11, dtype=bool)
    familiar[-1] = False
    vol = np.full(11, 0.3 / np.sqrt(HOURLY) / 1.5)  # leverage 1.5 before the confidence scale
    path = SignalPath(direction, confidence, familiar, vol)
    result = simulate_signals(bars, path, POLICY, HOURLY, unit_account(0.0))
    expected = np.zeros(11)
    expected[2], expected[6] = 1.5 * 0.9, -1.5 * 0.9
    np.testing.assert_allclose(result.target[:-1], expected[:-1])
    blockers = [d.blocker for d in result.decisions]
    assert blockers[:4] == [
        Blocker.CONSISTENCY,
        Blocker.CONSISTENCY,
        Blocker.NONE,
        Blocker.CONFIDENCE,
    ]
    assert blockers[7] == Blocker.NO_DIRECTION
    held = simulate_signals(
        bars, path, PolicySettings(hold_when_blocked=True), HOURLY, unit_account(0.0)
    )
    assert held.target[3] == pytest.approx(expected[2])  # confidence blocks: hold the position
    lead = SignalPath(direction, confidence, familiar, vol, lead=2)  # history predates the window
    warm = simulate_signals(bars.iloc[2:], lead, POLICY, HOURLY, unit_account(0.0))
    assert warm.target[0] == pytest.approx(expected[2])


def test_the_drawdown_ladder_reduces_and_a_max_drawdown_halts_for_the_rest_of_the_window():
    closes = [100, 100, 100, 94, 94, 94, 85, 85, 90, 95, 100, 100]
    bars = frame([100, *closes[:-1]], closes)
    policy = PolicySettings(daily_loss_limit=0.99)
    account = unit_account(0.0, close_at_end=False)
    result = simulate_leverage(bars, np.full(len(closes), 2.0), policy, HOURLY, account)
    lev = result.leverage.to_numpy()
    drawdown = 1 - result.equity.iloc[3] / result.equity.iloc[:4].max()
    assert drawdown == pytest.approx(0.12, rel=1e-9)  # 2x long through a 6 % drop
    exposure = (0.20 - drawdown) / 0.10  # the ladder between 10 % and 20 %
    assert lev[4] == pytest.approx(2.0 * exposure)
    assert 1 - result.equity.iloc[6] / result.equity.max() > 0.20
    assert (lev[7:] == 0.0).all()  # halted: flat while the price recovers
    unguarded = simulate_leverage(bars, np.full(len(closes), 2.0), policy, HOURLY, account, False)
    assert unguarded.leverage.iloc[-1] > 0  # without the rules it would still be long
