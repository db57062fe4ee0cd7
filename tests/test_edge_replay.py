"""Edge mode decides alike in the Nautilus strategy and in the evaluation's policy replay.

The strategy runs the conditional forecaster per bar (``BarPredictor``) and the cost-aware
policy (``Policy.decide_forecast``); the evaluation predicts in batch (``predict_batch``) and
calls the same policy. Replaying the strategy's recorded inputs (equity, price, position) with
the batch forecasts must give back every blocker and target, on a model whose validated mean
slope is set to 1 so that the test market's forecasts clear the cost band and it trades.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from catalogs.catalog import read_bars_frame
from policy.calendar import bars_per_year
from policy.costs import execution_fee
from policy.decision import Policy
from policy.edge import NO_VIEW
from policy.edge import shrink_view
from policy.settings import PolicySettings
from runtime.backtest import run_backtest
from scoremodel.cond_predictive import predict_batch
from scoremodel.features import compute_features
from strategies.bar_decider import TRADED_HORIZON
from strategies.bar_decider import lot_rules
from tests.conftest import BAR_TYPE
from tests.helpers import edit_manifest

HOURLY = bars_per_year(3600)


@pytest.fixture
def unshrunk_model(trained_model, tmp_path):
    """The test model with its conditional forecaster's mean slope set to 1 (trusted fully)."""
    model_dir = tmp_path / "unshrunk"
    shutil.copytree(trained_model, model_dir)

    def unshrink(manifest: dict) -> None:
        record = manifest["models"]["conditional"]
        record["mean_shrinkage"] = [1.0] * len(record["mean_shrinkage"])

    edit_manifest(model_dir, unshrink)  # resealed with the manifest's checksum
    return model_dir


@pytest.mark.slow
def test_the_policy_replays_every_edge_mode_decision_of_the_strategy(run_config, unshrunk_model):
    run = run_config(
        model_path=str(unshrunk_model), signal_mode="edge", edge_margin=0.0, min_confidence=0.5
    )
    outcome = run_backtest(run)
    record = outcome.strategy.recorder.frame()
    instrument = outcome.strategy.instrument
    model = outcome.model
    outcome.engine.dispose()

    settings = PolicySettings.from_fields(outcome.run.strategy)
    fee = execution_fee(
        outcome.run.strategy.execution, float(instrument.maker_fee), float(instrument.taker_fee)
    )
    costs = settings.costs(fee=fee)
    history = read_bars_frame(outcome.run.backtest.catalog, BAR_TYPE)
    states = compute_features(history).dropna()
    predictive = predict_batch(model.conditional, states.to_numpy(), costs.round_trip)
    density = model.assess_batch(states, mode="score")
    rows = states.index.get_indexer(record.index)
    assert (rows >= 0).all()

    k = TRADED_HORIZON
    columns = (predictive.mean, predictive.std, predictive.p_up_cost, predictive.p_down_cost)
    views = []
    for row in rows:
        values = [float(c[row, k]) for c in columns]
        views.append(shrink_view(*values, 1.0, costs) if np.isfinite(values).all() else NO_VIEW)
    # the per-bar forecaster inside the engine gave the batch path's means
    np.testing.assert_allclose(
        record["signal"].to_numpy(), [v.mean for v in views], rtol=0, atol=1e-9
    )

    policy = Policy(
        settings,
        HOURLY,
        lots=lot_rules(instrument),
        costs=costs,
        horizon=model.conditional.horizons[k],
    )
    vol = states["vol_20"].to_numpy()
    familiar = density["in_distribution"].to_numpy(bool)
    blockers, targets = [], []
    for i, (ts, bar) in enumerate(record.iterrows()):
        decision = policy.decide_forecast(
            ts.value,
            bool(familiar[rows[i]]),
            views[i],
            float(vol[rows[i]]),
            float(bar["equity"]),
            float(bar["close"]),
            float(bar["position_qty"]),
        )
        blockers.append(decision.blocker.name)
        targets.append(decision.target)
    assert blockers == record["blocked_by"].tolist()
    np.testing.assert_allclose(targets, record["target_qty"].to_numpy(), rtol=0, atol=1e-12)
    # the replay covered entries, holds and exits, not only a flat book
    assert "EDGE" in blockers and "NONE" in blockers
    positions = record["position_qty"].to_numpy()
    assert (np.diff(positions) != 0).sum() >= 4
