"""The density filter's rules: ``percentile`` (rare states) and ``reliability`` (states where the
forecaster's validated skill degrades), set from the validation block only, stored in the
manifest, chosen by the policy setting ``density_rule`` (scoremodel/density_rule.py)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

import run_backtest
from catalogs.planted import demo_preset
from catalogs.planted import generate_planted
from policy.settings import DENSITY_RULES as POLICY_RULES
from policy.settings import PolicySettings
from runtime.run_config import ConfigError
from runtime.run_config import load_run_config
from scoremodel import density_rule
from scoremodel.checkpoint import load_checkpoint
from scoremodel.cond_data import prepare
from scoremodel.cond_training import ConditionalTrainConfig
from scoremodel.datasets import DEFAULT_FRACTIONS
from scoremodel.density_rule import RELIABILITY_KEY
from scoremodel.density_rule import reliability_threshold
from scoremodel.density_rule import validation_reliability
from scoremodel.features import DEFAULT_SPEC
from scoremodel.features import compute_features
from scoremodel.inference import ScoreModel
from scoremodel.pipeline import FitConfig
from scoremodel.pipeline import calibrate
from scoremodel.pipeline import fit_model
from scoremodel.pipeline import save_model
from scoremodel.training import TrainConfig

N_BARS = 10_000
# The demo's planted reversal, made stark: volume spikes with 8x the usual return volatility on
# 8 % of bars, whose return the next 3 bars give back. A forecaster trained on it is far better
# than a rolling-volatility Gaussian on those (low-density) states, as long as the market
# keeps its law; where the spikes' returns continue instead, it is far worse.
MARKET = dataclasses.replace(demo_preset("1h"), spike_return_vol=8.0, spike_prob=0.08)
FIT = FitConfig(
    train=TrainConfig(hidden=16, n_blocks=1, max_epochs=2, batch_size=256, seed=3),
    conditional=ConditionalTrainConfig(hidden=32, max_epochs=8, batch_size=512, seed=3),
    modes=("score", "edge"),
)


@pytest.fixture(scope="module")
def planted() -> tuple[pd.DataFrame, ScoreModel]:
    """The stationary market and the model trained on it (its validation block: the same law)."""
    bars = generate_planted(N_BARS, seed=1, config=MARKET).bars
    return bars, fit_model(bars, "PLANTED-1-HOUR", FIT, progress=False)


def validation_switch(bars: pd.DataFrame, model: ScoreModel) -> int:
    """The first bar after the conditional forecaster's training block."""
    conditional = model.conditional
    data = prepare(bars, conditional.horizons, conditional.context_len, DEFAULT_FRACTIONS)
    return bars.index.get_loc(data.train.index[-1]) + 1


def test_the_two_packages_spell_the_same_rules_and_default():
    assert POLICY_RULES == density_rule.DENSITY_RULES == ("percentile", "reliability")
    assert PolicySettings().density_rule == density_rule.DEFAULT_DENSITY_RULE == "reliability"


# ----- the rule's decision on per-row losses -------------------------------------------------


def losses(n: int, worse_share: float, worse_by: float, seed: int = 0):
    """n rows in time order with random log-densities; the model's CRPS is 2 % below the
    baseline's, except on the ``worse_share`` lowest-density rows where it is ``worse_by``
    above it."""
    rng = np.random.default_rng(seed)
    density = rng.normal(size=n)
    base = rng.gamma(2.0, 1.0, size=n)
    model = base * (0.98 + 0.05 * rng.standard_normal(n))
    low = density < np.quantile(density, worse_share)
    model[low] = base[low] * (1.0 + worse_by)
    return density, model, base


def test_a_forecaster_worse_on_rare_states_gets_the_threshold_where_it_degrades():
    density, model, base = losses(4_000, 0.2, 0.3)
    entry = reliability_threshold(density, model, base, horizon=6)
    assert entry["unreliable_bins"] == 2
    assert entry["threshold"] == pytest.approx(np.quantile(density, 0.2))
    tested = [b for b in entry["bins"] if "unreliable" in b]
    assert [b["unreliable"] for b in tested] == [True, True, False]  # walked up, stopped
    assert entry["reference_skill"] == pytest.approx(0.02, abs=0.01)


def test_a_forecaster_as_good_on_rare_states_gets_no_threshold():
    for density, model, base in (losses(4_000, 0.2, -0.02), losses(4_000, 0.1, -0.2)):
        entry = reliability_threshold(density, model, base, horizon=6)
        assert entry["threshold"] is None and entry["unreliable_bins"] == 0
        assert "not significantly below" in entry["reason"]


def test_too_few_validation_rows_give_no_threshold():
    density, model, base = losses(150, 0.3, 1.0)
    entry = reliability_threshold(density, model, base, horizon=6)
    assert entry["threshold"] is None and "too few" in entry["reason"]


# ----- on a trained model -----------------------------------------------------------------------


def test_the_threshold_is_set_from_the_validation_block_only(planted):
    bars, model = planted
    conditional = model.conditional
    data = prepare(bars, conditional.horizons, conditional.context_len, DEFAULT_FRACTIONS)
    entry = validation_reliability(model, bars)
    assert entry["validation_first"] == str(data.val.index[0])
    assert entry["validation_last"] == str(data.val.index[-1]) < str(data.test.index[0])
    # every bar from the test block's first state on replaced: the same measurement
    rng = np.random.default_rng(0)
    changed = bars.copy()
    later = changed.index >= data.test.index[0]
    factor = np.exp(rng.normal(0.0, 0.05, size=later.sum()))
    for column in ("open", "high", "low", "close"):
        changed.loc[later, column] *= factor
    changed.loc[later, "volume"] *= 5.0
    assert validation_reliability(model, changed) == entry
    # ... while a change inside the validation block changes it (the check can see a change)
    inside = (changed.index >= data.val.index[0]) & (changed.index <= data.val.index[-1])
    changed.loc[inside, "volume"] *= np.exp(rng.normal(0.0, 1.0, size=inside.sum()))
    assert validation_reliability(model, changed) != entry


