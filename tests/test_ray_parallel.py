"""Scale-out on Ray: a local Ray with 2 workers, no network; equality with the serial run,
failing tasks, resumable results, sweeps and many instruments."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from catalogs.synthetic import generate_bars
from evaluation import cli
from evaluation.parallel import Task
from evaluation.parallel import ray_session
from evaluation.parallel import run_tasks
from tests.conftest import BAR_TYPE
from tests.test_evaluation_cli import TINY_FLAGS
from tests.test_evaluation_cli import strict_json

pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray (2 CPUs, no dashboard, no usage statistics) for the module, shut down
    afterwards; the commands under test join it instead of starting their own."""
    import ray

    with ray_session(workers=2, object_store_bytes=200 * 1024**2):
        yield
    assert not ray.is_initialized()


@pytest.fixture(scope="module")
def bars_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("ray_csv") / "bars.csv"
    frame = generate_bars(2_500, interval="1min", seed=9)
    frame.index = frame.index - frame.index[1] + frame.index[0]  # stamped at the open
    frame.rename_axis("timestamp").to_csv(path)
    return path


def snapshot(directory):
    return {
        str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(directory.rglob("*"))
    }


def test_two_workers_give_the_serial_evaluation(local_ray, bars_csv, tmp_path, capsys):
    common = ["--csv", str(bars_csv), "--interval", "1min", *TINY_FLAGS]
    assert cli.main([*common, "--out", str(tmp_path / "serial")]) == 0  # the plain command
    assert cli.main([*common, "--workers", "2", "--out", str(tmp_path / "ray")]) == 0
    out = capsys.readouterr().out
    assert "folds: 2/2 finished" in out  # progress as finished/total tasks
    serial = strict_json(tmp_path / "serial" / "evaluation.json")
    parallel = strict_json(tmp_path / "ray" / "evaluation.json")
    assert parallel["folds"] == serial["folds"]
    assert parallel["overall"] == serial["overall"]
    assert parallel["scenarios"] == serial["scenarios"]


def fails_on(value: int, marker_dir: str) -> int:
    """A task that records each call and fails for value 2."""
    with open(os.path.join(marker_dir, f"{value}-{os.getpid()}-{os.urandom(4).hex()}"), "w"):
        pass
    if value == 2:
        raise ValueError("bad input 2")
    return value * 10


def test_a_failing_task_keeps_the_others_and_a_rerun_skips_finished_ones(local_ray, tmp_path):
    markers = tmp_path / "calls"
    markers.mkdir()
    tasks = [
        Task(f"task {v}", fails_on, (v, str(markers)), settings={"value": v}) for v in range(4)
    ]
    lines = []
    outcomes = run_tasks(tasks, tmp_path / "results", progress=lines.append)
    assert [o.value for o in outcomes] == [0, 10, None, 30]
    assert outcomes[2].error == "ValueError: bad input 2"
    assert sum("finished" in line for line in lines) == 4 and "4/4 finished" in lines[-1]
    assert len(list((tmp_path / "results").glob("*.json"))) == 3

    again = run_tasks(tasks, tmp_path / "results", progress=lines.append)
    assert [o.reused for o in again] == [True, True, False, True]
    assert [o.value for o in again] == [0, 10, None, 30]
    calls = sorted(p.name.split("-")[0] for p in markers.iterdir())
    assert calls == ["0", "1", "2", "2", "3"]  # only the failed task ran again


SPACE = """\
mode: grid
policy:
  min_confidence: [0.5, 0.7]
"""


def test_a_small_sweep_ranks_trials_and_a_rerun_reuses_them(local_ray, bars_csv, tmp_path, capsys):
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    out = tmp_path / "sweep"
    argv = ["sweep", str(space), "--csv", str(bars_csv), "--interval", "1min", *TINY_FLAGS]
    assert cli.main([*argv, "--workers", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "trials: 2/2 finished" in printed and "deflated Sharpe" in printed
    table = pd.read_parquet(out / "trials.parquet")
    assert list(table["rank"]) == [1, 2] and set(table["policy.min_confidence"]) == {0.5, 0.7}
    assert table["sharpe"].is_monotonic_decreasing and (table["status"] == "ok").all()
    assert len(pd.read_csv(out / "trials.csv")) == 2
    summary = json.loads((out / "sweep.json").read_text())
    assert 0.0 <= summary["best"]["deflated_sharpe"] <= 1.0
    assert set(summary["spa"]) == {"buy_and_hold", "momentum", "reversal"}
    assert all(0.0 <= spa["p_value"] <= 1.0 for spa in summary["spa"].values())
    assert "SPA" in (out / "report.md").read_text()

    assert cli.main([*argv, "--workers", "2", "--out", str(out)]) == 0
    assert "2/2 finished before (results reused)" in capsys.readouterr().out
    assert pd.read_parquet(out / "trials.parquet").equals(table)


@pytest.mark.parametrize(
    ("space", "phrase"),
    [
        ("policy:\n  min_confidense: [0.5]\n", "policy.min_confidense is not a PolicySettings"),
        ("policy:\n  min_confidence: [1.5]\n", "policy.min_confidence = 1.5 is invalid"),
        ("policy:\n  reduce_drawdown: [0.3]\n", "trial 0 (policy.reduce_drawdown=0.3) is invalid"),
        ("mode: random\npolicy:\n  min_confidence: [0.5]\n", "random mode needs `trials:`"),
        ("model:\n  hidden: 32\n", "model.hidden = 32; expected a non-empty list"),
    ],
)
def test_a_bad_sweep_space_is_one_line_and_writes_nothing(
    tmp_path, bars_csv, space, phrase, capsys
):
    path = tmp_path / "space.yaml"
    path.write_text(space)
    before = snapshot(tmp_path)
    code = cli.main(["sweep", str(path), "--csv", str(bars_csv), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and phrase in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert snapshot(tmp_path) == before


def test_instruments_train_and_backtest_each_bar_type(local_ray, synthetic_catalog, tmp_path):
    before = snapshot(synthetic_catalog)
    out = tmp_path / "many"
    argv = ["instruments", "--catalog", str(synthetic_catalog), "--out", str(out)]
    tiny = ["--epochs", "1", "--hidden", "16", "--blocks", "1"]
    assert cli.main([*argv, *tiny, "--workers", "2"]) == 0
    table = pd.read_csv(out / "instruments.csv")
    assert list(table["bar_type"]) == [BAR_TYPE] and list(table["status"]) == ["ok"]
    assert table.loc[0, "orders"] >= 0 and table.loc[0, "bars"] > 100
    assert (out / BAR_TYPE / "summary.json").is_file()
    assert (out / "models" / BAR_TYPE / "manifest.json").is_file()
    assert snapshot(synthetic_catalog) == before  # the catalog is only read


def test_instruments_name_a_missing_bar_type_in_one_line(synthetic_catalog, tmp_path, capsys):
    code = cli.main(
        ["instruments", "--catalog", str(synthetic_catalog), "--bar-types", "ETHUSDT-LINEAR.BYBIT"
         "-1-HOUR-LAST-EXTERNAL", "--out", str(tmp_path / "many")]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "no ETHUSDT-LINEAR.BYBIT-1-HOUR-LAST-EXTERNAL bars" in err
    assert "Traceback" not in err and not (tmp_path / "many").exists()
