"""A retraining schedule decides alike in the Nautilus backtest and in the evaluation's folds.

The backtest runs the strategy with a ``retrain:`` section: it retrains in the engine's thread
at the schedule's bars (:class:`strategies.retraining.ModelLifecycle`), promotes a candidate by
:func:`scoremodel.retrain.compare` and swaps it in ``delay_bars`` later. Outside the engine the
evaluation's code makes the same folds (:func:`evaluation.folds.retrain_folds`) and the same
models in order (:func:`evaluation.walk_forward.schedule_models`, starting from the backtest's
base model): the same version ids must decide the same bars, and replaying the strategy's
recorded inputs (equity, close, position) through ``Policy.decide_forecast`` with each bar's
version's batch forecasts must give back every blocker and target.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from catalogs.catalog import read_bars_frame
from catalogs.catalog import write_bars
from catalogs.instruments import make_perpetual
from catalogs.planted import demo_preset
from catalogs.planted import generate_planted
from evaluation import cli
from evaluation.folds import RetrainPlan
from evaluation.folds import retrain_folds
from evaluation.walk_forward import bar_length_ns
from evaluation.walk_forward import model_version_id
from evaluation.walk_forward import schedule_models
from policy.calendar import bars_per_year
from policy.costs import execution_fee
from policy.decision import Policy
from policy.edge import NO_VIEW
from policy.edge import shrink_view
from policy.settings import PolicySettings
from runtime.backtest import run_backtest
from runtime.run_config import load_run_config
from scoremodel.cond_predictive import predict_batch
from scoremodel.features import compute_features
from scoremodel.inference import ScoreModel
from scoremodel.pipeline import FitConfig
from scoremodel.pipeline import fit_model
from scoremodel.pipeline import save_model
from scoremodel.retrain import fit_config_of
from strategies.bar_decider import TRADED_HORIZON
from strategies.bar_decider import lot_rules
from tests.conftest import BAR_TYPE
from tests.conftest import FAST_CONDITIONAL
from tests.conftest import FAST_TRAINING

BARS = 3_000
BASE_BARS = 1_200  # the base model's bars; the backtest trades the rest
DELAY = 2
RETRAIN = {"min_bars": 800, "delay_bars": DELAY, "epochs": 2}
SCHEDULES = [  # every 300 bars on the last 1,000; every 12 days on every bar held
    {"every": 300, "window": 1_000},
    {"every": "12D", "window": "expanding"},
]
HOURLY = bars_per_year(3600)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A planted hourly market (the demo's structure) in a catalog, and a base model trained
    quickly on its first bars (one thread: bit-identical training)."""
    root = tmp_path_factory.mktemp("retrain-parity")
    frame = generate_planted(BARS, seed=5, config=demo_preset("1h")).bars
    write_bars(root / "catalog", frame, make_perpetual("BTCUSDT"), "1h", round_prices=True)
    bars = read_bars_frame(root / "catalog", BAR_TYPE)
    fit = FitConfig(
        train=dataclasses.replace(FAST_TRAINING, threads=1),
        conditional=dataclasses.replace(FAST_CONDITIONAL, threads=1),
        modes=("score", "edge"),
    )
    base = fit_model(bars.iloc[:BASE_BARS], BAR_TYPE, fit, progress=False)
    save_model(base, root / "model")
    return root, bars


def retraining_run(root, bars, schedule: dict):
    retrain = "".join(f"  {key}: {value}\n" for key, value in {**RETRAIN, **schedule}.items())
    name = f"{schedule['every']}-{schedule['window']}"
    config = root / f"run-{name}.yaml"
    config.write_text(
        f"strategy:\n  bar_type: {BAR_TYPE}\n  model_path: {root / 'model'}\n"
        "  signal_mode: edge\n  edge_margin: 0.0\n  min_confidence: 0.5\n"
        f"backtest:\n  catalog: {root / 'catalog'}\n  report_dir: {root / f'report-{name}'}\n"
        f"  tearsheet: false\n  start: '{bars.index[BASE_BARS].isoformat()}'\n"
        f"retrain:\n{retrain}"
    )
    return load_run_config(config)


