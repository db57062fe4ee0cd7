"""The evaluation's vectorised simulator reproduces the event-level Nautilus backtest."""

from __future__ import annotations

import numpy as np
import pytest

from catalogs.catalog import read_bars_frame
from scoremodel.evaluation.simulate import SimConfig
from scoremodel.evaluation.simulate import decide_leverage
from scoremodel.evaluation.simulate import simulate
from scoremodel.features import compute_features
from strategies.backtest import run_backtest
from tests.conftest import BAR_TYPE


@pytest.fixture
def outcome(run_config):
    result = run_backtest(run_config())  # the strategy's default rules
    yield result
    result.engine.dispose()


def test_simulator_matches_the_backtest_on_the_same_decisions(outcome):
    diagnostics = outcome.strategy.recorder.frame()
    bars = outcome.bars.loc[diagnostics.index]
    history = read_bars_frame(outcome.run.backtest.catalog, BAR_TYPE)  # warm-up included
    vol = compute_features(history)["vol_20"].reindex(diagnostics.index).to_numpy()
    per_year = 365.25 * 24
    target = decide_leverage(
        np.sign(diagnostics["signal"]).to_numpy(),
        diagnostics["confidence"].to_numpy(),
        diagnostics["in_distribution"].astype(bool).to_numpy(),
        vol,
        per_year,
        SimConfig(),
    )
    notional = (diagnostics["target_qty"] * diagnostics["close"] / diagnostics["equity"]).to_numpy()
    warm = SimConfig().consistency_bars - 1  # the strategy's direction history predates the window
    wanted = notional[warm:] != 0.0
    assert ((target[warm:] != 0.0) == wanted).mean() > 0.99  # the same bars in the market
    np.testing.assert_allclose(target[warm:][wanted], notional[warm:][wanted], rtol=0.01, atol=2e-3)
    target[:warm] = notional[:warm]
    result = simulate(bars, target, SimConfig(close_at_end=False))
    backtest = diagnostics["equity"] / diagnostics["equity"].iloc[0]
    fills = int((np.diff(diagnostics["position_qty"].to_numpy()) != 0).sum())
    assert fills > 20
    assert abs(int((result.traded > 0).sum()) - fills) <= max(3, 0.05 * fills)
    assert result.equity.iloc[-1] == pytest.approx(backtest.iloc[-1], rel=1e-3)
    assert np.corrcoef(result.equity.to_numpy(), backtest.to_numpy())[0, 1] > 0.99
