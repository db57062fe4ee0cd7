"""Walk-forward folds: chronological, non-overlapping tests, purge and embargo respected; the
folds of a retraining schedule are the strategy's retrainings."""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from evaluation import cli
from evaluation.folds import EvaluationInputError
from evaluation.folds import Fold
from evaluation.folds import RetrainPlan
from evaluation.folds import default_purge
from evaluation.folds import leaking_pairs
from evaluation.folds import retrain_folds
from evaluation.folds import walk_forward_folds
from evaluation.walk_forward import EvaluationConfig
from evaluation.walk_forward import conditional_horizons
from evaluation.walk_forward import retrain_fit
from scoremodel.features import DEFAULT_SPEC
from scoremodel.pipeline import FitConfig
from scoremodel.retrain import fit_config_of
from scoremodel.schedule import RetrainSchedule

PURGE, EMBARGO = 61, 12


@pytest.mark.parametrize("scheme", ["expanding", "rolling"])
def test_no_training_bar_within_the_purge_or_embargo_of_any_test_bar(scheme):
    folds = walk_forward_folds(
        10_000, 5, purge=PURGE, embargo=EMBARGO, min_train_bars=4_000, scheme=scheme
    )
    assert len(folds) == 5
    for fold in folds:
        train, test = np.asarray(fold.train), np.asarray(fold.test)
        gaps = np.abs(test[None, :] - train[:, None])  # every (train, test) pair
        assert gaps.min() > PURGE  # nearest pair: train.stop - 1 vs test.start
        assert train.max() < test.min()  # walk-forward: training strictly before testing
        assert not ((train >= test.min() - PURGE) & (train <= test.max() + EMBARGO)).any()
    assert leaking_pairs(folds) == []


def test_tests_are_chronological_equal_and_separated_by_the_embargo():
    folds = walk_forward_folds(10_000, 5, purge=PURGE, embargo=EMBARGO, min_train_bars=4_000)
    lengths = {len(f.test) for f in folds}
    assert len(lengths) == 1
    for before, after in itertools.pairwise(folds):
        assert before.test.stop + EMBARGO == after.test.start  # no overlap, embargo between
    assert folds[0].test.start == 4_000 + PURGE
    assert folds[-1].test.stop + EMBARGO <= 10_000  # the last labels are in the data


def test_expanding_grows_from_the_start_and_rolling_keeps_its_length():
    expanding = walk_forward_folds(9_000, 4, purge=PURGE, embargo=EMBARGO, min_train_bars=3_000)
    assert all(f.train.start == 0 for f in expanding)
    assert [len(f.train) for f in expanding] == sorted(len(f.train) for f in expanding)
    assert len(expanding[-1].train) > len(expanding[0].train)
    rolling = walk_forward_folds(
        9_000, 4, purge=PURGE, embargo=EMBARGO, min_train_bars=3_000, scheme="rolling",
        train_bars=2_500,
    )  # fmt: skip
    assert {len(f.train) for f in rolling} == {2_500}
    assert [f.test for f in rolling] == [f.test for f in expanding]


def test_the_guard_finds_a_hand_made_leak():
    leaky = Fold(0, range(0, 1_000), range(1_030, 1_500), purge=PURGE, embargo=EMBARGO)
    assert leaking_pairs([leaky])  # the last 31 training bars sit inside the purge
    clean = dataclasses.replace(leaky, train=range(0, 1_030 - PURGE))
    assert leaking_pairs([clean]) == []


def test_default_gaps_cover_the_warm_up_and_the_horizon():
    assert default_purge(DEFAULT_SPEC, 12) >= max(12, DEFAULT_SPEC.warmup_bars)
    assert default_purge(DEFAULT_SPEC, 200) == 200
    cfg = EvaluationConfig().resolved()
    assert cfg.purge >= DEFAULT_SPEC.warmup_bars and cfg.embargo >= cfg.horizon
    with pytest.raises(ValueError, match="leak"):
        EvaluationConfig(purge=5).resolved()
    with pytest.raises(ValueError, match="leak"):
        EvaluationConfig(embargo=3).resolved()


def test_too_few_bars_is_an_error_that_says_what_to_do():
    with pytest.raises(ValueError, match="use more bars"):
        walk_forward_folds(500, 5, purge=PURGE, embargo=EMBARGO, min_train_bars=400)


