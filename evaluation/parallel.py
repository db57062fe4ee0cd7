"""Ray task plumbing: walk-forward folds, sweep trials and instruments as Ray tasks.

:func:`ray_session` starts a local Ray for one command (``workers`` CPUs, no dashboard, no usage
statistics, a capped object store) and shuts it down afterwards, or joins a running cluster by
address. :func:`run_tasks` submits :class:`Task` objects, prints ``finished/total`` as they
finish, keeps every finished result when another task fails, and, given a results directory,
stores each finished result under a key derived from the task's settings so that a re-run skips
it. Seeds belong to the task's settings, never to the worker that runs it, so the results do not
depend on how many workers there are.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from cli_errors import UserError

if TYPE_CHECKING:
    import pandas as pd

    from evaluation.folds import Fold
    from evaluation.summary import FoldRun
    from evaluation.walk_forward import EvaluationConfig
    from scoremodel.datasets import MarketDataset

# Ray's shared-memory object store; the bars and fold inputs are a few MB, so 1 GiB leaves a
# 24 GB machine room for the workers (each a Python process with torch, ~0.5 GB).
DEFAULT_OBJECT_STORE_BYTES = 1 << 30
RESULT_SUFFIX = ".json"


class RayStartError(UserError):
    """Ray could not be started or the cluster address could not be reached."""


@dataclass(frozen=True)
class Task:
    """One unit of work: ``function(*args)`` in a Ray worker, identified by ``settings``.

    ``settings`` (JSON-able) determines the result; its hash is the result's key in a results
    directory. ``fresh_process`` gives the task a worker process of its own that exits after it
    (each Nautilus backtest needs one: the engine keeps process-wide state).
    """

    label: str
    function: Callable[..., Any]
    args: tuple = ()
    settings: dict = field(default_factory=dict)
    fresh_process: bool = False

    @property
    def key(self) -> str:
        text = json.dumps({"label": self.label, **self.settings}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class TaskOutcome:
    """A task's result, or the error that stopped it (``value`` is None then)."""

    task: Task
    value: Any = None
    error: str | None = None
    seconds: float = 0.0
    reused: bool = False  # read from the results directory, not run again
    exception: BaseException | None = None  # the task's own exception, when it failed

    @property
    def ok(self) -> bool:
        return self.error is None


def default_workers() -> int:
    """The number of cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


@contextmanager
def ray_session(
    workers: int | None = None,
    address: str | None = None,
    object_store_bytes: int = DEFAULT_OBJECT_STORE_BYTES,
) -> Iterator[None]:
    """Ray for the duration of the block: a local instance (``workers`` CPUs, default all
    cores) or the running cluster at ``address``; shut down (disconnected) afterwards."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no network, no telemetry
    import ray

    if ray.is_initialized():  # a caller (a test, a notebook) already runs Ray: use it
        yield
        return
    env_vars = {"RAY_USAGE_STATS_ENABLED": "0"}
    if not address:  # local workers import this code from wherever this process does
        env_vars["PYTHONPATH"] = os.pathsep.join(path for path in sys.path if path)
    options: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": "ERROR",
        "runtime_env": {"env_vars": env_vars},
    }
    try:
        if address:
            ray.init(address=address, **options)
        else:
            ray.init(
                num_cpus=workers or default_workers(),
                object_store_memory=object_store_bytes,
                **options,
            )
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise RayStartError(
            f"could not start {where}: {error}; check the address (`ray status` on the head "
            "node prints it) or run without --ray-address for a local Ray"
        ) from error
    try:
        yield
    finally:
        ray.shutdown()