@pytest.mark.slow
@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: f"{s['every']}-{s['window']}")
def test_the_evaluation_s_retrain_folds_make_the_backtest_s_versions_and_decisions(
    planted, schedule
):
    root, bars = planted
    outcome = run_backtest(retraining_run(root, bars, schedule))
    strategy = outcome.strategy
    record = strategy.recorder.frame()
    versions = strategy.lifecycle.versions()
    instrument = strategy.instrument
    base = outcome.model
    run = outcome.run
    traded = outcome.bars.index
    outcome.engine.dispose()

    # the evaluation's folds and models, from the same base model (the evaluation itself has
    # none: its first candidate is promoted), on the catalog's bars
    plan = RetrainPlan.of(run.retrain)
    schedule = plan.schedule(bar_length_ns(bars.index))
    start = bars.index.get_loc(traded[0])
    folds = retrain_folds(bars.index, schedule, start=start)
    fit = fit_config_of(base.manifest, "edge", plan.epochs, plan.threads)
    folds = schedule_models(
        bars,
        folds,
        BAR_TYPE,
        fit,
        "edge",
        validate=plan.validate,
        current=base,
        density_percentile=run.strategy.density_percentile,
        density_rule=run.strategy.density_rule,
        log=lambda _: None,
    )

    # the same retrainings: due at the same bars, on the same windows, the same ids and verdicts
    base_id = model_version_id(base)
    assert versions[0]["id"] == base_id
    retrained = [
        (v["due_bar"], v["trained_from"], v["trained_to"], v["id"], v["promoted"])
        for v in versions[1:]
    ]
    expected = [
        (
            str(bars.index[f.due]),
            str(bars.index[f.train.start]),
            str(bars.index[f.train.stop - 1]),
            f.version["candidate"],
            f.version["promoted"],
        )
        for f in folds
    ]
    assert retrained[: len(folds)] == expected
    # a retraining whose model would decide after the last bar decides nothing: not a fold
    last = bars.index[-1]
    assert all(
        pd.Timestamp(due) + DELAY * pd.Timedelta("1h") > last for due, *_ in retrained[len(folds) :]
    )
    # the same version decides every bar: the base model until the first promoted version's
    # first decision, then each fold's model over its test window
    deciding = pd.Series(base_id, index=bars.index)
    for fold in folds:
        deciding.iloc[fold.test.start : fold.test.stop] = fold.version["model"]
    assert record["model_version"].tolist() == deciding.loc[record.index].tolist()
    promoted_deciding = {f.version["model"] for f in folds if f.version["promoted"]}
    assert len(promoted_deciding & set(record["model_version"])) >= 2

    # replay: each bar's version's batch forecasts and density through the strategy's policy
    settings = PolicySettings.from_fields(run.strategy)
    fee = execution_fee(
        run.strategy.execution, float(instrument.maker_fee), float(instrument.taker_fee)
    )
    costs = settings.costs(fee=fee)
    states = compute_features(bars).dropna()
    models: dict[str, ScoreModel] = {base_id: base}
    models.update({f.version["model"]: f.model for f in folds})
    k = TRADED_HORIZON
    rows = states.index.get_indexer(record.index)
    assert (rows >= 0).all()
    readings = {}
    for identity in set(record["model_version"]):
        model = models[identity]
        model.set_density_filter(run.strategy.density_percentile, run.strategy.density_rule)
        p = predict_batch(model.conditional, states.to_numpy(), costs.round_trip)
        familiar = model.assess_batch(states, mode="score")["in_distribution"].to_numpy(bool)
        readings[identity] = (
            p,
            familiar,
            model.mean_shrinkage[k],
            model.conditional.horizon_map(k),
        )

    policy = Policy(
        settings,
        HOURLY,
        lots=lot_rules(instrument),
        costs=costs,
        horizon=base.conditional.horizons[k],
    )
    vol = states["vol_20"].to_numpy()
    blockers, targets, means = [], [], []
    for i, (ts, bar) in enumerate(record.iterrows()):
        p, familiar, shrinkage, cdf_map = readings[bar["model_version"]]
        row = rows[i]
        values = [float(c[row, k]) for c in (p.mean, p.std, p.p_up_cost, p.p_down_cost)]
        view = (
            shrink_view(*values, shrinkage, costs, cdf_map)
            if np.isfinite(values).all()
            else NO_VIEW
        )
        means.append(view.mean)
        decision = policy.decide_forecast(
            ts.value,
            bool(familiar[row]),
            view,
            float(vol[row]),
            float(bar["equity"]),
            float(bar["close"]),
            float(bar["position_qty"]),
        )
        blockers.append(decision.blocker.name)
        targets.append(decision.target)
    # the per-bar forecaster of each version (fed the last L states at its swap) gave the batch
    # path's means, and the policy every decision
    np.testing.assert_allclose(record["signal"].to_numpy(), means, rtol=0, atol=1e-9)
    assert blockers == record["blocked_by"].tolist()
    np.testing.assert_allclose(targets, record["target_qty"].to_numpy(), rtol=0, atol=1e-12)
    positions = record["position_qty"].to_numpy()
    assert "EDGE" in blockers and (np.diff(positions) != 0).sum() >= 4