# ----- folds of a retraining schedule (the run configuration's retrain: section) ----------------

HOUR = pd.Timedelta("1h")


def hourly(n: int, first: str = "2024-01-01 01:00") -> pd.DatetimeIndex:
    return pd.date_range(first, periods=n, freq="1h", tz="UTC")


def lifecycle_retrainings(index: pd.DatetimeIndex, schedule: RetrainSchedule, start: int):
    """What ModelLifecycle does bar by bar from ``start``: (retrain bar, window start) of every
    retraining it starts (the first bar has no previous bar; too few bars in the window: it
    waits for the next retrain bar)."""
    stamps = index.asi8
    made, previous = [], 0
    for position in range(start, len(stamps)):
        t = int(stamps[position])
        if schedule.due(previous, t):
            first = int(np.searchsorted(stamps, schedule.first_bar_ns(t)))
            if position + 1 - first >= schedule.min_bars:
                made.append((position, first))
        previous = t
    return made


@pytest.mark.parametrize(
    ("every", "window", "start"),
    [(300, 1_000, 0), ("12D", "expanding", 0), ("1D", "30D", 900), (250, "500 bars", 1_234)],
)
def test_retrain_folds_are_the_strategy_s_retrainings_with_adjacent_test_windows(
    every, window, start
):
    index = hourly(3_000)
    plan = RetrainPlan(every=every, window=window, min_bars=400, delay_bars=3)
    schedule = plan.schedule(int(HOUR.value))
    folds = retrain_folds(index, schedule, start=start)
    made = lifecycle_retrainings(index, schedule, start)
    activations = [due + 3 for due, _ in made]
    kept = [(due, first) for (due, first), a in zip(made, activations, strict=True) if a < 3_000]
    assert [(f.due, f.train.start) for f in folds] == kept
    for fold in folds:
        assert fold.train.stop == fold.due + 1  # trained on the bars up to its retrain bar
        assert fold.test.start == fold.due + 3  # decides from delay_bars later
        assert fold.purge == 2 and fold.embargo == 0
        if window == "expanding":
            assert fold.train.start == 0
        else:  # the last window's bars, or all there are (at least min_bars)
            length = schedule.window_ns // schedule.bar_ns
            assert len(fold.train) == min(length, fold.due + 1) >= 400
    for before, after in itertools.pairwise(folds):
        assert before.test.stop == after.test.start  # every bar decided by one model or the next
    assert folds[-1].test.stop == 3_000
    assert leaking_pairs(folds) == []


def test_retrain_folds_wait_for_min_bars_and_skip_a_model_that_decides_no_bar():
    index = hourly(2_000)
    schedule = RetrainPlan(every=500, window="expanding", min_bars=900, delay_bars=1).schedule(
        int(HOUR.value)
    )
    due = schedule.retrain_bars(index)
    folds = retrain_folds(index, schedule)
    assert [f.due for f in folds] == [d for d in due if d + 1 >= 900]
    assert folds[0].due > due[0]  # the first retrain bar waited: fewer than min_bars bars
    # a retraining at the last bar decides nothing: left out, the previous fold runs to the end
    last = index[: due[-1] + 1]
    cut = retrain_folds(last, schedule)
    assert cut[-1].due < due[-1] and cut[-1].test.stop == len(last)


def test_a_gap_moves_the_first_decision_to_the_next_bar_held():
    schedule = RetrainPlan(every=1_000, window=500, min_bars=400, delay_bars=2).schedule(
        int(HOUR.value)
    )
    index = hourly(1_500)
    (due,) = schedule.retrain_bars(index)
    index = index.delete([due + 1, due + 2])  # two bars missing after the retrain bar
    (fold,) = retrain_folds(index, schedule)
    assert fold.due == due and fold.test.start == due + 1
    assert index[fold.test.start] == index[due] + 3 * HOUR  # t + 2 bars missing: the next bar
    assert fold.purge == 0 and leaking_pairs([fold]) == []


