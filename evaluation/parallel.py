"""Ray task plumbing: walk-forward folds, sweep trials and instruments as Ray tasks.

:func:`ray_session` starts a local Ray for one command (``workers`` CPUs, no dashboard, no usage
statistics, a capped object store) and shuts it down afterwards, or joins a running cluster by
address. :func:`run_tasks` submits :class:`Task` objects, prints ``finished/total`` as they
finish, keeps every finished result when another task fails, and, given a results directory,
stores each finished result under a key derived from the task's settings so that a re-run skips
it. Seeds belong to the task's settings, never to the worker that runs it, and so does the
numeric thread count: every task runs under :func:`pinned_threads` (torch's and the BLAS
libraries' threads), in a Ray worker and in this process alike, because a float sum split over 2
threads differs in its last bits from the same sum on 1. So the results do not depend on how
many workers there are, nor on whether a task ran in a worker or here.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import os
import socket
import sys
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
from output_paths import write_atomically

if TYPE_CHECKING:
    import pandas as pd

    from evaluation.folds import Fold
    from evaluation.summary import FoldRun
    from evaluation.walk_forward import EvaluationConfig
    from evaluation.walk_forward import EvaluationTasks
    from scoremodel.datasets import MarketDataset

# Ray's shared-memory object store; the bars and fold inputs are a few MB, so 1 GiB leaves a
# 24 GB machine room for the workers (each a Python process with torch, ~0.5 GB).
DEFAULT_OBJECT_STORE_BYTES = 1 << 30
# Seconds to wait for a --ray-address to accept a connection (per address tried).
RAY_CONNECT_TIMEOUT_S = 5.0
RESULT_SUFFIX = ".json"
# Numeric threads of a task that names none: 1, what a Ray worker (one CPU) gets by default.
DEFAULT_TASK_THREADS = 1
# OpenBLAS's thread-count functions under the symbol names of its builds (plain, 64-bit
# interface, and the scipy-openblas wheels that numpy and scipy bundle).
_OPENBLAS_PREFIXES = ("openblas", "scipy_openblas")
_OPENBLAS_SUFFIXES = ("", "64_")
_OPENBLAS_SEEN: dict[str, Any] = {}  # the libraries found, and len(sys.modules) then
# What OpenBLAS, MKL and OpenMP read when they are loaded.
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


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
    threads: int = DEFAULT_TASK_THREADS  # torch and BLAS threads, pinned wherever it runs

    @property
    def key(self) -> str:
        record = {"label": self.label, "threads": self.threads, **self.settings}
        text = json.dumps(record, sort_keys=True, default=str)
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

    @property
    def state(self) -> str:
        """``done``, or ``FAILED: <error>`` (for progress lines)."""
        return "done" if self.ok else f"FAILED: {self.error}"


def default_workers() -> int:
    """The number of cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


@dataclass(frozen=True)
class _OpenBLAS:
    """One loaded OpenBLAS library's thread-count functions."""

    get: Callable[[], int]
    set: Callable[[int], None]


def _loaded_openblas() -> tuple[_OpenBLAS, ...]:
    """Every OpenBLAS this process has loaded (numpy's, scipy's), from /proc/self/maps (none
    where it does not exist: then only the environment pins them). Reading the map costs ~4 ms,
    so it is read again only after new modules were imported (a new library comes with one)."""
    modules = len(sys.modules)
    if _OPENBLAS_SEEN.get("modules") != modules:
        try:
            with open("/proc/self/maps") as maps:
                paths = sorted({line.split()[-1] for line in maps if "openblas" in line.lower()})
        except OSError:
            paths = []
        found = tuple(library for path in paths for library in _openblas_at(path))
        _OPENBLAS_SEEN.update(modules=modules, libraries=found)
    return _OPENBLAS_SEEN["libraries"]


@functools.cache
def _openblas_at(path: str) -> tuple[_OpenBLAS, ...]:
    library = ctypes.CDLL(path)
    found = []
    for prefix in _OPENBLAS_PREFIXES:
        for suffix in _OPENBLAS_SUFFIXES:
            get = getattr(library, f"{prefix}_get_num_threads{suffix}", None)
            set_ = getattr(library, f"{prefix}_set_num_threads{suffix}", None)
            if get is not None and set_ is not None:
                found.append(_OpenBLAS(get, set_))
    return tuple(found)


