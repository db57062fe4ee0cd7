"""The evaluation's simulator and the strategy inside the Nautilus engine decide alike.

Both call :class:`policy.decision.Policy` with the run configuration's settings: replaying the
strategy's per-bar inputs through the simulator's policy reproduces every recorded decision
(blocker and target), including the ``max_notional`` cap and halts that resume after the
cooldown; and the simulator, trading the same signals on the same bars, lands on the backtest's
trades and final equity.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from catalogs.catalog import read_bars_frame
from evaluation.simulate import Execution
from evaluation.simulate import SignalPath
from evaluation.simulate import simulate_signals
from policy.calendar import bars_per_year
from policy.decision import Policy
from policy.settings import PolicySettings
from runtime.backtest import run_backtest
from scoremodel.features import compute_features
from strategies.bar_decider import lot_rules
from tests.conftest import BAR_TYPE

HOURLY = bars_per_year(3600)
# A policy whose rules all bind on the test window: a notional cap below the volatility
# target's size, and a drawdown halt that resumes after a cooldown.
BINDING = {
    "max_notional": 60_000.0,
    "max_drawdown": 0.02,
    "reduce_drawdown": 0.02,
    "daily_loss_limit": 0.05,
    "resume_after_halt": True,
    "halt_cooldown_hours": 24.0,
}


def _backtest(run_config, **strategy):
    outcome = run_backtest(run_config(**strategy))
    record = outcome.strategy.recorder.frame()
    history = read_bars_frame(outcome.run.backtest.catalog, BAR_TYPE)
    views = outcome.model.assess_batch(compute_features(history).dropna(), mode="score")
    settings = PolicySettings.from_fields(outcome.run.strategy)
    lots = lot_rules(outcome.strategy.instrument)
    outcome.engine.dispose()
    return outcome, record, views, settings, lots


def _signal_path(record: pd.DataFrame, views: pd.DataFrame, history_vol: pd.Series, lead: int):
    """The strategy's view on each decided bar, led by the directions of the bars before."""
    first = views.index.get_loc(record.index[0])
    rows = views.iloc[first - lead : first + len(record)]
    assert (np.sign(rows["signal"].iloc[lead:]).to_numpy() == np.sign(record["signal"])).all()
    return SignalPath(
        direction=np.sign(rows["signal"]).to_numpy(np.int64),
        confidence=rows["confidence"].to_numpy(),
        in_distribution=rows["in_distribution"].to_numpy(bool),
        bar_volatility=history_vol.reindex(rows.index).to_numpy(),
        lead=lead,
    )


@pytest.mark.slow
def test_the_simulators_policy_replays_every_strategy_decision(run_config):
    outcome, record, views, settings, lots = _backtest(run_config, **BINDING)
    assert settings.max_notional == BINDING["max_notional"] and settings.resume_after_halt
    history = read_bars_frame(outcome.run.backtest.catalog, BAR_TYPE)
    vol = compute_features(history)["vol_20"]
    lead = settings.consistency_bars - 1
    path = _signal_path(record, views, vol, lead)
    policy = Policy(settings, HOURLY, lots=lots)
    for direction in path.direction[:lead]:
        policy.observe(int(direction))
    blockers, targets = [], []
    for i, (ts, row) in enumerate(record.iterrows()):
        policy.observe(int(path.direction[lead + i]))
        decision = policy.decide(
            ts.value,
            bool(path.in_distribution[lead + i]),
            int(path.direction[lead + i]),
            float(path.confidence[lead + i]),
            float(path.bar_volatility[lead + i]),
            float(row["equity"]),
            float(row["close"]),
            float(row["position_qty"]),
        )
        blockers.append(decision.blocker.name)
        targets.append(decision.target)
    assert blockers == record["blocked_by"].tolist()
    np.testing.assert_allclose(targets, record["target_qty"].to_numpy(), rtol=0, atol=1e-12)
    # every rule under test did bind
    status = record["risk_status"]
    assert (status == "HALTED").any(), "no halt on the test window"
    resumed = (status.shift() == "HALTED") & (status != "HALTED")
    assert resumed.any(), "no resume after the cooldown"
    notional = (record["target_qty"].abs() * record["close"]).max()
    assert BINDING["max_notional"] - 1_000 < notional <= BINDING["max_notional"]


@pytest.mark.slow
def test_the_simulator_lands_on_the_backtests_trades_and_equity(run_config):
    outcome, record, views, settings, lots = _backtest(run_config)
    history = read_bars_frame(outcome.run.backtest.catalog, BAR_TYPE)
    vol = compute_features(history)["vol_20"]
    path = _signal_path(record, views, vol, settings.consistency_bars - 1)
    bars = outcome.bars.loc[record.index]
    execution = Execution(
        starting_balance=float(outcome.run.backtest.starting_balance),
        lots=lots,
        close_at_end=False,
    )
    result = simulate_signals(bars, path, settings, HOURLY, execution)
    simulated = [d.blocker.name for d in result.decisions]
    assert simulated == record["blocked_by"].iloc[: len(simulated)].tolist()
    backtest = record["equity"] / record["equity"].iloc[0]
    fills = int((np.diff(record["position_qty"].to_numpy()) != 0).sum())
    assert fills > 20
    assert abs(int((result.traded > 0).sum()) - fills) <= max(3, 0.05 * fills)
    assert result.equity.iloc[-1] == pytest.approx(backtest.iloc[-1], rel=1e-3)
    assert np.corrcoef(result.equity.to_numpy(), backtest.to_numpy())[0, 1] > 0.99
