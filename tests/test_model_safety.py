"""Models are never lost or half-written, and every mistake is one line and exit status 2.

- ``info`` runs the same checks as the strategy's loader, so what ``info`` accepts, a backtest
  loads; a hand-edited or damaged manifest (its checksum differs), a non-finite statistic and an
  old format version are refused by both, in one line;
- ``train`` checks ``--out`` before training and replaces a model directory only with
  ``--overwrite``, atomically; ``save_model`` never leaves half a model under the final name;
- bad options and paths of ``train``/``sample``/``info`` end in one ``error:`` line, exit 2,
  no traceback, and the user's directories unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from catalogs.catalog import write_bars
from catalogs.instruments import make_perpetual
from catalogs.synthetic import generate_bars
from runtime.run_config import load_run_config
from scoremodel import checkpoint
from scoremodel import cli
from scoremodel.checkpoint import CheckpointError
from scoremodel.checkpoint import ModelOutputError
from scoremodel.inference import ScoreModel
from scoremodel.pipeline import save_model
from strategies.model_loading import load_model_for
from tests.conftest import BAR_TYPE
from tests.helpers import edit_manifest
from tests.test_backtest_safety import User
from tests.test_backtest_safety import fails_cleanly
from tests.test_backtest_safety import refuse_training

TINY_TRAIN = ["--epochs", "1", "--hidden", "8", "--blocks", "1", "--modes", "score", "--quiet"]
MINUTE_BAR_TYPE = "BTCUSDT-LINEAR.BYBIT-1-MINUTE-LAST-EXTERNAL"


def snapshot(path: Path) -> dict[str, str]:
    """SHA-256 of every file under ``path`` (or of ``path`` itself), by relative name."""
    if path.is_file():
        return {".": hashlib.sha256(path.read_bytes()).hexdigest()}
    return {
        str(item.relative_to(path)): hashlib.sha256(item.read_bytes()).hexdigest()
        for item in sorted(path.rglob("*"))
        if item.is_file()
    }


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    """``python -m scoremodel ARGV`` in process: (exit status, stdout, stderr)."""
    try:
        code = cli.main(argv)
    except SystemExit as exit_:  # argparse rejects an option
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_user_error(code: int, err: str, phrase: str) -> None:
    """Exit status 2 and exactly one ``error:`` line naming the problem, no traceback."""
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert phrase in err, err


def assert_usage_error(code: int, err: str, phrase: str) -> None:
    """argparse's refusal: exit status 2, its usage and one error line, no traceback."""
    assert code == 2, err
    assert "Traceback" not in err and err.startswith("usage: ")
    assert phrase in err.strip().splitlines()[-1], err


@pytest.fixture(scope="module")
def small_catalog(tmp_path_factory) -> Path:
    """1,500 one-hour bars: enough for a 1-epoch training run in a few seconds."""
    path = tmp_path_factory.mktemp("small-catalog")
    write_bars(path, generate_bars(1_500, interval="1h", seed=5), make_perpetual("BTCUSDT"), "1h")
    return path


@pytest.fixture
def model_copy(trained_model, tmp_path) -> Path:
    copy = tmp_path / "models" / "mine"
    shutil.copytree(trained_model, copy)
    return copy


def loader_error(model: Path, **strategy) -> str:
    """The message the strategy's loader (backtest, live) gives for this model."""
    run_config = load_run_config(model_path=str(model), **strategy)
    with pytest.raises(CheckpointError) as error:
        load_model_for(run_config.strategy)
    return str(error.value)


EDITS = {
    "feature version": lambda m: m["feature_spec"].update(version=2),
    "no signal model": lambda m: m["models"].pop("signal"),
    "signal without normaliser": lambda m: m["models"]["signal"].pop("normaliser"),
    "no calibration table": lambda m: m["calibration"].pop("abs_score"),
}


@pytest.mark.parametrize("edit", EDITS.values(), ids=EDITS.keys())
def test_info_refuses_what_the_backtest_refuses_with_the_same_message(model_copy, edit, capsys):
    edit_manifest(model_copy, edit)  # resealed: these are the checks behind the checksum
    before = snapshot(model_copy)
    code, out, err = run(["info", str(model_copy)], capsys)
    assert_user_error(code, err, "retrain")
    assert err.strip() == f"error: {loader_error(model_copy)}"
    assert out == "" and snapshot(model_copy) == before


def set_std_3(manifest: dict, value: float) -> None:
    manifest["models"]["signal"]["normaliser"]["std"][3] = value


def lower_log_density_table(manifest: dict) -> None:
    manifest["calibration"]["log_density"]["values"][20] -= 1.0


