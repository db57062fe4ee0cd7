"""Inputs every command refuses in one line (issue 21): empty or ambiguous YAML files, sweep
values a trial could not use, an unreachable Ray address, paths that are not regular files, and
messages that name the command's own flags.

Each test runs the real command (in-process, or in a subprocess where the old behaviour hangs)
from an empty working directory and checks: exit status 2, one ``error:`` line, no traceback,
and that no file of the user's or under the working directory changed or appeared.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import run_backtest
import run_live
from catalogs import cli as catalogs_cli
from catalogs.catalog import load_instrument
from catalogs.errors import InstrumentNotFoundError
from catalogs.synthetic import generate_bars
from cli_errors import UserError
from cli_errors import run_cli
from evaluation import cli as evaluation_cli
from evaluation.sweep import load_space
from runtime.run_config import load_run_config
from scoremodel import cli as scoremodel_cli
from tests.conftest import BAR_TYPE
from tests.test_evaluation_cli import TINY_FLAGS
from yaml_files import read_yaml

ROOT = Path(__file__).resolve().parents[1]


def snapshot(*roots: Path) -> dict[str, str]:
    """Every directory and file under ``roots``: path -> "dir" or the file's SHA-256 (a FIFO or
    device is named, never read)."""
    found: dict[str, str] = {}
    for root in roots:
        found[str(root)] = "dir" if root.is_dir() else "absent"
        for path in sorted(root.rglob("*")):
            if path.is_dir():
                found[str(path)] = "dir"
            elif path.is_file():
                found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                found[str(path)] = "special"
    return found


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """An empty working directory (where the embedded default's var/ would go)."""
    directory = tmp_path / "work"
    directory.mkdir()
    monkeypatch.chdir(directory)
    return directory


def one_error_line(status: int, captured, progress: bool = False) -> str:
    """Exit status 2, one `error:` line on stderr (the last; with ``progress``, after the
    command's progress lines such as "read 5 rows"), no traceback; the line."""
    assert status == 2, captured
    assert "Traceback" not in captured.err + captured.out
    lines = captured.err.strip().splitlines()
    errors = [line for line in lines if line.startswith("error")]
    assert errors == lines[-1:] and (progress or len(lines) == 1), captured.err
    assert errors[0].startswith("error: ")
    return errors[0]


def fails_cleanly(capsys, main, argv: list[str], *roots: Path, progress: bool = False) -> str:
    """Run ``main(argv)``: exit 2, one `error:` line, nothing under ``roots`` changed."""
    before = snapshot(*roots)
    status = main(argv)
    line = one_error_line(status, capsys.readouterr(), progress)
    assert snapshot(*roots) == before
    return line


def run_command(argv: list[str], cwd: Path, timeout: float = 90) -> tuple[subprocess.Popen, float]:
    """``python ARGV`` in a fresh interpreter; (the finished process, its wall seconds)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0"}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    return done, time.perf_counter() - started


def one_error_line_of(done) -> str:
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


def refuse_default_inputs(*args, **kwargs):
    raise AssertionError("the embedded default was built: the configuration file was ignored")


@pytest.fixture
def no_embedded_default(monkeypatch):
    """Building the embedded default (what an ignored configuration file falls back to) fails
    the test at once instead of training for minutes."""
    monkeypatch.setattr("runtime.embedded_default.prepare_default_catalog", refuse_default_inputs)
    monkeypatch.setattr("runtime.embedded_default.prepare_default_inputs", refuse_default_inputs)
    monkeypatch.setattr("runtime.embedded_default.fit_model", refuse_default_inputs)


@pytest.fixture(scope="module")
def bars_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("inputs_csv") / "bars.csv"
    frame = generate_bars(2_500, interval="1min", seed=9)
    frame.index = frame.index - frame.index[1] + frame.index[0]  # stamped at the open
    frame.rename_axis("timestamp").to_csv(path)
    return path


# ----- case 9: an empty or ambiguous configuration file ---------------------------------------

CONFIG_COMMANDS = {
    "run_backtest.py": (run_backtest.main, []),
    "run_live.py kill": (run_live.main, ["kill"]),  # writes the kill switch file when it runs
    "python -m evaluation": (evaluation_cli.main, []),
}
EMPTY_FILES = {
    "0 bytes": "",
    "whitespace": "\n   \n\n",
    "comments": "# my settings, to be filled in\n\n  # later\n",
    "null": "~\n",
}
DUPLICATES = {  # the file, the key, the lines of its two values
    "a field": (
        "backtest:\n  latency_ms: 250\n  seed: 1\n  latency_ms: 99999\n",
        "latency_ms",
        2,
        4,
    ),
    "a section": (
        "backtest:\n  seed: 1\nlive:\n  mode: demo\nbacktest:\n  seed: 2\n",
        "backtest",
        1,
        5,
    ),
    "a strategy field": (
        "strategy:\n  min_confidence: 0.6\n  min_confidence: 0.9\n",
        "min_confidence",
        2,
        3,
    ),
}


@pytest.mark.parametrize("command", CONFIG_COMMANDS)
@pytest.mark.parametrize("content", EMPTY_FILES)
def test_an_empty_config_file_is_refused(command, content, workdir, no_embedded_default, capsys):
    config = workdir.parent / "mine.yaml"
    config.write_text(EMPTY_FILES[content])
    main, argv = CONFIG_COMMANDS[command]
    line = fails_cleanly(capsys, main, [*argv, "--config", str(config)], workdir, config)
    assert f"config file {config} is empty" in line
    assert "configs/default.yaml is a complete example" in line


@pytest.mark.parametrize("command", CONFIG_COMMANDS)
@pytest.mark.parametrize("where", DUPLICATES)
def test_a_key_given_twice_is_refused_with_both_lines(
    command, where, workdir, no_embedded_default, capsys
):
    text, key, first, second = DUPLICATES[where]
    config = workdir.parent / "mine.yaml"
    config.write_text(text)
    main, argv = CONFIG_COMMANDS[command]
    line = fails_cleanly(capsys, main, [*argv, "--config", str(config)], workdir, config)
    assert f"config file {config}: key '{key}' is given twice" in line
    assert f"(lines {first} and {second})" in line


def test_numbers_as_yaml_1_1_text_and_unquoted_dates_still_load(tmp_path):
    config = tmp_path / "mine.yaml"
    config.write_text(
        "strategy:\n  min_confidence: 5.5e-1\n  slippage: 1e-4\n"
        "backtest:\n  start: 2027-01-01\n  end: 2027-02-01\n  latency_ms: 5e2\n"
    )
    run = load_run_config(config)
    assert run.strategy.min_confidence == 0.55 and run.strategy.slippage == 1e-4
    assert (run.backtest.start, run.backtest.end) == ("2027-01-01", "2027-02-01")
    assert run.backtest.latency_ms == 500.0


def test_a_merge_key_is_not_a_duplicate(tmp_path):
    path = tmp_path / "anchored.yaml"
    path.write_text("base: &base\n  a: 1\n  b: 2\nother:\n  <<: *base\n  b: 3\n")
    assert read_yaml(path, "file", "x") == {"base": {"a": 1, "b": 2}, "other": {"a": 1, "b": 3}}


# ----- paths that exist but are not regular files, or not directories -------------------------


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
@pytest.mark.parametrize("command", CONFIG_COMMANDS)
def test_a_device_as_config_is_not_a_regular_file(command, workdir, capsys):
    main, argv = CONFIG_COMMANDS[command]
    line = fails_cleanly(capsys, main, [*argv, "--config", "/dev/zero"], workdir)
    assert "config file /dev/zero is not a regular file" in line
    assert "does not exist" not in line


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.parametrize(
    "argv",
    [
        ["run_backtest.py", "--config", "FIFO"],
        ["-m", "evaluation", "sweep", "FIFO", "--csv", "CSV"],
    ],
    ids=["config", "sweep space"],
)
def test_a_fifo_is_refused_before_it_is_opened(argv, tmp_path, bars_csv):
    """No writer ever opens the FIFO: reading it would block for good."""
    fifo = tmp_path / "input.yaml"
    os.mkfifo(fifo)
    work = tmp_path / "work"
    work.mkdir()
    argv = [str(ROOT / a) if a.endswith(".py") else a for a in argv]
    argv = [str(fifo) if a == "FIFO" else str(bars_csv) if a == "CSV" else a for a in argv]
    before = snapshot(tmp_path)
    done, _ = run_command(argv, work, timeout=120)
    line = one_error_line_of(done)
    assert f"{fifo} is not a regular file" in line
    assert snapshot(tmp_path) == before


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
@pytest.mark.parametrize(
    ("main", "argv", "phrase"),
    [
        (
            scoremodel_cli.main,
            ["info", "/dev/zero"],
            "model directory /dev/zero is not a directory",
        ),
        (evaluation_cli.main, ["--catalog", "/dev/zero"], "catalog /dev/zero is not a directory"),
        (
            evaluation_cli.main,
            ["instruments", "--catalog", "/dev/zero"],
            "catalog /dev/zero is not a directory",
        ),
    ],
    ids=["scoremodel info", "evaluation --catalog", "evaluation instruments"],
)
def test_a_device_is_not_a_directory_rather_than_missing(main, argv, phrase, workdir, capsys):
    line = fails_cleanly(capsys, main, argv, workdir)
    assert phrase in line and "does not exist" not in line


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
@pytest.mark.parametrize(
    ("main", "argv"),
    [
        (catalogs_cli.main, ["import-csv", "/dev/zero", "--interval", "1min", "--catalog", "c"]),
        (evaluation_cli.main, ["--csv", "/dev/zero"]),
    ],
    ids=["catalogs import-csv", "evaluation --csv"],
)
def test_a_device_as_csv_is_not_a_regular_file(main, argv, workdir, capsys):
    line = fails_cleanly(capsys, main, argv, workdir)
    assert "/dev/zero is not a regular file; pass the path of a CSV file" in line


# ----- case 11: every sweep value is checked before bars are read or Ray starts ---------------


@pytest.fixture
def no_bars_no_ray(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("bars were read or Ray started before the space was checked")

    monkeypatch.setattr(evaluation_cli, "_csv_bars", refuse)
    monkeypatch.setattr(evaluation_cli, "_catalog_bars", refuse)
    monkeypatch.setattr(evaluation_cli, "ray_session", refuse)


@pytest.mark.parametrize(
    ("space", "phrase"),
    [
        (
            "model:\n  hidden: [0, 64]\n",
            "model.hidden = 0 is invalid; expected a whole number >= 1",
        ),
        ('model:\n  hidden: ["big"]\n', "model.hidden = 'big' is invalid; expected a whole number"),
        ("model:\n  hidden: [32.5]\n", "model.hidden = 32.5 is invalid; expected a whole number"),
        ("model:\n  learning_rate: [-0.001]\n", "model.learning_rate = -0.001 is invalid"),
        ("model:\n  max_epochs: [true]\n", "model.max_epochs = True is invalid"),
        ("model:\n  ema_decay: [1.0]\n", "model.ema_decay = 1.0 is invalid; expected a number in"),
        ("model:\n  threads: [0]\n", "model.threads = 0 is invalid; expected a whole number >= 1"),
        (
            "mode: random\ntrials: 2\nmodel:\n  hidden: {low: 0, high: 64}\n",
            "model.hidden.low = 0 is invalid; expected a whole number >= 1",
        ),
        (
            "mode: random\ntrials: 2\nmodel:\n  learning_rate: {low: 0, high: 0.01, log: true}\n",
            "model.learning_rate.low = 0 is invalid; expected a number > 0",
        ),
        (
            "mode: random\ntrials: 2\nmodel:\n  learning_rate: {low: 0.01, high: 0.001}\n",
            "expected low <= high",
        ),
        (
            "model:\n  sigma_max: [0.05]\n",
            "trial 0 (model.sigma_max=0.05) is invalid: sigma_max = 0.05 must be greater than "
            "sigma_min = 0.1",
        ),
        ("policy:\n  min_confidence: [0.5, 1.5]\n", "policy.min_confidence = 1.5 is invalid"),
        ("model:\n  hidden: [32]\n  hidden: [64]\n", "key 'hidden' is given twice"),
        ("# nothing yet\n", "is empty"),
        ("seed: abc\nmodel:\n  hidden: [32]\n", "seed = 'abc' is invalid"),
    ],
)
def test_a_sweep_value_no_trial_could_use_is_one_line_before_anything_runs(
    space, phrase, workdir, bars_csv, no_bars_no_ray, capsys
):
    path = workdir.parent / "space.yaml"
    path.write_text(space)
    argv = ["sweep", str(path), "--csv", str(bars_csv), "--out", str(workdir / "out")]
    line = fails_cleanly(capsys, evaluation_cli.main, argv, workdir, path)
    assert str(path) in line and phrase in line


def test_sweep_values_are_read_as_their_fields_rules_read_them(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(
        "mode: random\ntrials: 3\nseed: 1\nmodel:\n  learning_rate: [5e-4, 1e-3]\n"
        "  hidden: {low: 16, high: 64}\n  weight_decay: {low: 1e-5, high: 1e-3, log: true}\n"
    )
    space = load_space(path)
    assert space.values["model"]["learning_rate"] == [0.0005, 0.001]  # YAML 1.1 reads text
    for trial in space.settings():
        model = trial["model"]
        assert isinstance(model["learning_rate"], float) and isinstance(model["hidden"], int)
        assert 16 <= model["hidden"] <= 64 and 1e-5 <= model["weight_decay"] <= 1e-3


# ----- case 12: an unreachable --ray-address fails within seconds ----------------------------


def free_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("command", ["evaluate", "sweep", "instruments"])
def test_an_unreachable_ray_address_fails_within_seconds(
    command, tmp_path, bars_csv, synthetic_catalog
):
    pytest.importorskip("ray")
    space = tmp_path / "space.yaml"
    space.write_text("policy:\n  min_confidence: [0.5, 0.7]\n")
    work = tmp_path / "work"
    work.mkdir()
    data = ["--csv", str(bars_csv), "--interval", "1min", *TINY_FLAGS]
    argv = {
        "evaluate": data,
        "sweep": ["sweep", str(space), *data],
        "instruments": ["instruments", "--catalog", str(synthetic_catalog), "--epochs", "1"],
    }[command]
    address = f"127.0.0.1:{free_port()}"
    before = snapshot(tmp_path, synthetic_catalog)
    done, seconds = run_command(
        ["-m", "evaluation", *argv, "--out", str(work / "out"), "--ray-address", address],
        work,
        timeout=120,
    )
    line = one_error_line_of(done)
    assert seconds < 20, f"{seconds:.0f} s"
    assert f"cannot reach the Ray cluster at {address}" in line
    assert "leave out --ray-address for a local Ray" in line
    assert snapshot(tmp_path, synthetic_catalog) == before


# ----- messages name the command's flags, and suggest only what the command accepts ----------


@pytest.fixture
def csv_rows(tmp_path, bars_csv):
    """Write the header and the given data rows (1-based) of ``bars_csv`` to a new CSV."""
    lines = bars_csv.read_text().splitlines()

    def write(name: str, rows: list[int]) -> Path:
        path = tmp_path / name
        path.write_text("\n".join([lines[0], *(lines[i] for i in rows)]) + "\n")
        return path

    return write


def test_duplicate_rows_name_the_duplicate_policy_flag(csv_rows, workdir, capsys):
    path = csv_rows("dup.csv", [1, 2, 3, 3, 4])
    argv = ["import-csv", str(path), "--interval", "1min", "--catalog", str(workdir / "cat")]
    line = fails_cleanly(capsys, catalogs_cli.main, argv, workdir, path, progress=True)
    assert "--duplicate-policy drop" in line and "duplicate_policy=" not in line


def test_gaps_name_the_gap_policy_flag(csv_rows, workdir, capsys):
    path = csv_rows("gap.csv", [1, 2, 5, 6])
    argv = ["import-csv", str(path), "--interval", "1min", "--gap-policy", "error",
            "--catalog", str(workdir / "cat")]  # fmt: skip
    line = fails_cleanly(capsys, catalogs_cli.main, argv, workdir, path, progress=True)
    assert "--gap-policy report" in line and "--gap-policy fill" in line
    assert "gap_policy=" not in line


def test_conflicting_bars_name_the_on_conflict_flag(csv_rows, workdir, tmp_path, capsys):
    first = csv_rows("first.csv", [1, 2, 3, 4])
    catalog = tmp_path / "cat"
    common = ["--interval", "1min", "--catalog", str(catalog)]
    assert catalogs_cli.main(["import-csv", str(first), *common]) == 0
    capsys.readouterr()
    changed = tmp_path / "changed.csv"
    header, *rows = first.read_text().splitlines()
    values = rows[1].split(",")
    values[-1] = str(float(values[-1]) + 1.0)  # another volume for a stored bar
    changed.write_text("\n".join([header, rows[0], ",".join(values), *rows[2:]]) + "\n")
    line = fails_cleanly(
        capsys,
        catalogs_cli.main,
        ["import-csv", str(changed), *common],
        workdir,
        catalog,
        progress=True,
    )
    assert "--on-conflict warn" in line and "on_conflict=" not in line


def test_a_missing_column_names_the_column_flag(tmp_path, workdir, capsys):
    path = tmp_path / "cols.csv"
    path.write_text("timestamp,open,high,low,zzz,volume\n60,1,2,1,1,5\n120,1,2,1,1,5\n")
    argv = ["import-csv", str(path), "--interval", "1min", "--catalog", str(workdir / "cat")]
    line = fails_cleanly(capsys, catalogs_cli.main, argv, workdir, path, progress=True)
    assert "--close-col COLUMN" in line and "(CLI:" not in line


def test_an_unknown_symbol_names_the_symbol_flag(workdir, capsys):
    argv = ["synth", "--symbol", "FOOUSDT", "--bars", "50", "--catalog", str(workdir / "cat")]
    line = fails_cleanly(capsys, catalogs_cli.main, argv, workdir, progress=True)
    assert "known symbols: ADAUSDT, BCHUSDT, BTCUSDT, DOGEUSDT, ETHUSDT" in line
    assert "give one of them with --symbol" in line


def test_a_missing_instrument_names_the_import_command(tmp_path):
    catalog = tmp_path / "cat"
    catalog.mkdir()
    with pytest.raises(InstrumentNotFoundError) as caught:
        load_instrument(catalog, "ETHUSDT-LINEAR.BYBIT")
    message = str(caught.value)
    assert "python -m catalogs import-csv" in message and "write_bars()" not in message


def test_train_into_a_non_model_directory_does_not_suggest_overwrite(
    synthetic_catalog, tmp_path, workdir, capsys
):
    out = tmp_path / "notes"
    out.mkdir()
    (out / "todo.txt").write_text("my notes")
    argv = ["train", "--catalog", str(synthetic_catalog), "--bar-type", BAR_TYPE,
            "--out", str(out)]  # fmt: skip
    line = fails_cleanly(capsys, scoremodel_cli.main, argv, workdir, out, synthetic_catalog)
    assert "is not a model directory" in line and "choose another path" in line
    assert "--overwrite" not in line
    # and what it would have suggested is refused too
    line = fails_cleanly(capsys, scoremodel_cli.main, [*argv, "--overwrite"], workdir, out)
    assert "--overwrite only replaces a model directory" in line


def test_a_backtest_on_a_non_model_directory_suggests_a_new_one(
    synthetic_catalog, tmp_path, workdir, capsys
):
    model = tmp_path / "notes"
    model.mkdir()
    (model / "todo.txt").write_text("my notes")
    argv = ["--catalog", str(synthetic_catalog), "--bar-type", BAR_TYPE, "--model", str(model),
            "--report-dir", str(workdir / "report")]  # fmt: skip
    line = fails_cleanly(capsys, run_backtest.main, argv, workdir, model, synthetic_catalog)
    assert f"model {model} cannot be used" in line
    assert "--out NEW_MODEL_DIR` and pass it with --model" in line
    assert "--overwrite" not in line


def test_a_file_as_model_suggests_a_new_directory(synthetic_catalog, tmp_path, workdir, capsys):
    model = tmp_path / "model.txt"
    model.write_text("not a model")
    argv = ["--catalog", str(synthetic_catalog), "--bar-type", BAR_TYPE, "--model", str(model),
            "--report-dir", str(workdir / "report")]  # fmt: skip
    line = fails_cleanly(capsys, run_backtest.main, argv, workdir, model, synthetic_catalog)
    assert f"model directory {model} is not a directory" in line
    assert "--out NEW_MODEL_DIR`" in line


# ----- --debug: the traceback, and still exit status 2 -----------------------------------------


def test_debug_prints_the_traceback_and_exits_2(workdir, capsys):
    status = run_backtest.main(["--config", str(workdir / "missing.yaml"), "--debug"])
    captured = capsys.readouterr()
    assert status == 2
    assert "Traceback (most recent call last)" in captured.err
    last = captured.err.strip().splitlines()[-1]
    assert last.startswith("error: config file") and "does not exist" in last
    assert snapshot(workdir) == {str(workdir): "dir"}


def test_debug_keeps_a_bug_a_bug():
    def bug():
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        run_cli(bug, debug=True)
    with pytest.raises(KeyError):
        run_cli(bug, debug=False)

    def mistake():
        raise UserError("a mistake")

    assert run_cli(mistake, debug=True) == 2