def run_tasks(
    tasks: Sequence[Task],
    results_dir: str | Path | None = None,
    progress: Callable[[str], None] = print,
    what: str = "tasks",
) -> list[TaskOutcome]:
    """Run ``tasks`` on the current Ray session; outcomes in the order of ``tasks``.

    A failing task becomes an outcome with its error; the others still run and are kept. With
    ``results_dir``, each finished task's JSON result is written there (atomically, named by
    its key) and tasks whose result is already there are not run again.
    """
    import ray

    directory = Path(results_dir) if results_dir is not None else None
    outcomes: dict[int, TaskOutcome] = {}
    for position, task in enumerate(tasks):
        stored = _stored_result(directory, task)
        if stored is not None:
            outcomes[position] = TaskOutcome(task, stored, reused=True)
    if outcomes:
        progress(f"{what}: {len(outcomes)}/{len(tasks)} finished before (results reused)")
    shared_worker = ray.remote(num_cpus=1, max_retries=0)(_call)
    own_worker = ray.remote(num_cpus=1, max_retries=0, max_calls=1)(_call)
    pending: dict[Any, tuple[int, float]] = {}
    for position, task in enumerate(tasks):
        if position in outcomes:
            continue
        remote = own_worker if task.fresh_process else shared_worker
        pending[remote.remote(task.function, *task.args)] = (position, time.perf_counter())
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        position, started = pending.pop(ready[0])
        task = tasks[position]
        seconds = time.perf_counter() - started
        try:
            outcome = TaskOutcome(task, ray.get(ready[0]), seconds=seconds)
        except ray.exceptions.RayError as error:
            cause = getattr(error, "cause", None) or error
            outcome = TaskOutcome(task, error=_error_line(cause), seconds=seconds, exception=cause)
        if outcome.ok and directory is not None:
            _store_result(directory, task, outcome.value)
        outcomes[position] = outcome
        state = "done" if outcome.ok else f"FAILED: {outcome.error}"
        progress(f"{what}: {len(outcomes)}/{len(tasks)} finished ({task.label} {state})")
    return [outcomes[position] for position in range(len(tasks))]


def run_serially(tasks: Sequence[Task]) -> list[TaskOutcome]:
    """The same tasks in this process, one after the other (the reference for equality)."""
    outcomes = []
    for task in tasks:
        started = time.perf_counter()
        outcomes.append(
            TaskOutcome(task, task.function(*task.args), seconds=time.perf_counter() - started)
        )
    return outcomes


def ray_folds(
    bars: pd.DataFrame,
    dataset: MarketDataset,
    folds: list[Fold],
    source: str,
    cfg: EvaluationConfig,
    per_year: float,
) -> list[tuple[FoldRun, float]]:
    """The walk-forward folds as Ray tasks (a ``fold_runner`` for
    :func:`evaluation.walk_forward.evaluate`): the bars and features go to the object store
    once, each fold trains and trades in a worker; (run, seconds) per fold, in fold order.
    A failing fold raises its own exception (the evaluation needs every fold)."""
    import ray

    from evaluation.walk_forward import run_fold

    shared_bars, shared_dataset = ray.put(bars), ray.put(dataset)
    tasks = [
        Task(
            f"fold {fold.index}",
            run_fold,
            (shared_bars, shared_dataset, fold, source, cfg, per_year),
        )
        for fold in folds
    ]
    outcomes = run_tasks(tasks, what="folds")
    for outcome in outcomes:
        if not outcome.ok:
            raise outcome.exception
    return [(outcome.value, outcome.seconds) for outcome in outcomes]


def _call(function: Callable[..., Any], *args: Any) -> Any:
    return function(*args)


def _error_line(error: BaseException) -> str:
    """An exception as one line: type and message, without a traceback."""
    return f"{type(error).__name__}: {' '.join(str(error).split())}"[:500]


def _stored_result(directory: Path | None, task: Task) -> Any:
    if directory is None:
        return None
    path = directory / f"{task.key}{RESULT_SUFFIX}"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())["result"]
    except (OSError, ValueError, KeyError):
        return None  # unreadable: run the task again and replace it


def _store_result(directory: Path, task: Task, value: Any) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    record = {"label": task.label, "settings": task.settings, "result": value}
    text = json.dumps(record, default=str, allow_nan=True)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=RESULT_SUFFIX)
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, directory / f"{task.key}{RESULT_SUFFIX}")
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """``write(temporary path)`` next to ``path``, fsync, then rename over ``path``."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(Path(temporary))
        with open(temporary, "rb") as stream:
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def put(value: Any) -> Any:
    """``value`` in Ray's object store, shared by every task that receives the reference."""
    import ray

    return ray.put(value)