# hand edits of what the model computes with or is checked against: each changed how a model
# traded (horizons [1, 3, 600]: 780 orders became 2,701) and was accepted before
HAND_EDITS = {
    "horizons": lambda m: m["conditional"].update(horizons=[1, 3, 600]),
    "normaliser": lambda m: set_std_3(m, 2 * m["models"]["signal"]["normaliser"]["std"][3]),
    "calibration": lower_log_density_table,
    "bar type": lambda m: m["data"].update(bar_type=MINUTE_BAR_TYPE),
}
EDITED = "manifest.json was edited or damaged after it was written (its checksum differs); "
AGAIN = "copy the whole model directory again or retrain"


@pytest.mark.parametrize("edit", HAND_EDITS.values(), ids=HAND_EDITS.keys())
def test_info_refuses_a_hand_edited_manifest(model_copy, edit, capsys):
    edit_manifest(model_copy, edit, reseal=False)
    before = snapshot(model_copy)
    code, out, err = run(["info", str(model_copy)], capsys)
    assert_user_error(code, err, EDITED + AGAIN)
    assert err.strip() == f"error: {loader_error(model_copy)}"
    assert out == "" and snapshot(model_copy) == before


def test_info_refuses_a_non_finite_statistic_naming_it(model_copy, capsys):
    edit_manifest(model_copy, lambda m: set_std_3(m, float("nan")))  # resealed: only the rule
    code, out, err = run(["info", str(model_copy)], capsys)
    assert_user_error(code, err, "models.signal.normaliser.std[3] is nan, but a model's")
    assert AGAIN in err and err.strip() == f"error: {loader_error(model_copy)}"
    assert out == ""


def test_info_refuses_a_version_2_model_with_the_retrain_message(model_copy, capsys):
    def version_2(manifest: dict) -> None:  # as version 2 wrote it: no manifest checksum
        manifest.update(format_version=2)
        manifest.pop("manifest_sha256")

    edit_manifest(model_copy, version_2, reseal=False)
    code, out, err = run(["info", str(model_copy)], capsys)
    phrase = "has format version 2, this code reads version 3; retrain the model with this version"
    assert_user_error(code, err, phrase)
    assert err.strip() == f"error: {loader_error(model_copy)}"
    assert out == ""


BACKTEST_DAMAGE = {
    **{name: (edit, False, EDITED + AGAIN) for name, edit in HAND_EDITS.items()},
    "nan statistic": (
        lambda m: set_std_3(m, float("nan")),
        True,
        "models.signal.normaliser.std[3] is nan",
    ),
}


@pytest.mark.parametrize(
    ("edit", "reseal", "phrase"), BACKTEST_DAMAGE.values(), ids=BACKTEST_DAMAGE.keys()
)
def test_backtest_refuses_an_edited_manifest_and_changes_nothing(
    synthetic_catalog, trained_model, tmp_path, monkeypatch, capsys, edit, reseal, phrase
):
    user = User(tmp_path, synthetic_catalog, trained_model)
    monkeypatch.chdir(user.workdir)
    monkeypatch.setattr("runtime.embedded_default.fit_model", refuse_training)
    edit_manifest(user.model, edit, reseal=reseal)
    user.before = user.snapshot()
    argv = ["--catalog", str(user.catalog), "--model", str(user.model)]
    line = fails_cleanly(capsys, user, *argv)
    assert f"model {user.model} cannot be used" in line and phrase in line


def test_info_checks_the_fit_to_bars_and_mode_like_the_backtest(model_copy, capsys):
    edit_manifest(model_copy, lambda m: m["models"].pop("forecast"))
    assert run(["info", str(model_copy)], capsys)[0] == 0  # a valid score-only model
    code, _, err = run(["info", str(model_copy), "--signal-mode", "forecast"], capsys)
    assert_user_error(code, err, "has no forecast model")
    assert err.strip() == f"error: {loader_error(model_copy, signal_mode='forecast')}"
    code, _, err = run(["info", str(model_copy), "--bar-type", MINUTE_BAR_TYPE], capsys)
    assert_user_error(code, err, f"but the strategy trades {MINUTE_BAR_TYPE}")
    assert err.strip() == f"error: {loader_error(model_copy, bar_type=MINUTE_BAR_TYPE)}"
    assert run(["info", str(model_copy), "--bar-type", BAR_TYPE], capsys)[0] == 0


