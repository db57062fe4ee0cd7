"""Ray scale-out figures: speedup of the default evaluation, Ray's overhead per task, peak
memory, and a projection for a large sweep from the measured per-task costs.

    python -m benchmarks.ray_scaling                  # the demo's 30,000 hourly bars, 5 folds
    python -m benchmarks.ray_scaling --bars 6000 --epochs 5   # a quicker look

Runs, on the same bars and settings: the default evaluation serially in this process with
torch's default threads (what ``python -m evaluation`` does), serially with 1 thread per fold
(the numerics of a Ray task), and with ``--workers`` local Ray workers; then ``--tasks``
empty Ray tasks (the per-task overhead). Peak memory is the largest summed RSS of this
process and all its descendants (Ray's GCS, raylet and workers), sampled every 0.2 s. Writes
``--out`` (JSON) and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from catalogs.synthetic import generate_bars
from evaluation.parallel import DEFAULT_OBJECT_STORE_BYTES
from evaluation.parallel import Task
from evaluation.parallel import ray_folds
from evaluation.parallel import ray_session
from evaluation.parallel import run_tasks
from evaluation.walk_forward import EVAL_TRAINING
from evaluation.walk_forward import EvaluationConfig
from evaluation.walk_forward import evaluate

PAGE = os.sysconf("SC_PAGE_SIZE")


class PeakMemory:
    """Largest summed RSS of this process tree while the block runs."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, tree_rss(os.getpid()))
            self._stop.wait(self.interval)


def tree_rss(pid: int) -> int:
    """RSS of ``pid`` and its descendants, bytes (from /proc)."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            with open(f"/proc/{current}/statm") as stream:
                total += int(stream.read().split()[1]) * PAGE
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as stream:
                    stack.extend(int(child) for child in stream.read().split())
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total


def empty_task() -> None:
    """A task that does nothing: its wall time is Ray's overhead."""


def same_figures(first: dict, second: dict) -> bool:
    """Every fold's and the pooled figures equal (as JSON text: NaN equals NaN)."""

    def text(results: dict) -> str:
        return json.dumps([results["folds"], results["overall"]], sort_keys=True, default=str)

    return text(first) == text(second)


def timed(function: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    value = function()
    return value, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ray_scaling")
    parser.add_argument("--bars", type=int, default=30_000, help="hourly bars (the demo's)")
    parser.add_argument("--epochs", type=int, default=EVAL_TRAINING.max_epochs)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=200, help="empty tasks for the overhead")
    parser.add_argument("--nodes", type=int, default=8, help="projection: cluster nodes")
    parser.add_argument("--cores-per-node", type=int, default=16, help="projection")
    parser.add_argument("--instruments", type=int, default=100, help="projection")
    parser.add_argument("--trials", type=int, default=50, help="projection")
    parser.add_argument("--out", default="reports/ray_scaling.json")
    args = parser.parse_args(argv)

    bars = generate_bars(args.bars, interval="1h", seed=7)  # the demo catalog's bars
    config = replace(EvaluationConfig(), train=replace(EVAL_TRAINING, max_epochs=args.epochs))
    one_thread = replace(config, train=replace(config.train, threads=1))
    quiet = lambda _: None  # noqa: E731
    figures: dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_average_before": os.getloadavg(),
        "bars": args.bars,
        "epochs": args.epochs,
        "workers": args.workers,
        "object_store_bytes": DEFAULT_OBJECT_STORE_BYTES,
    }

    warm_up = replace(config, n_folds=2, train=replace(config.train, max_epochs=1))
    evaluate(bars.iloc[:3_000], "warm-up", warm_up, log=quiet)  # compile kernels, load libs
    with PeakMemory() as serial_memory:
        _, figures["serial_default_threads_s"] = timed(
            lambda: evaluate(bars, "bench", config, log=quiet)
        )
    figures["serial_peak_rss_mb"] = serial_memory.peak_bytes / 2**20
    print(json.dumps(figures), flush=True)  # partial figures, in case a later phase fails
    (serial_one, _, _), figures["serial_one_thread_s"] = timed(
        lambda: evaluate(bars, "bench", one_thread, log=quiet)
    )
    print(json.dumps(figures), flush=True)
    with PeakMemory() as ray_memory:
        started = time.perf_counter()
        with ray_session(args.workers):
            figures["ray_start_s"] = time.perf_counter() - started
            (parallel, _, _), figures["ray_workers_s"] = timed(
                lambda: evaluate(bars, "bench", one_thread, log=quiet, fold_runner=ray_folds)
            )
            tasks = [Task(f"empty {n}", empty_task) for n in range(args.tasks)]
            _, empty_s = timed(lambda: run_tasks(tasks, progress=quiet))
    figures["ray_peak_rss_mb"] = ray_memory.peak_bytes / 2**20
    figures["identical_to_serial_one_thread"] = same_figures(parallel, serial_one)
    figures["speedup_vs_serial_default"] = (
        figures["serial_default_threads_s"] / figures["ray_workers_s"]
    )
    figures["speedup_vs_serial_one_thread"] = (
        figures["serial_one_thread_s"] / figures["ray_workers_s"]
    )
    figures["overhead_per_task_ms"] = 1000 * empty_s / args.tasks * args.workers
    figures["load_average_after"] = os.getloadavg()

    # Projection: a sweep trial is the walk-forward folds without the scenario checks, one
    # task on one core; the serial one-thread run's time is folds + scenarios, so the trial
    # is bounded above by it.
    trial_s = figures["serial_one_thread_s"]
    slots = args.nodes * args.cores_per_node
    tasks_total = args.instruments * args.trials
    waves = math.ceil(tasks_total / slots)
    overhead_s = figures["overhead_per_task_ms"] / 1000
    figures["projection"] = {
        "tasks": tasks_total,
        "slots": slots,
        "trial_s_upper": trial_s,
        "waves": waves,
        "wall_hours": waves * (trial_s + overhead_s) / 3600,
        "assumes": f"{args.nodes} nodes x {args.cores_per_node} cores like this one, "
        f"{args.bars:,}-bar instruments, {args.epochs} epochs per fold",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
