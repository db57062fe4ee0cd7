"""run_backtest.py never changes a user's catalog or model, and every bad input is one line.

Each test runs the command line in-process from an empty working directory (where the embedded
default's var/demo would go), on copies of the session's catalog and
model, and checks: exit status 2, the key phrase of the one-line message, no traceback, and
that no file under the user's directories or the working directory changed or appeared.
"""

from __future__ import annotations

import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
from nautilus_trader.config import StrategyConfig

import run_backtest
from output_paths import claim_output_dir
from runtime.embedded_default import DEMO_ROOT
from runtime.embedded_default import prepare_default_inputs
from runtime.run_config import STRATEGY_RULES
from runtime.run_config import ConfigError
from runtime.run_config import load_run_config
from scoremodel.checkpoint import usable_checkpoint
from scoremodel.features import DEFAULT_SPEC
from scoremodel.inference import ScoreModel
from strategies.score_matching import ScoreMatchingConfig
from tests.conftest import BAR_TYPE
from tests.helpers import edit_manifest
from tests.helpers import snapshot

FIVE_MINUTE = "BTCUSDT-LINEAR.BYBIT-5-MINUTE-LAST-EXTERNAL"


def refuse_training(*args, **kwargs):
    raise AssertionError("run_backtest.py trained a model")


class User:
    """A user's catalog and model (copies), and the empty working directory the CLI runs in."""

    def __init__(self, tmp_path: Path, catalog: Path, model: Path) -> None:
        self.catalog = tmp_path / "my-catalog"
        self.model = tmp_path / "my-model"
        self.workdir = tmp_path / "work"
        shutil.copytree(catalog, self.catalog)
        shutil.copytree(model, self.model)
        self.workdir.mkdir()
        self.before = self.snapshot()

    def snapshot(self) -> dict[str, str]:
        return snapshot(self.catalog, self.model, self.workdir)

    def edit_manifest(self, edit: Callable[[dict], None]) -> None:
        edit_manifest(self.model, edit)  # resealed: the check under test is another one
        self.before = self.snapshot()


@pytest.fixture
def user(synthetic_catalog, trained_model, tmp_path, monkeypatch) -> User:
    user = User(tmp_path, synthetic_catalog, trained_model)
    monkeypatch.chdir(user.workdir)
    monkeypatch.setattr("runtime.embedded_default.fit_model", refuse_training)
    return user


def fails_cleanly(capsys, user: User, *args: str) -> str:
    """Run the CLI: exit 2, one `error:` line, no traceback, nothing changed; the line."""
    status = run_backtest.main(list(args))
    captured = capsys.readouterr()
    assert status == 2, captured
    assert "Traceback" not in captured.err + captured.out
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert user.snapshot() == user.before
    return lines[0]


# ----- case 1: an unusable or mistyped --model is reported, never replaced --------------------


def truncate_weights(user: User) -> None:
    weights = user.model / "signal.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])


def pickled_weights(user: User) -> None:
    (user.model / "signal.pt").write_bytes(pickle.dumps({"weight": [1.0, 2.0]}))
    user.edit_manifest(lambda m: m["models"]["signal"].update(weights="signal.pt"))


def other_feature_version(user: User) -> None:
    user.edit_manifest(lambda m: m["feature_spec"].update(version=99))


def bad_manifest(user: User) -> None:
    (user.model / "manifest.json").write_text("{not json")


def missing_forecast_file(user: User) -> None:
    (user.model / "forecast.safetensors").unlink()


def changed_checksum(user: User) -> None:
    user.edit_manifest(lambda m: m["models"]["signal"].update(sha256="0" * 64))


