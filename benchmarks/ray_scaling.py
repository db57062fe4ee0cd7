"""Ray scale-out figures: speedup of the default evaluation, Ray's overhead per task, peak
memory, the object store's cap, and a projection for a large sweep from the measured costs.

    python -m benchmarks --ray                        # the demo's 30,000 hourly bars, 5 folds
    python -m benchmarks --ray --bars 6000 --epochs 5 # a quicker look

Runs, on the same bars and settings, the default evaluation (every fold and the scenario checks
with 1 pinned torch and BLAS thread) serially in this process and with ``--workers`` local Ray
workers (the scenario checks as a task beside the last folds), checks that both give identical
results, then times ``--tasks`` empty Ray tasks (the per-task overhead). Each run's wall time
is split into setup (features, fold layout), the folds, the pooled summary and the scenario
checks (on Ray: how long they ran beside the folds, and how long the command still waited for
them after the pooled summary). Peak memory is the largest summed RSS of this process and all
its descendants (Ray's GCS, raylet and workers), sampled every 0.2 s. Writes ``--out`` (JSON),
replaces the Ray rows of ``--table`` (docs/benchmarks.md) and prints the figures; point both
elsewhere for a trial run.
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
from evaluation.parallel import ray_evaluation
from evaluation.parallel import ray_session
from evaluation.parallel import run_tasks
from evaluation.walk_forward import EVAL_TRAINING
from evaluation.walk_forward import EvaluationConfig
from evaluation.walk_forward import evaluate
from output_paths import write_atomically

PAGE = os.sysconf("SC_PAGE_SIZE")
TABLE_ROW_PREFIX = "| Ray"  # the rows of docs/benchmarks.md this benchmark owns
EMPTY_TABLE = ("| measure | result |", "|---|---|")


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
    """Every fold's, the pooled and the scenario figures equal (as JSON text: NaN equals NaN)."""

    def text(results: dict) -> str:
        parts = [results["folds"], results["overall"], results["scenarios"]]
        return json.dumps(parts, sort_keys=True, default=str)

    return text(first) == text(second)


def time_split(timings: dict) -> str:
    """An evaluation's ``results["timings"]`` in words."""
    return (
        f"setup {timings['setup_s']:.0f} s, folds {timings['folds_s']:.0f} s, pooled summary "
        f"{timings['pooled_s']:.0f} s, scenario checks {timings['scenarios_s']:.0f} s (waited "
        f"for after the pooled summary: {timings['scenarios_wait_s']:.0f} s)"
    )