@pytest.mark.slow
def test_the_evaluation_of_a_retrain_section_tests_each_retraining_s_interval(planted, tmp_path):
    """``python -m evaluation --config C`` with a ``retrain:`` section: one fold per
    retraining of the schedule, tested from its first decision to the next one's; a candidate
    not promoted leaves the model in use deciding its fold; evaluation.json says so."""
    root, bars = planted
    config = tmp_path / "run.yaml"
    config.write_text(
        f"strategy:\n  bar_type: {BAR_TYPE}\n  signal_mode: edge\n"
        f"backtest:\n  catalog: {root / 'catalog'}\n"
        "retrain:\n  every: 600\n  window: 1200\n  min_bars: 1000\n  delay_bars: 2\n"
        "  epochs: 2\n"
    )
    out = tmp_path / "evaluation"
    tiny = ["--epochs", "3", "--hidden", "16", "--blocks", "1", "--random-draws", "3"]
    tiny += ["--bootstrap", "50", "--scenario-samples", "200", "--pc-steps", "20"]
    assert cli.main(["--config", str(config), "--out", str(out), *tiny]) == 0
    data = json.loads((out / "evaluation.json").read_text())

    plan = RetrainPlan(every=600, window=1200, min_bars=1000, delay_bars=2, epochs=2)
    folds = retrain_folds(bars.index, plan.schedule(bar_length_ns(bars.index)))
    assert len(folds) >= 2
    schedule = data["schedule"]
    assert schedule["from"] == "retrain" and schedule["retrain"] == data["config"]["retrain"]
    assert data["config"]["retrain"] | {"on_drift": False} == dataclasses.asdict(plan)
    assert (data["config"]["n_folds"], data["config"]["purge"], data["config"]["embargo"]) == (
        len(folds),
        1,
        0,
    )
    boundaries = [(f["due"], f["train"], f["test"]) for f in schedule["folds"]]
    assert boundaries == [
        (f.due, [f.train.start, f.train.stop], [f.test.start, f.test.stop]) for f in folds
    ]
    assert [f["test"] for f in data["folds"]] == [f["test"] for f in schedule["folds"]]
    first, *later = schedule["folds"]
    assert first["promoted"] and first["reason"] == "no model in use to compare with"
    assert first["model"] == first["candidate"]
    for before, fold in zip(schedule["folds"], later, strict=False):
        assert fold["retrain_bar"] == str(bars.index[fold["due"]])
        assert fold["first_decision"] == fold["test_first"] == str(bars.index[fold["due"] + 2])
        assert fold["model"] == (fold["candidate"] if fold["promoted"] else before["model"])
    assert schedule["folds"][-1]["test"][1] == len(bars)  # the last model decides to the end
    report = (out / "report.md").read_text()
    assert f"{len(folds)} folds of the retrain schedule (every 600 bars)" in report
    assert "model deciding the test window" in report
