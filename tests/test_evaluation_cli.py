"""The evaluation end to end: folds train on the past only; the CLI writes a complete report."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

import pytest

from catalogs.synthetic import generate_bars
from evaluation import cli
from evaluation import walk_forward
from evaluation.folds import EvaluationInputError
from evaluation.summary import MODEL_VARIANTS
from evaluation.summary import STRATEGIES
from evaluation.walk_forward import EvaluationConfig
from evaluation.walk_forward import evaluate
from scoremodel.cond_training import ConditionalTrainConfig
from scoremodel.training import TrainConfig
from tests.conftest import BAR_TYPE

TINY = EvaluationConfig(
    n_folds=2,
    train=TrainConfig(hidden=16, n_blocks=1, max_epochs=2, batch_size=256, seed=3),
    conditional=ConditionalTrainConfig(hidden=16, max_epochs=2, batch_size=512, seed=3),
    random_draws=3,
    n_boot=50,
    n_permutations=10,
    scenario_samples=200,
    scenario_states=40,
    scenario_paths_per_state=8,
    pc_steps=20,
)
TINY_FLAGS = [
    "--folds", "2", "--epochs", "2", "--hidden", "16", "--blocks", "1", "--random-draws", "3",
    "--bootstrap", "50", "--scenario-samples", "200", "--pc-steps", "20",
]  # fmt: skip
FOLD_KEYS = {
    "strategies",
    "ic",
    "ic_by_signal",
    "pearson_ic_by_signal",
    "permutation_ic",
    "crps_model",
    "crps_baseline",
    "ood_share",
}


def test_each_fold_trains_only_on_bars_before_its_purge(monkeypatch):
    bars = generate_bars(3_000, interval="1h", seed=5)
    seen = []
    real_fit = walk_forward.fit_model

    def recording_fit(train_bars, *args, **kwargs):
        seen.append(train_bars.index[-1])
        return real_fit(train_bars, *args, **kwargs)

    monkeypatch.setattr(walk_forward, "fit_model", recording_fit)
    results, runs, _ = evaluate(bars, "synthetic", TINY, log=lambda _: None)
    assert len(seen) == len(runs) == 2
    for last_train, run in zip(seen, runs, strict=True):
        first_test = bars.index[run.fold.test.start]
        purge = results["config"]["purge"]
        assert bars.index.get_loc(first_test) - bars.index.get_loc(last_train) > purge
        assert run.sims["model"].equity.index[0] == first_test  # trades only the test window
    for summary in [*results["folds"], results["overall"]]:
        assert set(summary) >= FOLD_KEYS and set(summary["strategies"]) == set(STRATEGIES)
        assert abs(summary["permutation_ic"]["mean"]) < summary["permutation_ic"]["bound"]


def strict_json(path):
    def refuse(token):
        raise ValueError(f"non-standard JSON constant {token}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_cli_writes_report_json_and_figures_from_a_catalog(synthetic_catalog, tmp_path, capsys):
    out = tmp_path / "evaluation"
    code = cli.main(
        [
            "--catalog",
            str(synthetic_catalog),
            "--bar-type",
            BAR_TYPE,
            "--out",
            str(out),
            *TINY_FLAGS,
        ]
    )
    assert code == 0, capsys.readouterr().err
    data = strict_json(out / "evaluation.json")
    assert len(data["folds"]) == 2
    for summary in [*data["folds"], data["overall"]]:
        assert set(summary) >= FOLD_KEYS
        assert {"value", "low", "high"} <= set(summary["ic"])
        assert set(summary["strategies"]) == set(STRATEGIES)
        assert {
            "sharpe",
            "sortino",
            "max_drawdown",
            "turnover",
            "fees",
            "hit_rate",
            "psr",
            "dsr",
        } <= set(summary["strategies"]["model"])
    # the deflated Sharpe counts the model's variants as its trials, not the yardsticks
    assert data["overall"]["n_trials"] == len(MODEL_VARIANTS) < len(STRATEGIES)
    for metrics in data["overall"]["strategies"].values():
        assert metrics["dsr"] <= metrics["psr"]
    assert data["config"]["purge"] >= 61 and data["verdict"]
    report = (out / "report.md").read_text()
    assert "## Verdict" in report and "Sharpe" in report
    for name in ("equity_folds", "ic_folds", "pit", "calibration", "ks_features"):
        assert (out / f"{name}.png").stat().st_size > 5_000
    assert "report:" in capsys.readouterr().out


def test_cli_evaluates_a_csv(tmp_path):
    csv = tmp_path / "bars.csv"
    frame = generate_bars(2_500, interval="1min", seed=9)
    frame.index = frame.index - frame.index[1] + frame.index[0]  # stamped at the open
    frame.rename_axis("timestamp").to_csv(csv)
    out = tmp_path / "csv_report"
    assert cli.main(["--csv", str(csv), "--interval", "1min", "--out", str(out), *TINY_FLAGS]) == 0
    data = strict_json(out / "evaluation.json")
    assert data["bar_interval"] == "0 days 00:01:00" and data["bars"] == 2_500


def test_a_missing_catalog_is_one_line_and_not_created(tmp_path, capsys):
    missing = tmp_path / "none"
    code = cli.main(["--catalog", str(missing), "--out", str(tmp_path / "report")])
    err = capsys.readouterr().err
    assert code == 2 and "catalog" in err and "does not exist" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not missing.exists() and not (tmp_path / "report").exists()


@pytest.mark.parametrize(
    ("argv", "phrase"),
    [
        (["--folds", "0"], "--folds: must be a positive integer"),
        (["--min-train-fraction", "1.5"], "--min-train-fraction: must be between 0"),
    ],
)
def test_options_are_checked_when_parsed(argv, phrase, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2 and phrase in capsys.readouterr().err


def test_the_default_catalog_is_built_at_its_own_path_when_missing(tmp_path, monkeypatch):
    from runtime.embedded_default import DEFAULT_BAR_TYPE
    from runtime.embedded_default import DEFAULT_CATALOG
    from runtime.run_config import load_run_config

    monkeypatch.chdir(tmp_path)
    args = argparse.Namespace(config=None, catalog=None, bar_type=None, start=None, end=None)
    bars, source = cli._catalog_bars(args, load_run_config(None))
    assert len(bars) == 30_000 and source == DEFAULT_BAR_TYPE
    assert (tmp_path / DEFAULT_CATALOG).is_dir()


def test_the_config_s_policy_is_the_policy_evaluated(synthetic_catalog, tmp_path):
    """--config: the same run configuration file as run_backtest.py; a stricter confidence
    threshold in it must change the evaluated model strategy's trades."""
    turnover = {}
    for threshold in (0.0, 0.95):
        config = tmp_path / f"run-{threshold}.yaml"
        config.write_text(
            f"strategy:\n  bar_type: {BAR_TYPE}\n  signal_mode: score\n"
            f"  min_confidence: {threshold}\n"
            f"backtest:\n  catalog: {synthetic_catalog}\n"
        )
        out = tmp_path / f"report-{threshold}"
        assert cli.main(["--config", str(config), "--out", str(out), *TINY_FLAGS]) == 0
        data = strict_json(out / "evaluation.json")
        assert data["config"]["policy"]["min_confidence"] == threshold
        assert data["policy_source"] == str(config)
        assert f"min confidence {threshold}" in (out / "report.md").read_text()
        turnover[threshold] = data["overall"]["strategies"]["model"]["turnover"]
    assert turnover[0.95] < 0.5 * turnover[0.0]


@pytest.mark.parametrize("field", ["purge", "embargo"])
def test_the_runner_refuses_leaky_gaps(field):
    with pytest.raises(EvaluationInputError, match="leak"):
        evaluate(generate_bars(3_000, interval="1h"), "x", replace(TINY, **{field: 1}))