@pytest.mark.parametrize(
    "damage",
    [
        truncate_weights,
        pickled_weights,
        other_feature_version,
        bad_manifest,
        missing_forecast_file,
        changed_checksum,
    ],
)
def test_unusable_model_is_reported_and_left_alone(user, damage, capsys):
    damage(user)
    user.before = user.snapshot()
    line = fails_cleanly(
        capsys, user, "--catalog", str(user.catalog), "--bar-type", BAR_TYPE,
        "--model", str(user.model),
    )  # fmt: skip
    assert f"model {user.model} cannot be used" in line
    assert (
        f"python -m scoremodel train --catalog {user.catalog} --bar-type {BAR_TYPE} "
        f"--out {user.model} --overwrite"
    ) in line


def test_mistyped_model_path_is_not_created(user, capsys):
    typo = user.model.with_name("my-modle")
    line = fails_cleanly(
        capsys, user, "--catalog", str(user.catalog), "--bar-type", BAR_TYPE, "--model", str(typo)
    )
    assert f"model directory {typo} does not exist" in line
    assert f"--out {typo}" in line
    assert not typo.exists()


def test_model_for_other_bars_is_left_alone_and_a_new_directory_suggested(user, capsys):
    minute = "BTCUSDT-LINEAR.BYBIT-1-MINUTE-LAST-EXTERNAL"
    user.edit_manifest(lambda m: m["data"].update(bar_type=minute))
    line = fails_cleanly(capsys, user, "--catalog", str(user.catalog), "--model", str(user.model))
    assert f"model {user.model} does not fit this run: {user.model} was trained on {minute}" in line
    assert f"--bar-type {BAR_TYPE} --out NEW_MODEL_DIR` and pass it with --model" in line


def test_model_path_that_is_a_file(user, capsys):
    line = fails_cleanly(
        capsys, user, "--catalog", str(user.catalog), "--model", str(user.model / "manifest.json")
    )
    assert "manifest.json is not a directory; train one with" in line


def test_report_dir_that_is_a_file(user, capsys):
    line = fails_cleanly(
        capsys, user, "--catalog", str(user.catalog), "--model", str(user.model),
        "--report-dir", str(user.model / "manifest.json"),
    )  # fmt: skip
    assert "manifest.json is a file, not a directory; give a directory" in line


def test_model_path_alone_reads_no_generated_catalog(user, capsys):
    line = fails_cleanly(capsys, user, "--model", str(user.model))
    assert "catalog var/catalog does not exist" in line
    assert "with no arguments builds the embedded default" in line


# ----- case 2: a catalog without the bars, or a mistyped --catalog, gets no synthetic bars -----


def test_catalog_without_the_bar_type_gets_no_synthetic_bars(user, capsys):
    line = fails_cleanly(
        capsys, user, "--catalog", str(user.catalog), "--bar-type", FIVE_MINUTE,
        "--model", str(user.model),
    )  # fmt: skip
    assert f"catalog {user.catalog} holds no {FIVE_MINUTE} bars (it holds: {BAR_TYPE})" in line
    assert "python -m catalogs import-csv FILE.csv --symbol BTCUSDT --interval 5min" in line


def test_mistyped_catalog_path_is_not_created(user, capsys):
    typo = user.catalog.with_name("my-catalgo")
    line = fails_cleanly(capsys, user, "--catalog", str(typo), "--model", str(user.model))
    assert f"catalog {typo} does not exist" in line
    assert f"--catalog {typo}" in line
    assert not typo.exists()


def test_bar_type_alone_is_not_the_embedded_default(user, capsys):
    line = fails_cleanly(capsys, user, "--bar-type", FIVE_MINUTE)
    assert f"the embedded default holds only {BAR_TYPE} bars" in line
    assert "--catalog CATALOG --model MODEL_DIR" in line


def test_default_preparation_refuses_a_users_paths(user):
    run = load_run_config(model_path=str(user.model))
    with pytest.raises(ValueError, match="writes only to var/demo/catalog and var/demo/model"):
        prepare_default_inputs(run)
    assert user.snapshot() == user.before