def test_train_refuses_an_existing_model_directory_before_training(
    small_catalog, model_copy, capsys
):
    before = snapshot(model_copy)
    argv = ["train", "--catalog", str(small_catalog), "--out", str(model_copy), *TINY_TRAIN]
    code, out, err = run(argv, capsys)
    assert_user_error(code, err, "already exists; pass --overwrite")
    assert "bars of" not in out  # refused before reading bars, let alone training
    assert snapshot(model_copy) == before
    assert sorted(os.listdir(model_copy.parent)) == ["mine"]


def test_train_with_overwrite_replaces_the_model_whole(small_catalog, model_copy, capsys):
    old = snapshot(model_copy)
    argv = ["train", "--catalog", str(small_catalog), "--out", str(model_copy), "--overwrite"]
    code, out, err = run([*argv, *TINY_TRAIN], capsys)
    assert code == 0, err
    assert f"wrote {model_copy}" in out
    manifest = json.loads((model_copy / "manifest.json").read_text())
    assert manifest["training"]["hidden"] == 8 and set(manifest["models"]) == {"signal"}
    assert set(snapshot(model_copy)) == {"manifest.json", "signal.safetensors"}  # no stale file
    assert snapshot(model_copy) != old
    assert sorted(os.listdir(model_copy.parent)) == ["mine"]  # no temporary directory left
    assert run(["info", str(model_copy)], capsys)[0] == 0


def out_is_a_file(tmp_path: Path) -> tuple[Path, Path, str]:
    path = tmp_path / "model.txt"
    path.write_text("my notes")
    return path, path, "is a file, not a model directory"


def out_under_a_file(tmp_path: Path) -> tuple[Path, Path, str]:
    parent = tmp_path / "notes.txt"
    parent.write_text("my notes")
    return parent / "model", parent, "is not a directory"


def out_is_another_directory(tmp_path: Path) -> tuple[Path, Path, str]:
    path = tmp_path / "photos"
    path.mkdir()
    (path / "cat.jpg").write_bytes(b"\xff\xd8 a cat")
    return path, path, "is not a model directory (no manifest.json) and is not empty; choose"


@pytest.mark.parametrize("make", [out_is_a_file, out_under_a_file, out_is_another_directory])
def test_train_checks_out_before_training(small_catalog, tmp_path, make, capsys):
    out_path, user_path, phrase = make(tmp_path)
    before = snapshot(user_path)
    argv = ["train", "--catalog", str(small_catalog), "--out", str(out_path), *TINY_TRAIN]
    code, out, err = run(argv, capsys)
    assert_user_error(code, err, phrase)
    assert "bars of" not in out
    assert snapshot(user_path) == before