def test_retrain_folds_refuse_what_they_cannot_model():
    index = hourly(3_000)
    slow = RetrainPlan(every=10, window=200, min_bars=200, delay_bars=11).schedule(HOUR.value)
    assert retrain_folds(index, replace(slow, delay_bars=10))  # swapped in as the next is due
    with pytest.raises(EvaluationInputError, match="due before the one at"):
        retrain_folds(index, slow)
    single = RetrainPlan(every=1, window=200, min_bars=200, delay_bars=1).schedule(HOUR.value)
    with pytest.raises(EvaluationInputError, match="at least 2"):
        retrain_folds(index, single)
    waiting = RetrainPlan(every=500, window=400, min_bars=1_000).schedule(HOUR.value)
    with pytest.raises(EvaluationInputError, match="min_bars"):
        retrain_folds(index, waiting)


def test_the_schedule_s_gaps_replace_the_purge_rule_explicitly():
    plan = RetrainPlan(every="7D", window="90D", delay_bars=3)
    cfg = EvaluationConfig(retrain=plan).resolved()
    assert (cfg.purge, cfg.embargo, cfg.scheme) == (2, 0, "rolling")
    assert cfg.resolved() == cfg  # resolving twice changes nothing
    assert EvaluationConfig(retrain=replace(plan, window="expanding")).resolved().scheme == (
        "expanding"
    )
    for given in ({"purge": 61}, {"embargo": 6}):
        with pytest.raises(EvaluationInputError, match="do not apply"):
            EvaluationConfig(retrain=plan, **given).resolved()


def test_retrain_fit_is_fit_config_of_the_evaluation_s_recipe():
    """The strategy retrains with fit_config_of(its model's manifest, mode, epochs, threads);
    the evaluation's base recipe is its own: the same function of a manifest of that recipe
    gives the same FitConfig (but for the modes: the evaluation trains every model)."""
    cfg = EvaluationConfig(retrain=RetrainPlan(every=100, epochs=3, threads=2)).resolved()
    fit = retrain_fit(cfg)
    manifest = {
        "training": cfg.train.to_dict(),
        "conditional": {
            "train_config": cfg.conditional.to_dict(),
            "context_len": cfg.context_len,
            "horizons": list(conditional_horizons(cfg.horizon)),
        },
        "inference": {
            "forecast_horizon": cfg.horizon,
            "forecast_sigma": FitConfig().forecast_sigma,
            "forecast_grid": FitConfig().forecast_grid,
        },
        "data": {"fractions": list(cfg.fractions)},
    }
    strategy = fit_config_of(manifest, "edge", 3, 2)
    assert replace(fit, modes=strategy.modes) == strategy
    assert fit.train.max_epochs == fit.conditional.max_epochs == 3
    assert fit.train.threads == fit.conditional.threads == 2
    unset = retrain_fit(replace(cfg, retrain=RetrainPlan(every=100)))
    assert unset.train.max_epochs == cfg.train.max_epochs  # retrain.epochs unset: --epochs


def test_a_retrain_section_refuses_the_fold_options(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(
        "strategy:\n  signal_mode: edge\nbacktest:\n  catalog: nowhere\n"
        "retrain:\n  every: 7D\n  window: 90D\n"
    )
    for option in (["--folds", "3"], ["--scheme", "rolling"], ["--train-bars", "500"]):
        code = cli.main(["--config", str(config), "--out", str(tmp_path / "out"), *option])
        err = capsys.readouterr().err
        assert code == 2 and option[0] in err and "retrain" in err
        assert len(err.strip().splitlines()) == 1
    space = tmp_path / "space.yaml"
    space.write_text("mode: grid\npolicy:\n  min_confidence: [0.5, 0.6]\n")
    assert cli.main(["sweep", str(space), "--config", str(config)]) == 2
    assert "does not evaluate a retrain" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_plan_reads_the_retrain_section_with_its_defaults():
    from strategies.retraining import RetrainSettings

    settings = RetrainSettings.from_mapping({"every": "7D", "window": 500, "epochs": 3})
    plan = RetrainPlan.of(settings)
    assert dataclasses.asdict(plan) == {
        f.name: getattr(settings, f.name) for f in dataclasses.fields(RetrainPlan)
    }
    assert RetrainPlan.of(RetrainSettings(every=24)) == RetrainPlan(every=24)  # same defaults
    with pytest.raises(ValueError, match="every"):
        RetrainPlan.of(RetrainSettings())
