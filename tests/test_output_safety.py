"""Every command writes only what it owns (issue 21): output paths are checked before any work,
no symbolic link is followed, and nothing of the user's is overwritten, polluted or deleted.

Each test runs the real command line (in-process, or in a subprocess where the command's own
process matters) and compares the SHA-256 of the user's files before and after.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import run_backtest
import run_live
from catalogs import cli as catalogs_cli
from catalogs.catalog import list_bar_types
from evaluation import cli as evaluation_cli
from output_paths import MARKER
from output_paths import check_output_dir
from output_paths import claim_output_dir
from output_paths import write_atomically
from runtime.embedded_default import DEFAULT_CATALOG
from runtime.embedded_default import DEMO_ROOT
from runtime.run_config import load_run_config
from scoremodel import cli as scoremodel_cli
from scoremodel.inference import ScoreModel
from tests.conftest import BAR_TYPE
from tests.helpers import snapshot
from tests.test_backtest_safety import User
from tests.test_backtest_safety import fails_cleanly
from tests.test_evaluation_cli import TINY_FLAGS
from tests.test_live_cli import offline_config

REPO = Path(__file__).resolve().parents[1]
USER_TEXT = b"my own notes, not to be lost\n"


def user_file(path: Path, content: bytes = USER_TEXT) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def one_error_line(captured) -> str:
    """The single ``error:`` line of a failed command (no traceback)."""
    assert "Traceback" not in captured.err + captured.out
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    return lines[0]


@pytest.fixture
def user(synthetic_catalog, trained_model, tmp_path, monkeypatch) -> User:
    user = User(tmp_path, synthetic_catalog, trained_model)
    monkeypatch.chdir(user.workdir)
    return user


def backtest_args(user: User, report_dir: Path) -> list[str]:
    return [
        "--catalog", str(user.catalog), "--model", str(user.model),
        "--start", "2024-11-20", "--report-dir", str(report_dir),
    ]  # fmt: skip


# ----- case 1: resume removes only a kill switch file this program wrote ---------------------


def test_resume_leaves_a_users_file_at_the_kill_switch_path_alone(minute_model, tmp_path, capsys):
    config = str(offline_config(tmp_path, minute_model))
    kill = user_file(tmp_path / "KILL")
    before = digest(kill)
    assert run_live.main(["resume", "--mode", "demo", "--config", config]) == 2
    line = one_error_line(capsys.readouterr())
    assert "did not write" in line and str(kill) in line
    assert digest(kill) == before


@pytest.mark.parametrize("arm", ["kill", "touch"])
def test_resume_removes_the_kill_switch_file_it_recognises(minute_model, tmp_path, capsys, arm):
    config = str(offline_config(tmp_path, minute_model))
    if arm == "kill":
        assert run_live.main(["kill", "--config", config]) == 0
    else:
        (tmp_path / "KILL").touch()
    assert run_live.main(["resume", "--mode", "demo", "--config", config]) == 0
    assert "removed the kill switch file" in capsys.readouterr().out
    assert not (tmp_path / "KILL").exists()


def test_resume_never_removes_a_link_at_the_kill_switch_path(minute_model, tmp_path, capsys):
    config = str(offline_config(tmp_path, minute_model))
    target = user_file(tmp_path / "precious.txt")
    (tmp_path / "KILL").symlink_to(target)
    assert run_live.main(["resume", "--mode", "demo", "--config", config]) == 2
    assert "symbolic link" in one_error_line(capsys.readouterr())
    assert (tmp_path / "KILL").is_symlink() and target.read_bytes() == USER_TEXT


# ----- cases 2 and 3: report writers follow no link and replace no user file ------------------


def test_a_link_in_a_report_directory_is_replaced_not_followed(user, capsys):
    report = user.workdir / "report"
    assert run_backtest.main(backtest_args(user, report)) == 0
    precious = user_file(user.workdir.parent / "precious.csv")
    (report / "fills.csv").unlink()
    (report / "fills.csv").symlink_to(precious)
    assert run_backtest.main(backtest_args(user, report)) == 0, capsys.readouterr().err
    assert precious.read_bytes() == USER_TEXT
    assert not (report / "fills.csv").is_symlink() and (report / "fills.csv").stat().st_size > 0


def test_an_existing_directory_of_user_files_is_refused_as_report_dir(user, capsys):
    report = user.workdir / "mine"
    user_file(report / "fills.csv")
    user.before = user.snapshot()
    line = fails_cleanly(capsys, user, *backtest_args(user, report))
    assert f"--report-dir {report} is a directory holding files this program did not write" in line


def test_an_empty_directory_becomes_the_programs_report_directory(user, capsys):
    report = user.workdir / "empty"
    report.mkdir()
    assert run_backtest.main(backtest_args(user, report)) == 0, capsys.readouterr().err
    assert (report / MARKER).is_file() and (report / "summary.json").is_file()


@pytest.mark.slow
def test_evaluation_report_follows_no_link_and_refuses_user_directories(tmp_path, capsys):
    """python -m evaluation --out: a directory of the user's files is refused before any fold;
    in its own directory, links at report.md and pit.png are replaced, not followed."""
    csv = tmp_path / "bars.csv"
    from catalogs.synthetic import generate_bars

    frame = generate_bars(2_500, interval="1min", seed=9)
    frame.rename_axis("timestamp").to_csv(csv)
    mine = user_file(tmp_path / "mine" / "report.md").parent
    args = ["--csv", str(csv), "--interval", "1min", *TINY_FLAGS]
    assert evaluation_cli.main([*args, "--out", str(mine)]) == 2
    assert "holding files this program did not write" in one_error_line(capsys.readouterr())
    assert (mine / "report.md").read_bytes() == USER_TEXT and len(list(mine.iterdir())) == 1

    out = claim_output_dir(tmp_path / "evaluation", "--out")
    targets = {name: user_file(tmp_path / f"precious-{name}") for name in ("report.md", "pit.png")}
    for name, target in targets.items():
        (out / name).symlink_to(target)
    assert evaluation_cli.main([*args, "--out", str(out)]) == 0
    for name, target in targets.items():
        assert target.read_bytes() == USER_TEXT
        assert not (out / name).is_symlink() and (out / name).stat().st_size > 100


def test_sample_refuses_an_existing_file_without_overwrite(trained_model, tmp_path, capsys):
    out = user_file(tmp_path / "samples.csv")
    args = ["sample", str(trained_model), "-n", "20", "--steps", "5", "--out", str(out)]
    assert scoremodel_cli.main(args) == 2
    assert "--overwrite" in one_error_line(capsys.readouterr())
    assert out.read_bytes() == USER_TEXT
    assert scoremodel_cli.main([*args, "--overwrite"]) == 0
    assert out.read_text().count("\n") == 21  # a header and 20 samples


def test_sample_replaces_a_link_instead_of_writing_through_it(trained_model, tmp_path, capsys):
    precious = user_file(tmp_path / "precious.csv")
    link = tmp_path / "samples.csv"
    link.symlink_to(precious)
    args = ["sample", str(trained_model), "-n", "5", "--steps", "5", "--out", str(link)]
    assert scoremodel_cli.main([*args, "--overwrite"]) == 2
    assert "symbolic link" in one_error_line(capsys.readouterr())
    assert precious.read_bytes() == USER_TEXT


# ----- case 4: the embedded default never writes into a catalog it did not write --------------


def test_the_embedded_default_never_writes_into_the_users_default_catalog(
    user, trained_model, capsys, monkeypatch
):
    """A new user imports their CSV with the default catalog (var/catalog), then runs
    run_backtest.py with no arguments: their catalog is left exactly as it was."""
    own = user.workdir / "var" / "catalog"
    shutil.copytree(user.catalog, own)
    before = snapshot(own)
    retrained = ScoreModel.load(trained_model)
    monkeypatch.setattr("runtime.embedded_default.fit_model", lambda *a, **k: retrained)
    monkeypatch.setattr("runtime.embedded_default.DEFAULT_BARS", 3_000)
    assert run_backtest.main(["--report-dir", "report"]) == 0, capsys.readouterr().err
    assert snapshot(own) == before
    assert (user.workdir / DEMO_ROOT / MARKER).is_file()
    assert list_bar_types(user.workdir / DEFAULT_CATALOG) == [BAR_TYPE]


def test_the_embedded_default_refuses_a_demo_directory_it_did_not_write(user, capsys):
    mine = user_file(user.workdir / DEMO_ROOT / "notes.txt")
    user.before = user.snapshot()
    line = fails_cleanly(capsys, user, "--report-dir", "report")
    assert "holding files this program did not write" in line
    assert mine.read_bytes() == USER_TEXT


def test_the_embedded_default_writes_nothing_into_a_catalog_holding_other_bars(
    user, capsys, synthetic_catalog
):
    claim_output_dir(user.workdir / DEMO_ROOT, "test")
    catalogs_cli.main(
        ["synth", "--interval", "5min", "--bars", "300", "--catalog", DEFAULT_CATALOG]
    )
    capsys.readouterr()
    user.before = user.snapshot()
    line = fails_cleanly(capsys, user, "--report-dir", "report")
    assert "holds data it did not write" in line


# ----- case 5: reports never go into a catalog or a model directory ---------------------------


@pytest.mark.parametrize("where", ["catalog", "catalog/data", "catalog/new", "model", "model/sub"])
def test_report_dir_inside_a_catalog_or_a_model_is_refused(user, capsys, where):
    root, _, rest = where.partition("/")
    target = getattr(user, root) / rest if rest else getattr(user, root)
    line = fails_cleanly(capsys, user, *backtest_args(user, target))
    assert "catalog" in line or "model directory" in line
    assert not (target / MARKER).exists()


def test_evaluation_out_inside_a_catalog_is_refused_before_any_fold(user, capsys):
    started = time.perf_counter()
    code = evaluation_cli.main(
        ["--catalog", str(user.catalog), "--bar-type", BAR_TYPE, "--out", str(user.catalog)]
    )
    assert code == 2 and time.perf_counter() - started < 10
    assert "catalog" in one_error_line(capsys.readouterr())
    assert user.snapshot() == user.before


def test_import_csv_into_a_model_directory_is_refused(user, tmp_path, capsys):
    csv = tmp_path / "bars.csv"
    csv.write_text("timestamp,open,high,low,close,volume\n2024-01-01 00:00,1,2,0.5,1.5,10\n")
    args = ["import-csv", str(csv), "--interval", "1min", "--catalog", str(user.model)]
    assert catalogs_cli.main(args) == 2
    assert "model directory" in one_error_line(capsys.readouterr())
    assert user.snapshot() == user.before


def test_synth_with_fewer_bars_than_a_funding_interval_writes_no_rates(tmp_path, capsys):
    args = ["synth", "--bars", "5", "--interval", "1h", "--catalog", str(tmp_path / "cat")]
    assert catalogs_cli.main(args) == 0
    assert "wrote 0 synthetic funding rates" in capsys.readouterr().out


# ----- case 6: catalog URLs: file:// is the path, others are refused in one line --------------


def test_a_file_url_catalog_is_its_local_path(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "cat"
    args = ["synth", "--interval", "1h", "--bars", "200", "--catalog", f"file://{target}"]
    assert catalogs_cli.main(args) == 0
    assert list_bar_types(target) == [BAR_TYPE]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat"]  # no ./file: folder


@pytest.mark.parametrize("url", ["s3://bucket/x", "memory://x", "gs://b/x"])
def test_other_catalog_urls_are_refused_by_catalogs_and_create_nothing(
    tmp_path, monkeypatch, capsys, url
):
    monkeypatch.chdir(tmp_path)
    assert catalogs_cli.main(["synth", "--bars", "100", "--catalog", url]) == 2
    assert "file:// URL" in one_error_line(capsys.readouterr())
    assert list(tmp_path.iterdir()) == []


def test_run_backtest_reads_a_file_url_catalog(user, capsys):
    report = user.workdir / "report"
    args = backtest_args(user, report)
    args[1] = f"file://{user.catalog}"
    assert run_backtest.main(args) == 0, capsys.readouterr().err
    assert (report / "summary.json").is_file()


def test_run_backtest_refuses_an_object_store_catalog_in_one_line(user, capsys):
    args = backtest_args(user, user.workdir / "report")
    args[1] = "s3://bucket/catalog"
    line = fails_cleanly(capsys, user, *args)
    assert "s3://bucket/catalog" in line and "file:// URL" in line


# ----- case 8: live paths are checked before anything connects --------------------------------


@pytest.mark.parametrize(
    "field, phrase",
    [
        ("state_dir", "the risk state directory (live.state_dir)"),
        ("log_directory", "live.log_directory"),
        ("kill_switch_path", "kill switch file"),
    ],
)
def test_live_refuses_unusable_paths_before_connecting(
    minute_model, tmp_path, capsys, monkeypatch, field, phrase
):
    monkeypatch.setenv("BYBIT_DEMO_API_KEY", "key-never-used")
    monkeypatch.setenv("BYBIT_DEMO_API_SECRET", "secret-never-used")
    blocker = tmp_path / "blocker"
    if field == "kill_switch_path":
        blocker.mkdir()  # a directory where the kill switch file goes
    else:
        user_file(blocker)  # a file where a directory goes
    config = offline_config(tmp_path, minute_model, **{field: str(blocker)})
    started = time.perf_counter()
    assert run_live.main(["--mode", "demo", "--config", str(config)]) == 2
    assert phrase in one_error_line(capsys.readouterr())
    assert time.perf_counter() - started < 10  # before any connection attempt
    if field != "kill_switch_path":
        assert blocker.read_bytes() == USER_TEXT


# ----- case 10: output paths are checked before the work ---------------------------------------


@pytest.mark.parametrize("kind", ["file", "under-file"])
def test_evaluation_out_is_checked_before_any_fold(synthetic_catalog, tmp_path, capsys, kind):
    blocker = user_file(tmp_path / "results.txt")
    out = blocker if kind == "file" else blocker / "sub"
    started = time.perf_counter()
    argv = ["--catalog", str(synthetic_catalog), "--bar-type", BAR_TYPE, "--out", str(out)]
    assert evaluation_cli.main([*argv, *TINY_FLAGS]) == 2
    assert time.perf_counter() - started < 10
    line = one_error_line(capsys.readouterr())
    assert str(blocker) in line and blocker.read_bytes() == USER_TEXT


def test_report_dir_under_a_file_is_refused_before_the_backtest(user, capsys, monkeypatch):
    blocker = user_file(user.workdir / "notes.txt")
    user.before = user.snapshot()
    monkeypatch.setattr("runtime.backtest.run_backtest", pytest.fail)
    line = fails_cleanly(capsys, user, *backtest_args(user, blocker / "sub"))
    assert f"{blocker} is not a directory" in line


@pytest.mark.parametrize("command", ["sweep", "instruments"])
def test_sweep_and_instruments_check_out_first(user, tmp_path, capsys, command):
    space = tmp_path / "space.yaml"
    space.write_text("mode: grid\npolicy:\n  edge_margin: [0.25, 0.5]\n")
    mine = user_file(tmp_path / "mine" / "trials.csv").parent
    head = ["sweep", str(space)] if command == "sweep" else ["instruments"]
    argv = [*head, "--catalog", str(user.catalog), "--out", str(mine)]
    if command == "sweep":
        argv += ["--bar-type", BAR_TYPE]
    assert evaluation_cli.main(argv) == 2
    assert "did not write" in one_error_line(capsys.readouterr())
    assert (mine / "trials.csv").read_bytes() == USER_TEXT


# ----- the module's rules, directly -----------------------------------------------------------


def test_atomic_writes_replace_links_and_leave_no_temporary_files(tmp_path):
    precious = user_file(tmp_path / "precious.txt")
    link = tmp_path / "out.txt"
    link.symlink_to(precious)
    write_atomically(link, "new")
    assert precious.read_bytes() == USER_TEXT and link.read_text() == "new"
    write_atomically(tmp_path / "frame.bin", lambda path: path.write_bytes(b"x" * 10))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frame.bin", "out.txt", "precious.txt"]


def test_a_directory_link_is_refused_as_an_output_directory(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(Exception, match="symbolic link"):
        check_output_dir(tmp_path / "link", "--out")


def test_the_commands_write_nothing_before_failing_in_a_subprocess(user, tmp_path):
    """The same refusal through the real entry point: exit 2, one line, nothing changed."""
    mine = user_file(tmp_path / "mine" / "fills.csv").parent
    before = snapshot(mine, user.catalog, user.model)
    done = subprocess.run(
        [sys.executable, str(REPO / "run_backtest.py"), *backtest_args(user, mine)],
        cwd=user.workdir,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ")
    assert snapshot(mine, user.catalog, user.model) == before


def test_load_run_config_is_unchanged_by_the_demo_paths():
    """The run configuration's defaults stay the user's paths; the demo has its own."""
    run = load_run_config(None)
    assert run.backtest.catalog == "var/catalog" and DEFAULT_CATALOG.startswith(DEMO_ROOT)