def timed(function: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    value = function()
    return value, time.perf_counter() - started


def projection(figures: dict, args: argparse.Namespace) -> dict:
    """Wall time of an instruments x trials sweep on a cluster, from the measured costs.

    A sweep trial is one task on one core: the walk-forward folds one after the other and their
    pooled summary, without the scenario checks, so it costs what those took in the serial
    evaluation; Ray adds the measured overhead per task."""
    trial_s = figures["serial_trial_s"]
    slots = args.nodes * args.cores_per_node
    tasks = args.instruments * args.trials
    waves = math.ceil(tasks / slots)
    overhead_s = figures["overhead_per_task_ms"] / 1000
    return {
        "tasks": tasks,
        "slots": slots,
        "trial_s": trial_s,
        "waves": waves,
        "wall_hours": waves * (trial_s + overhead_s) / 3600,
        "arithmetic": f"ceil({tasks} / ({args.nodes} x {args.cores_per_node})) = {waves} waves "
        f"x ({trial_s:.0f} s + {1000 * overhead_s:.1f} ms)",
        "assumes": f"{args.nodes} nodes x {args.cores_per_node} cores like this one, "
        f"{args.bars:,}-bar instruments, {args.epochs} epochs per fold",
    }


def table_rows(figures: dict) -> list[str]:
    """The Ray rows of docs/benchmarks.md."""
    mb = 2**20
    identical = "identical results" if figures["identical"] else "results DIFFER"
    plan = figures["projection"]
    rows = {
        "serial evaluation": f"{figures['serial_s']:.0f} s ({figures['bars']:,} hourly bars, "
        f"{figures['folds']} folds, {figures['epochs']} epochs, 1 thread per fold)",
        f"{figures['workers']} workers": f"{figures['ray_workers_s']:.0f} s (Ray start "
        f"{figures['ray_start_s']:.1f} s included), {identical}: speedup "
        f"{figures['speedup']:.2f}x (the folds alone: {figures['serial_folds_s']:.0f} s -> "
        f"{figures['ray_folds_s']:.0f} s, {figures['folds_speedup']:.2f}x)",
        "time split, serial": time_split(figures["serial_timings"]),
        f"time split, {figures['workers']} workers": f"Ray start {figures['ray_start_s']:.1f} s, "
        + time_split(figures["ray_timings"]),
        "overhead per task": f"{figures['overhead_per_task_ms']:.1f} ms "
        f"({figures['tasks']} empty tasks on {figures['workers']} workers)",
        "peak RSS": f"serial {figures['serial_peak_rss_mb']:,.0f} MB, with Ray "
        f"{figures['ray_peak_rss_mb']:,.0f} MB (command, GCS, raylet, workers); object store "
        f"capped at {figures['object_store_bytes'] / mb:,.0f} MB",
        "100 x 50 sweep, 8 x 16 cores": f"{plan['wall_hours']:.1f} h projected "
        f"({plan['arithmetic']})",
    }
    return [f"| {('Ray: ' + label):<31} | {text} |" for label, text in rows.items()]


def update_table(path: Path, rows: list[str]) -> None:
    """Replace the Ray rows of the markdown table at ``path`` (append them when absent)."""
    lines = (
        path.read_text().splitlines() if path.is_file() else ["| measure | result |", "|---|---|"]
    )
    kept = [line for line in lines if not line.startswith(TABLE_ROW_PREFIX)]
    text = "\n".join([*kept, *rows]) + "\n"
    write_atomically(path, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks --ray",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--bars", type=int, default=30_000, help="hourly bars (the demo's)")
    parser.add_argument("--epochs", type=int, default=EVAL_TRAINING.max_epochs)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=200, help="empty tasks for the overhead")
    parser.add_argument("--nodes", type=int, default=8, help="projection: cluster nodes")
    parser.add_argument("--cores-per-node", type=int, default=16, help="projection")
    parser.add_argument("--instruments", type=int, default=100, help="projection")
    parser.add_argument("--trials", type=int, default=50, help="projection")
    parser.add_argument("--out", default="docs/ray_scaling.json")
    parser.add_argument("--table", default="docs/benchmarks.md", help="its Ray rows are replaced")
    args = parser.parse_args(argv)

    bars = generate_bars(args.bars, interval="1h", seed=7)  # the demo catalog's bars
    config = replace(EvaluationConfig(), train=replace(EVAL_TRAINING, max_epochs=args.epochs))
    quiet = lambda _: None  # noqa: E731
    figures: dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_average_before": os.getloadavg(),
        "bars": args.bars,
        "epochs": args.epochs,
        "folds": config.n_folds,
        "workers": args.workers,
        "tasks": args.tasks,
        "object_store_bytes": DEFAULT_OBJECT_STORE_BYTES,
    }

    warm_up = replace(
        config,
        n_folds=2,
        train=replace(config.train, max_epochs=1),
        scenario_samples=100,
        scenario_states=20,
        pc_steps=5,
    )
    evaluate(bars.iloc[:3_000], "warm-up", warm_up, log=quiet)  # compile kernels, load libs
    with PeakMemory() as serial_memory:
        (serial, _, _), figures["serial_s"] = timed(
            lambda: evaluate(bars, "bench", config, log=quiet)
        )
    figures["serial_peak_rss_mb"] = serial_memory.peak_bytes / 2**20
    figures["serial_timings"] = serial["timings"]
    figures["serial_folds_s"] = serial["timings"]["folds_s"]
    figures["serial_trial_s"] = sum(
        serial["timings"][k] for k in ("setup_s", "folds_s", "pooled_s")
    )
    print(json.dumps(figures), flush=True)  # partial figures, in case a later phase fails
    with PeakMemory() as ray_memory:
        started = time.perf_counter()
        with ray_session(args.workers):
            import ray

            figures["ray_start_s"] = time.perf_counter() - started
            figures["object_store_bytes"] = ray.cluster_resources()["object_store_memory"]
            (parallel, _, _), seconds = timed(
                lambda: evaluate(bars, "bench", config, log=quiet, runner=ray_evaluation)
            )
            figures["ray_workers_s"] = figures["ray_start_s"] + seconds
            figures["ray_timings"] = parallel["timings"]
            figures["ray_folds_s"] = parallel["timings"]["folds_s"]
            tasks = [Task(f"empty {n}", empty_task) for n in range(args.tasks)]
            _, empty_s = timed(lambda: run_tasks(tasks, progress=quiet))
    figures["ray_peak_rss_mb"] = ray_memory.peak_bytes / 2**20
    figures["identical"] = same_figures(parallel, serial)
    figures["speedup"] = figures["serial_s"] / figures["ray_workers_s"]
    figures["folds_speedup"] = figures["serial_folds_s"] / figures["ray_folds_s"]
    figures["overhead_per_task_ms"] = 1000 * empty_s / args.tasks * args.workers
    figures["load_average_after"] = os.getloadavg()
    figures["projection"] = projection(figures, args)

    write_atomically(args.out, json.dumps(figures, indent=2))
    rows = table_rows(figures)
    update_table(Path(args.table), rows)
    print(f"serial: {time_split(serial['timings'])}")
    print(f"Ray: start {figures['ray_start_s']:.1f} s, {time_split(parallel['timings'])}")
    print("\n".join(rows))
    print(f"figures: {Path(args.out).resolve()}; rows replaced in {Path(args.table).resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
