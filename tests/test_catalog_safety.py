"""A user's catalog survives killed and concurrent writers, damaged files and bad inputs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from catalogs.catalog import list_bar_types
from catalogs.catalog import load_instrument
from catalogs.catalog import read_bars_frame
from catalogs.catalog import write_bars
from catalogs.cli import main
from catalogs.errors import DamagedFileError
from catalogs.instruments import make_perpetual
from catalogs.storage import STAGING_PREFIX
from catalogs.synthetic import generate_bars

REPO_ROOT = Path(__file__).resolve().parents[1]
BAR_TYPE_1M = "BTCUSDT-LINEAR.BYBIT-1-MINUTE-LAST-EXTERNAL"
BAR_TYPE_1H = "BTCUSDT-LINEAR.BYBIT-1-HOUR-LAST-EXTERNAL"
WAITING = "waiting for another process writing to the catalog"
PAUSED = "paused mid-write"
# Runs the catalogs CLI with pyarrow's Parquet writer pausing after it has written the rows of a
# bar file (more than one row: not the instrument) but before the file's footer, until the file
# named by argv[1] exists: the parent kills it there, or lets it finish.
PAUSING_WRITER = f"""
import pathlib, sys, time
import pyarrow.parquet as pq
from catalogs.cli import main

release = pathlib.Path(sys.argv[1])
write_table = pq.ParquetWriter.write_table

def write_then_pause(self, table, *args, **kwargs):
    write_table(self, table, *args, **kwargs)
    if table.num_rows > 1:
        print({PAUSED!r}, file=sys.stderr, flush=True)
        deadline = time.monotonic() + 60
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.02)

