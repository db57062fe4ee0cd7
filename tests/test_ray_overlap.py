"""The scenario checks as a Ray task beside the last folds: the same results as the serial run,
scheduled before the folds still waiting, a failing one keeps the finished folds; and the
local workers run at the command's priority."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from catalogs.synthetic import generate_bars
from evaluation import cli
from evaluation import walk_forward
from evaluation.cli import PARTIAL_RESULTS
from evaluation.parallel import Task
from evaluation.parallel import ray_evaluation
from evaluation.parallel import ray_session
from evaluation.parallel import run_tasks
from evaluation.walk_forward import EvaluationConfig
from evaluation.walk_forward import ScenarioChecksError
from evaluation.walk_forward import evaluate
from output_paths import MARKER
from tests.test_evaluation_cli import TINY
from tests.test_evaluation_cli import TINY_FLAGS

pytest.importorskip("ray")

SCENARIO_STARTED = "scenario-started"


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray with 2 worker CPUs for the module."""
    with ray_session(workers=2, object_store_bytes=200 * 1024**2):
        yield


@pytest.fixture(scope="module")
def bars():
    return generate_bars(3_000, interval="1h", seed=5)


@pytest.fixture(scope="module")
def serial_results(bars):
    results, _, scenarios = evaluate(bars, "synthetic", TINY, log=lambda _: None)
    return results, scenarios


def as_text(value: object) -> str:
    """JSON text (NaN equals NaN), for bit-for-bit comparison of results."""
    return json.dumps(value, sort_keys=True, default=str)


def test_ray_evaluation_gives_the_serial_folds_pooled_summary_and_scenarios(
    local_ray, bars, serial_results
):
    serial, serial_scenarios = serial_results
    lines: list[str] = []
    parallel, _, scenarios = evaluate(bars, "synthetic", TINY, lines.append, ray_evaluation)
    for part in ("folds", "overall", "scenarios"):
        assert as_text(parallel[part]) == as_text(serial[part]), part
    for array in ("samples", "heldout", "train"):
        assert (scenarios[array] == serial_scenarios[array]).all(), array
    assert parallel["scenarios"]["fold"] == 1  # the last fold's model
    timings = parallel["timings"]
    assert set(timings) == {"setup_s", "folds_s", "pooled_s", "scenarios_s", "scenarios_wait_s"}
    assert set(serial["timings"]) == set(timings)


def recording_fold(bars, dataset, fold, marker_dir, cfg, per_year) -> dict:
    """Stands in for ``run_fold``: notes whether the scenario task had started when this fold
    started; fold 3 (started beside fold 4, the last) waits until the scenario task starts."""
    seen = os.path.exists(os.path.join(marker_dir, SCENARIO_STARTED))
    if fold.index == 3:
        deadline = time.monotonic() + 60
        while not os.path.exists(os.path.join(marker_dir, SCENARIO_STARTED)):
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
    return {"fold": fold.index, "scenario_started_before": seen, "markers": marker_dir}


def recording_scenarios(bars, dataset, run, cfg) -> dict:
    """Stands in for ``scenario_checks``: marks that it started, from the last fold's run."""
    Path(run["markers"], SCENARIO_STARTED).touch()
    return {"summary": {"fold": run["fold"]}}


def test_the_scenario_task_starts_before_the_folds_still_waiting(local_ray, monkeypatch, tmp_path):
    """5 expanding folds on 2 workers: folds 4 and 3 start; once fold 4 (the last) is trained,
    the scenario checks take the next free worker, before folds 2, 1 and 0."""
    monkeypatch.setattr(walk_forward, "run_fold", recording_fold)
    monkeypatch.setattr(walk_forward, "scenario_checks", recording_scenarios)
    folds = [SimpleNamespace(index=index, train=range(100 * (index + 1))) for index in range(5)]
    tasks = ray_evaluation(None, None, folds, str(tmp_path), EvaluationConfig(), 1.0)
    runs = [run for run, _ in tasks.folds]
    assert [run["fold"] for run in runs] == [0, 1, 2, 3, 4]  # fold order
    started_after = {run["fold"]: run["scenario_started_before"] for run in runs}
    # fold 3 was submitted beside fold 4 (its worker may start it late on a busy machine, so
    # either order); every other fold waited for a free slot, which came after the scenario
    # task had started
    assert {fold: started_after[fold] for fold in (0, 1, 2, 4)} == {
        0: True,
        1: True,
        2: True,
        4: False,
    }
    checks, seconds = tasks.scenarios()
    assert checks == {"summary": {"fold": 4}} and seconds >= 0


def failing_scenarios(bars, dataset, run, cfg) -> dict:
    raise ValueError("no samples for this model")


def test_a_failing_scenario_task_keeps_the_finished_folds(
    local_ray, monkeypatch, bars, serial_results
):
    serial, _ = serial_results
    monkeypatch.setattr(walk_forward, "scenario_checks", failing_scenarios)
    lines: list[str] = []
    with pytest.raises(ScenarioChecksError, match="no samples for this model") as failure:
        evaluate(bars, "synthetic", TINY, lines.append, ray_evaluation)
    kept = failure.value.results
    assert as_text(kept["folds"]) == as_text(serial["folds"])  # every fold kept
    assert as_text(kept["overall"]) == as_text(serial["overall"])  # and the pooled summary
    assert kept["scenarios"] == {"error": "ValueError: no samples for this model"}
    assert [run.fold.index for run in failure.value.runs] == [0, 1]
    assert "scenarios FAILED: ValueError: no samples for this model" in lines
    assert isinstance(failure.value.__cause__, ValueError)  # the task's own exception


def test_the_command_saves_the_folds_when_the_scenario_checks_fail(monkeypatch, tmp_path, capsys):
    """Serially as on Ray: the failure keeps its traceback (a bug, not a user error), and the
    folds and the pooled summary are saved beside where the report would be."""
    path = tmp_path / "bars.csv"
    frame = generate_bars(2_500, interval="1min", seed=9)
    frame.rename_axis("timestamp").to_csv(path)
    monkeypatch.setattr(walk_forward, "scenario_checks", failing_scenarios)
    out = tmp_path / "report"
    with pytest.raises(ScenarioChecksError):
        cli.main(["--csv", str(path), "--interval", "1min", *TINY_FLAGS, "--out", str(out)])
    assert "the folds and the pooled summary are kept in" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == [MARKER, PARTIAL_RESULTS]  # no report.md
    kept = json.loads((out / PARTIAL_RESULTS).read_text())
    assert len(kept["folds"]) == 2 and "strategies" in kept["overall"]
    assert kept["scenarios"] == {"error": "ValueError: no samples for this model"}


def niceness() -> int:
    return os.nice(0)


def test_local_workers_run_at_the_command_priority(local_ray):
    """Ray lowers its workers to nice 15 by default: on a busy machine they then lose the CPU
    to every other process, and 2 workers ran the folds slower than the serial command."""
    outcomes = run_tasks([Task(f"nice {n}", niceness) for n in range(2)], progress=print)
    assert [outcome.value for outcome in outcomes] == [os.nice(0)] * 2