def test_the_defaults_own_unusable_model_is_retrained_there_and_said_so(
    user, trained_model, capsys, monkeypatch
):
    demo = claim_output_dir(user.workdir / DEMO_ROOT, "the embedded default's directory")
    own_catalog, own_model = demo / "catalog", demo / "model"
    shutil.copytree(user.catalog, own_catalog)
    shutil.copytree(user.model, own_model)
    (own_model / "manifest.json").write_text("{not json")
    retrained = ScoreModel.load(trained_model)
    monkeypatch.setattr("runtime.embedded_default.fit_model", lambda *args, **kwargs: retrained)
    status = run_backtest.main(["--start", "2024-11-20", "--report-dir", "report"])
    out = capsys.readouterr().out
    assert status == 0
    assert "the embedded default's own model var/demo/model cannot be used" in out
    assert "retraining it there" in out
    assert usable_checkpoint(own_model, DEFAULT_SPEC) is None


# ----- case 8: every configuration value is checked at load -----------------------------------


@pytest.mark.parametrize(
    "yaml_text, message",
    [
        (
            "backtest:\n  fill_at: next_opne\n",
            "backtest.fill_at = 'next_opne' is invalid; expected one of next_open, next_close",
        ),
        ("backtest:\n  starting_balance: -100\n", "backtest.starting_balance = -100 is invalid"),
        ("backtest:\n  starting_balance: 0\n", "expected a number > 0"),
        ("backtest:\n  latency_ms: -500\n", "backtest.latency_ms = -500 is invalid"),
        ("backtest:\n  slippage_probability: 1.5\n", "expected a number in [0, 1]"),
        ("backtest:\n  seed: 1.5\n", "backtest.seed = 1.5 is invalid; expected a whole number"),
        ("backtest:\n  tearsheet: 'no'\n", "backtest.tearsheet = 'no' is invalid"),
        ("backtest:\n  start: someday\n", "backtest.start = 'someday' is invalid"),
        ("backtest:\n  start: 2027-02-01\n  end: 2027-01-01\n", "must be before backtest.end"),
        ("backtest:\n  fil_at: next_open\n", "unknown backtest fields ['fil_at']; valid:"),
        ("strategy:\n  density_percentile: 100\n", "expected a number in [0, 100)"),
        ("strategy:\n  min_confidence: 1.5\n", "strategy.min_confidence = 1.5 is invalid"),
        ("strategy:\n  max_drawdown: 1.0\n", "expected a number in (0, 1)"),
        (
            "strategy:\n  reduce_drawdown: 0.3\n",
            "strategy.reduce_drawdown = 0.3 must be at most max_drawdown = 0.2",
        ),
        (
            "strategy:\n  signal_mode: edge\n  consistency_bars: 5\n",
            "strategy.consistency_bars = 5 does nothing in edge mode",
        ),
        (
            "strategy:\n  signal_mode: score\n  kelly_fraction: 0.5\n",
            "strategy.kelly_fraction = 0.5 does nothing in score mode",
        ),
        (
            "strategy:\n  min_edge_probability: 0.5\n",
            "strategy.min_edge_probability was replaced by min_confidence",
        ),
        ("strategy:\n  signal_mode: scores\n", "expected one of score, forecast, edge"),
        ("strategy:\n  consistency_bars: 2.5\n", "expected a whole number >= 1"),
        ("strategy:\n  max_leverage: .nan\n", "strategy.max_leverage = nan is invalid"),
        ("strategy:\n  max_notional: -5\n", "expected a number > 0, or null"),
        ("strategy:\n  hold_when_blocked: 1\n", "expected true or false"),
        ("strategy:\n  bar_type: BTCUSDT-1-HOURS\n", "expected a bar type such as"),
        ("strategy:\n  order_id_tag: 5\n", "invalid strategy config: Expected `str | null`"),
        ("live:\n  mode: production\n", "expected one of sandbox, demo, testnet, mainnet"),
        ("live:\n  trader_id: TRADER\n", "expected a trader id NAME-TAG"),
        ("live:\n  sandbox_taker_fee: -0.001\n", "live.sandbox_taker_fee = -0.001 is invalid"),
        ("live:\n  base_url_http: 127.0.0.1:8080\n", "expected an http:// or https:// URL"),
        ("live:\n  log_level: LOUD\n", "expected one of OFF, TRACE, DEBUG, INFO, WARNING"),
        ("- strategy\n- backtest\n", "must hold a mapping with strategy/backtest/live sections"),
        ("backtest: 5\n", "section 'backtest' must be a mapping of field: value, not a int"),
        ("backtset:\n  seed: 1\n", "unknown sections ['backtset']"),
    ],
)
def test_invalid_config_value_is_one_line_naming_file_field_and_allowed(
    user, tmp_path, yaml_text, message, capsys
):
    config = tmp_path / "run.yaml"
    config.write_text(yaml_text)
    user.before = user.snapshot()
    line = fails_cleanly(capsys, user, "--config", str(config))
    assert line.startswith(f"error: {config}")
    assert message in line