pq.ParquetWriter.write_table = write_then_pause
sys.exit(main(sys.argv[2:]))
"""


def snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``directory``: relative path -> (size, mtime in ns)."""
    return {
        str(path.relative_to(directory)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def catalogs_process(*args: str, pause_until: Path | None = None) -> subprocess.Popen[str]:
    """Start ``python -m catalogs ARGS`` (pausing mid-write until ``pause_until`` exists)."""
    command = [sys.executable, "-m", "catalogs", *args]
    if pause_until is not None:
        command = [sys.executable, "-c", PAUSING_WRITER, str(pause_until), *args]
    return subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def read_stderr_until(process: subprocess.Popen[str], phrase: str) -> str:
    """Read stderr until a line holds ``phrase`` (or the process ends); return what was read."""
    assert process.stderr is not None
    seen = ""
    for line in process.stderr:
        seen += line
        if phrase in line:
            break
    return seen


def one_error_line(err: str) -> str:
    """The single ``error:`` line of ``err``; fails on tracebacks or several error lines."""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def store_hourly_bars(catalog: Path) -> None:
    write_bars(catalog, generate_bars(300, "1h", seed=5), make_perpetual("BTCUSDT"), "1h")


def bar_file(catalog: Path, bar_type: str) -> Path:
    (file,) = (catalog / "data" / "bar" / bar_type).glob("*.parquet")
    return file


# -- Case 3: a writer killed mid-write ----------------------------------------------------------


def test_a_writer_killed_mid_write_leaves_a_readable_catalog_and_a_rerun_completes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = tmp_path / "catalog"
    store_hourly_bars(catalog)
    stored_before = set(catalog.rglob("*.parquet"))
    synth = ("synth", "--catalog", str(catalog), "--bars", "2000")

    writer = catalogs_process(*synth, pause_until=tmp_path / "never")
    progress = read_stderr_until(writer, PAUSED)
    started_file = set(catalog.rglob("*.parquet")) - stored_before
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=30)

    assert PAUSED in progress and started_file, "the writer did not start its bar file"
    assert writer.returncode == -signal.SIGKILL
    assert main(["info", "--catalog", str(catalog)]) == 0
    info = capsys.readouterr().out
    assert BAR_TYPE_1H in info and BAR_TYPE_1M not in info
    assert len(read_bars_frame(catalog, BAR_TYPE_1H)) == 300

    assert main([*synth]) == 0
    capsys.readouterr()
    assert main(["info", "--catalog", str(catalog)]) == 0
    info = capsys.readouterr().out
    assert BAR_TYPE_1M in info and "2,000" in info
    assert len(read_bars_frame(catalog, BAR_TYPE_1M)) == 2_000
    assert not list(catalog.glob(STAGING_PREFIX + "*")), "the killed writer's staging remains"


def test_a_truncated_bar_file_is_named_in_one_line_by_every_reader_and_writer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = tmp_path / "catalog"
    store_hourly_bars(catalog)
    damaged = bar_file(catalog, BAR_TYPE_1H)
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
    before = snapshot(catalog)
    csv = tmp_path / "more.csv"
    later = generate_bars(400, "1h", seed=5).iloc[300:]
    later.set_axis(later.index - pd.Timedelta("1h")).rename_axis("timestamp").to_csv(csv)

    for argv in (
        ["info", "--catalog", str(catalog)],
        ["synth", "--catalog", str(catalog), "--bars", "300", "--interval", "1h", "--seed", "5"],
        ["import-csv", str(csv), "--interval", "1h", "--catalog", str(catalog)],
    ):
        assert main(argv) == 2, argv
        line = one_error_line(capsys.readouterr().err)
        assert f"Damaged catalog file {damaged}" in line
        assert "Move it away or delete it" in line
    for read in (lambda: read_bars_frame(catalog, BAR_TYPE_1H), lambda: list_bar_types(catalog)):
        with pytest.raises(DamagedFileError, match="Move it away or delete it") as error:
            read()
        assert str(damaged) in str(error.value)
    assert snapshot(catalog) == before


def test_an_empty_instrument_file_is_named_when_instruments_are_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = tmp_path / "catalog"
    store_hourly_bars(catalog)
    (damaged,) = (catalog / "data" / "crypto_perpetual").rglob("*.parquet")
    damaged.write_bytes(b"")

    with pytest.raises(DamagedFileError, match="Damaged catalog file") as error:
        load_instrument(catalog, "BTCUSDT-LINEAR.BYBIT")
    assert main(["info", "--catalog", str(catalog)]) == 2

    assert str(damaged) in str(error.value)
    assert f"Damaged catalog file {damaged}" in one_error_line(capsys.readouterr().err)


# -- Case 4: two writers at once -----------------------------------------------------------------


def test_two_concurrent_writers_take_turns(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    catalog = tmp_path / "catalog"
    synth = ("synth", "--catalog", str(catalog), "--bars", "2000")
    release = tmp_path / "release"

    first = catalogs_process(*synth, pause_until=release)
    first_progress = read_stderr_until(first, PAUSED)
    second = catalogs_process(*synth)
    second_progress = read_stderr_until(second, WAITING)
    release.touch()
    second_out, second_rest = second.communicate(timeout=120)
    first_out, first_rest = first.communicate(timeout=120)

    assert PAUSED in first_progress
    assert WAITING in second_progress, second_progress + second_rest
    assert first.returncode == 0, first_progress + first_rest
    assert second.returncode == 0, second_progress + second_rest
    assert f"{BAR_TYPE_1M}: wrote 2,000 bars" in first_out
    assert "skipped 2,000 bars already covered by the catalog" in second_out
    assert main(["info", "--catalog", str(catalog)]) == 0
    assert "2,000" in capsys.readouterr().out
    assert len(read_bars_frame(catalog, BAR_TYPE_1M)) == 2_000


# -- Case 7: the file's spacing must match --interval ------------------------------------------


@pytest.mark.parametrize(
    ("file_interval", "given", "expected"),
    [
        (
            "1h",
            "1min",
            "the file's bars are 1 hour apart (median spacing) but --interval is 1min; "
            "re-run with --interval 1h",
        ),
        (
            "1min",
            "30s",
            "the file's bars are 1 minute apart (median spacing) but --interval is "
            "30s; re-run with --interval 1min",
        ),
    ],
)
def test_import_csv_refuses_bars_spaced_unlike_the_interval(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    file_interval: str,
    given: str,
    expected: str,
) -> None:
    catalog = tmp_path / "catalog"
    store_hourly_bars(catalog)
    csv = tmp_path / "bars.csv"
    bars = generate_bars(200, file_interval, seed=2)
    bars.set_axis(bars.index - pd.Timedelta(file_interval)).rename_axis("timestamp").to_csv(csv)
    before = snapshot(catalog)

    code = main(["import-csv", str(csv), "--interval", given, "--catalog", str(catalog)])

    assert code == 2
    assert one_error_line(capsys.readouterr().err) == f"error: {csv}: {expected}"
    assert snapshot(catalog) == before


# -- Other bad inputs ----------------------------------------------------------------------------


def test_info_on_a_missing_catalog_is_an_error_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    absent = tmp_path / "absent"

    assert main(["info", "--catalog", str(absent)]) == 2

    assert f"No data catalog at {absent}" in one_error_line(capsys.readouterr().err)
    assert not absent.exists()


@pytest.mark.parametrize(
    ("csv_content", "expected"),
    [
        (None, "CSV file not found"),
        ("", "is empty; expected a header line and OHLCV rows"),
        ("timestamp,open,high,low,close,volume\n", "has a header but no data rows"),
        ("a directory", "is not a regular file; pass the path of a CSV file"),
    ],
)
def test_bad_csv_files_give_one_line_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], csv_content: str | None, expected: str
) -> None:
    csv = tmp_path / "bars.csv"
    if csv_content == "a directory":
        csv.mkdir()
    elif csv_content is not None:
        csv.write_text(csv_content)
    catalog = tmp_path / "catalog"

    code = main(["import-csv", str(csv), "--interval", "1min", "--catalog", str(catalog)])

    assert code == 2
    assert expected in one_error_line(capsys.readouterr().err)
    assert not catalog.exists()