@contextmanager
def pinned_threads(threads: int | None = DEFAULT_TASK_THREADS) -> Iterator[None]:
    """torch's intra-op threads and every loaded OpenBLAS's threads set to ``threads`` (None:
    :data:`DEFAULT_TASK_THREADS`) for the block, then restored.

    A task's float results depend on its thread counts (a sum split over 2 threads rounds
    differently from the same sum on 1; OpenBLAS and torch split large reductions only), and a
    Ray worker starts with 1 thread (Ray sets ``OMP_NUM_THREADS=1``) where a command starts
    with one per core. Pinning makes the thread count a setting of the task, not of the
    process that happens to run it. The MKL torch uses follows ``torch.set_num_threads``; a
    BLAS first loaded inside the block reads the thread variables set for the block.
    """
    import torch

    count = threads or DEFAULT_TASK_THREADS
    libraries = _loaded_openblas()
    torch_before = torch.get_num_threads()
    blas_before = [library.get() for library in libraries]
    environment_before = {name: os.environ.get(name) for name in _THREAD_VARIABLES}
    torch.set_num_threads(count)
    for library in libraries:
        library.set(count)
    os.environ.update(dict.fromkeys(_THREAD_VARIABLES, str(count)))  # libraries loaded later
    try:
        yield
    finally:
        torch.set_num_threads(torch_before)
        for library, before in zip(libraries, blas_before, strict=True):
            library.set(before)
        for name, value in environment_before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def ray_session(
    workers: int | None = None,
    address: str | None = None,
    object_store_bytes: int = DEFAULT_OBJECT_STORE_BYTES,
) -> Iterator[None]:
    """Ray for the duration of the block: a local instance (``workers`` CPUs, default all
    cores, workers at this process's priority) or the running cluster at ``address``; shut
    down (disconnected) afterwards."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no network, no telemetry
    import ray

    if ray.is_initialized():  # a caller (a test, a notebook) already runs Ray: use it
        yield
        return
    if address == "local":  # Ray's name for a new local instance: the capped one below
        address = None
    env_vars = {"RAY_USAGE_STATS_ENABLED": "0"}
    if not address:  # local workers import this code from wherever this process does
        env_vars["PYTHONPATH"] = os.pathsep.join(path for path in sys.path if path)
    options: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": "ERROR",
        "runtime_env": {"env_vars": env_vars},
    }
    if address:
        check_ray_address(address)  # Ray itself retries a dead address for minutes
    try:
        if address:
            ray.init(address=address, **options)
        else:
            ray.init(
                num_cpus=workers or default_workers(),
                object_store_memory=object_store_bytes,
                # Ray lowers its workers' priority (nice 15) by default; the command's tasks
                # run at the command's own priority, as they do in the serial run.
                _system_config={"worker_niceness": 0},
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


def check_ray_address(address: str, timeout: float = RAY_CONNECT_TIMEOUT_S) -> None:
    """Refuse, within seconds, a cluster ``address`` (``host:port`` or ``ray://host:port``)
    where nothing accepts a connection: ``ray.init`` retries such an address for minutes.

    Tried are the address as given and as Ray reads it (Ray replaces 127.0.0.1 by this node's
    address); one accepting a TCP connection is enough. An address without a port (``auto``)
    is left to Ray, which words its own error."""
    text = address.removeprefix("ray://")
    host, colon, port_text = text.rpartition(":")
    if not colon or not port_text.isdigit() or not host:
        return
    port = int(port_text)
    if not 0 < port < 65536:
        raise RayStartError(
            f"--ray-address {address}: the port must be between 1 and 65535; give the address "
            "`ray status` prints on the head node"
        )
    candidates = [(host.strip("[]"), port)]
    if not address.startswith("ray://"):
        try:
            from ray._private.services import canonicalize_bootstrap_address

            canonical = canonicalize_bootstrap_address(text)
        except Exception:  # Ray's own reading failed: the address as given is tried alone
            canonical = None
        if canonical:
            canonical_host, _, canonical_port = canonical.rpartition(":")
            if canonical_port.isdigit():
                candidates.append((canonical_host.strip("[]"), int(canonical_port)))
    reasons = []
    for where in dict.fromkeys(candidates):
        try:
            with socket.create_connection(where, timeout=timeout):
                return
        except TimeoutError:
            reasons.append(f"{where[0]}:{where[1]}: no answer within {timeout:g} s")
        except OSError as error:
            reasons.append(f"{where[0]}:{where[1]}: {error.strerror or error}")
    flag = "--ray-client-server-port" if address.startswith("ray://") else "--port"
    raise RayStartError(
        f"cannot reach the Ray cluster at {address} ({'; '.join(reasons)}); start it with "
        f"`ray start --head {flag} {port}` on the head node, check the address (`ray status` "
        "on the head node prints it), or leave out --ray-address for a local Ray"
    )


def _session() -> Any:
    """The ``ray`` module, once :func:`ray_session` runs: Ray would otherwise start itself on
    first use, with an object store of 30 % of the machine's memory instead of the cap."""
    import ray

    if not ray.is_initialized():
        raise RuntimeError(
            "Ray tasks need a session: run them inside evaluation.parallel.ray_session"
        )
    return ray


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
    ray = _session()

    directory = Path(results_dir) if results_dir is not None else None
    outcomes: dict[int, TaskOutcome] = {}
    for position, task in enumerate(tasks):
        stored = _stored_result(directory, task)
        if stored is not None:
            outcomes[position] = TaskOutcome(task, stored, reused=True)
    if outcomes:
        progress(f"{what}: {len(outcomes)}/{len(tasks)} finished before (results reused)")
    cpus = _cluster_cpus(ray)
    pending: dict[Any, tuple[int, float]] = {}
    for position, task in enumerate(tasks):
        if position not in outcomes:
            pending[_submit(ray, task, cpus)] = (position, time.perf_counter())
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        position, started = pending.pop(ready[0])
        task = tasks[position]
        outcome = _outcome(ray, task, ready[0], time.perf_counter() - started)
        if outcome.ok and directory is not None:
            _store_result(directory, task, outcome.value)
        outcomes[position] = outcome
        progress(f"{what}: {len(outcomes)}/{len(tasks)} finished ({task.label} {outcome.state})")
    return [outcomes[position] for position in range(len(tasks))]


def run_serially(tasks: Sequence[Task]) -> list[TaskOutcome]:
    """The same tasks in this process, one after the other, with the same pinned thread counts
    (the reference for equality)."""
    outcomes = []
    for task in tasks:
        started = time.perf_counter()
        value = _call(task.function, task.threads, *task.args)
        outcomes.append(TaskOutcome(task, value, seconds=time.perf_counter() - started))
    return outcomes


def ray_folds(
    bars: pd.DataFrame,
    dataset: MarketDataset,
    folds: list[Fold],
    source: str,
    cfg: EvaluationConfig,
    per_year: float,
) -> list[tuple[FoldRun, float]]:
    """The walk-forward folds alone as Ray tasks, what
    :func:`evaluation.walk_forward.serial_folds` gives: (run, seconds) per fold, in fold order.
    A failing fold raises its own exception (the evaluation needs every fold)."""
    return list(_WalkForwardTasks(bars, dataset, folds, source, cfg, per_year, False).folds())


def ray_evaluation(
    bars: pd.DataFrame,
    dataset: MarketDataset,
    folds: list[Fold],
    source: str,
    cfg: EvaluationConfig,
    per_year: float,
) -> EvaluationTasks:
    """The folds and the scenario checks as Ray tasks (a runner for
    :func:`evaluation.walk_forward.evaluate`, same results as its serial one).

    The bars and features go to the object store once. The last fold (the longest training
    window of expanding folds) starts first and the others longest first; the scenario checks,
    which need only the last fold's model, start as soon as it is trained, before any fold still
    waiting, so they overlap the remaining folds (5 folds on 2 workers: one trains the last fold
    and runs the checks while the other trains the next folds), and the pooled summary is
    computed here while they may still run. A failing fold raises its own exception once every
    fold finished; a failing scenario task raises its own from ``scenarios()`` after the folds
    were returned."""
    from evaluation.walk_forward import EvaluationTasks

    tasks = _WalkForwardTasks(bars, dataset, folds, source, cfg, per_year, True)
    return EvaluationTasks(tasks.folds(), tasks.scenarios)


class _WalkForwardTasks:
    """Fold tasks and the scenario task submitted in priority order, at most one per free task
    slot: Ray queues tasks first come, first served, and a task that waits for another's
    result would queue behind every fold submitted before it; submitting only into free slots
    lets the scenario task go before the folds still waiting."""

    def __init__(
        self,
        bars: pd.DataFrame,
        dataset: MarketDataset,
        folds: list[Fold],
        source: str,
        cfg: EvaluationConfig,
        per_year: float,
        with_scenarios: bool,
    ) -> None:
        from evaluation.walk_forward import run_fold
        from evaluation.walk_forward import scenario_checks

        self.ray = _session()
        self.cpus = _cluster_cpus(self.ray)
        self.threads = fold_threads(cfg)
        self.slots = max(1, self.cpus // min(self.threads, self.cpus))
        shared_bars, shared_dataset = self.ray.put(bars), self.ray.put(dataset)
        self.scenario_arguments = (shared_bars, shared_dataset, cfg)
        self.scenario_function = scenario_checks if with_scenarios else None
        self.last = len(folds) - 1  # the scenario checks use the last fold's model
        # Longest training window first, the last fold before any other as long: expanding
        # folds of unequal cost then pack onto the workers more evenly.
        order = sorted(
            range(len(folds)),
            key=lambda position: (-len(folds[position].train), position != self.last),
        )
        self.waiting: list[tuple[int | None, Task]] = [
            (
                position,
                Task(
                    f"fold {folds[position].index}",
                    run_fold,
                    (shared_bars, shared_dataset, folds[position], source, cfg, per_year),
                    threads=self.threads,
                ),
            )
            for position in order
        ]
        self.n_folds = len(folds)
        self.fold_outcomes: dict[int, TaskOutcome] = {}
        self.scenario_outcome: TaskOutcome | None = None
        self.running: dict[Any, tuple[int | None, Task, float]] = {}

    def folds(self) -> Iterator[tuple[FoldRun, float]]:
        """Run until every fold finished; (run, seconds) in fold order, or the first failed
        fold's exception (the scenario task, if started, is cancelled then)."""
        while len(self.fold_outcomes) < self.n_folds:
            self._step()
        outcomes = [self.fold_outcomes[position] for position in range(self.n_folds)]
        failed = [outcome for outcome in outcomes if not outcome.ok]
        if failed:
            for reference, (position, _, _) in self.running.items():
                if position is None:
                    self.ray.cancel(reference, force=True)
            raise failed[0].exception
        yield from ((outcome.value, outcome.seconds) for outcome in outcomes)

    def scenarios(self) -> tuple[dict, float]:
        """Wait for the scenario task: (its checks, its seconds), or its own exception."""
        while self.scenario_outcome is None:
            self._step()
        if not self.scenario_outcome.ok:
            raise self.scenario_outcome.exception
        return self.scenario_outcome.value, self.scenario_outcome.seconds

    def _step(self) -> None:
        """Fill the free slots in priority order, wait for the next finished task, fill the
        slot it freed (before its result is fetched here), then take its outcome."""
        self._fill_slots()
        ready, _ = self.ray.wait(list(self.running), num_returns=1)
        position, task, started = self.running.pop(ready[0])
        seconds = time.perf_counter() - started
        if position == self.last and self.scenario_function is not None:
            # The run stays in the object store: the scenario task reads it from there (a
            # failed last fold fails it too; the fold's own error is the one raised).
            checks = Task(
                "scenario checks",
                self.scenario_function,
                (*self.scenario_arguments[:2], ready[0], self.scenario_arguments[2]),
                threads=self.threads,
            )
            self.waiting.insert(0, (None, checks))
        self._fill_slots()
        outcome = _outcome(self.ray, task, ready[0], seconds)
        if position is None:
            self.scenario_outcome = outcome
            print(f"scenarios: finished ({task.label} {outcome.state})", flush=True)
            return
        self.fold_outcomes[position] = outcome
        print(
            f"folds: {len(self.fold_outcomes)}/{self.n_folds} finished ({task.label} "
            f"{outcome.state})",
            flush=True,
        )

    def _fill_slots(self) -> None:
        while self.waiting and len(self.running) < self.slots:
            position, task = self.waiting.pop(0)
            reference = _submit(self.ray, task, self.cpus)
            self.running[reference] = (position, task, time.perf_counter())


def fold_threads(cfg: EvaluationConfig) -> int:
    """The numeric threads of a fold task: the training's ``threads``, 1 when unset (the
    serial folds and the Ray folds pin the same count, so they give the same results)."""
    return cfg.train.threads or DEFAULT_TASK_THREADS


def _call(function: Callable[..., Any], threads: int, *args: Any) -> Any:
    with pinned_threads(threads):
        return function(*args)


def _cluster_cpus(ray: Any) -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def _submit(ray: Any, task: Task, cpus: int) -> Any:
    """Submit ``task``; its ObjectRef. A task reserves a CPU per thread (at most the
    cluster's, or it could never start); ``fresh_process`` gives it a worker of its own."""
    remote = _remote_call(task.fresh_process).options(num_cpus=min(task.threads, cpus))
    return remote.remote(task.function, task.threads, *task.args)


@functools.cache
def _remote_call(fresh_process: bool) -> Any:
    """:func:`_call` as a Ray remote function (made once: each one is exported to Ray)."""
    import ray

    if fresh_process:
        return ray.remote(max_retries=0, max_calls=1)(_call)
    return ray.remote(max_retries=0)(_call)


def _outcome(ray: Any, task: Task, reference: Any, seconds: float) -> TaskOutcome:
    """The finished task's result, or its error (the task's own exception kept)."""
    try:
        return TaskOutcome(task, ray.get(reference), seconds=seconds)
    except ray.exceptions.RayError as error:
        cause = getattr(error, "cause", None) or error
        return TaskOutcome(task, error=error_line(cause), seconds=seconds, exception=cause)


def error_line(error: BaseException) -> str:
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
    record = {"label": task.label, "settings": task.settings, "result": value}
    text = json.dumps(record, default=str, allow_nan=True)
    write_atomically(directory / f"{task.key}{RESULT_SUFFIX}", text)


def put(value: Any) -> Any:
    """``value`` in Ray's object store, shared by every task that receives the reference."""
    return _session().put(value)