def test_every_strategy_field_has_a_rule():
    own = set(ScoreMatchingConfig.__struct_fields__) - set(StrategyConfig.__struct_fields__)
    assert own == set(STRATEGY_RULES)


def test_yaml_quirks_load_as_meant(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(
        "backtest:\n  start: 2027-01-01\n  starting_balance: 5e3\n  log_level: info\n"
        "live:\n  sandbox_taker_fee: 5.5e-4\n"
    )
    run = load_run_config(config)
    assert run.backtest.start == "2027-01-01"
    assert run.backtest.starting_balance == 5000.0
    assert run.backtest.log_level == "INFO"
    assert run.live.sandbox_taker_fee == 0.00055


def test_default_config_file_loads_unchanged():
    run = load_run_config("configs/default.yaml")
    assert msgspec.structs.asdict(run.strategy) == msgspec.structs.asdict(
        load_run_config().strategy
    )
    assert run.backtest.fill_at == "next_open" and run.live.mode == "sandbox"


def test_command_line_bar_type_is_checked():
    with pytest.raises(ConfigError, match=r"command line: strategy.bar_type = 'garbage'"):
        load_run_config(bar_type="garbage")


# ----- other bad inputs: one line each, nothing changed --------------------------------------


def test_window_with_a_single_bar_names_the_window_and_the_catalogs_range(user, capsys):
    line = fails_cleanly(
        capsys, user, "--catalog", str(user.catalog), "--model", str(user.model),
        "--start", "2024-06-01T05:00", "--end", "2024-06-01T05:30",
    )  # fmt: skip
    assert "the backtest window 2024-06-01 05:00:00+00:00 .. 2024-06-01 05:30:00+00:00" in line
    assert "holds 1 " in line and "the catalog holds 2024-01-01 01:00:00+00:00 .. " in line


@pytest.mark.parametrize(
    "args, message",
    [
        (["--start", "soon"], "command line: backtest.start = 'soon' is invalid"),
        (["--start", "2024-06-01", "--end", "2024-05-01"], "must be before backtest.end"),
        (["--start", "2031-01-01"], "bars with close time in [2031-01-01"),
    ],
)
def test_bad_dates_are_one_line(user, args, message, capsys):
    line = fails_cleanly(
        capsys, user, "--catalog", str(user.catalog), "--model", str(user.model), *args
    )
    assert message in line


def test_missing_config_file(user, tmp_path, capsys):
    line = fails_cleanly(capsys, user, "--config", str(tmp_path / "nothing.yaml"))
    assert "does not exist; check the path" in line


def test_config_that_is_a_directory(user, tmp_path, capsys):
    line = fails_cleanly(capsys, user, "--config", str(tmp_path))
    assert f"config file {tmp_path} is a directory" in line