def test_a_model_unreliable_on_rare_states_gets_a_threshold_and_a_reliable_one_none(planted):
    bars, model = planted
    # the model's own market: its forecasts on the spikes hold, the rule finds no threshold
    stationary = model.manifest["calibration"][RELIABILITY_KEY]
    assert stationary == validation_reliability(model, bars) | {
        "training_percentile": stationary["training_percentile"]
    }
    assert stationary["threshold"] is None and stationary["unreliable_bins"] == 0
    # the same market whose spikes' returns continue from the validation block on: the same
    # model (trained on bars identical up to there) is unreliable on them
    switch = validation_switch(bars, model)
    flipped_market = dataclasses.replace(MARKET, kind="reversal_to_momentum", switch_bar=switch)
    flipped = generate_planted(N_BARS, seed=1, config=flipped_market).bars
    assert flipped.iloc[:switch].equals(bars.iloc[:switch])
    states = compute_features(flipped, DEFAULT_SPEC)
    train_states = states.loc[: bars.index[switch - 1]].to_numpy()
    calibration = calibrate(model, train_states, flipped, DEFAULT_FRACTIONS)
    found = calibration[RELIABILITY_KEY]
    assert found["threshold"] is not None and found["unreliable_bins"] >= 1
    assert found["bins"][0]["skill"] < found["reference_skill"]
    assert 0.0 < found["training_percentile"] < 40.0
    # the strategy's model picks the threshold by its rule
    manifest = {**model.manifest, "calibration": calibration}
    reliable = ScoreModel(manifest, model.weights, 5.0, "reliability")
    assert reliable.density_rule_in_force == "reliability"
    assert reliable.density_threshold == found["threshold"]
    rare = ScoreModel(manifest, model.weights, 5.0, "percentile")
    assert rare.density_threshold == rare.calibration["log_density"].value_at(5.0)
    log_density = reliable.assess_batch(states, mode="score")["log_density"].to_numpy()
    flags = ~reliable.assess_batch(states, mode="score")["in_distribution"].to_numpy(bool)
    assert np.array_equal(flags, log_density < found["threshold"])
    # with no threshold the reliability rule flags nothing
    none = ScoreModel(model.manifest, model.weights, 5.0, "reliability")
    assert none.density_threshold == -math.inf
    assert none.assess_batch(states, mode="score")["in_distribution"].all()


def test_new_models_store_the_rule_and_old_manifests_keep_the_percentile_rule(planted, tmp_path):
    _, model = planted
    saved = save_model(model, tmp_path / "new")
    manifest, weights = load_checkpoint(saved, DEFAULT_SPEC)  # checksummed, finite numbers
    assert manifest["calibration"][RELIABILITY_KEY]["rule"] == "reliability"
    loaded = ScoreModel.load(saved, DEFAULT_SPEC, 5.0, "reliability")
    assert loaded.density_rule_in_force == "reliability" and loaded.reliability is not None
    # a manifest written before the rule existed: the percentile rule, whichever is asked for
    old = {**manifest, "calibration": dict(manifest["calibration"])}
    del old["calibration"][RELIABILITY_KEY]
    old_dir = save_model(ScoreModel(old, weights), tmp_path / "old")
    for percentile in (5.0, 1.0):
        older = ScoreModel.load(old_dir, DEFAULT_SPEC, percentile, "reliability")
        assert older.density_rule == "reliability"
        assert older.density_rule_in_force == "percentile"
        assert older.density_threshold == older.calibration["log_density"].value_at(percentile)
        plain = ScoreModel.load(old_dir, DEFAULT_SPEC, percentile)
        assert older.density_threshold == plain.density_threshold
    with pytest.raises(ValueError, match="density_rule 'rare' is not one of"):
        ScoreModel(manifest, weights, 5.0, "rare")


# ----- the setting -------------------------------------------------------------------------------


def test_the_setting_is_checked_like_every_policy_setting(tmp_path, monkeypatch, capsys):
    with pytest.raises(ValueError, match="density_rule = 'rare' is invalid; expected one of"):
        PolicySettings(density_rule="rare")
    assert PolicySettings(density_rule="reliability").density_rule == "reliability"
    good = tmp_path / "good.yaml"
    good.write_text("strategy:\n  density_rule: reliability\n")
    run = load_run_config(good)
    assert PolicySettings.from_fields(run.strategy).density_rule == "reliability"
    bad = tmp_path / "bad.yaml"
    bad.write_text("strategy:\n  density_rule: percentil\n")
    with pytest.raises(ConfigError, match=r"strategy\.density_rule = 'percentil' is invalid"):
        load_run_config(bad)
    monkeypatch.chdir(tmp_path)
    assert run_backtest.main(["--config", str(bad)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err + captured.out
    assert lines[0].startswith(f"error: {bad}")
    assert (
        "strategy.density_rule = 'percentil' is invalid; expected one of percentile, " in (lines[0])
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml", "good.yaml"]