def test_overwrite_replaces_only_a_model_directory(small_catalog, tmp_path, capsys):
    photos, _, _ = out_is_another_directory(tmp_path)
    before = snapshot(photos)
    argv = ["train", "--catalog", str(small_catalog), "--out", str(photos), "--overwrite"]
    code, out, err = run([*argv, *TINY_TRAIN], capsys)
    assert_user_error(code, err, "is not a model directory (no manifest.json)")
    assert "bars of" not in out and snapshot(photos) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_train_refuses_an_unwritable_parent(small_catalog, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        argv = ["train", "--catalog", str(small_catalog), "--out", str(locked / "m"), *TINY_TRAIN]
        code, out, err = run(argv, capsys)
    finally:
        locked.chmod(0o755)
    assert_user_error(code, err, "no permission to write")
    assert "bars of" not in out and list(locked.iterdir()) == []


def test_save_model_refuses_an_existing_model_without_overwrite(trained_model, model_copy):
    before = snapshot(model_copy)
    with pytest.raises(ModelOutputError, match="already exists"):
        save_model(ScoreModel.load(trained_model), model_copy)
    assert snapshot(model_copy) == before


@pytest.mark.parametrize("fail_at", ["writing the manifest", "renaming the new model in"])
def test_a_crash_while_saving_leaves_the_old_model_intact(
    trained_model, model_copy, monkeypatch, fail_at
):
    """Whatever step fails, the old model stays byte-for-byte and no half model is left."""
    model = ScoreModel.load(trained_model)
    model.weights["signal"] = {k: v + 1.0 for k, v in model.weights["signal"].items()}
    before = snapshot(model_copy)
    dumps, rename = json.dumps, os.rename

    def failing_dumps(value, **options):
        if "indent" in options and fail_at == "writing the manifest":  # the manifest's text
            raise OSError(28, "No space left on device")
        return dumps(value, **options)

    failed_renames = []

    def failing_rename(source, target):  # the first rename onto the model's path fails
        onto_model = Path(target).name in ("mine", "new") and target not in failed_renames
        if onto_model and fail_at == "renaming the new model in":
            failed_renames.append(target)
            raise OSError(5, "Input/output error")
        rename(source, target)

    monkeypatch.setattr(checkpoint.json, "dumps", failing_dumps)
    monkeypatch.setattr(checkpoint.os, "rename", failing_rename)
    with pytest.raises(OSError):
        save_model(model, model_copy, overwrite=True)
    assert snapshot(model_copy) == before
    assert sorted(os.listdir(model_copy.parent)) == ["mine"]
    with pytest.raises(OSError):  # a new model: nothing at all under its name
        save_model(model, model_copy.parent / "new", overwrite=True)
    assert sorted(os.listdir(model_copy.parent)) == ["mine"]


def test_train_unknown_bar_type_is_one_line(small_catalog, tmp_path, capsys):
    before = snapshot(small_catalog)
    other = "ETHUSDT-LINEAR.BYBIT-1-HOUR-LAST-EXTERNAL"
    argv = ["train", "--catalog", str(small_catalog), "--bar-type", other]
    code, _, err = run([*argv, "--out", str(tmp_path / "m"), *TINY_TRAIN], capsys)
    assert_user_error(code, err, f"Bar type {other} is not in the catalog")
    assert snapshot(small_catalog) == before and not (tmp_path / "m").exists()


def test_train_on_too_few_bars_is_one_line(small_catalog, tmp_path, capsys):
    argv = ["train", "--catalog", str(small_catalog), "--end", "2024-01-05"]
    code, _, err = run([*argv, "--out", str(tmp_path / "m"), *TINY_TRAIN], capsys)
    assert_user_error(code, err, "too few")
    assert not (tmp_path / "m").exists()


BAD_OPTIONS = [
    (["train", "--epochs", "0"], "--epochs: must be a positive integer"),
    (["train", "--hidden", "-8"], "--hidden: must be a positive integer"),
    (["train", "--blocks", "0"], "--blocks: must be a positive integer"),
    (["train", "--batch-size", "0"], "--batch-size: must be a positive integer"),
    (["train", "--horizon", "0"], "--horizon: must be a positive integer"),
    (["train", "--learning-rate", "0"], "--learning-rate: must be a finite number > 0"),
    (["train", "--learning-rate", "nan"], "--learning-rate: must be a finite number > 0"),
    (["train", "--sigma-min", "-0.1"], "--sigma-min: must be a finite number > 0"),
    (["train", "--modes", "forecast"], "--modes: must include 'score'"),
    (["sample", "-n", "-5"], "--samples: must be a positive integer"),
    (["sample", "--steps", "0"], "--steps: must be a positive integer"),
]


@pytest.mark.parametrize(("argv", "phrase"), BAD_OPTIONS, ids=[" ".join(a) for a, _ in BAD_OPTIONS])
def test_numeric_options_are_checked_when_parsed(
    argv, phrase, small_catalog, model_copy, tmp_path, capsys
):
    before = snapshot(model_copy.parent)
    valid = {  # valid values first: the bad option given after them is the one that counts
        "train": ["--catalog", str(small_catalog), "--out", str(tmp_path / "new"), *TINY_TRAIN],
        "sample": [str(model_copy), "--out", str(tmp_path / "s.csv"), "--steps", "5"],
    }[argv[0]]
    code, _, err = run([argv[0], *valid, *argv[1:]], capsys)
    assert_usage_error(code, err, phrase)
    assert snapshot(model_copy.parent) == before and sorted(os.listdir(tmp_path)) == ["models"]


def test_sample_into_a_missing_directory_is_one_line(model_copy, tmp_path, capsys):
    out = tmp_path / "missing" / "samples.csv"
    code, _, err = run(["sample", str(model_copy), "-n", "5", "--out", str(out)], capsys)
    assert_user_error(code, err, "does not exist; create it first")
    assert not out.parent.exists()


def test_sample_writes_predictor_corrector_samples(model_copy, tmp_path, capsys):
    out = tmp_path / "samples.csv"
    code, stdout, err = run(
        ["sample", str(model_copy), "-n", "50", "--steps", "20", "--out", str(out)], capsys
    )
    assert code == 0, err
    assert f"wrote 50 samples to {out}" in stdout
    lines = out.read_text().splitlines()
    assert len(lines) == 51 and lines[0].startswith("ret_1,")
    assert sorted(os.listdir(tmp_path)) == ["models", "samples.csv"]  # no temporary file left
    code, help_text, _ = run(["sample", "--help"], capsys)
    assert code == 0 and "predictor-corrector" in help_text
