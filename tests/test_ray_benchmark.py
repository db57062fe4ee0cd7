"""`python -m benchmarks --ray` is wired, its table rows replace only their own, and Ray never
starts itself without the object store cap."""

from __future__ import annotations

import subprocess
import sys

import pytest

from benchmarks.ray_scaling import table_rows
from benchmarks.ray_scaling import update_table
from evaluation.parallel import Task
from evaluation.parallel import run_tasks

ray = pytest.importorskip("ray")

FIGURES = {
    "bars": 30_000,
    "folds": 5,
    "epochs": 40,
    "workers": 2,
    "tasks": 200,
    "serial_s": 600.0,
    "serial_folds_s": 500.0,
    "serial_trial_s": 520.0,
    "serial_timings": {
        "setup_s": 1.0,
        "folds_s": 500.0,
        "pooled_s": 19.0,
        "scenarios_s": 80.0,
        "scenarios_wait_s": 80.0,
    },
    "ray_timings": {
        "setup_s": 1.0,
        "folds_s": 280.0,
        "pooled_s": 21.0,
        "scenarios_s": 84.0,
        "scenarios_wait_s": 0.0,
    },
    "ray_workers_s": 350.0,
    "ray_folds_s": 280.0,
    "ray_start_s": 6.0,
    "speedup": 600 / 350,
    "folds_speedup": 500 / 280,
    "identical": True,
    "overhead_per_task_ms": 3.0,
    "serial_peak_rss_mb": 2000.0,
    "ray_peak_rss_mb": 6000.0,
    "object_store_bytes": 1 << 30,
    "projection": {"wall_hours": 6.7, "arithmetic": "40 waves x (600 s + 3.0 ms)"},
}


def test_the_ray_benchmark_is_reachable_from_python_m_benchmarks():
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--ray", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "python -m benchmarks --ray" in done.stdout and "--workers" in done.stdout


def test_the_ray_rows_replace_their_old_values_and_keep_the_other_rows(tmp_path):
    table = tmp_path / "benchmarks.md"
    table.write_text("| measure | result |\n|---|---|\n| 1. bare engine | 1 bars/s |\n")
    update_table(table, table_rows(FIGURES | {"serial_s": 999.0}))
    update_table(table, table_rows(FIGURES))
    lines = table.read_text().splitlines()
    assert lines[:3] == ["| measure | result |", "|---|---|", "| 1. bare engine | 1 bars/s |"]
    ray_rows = [line for line in lines if line.startswith("| Ray")]
    assert len(ray_rows) == 7 and "999" not in table.read_text()
    text = "\n".join(ray_rows)
    for phrase in ("600 s", "350 s", "1.71x", "3.0 ms", "6,000 MB", "capped at 1,024 MB", "6.7 h"):
        assert phrase in text, phrase
    split = "\n".join(row for row in ray_rows if "time split" in row)
    for phrase in ("folds 500 s", "pooled summary 19 s", "scenario checks 80 s", "start 6.0 s",
                   "folds 280 s", "after the pooled summary: 0 s"):  # fmt: skip
        assert phrase in split, phrase


def test_tasks_refuse_to_start_an_uncapped_ray():
    assert not ray.is_initialized()
    with pytest.raises(RuntimeError, match="ray_session"):
        run_tasks([Task("nothing", print)])
    assert not ray.is_initialized()  # Ray did not start itself (30 % of memory, no cap)