def test_an_unreadable_csv_gives_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    csv = tmp_path / "bars.csv"
    csv.write_text("timestamp,open,high,low,close,volume\n")

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(csv))

    monkeypatch.setattr(pd, "read_csv", refuse)  # tests run as root: chmod cannot forbid reads

    code = main(["import-csv", str(csv), "--interval", "1min", "--catalog", str(tmp_path / "c")])

    assert code == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"cannot read {csv}: Permission denied; check the file's permissions" in line


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        (["--start", "2024-01-02", "--end", "2024-01-01"], "is not before end"),
        (["--start", "2200-01-01"], "is in the future"),
    ],
)
def test_an_empty_fetch_window_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], window: list[str], expected: str
) -> None:
    catalog = tmp_path / "catalog"

    code = main(["fetch", "--catalog", str(catalog), "--no-progress", *window])

    assert code == 2
    assert expected in one_error_line(capsys.readouterr().err)
    assert not catalog.exists()


def test_a_catalog_path_that_cannot_be_created_gives_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")

    code = main(["synth", "--catalog", str(blocker / "catalog"), "--bars", "10"])

    assert code == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"Cannot create the catalog directory {blocker / 'catalog'}: Not a directory" in line
    assert blocker.read_text() == "not a directory"


def test_debug_shows_the_traceback_and_still_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["info", "--catalog", str(tmp_path / "absent"), "--debug"])

    assert code == 2  # a user error, as README promises, with the traceback as well
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "No data catalog" in err
    assert err.strip().splitlines()[-1].startswith("error: No data catalog")


def test_ctrl_c_says_what_was_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("catalogs.cli.generate_bars", interrupted)

    code = main(["synth", "--catalog", str(tmp_path / "catalog"), "--bars", "10"])

    assert code == 130
    assert "interrupted; bars written so far are kept, re-run to resume" in capsys.readouterr().err
