"""Serial and Ray tasks give bit-identical results where the thread count changes the numbers.

A float sum split over 2 threads rounds differently from the same sum on 1 thread; OpenBLAS and
torch split only large inputs, which is why the full-size evaluation (10,000-30,000 bars)
differed between the command (one BLAS thread per core) and Ray workers (Ray sets
``OMP_NUM_THREADS=1``) while the small test market did not. Here a cheap fold whose result
depends on the thread count stands in for a real one.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from evaluation import walk_forward
from evaluation.parallel import Task
from evaluation.parallel import pinned_threads
from evaluation.parallel import ray_folds
from evaluation.parallel import ray_session
from evaluation.parallel import run_serially
from evaluation.parallel import run_tasks
from evaluation.walk_forward import EvaluationConfig
from evaluation.walk_forward import serial_folds
from scoremodel.training import TrainConfig

pytest.importorskip("ray")

SIZE = 1_000_000  # above OpenBLAS's and torch's thresholds for splitting a sum over threads


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray with 2 worker CPUs for the module."""
    with ray_session(workers=2, object_store_bytes=200 * 1024**2):
        yield


def test_the_local_ray_object_store_is_capped(local_ray):
    import ray

    assert ray.cluster_resources()["object_store_memory"] == 200 * 1024**2


def thread_sensitive_sums() -> tuple[str, str]:
    """OpenBLAS's dot product (numpy) and torch's sum of 10^6 numbers, bit for bit (hex)."""
    x = np.random.default_rng(0).standard_normal(SIZE)
    y = np.random.default_rng(1).standard_normal(SIZE)
    return float(np.dot(x, y)).hex(), float(torch.from_numpy(x).float().sum()).hex()


def thread_sensitive_fold(bars, dataset, fold, source, cfg, per_year) -> tuple:
    """Stands in for ``run_fold``: its result depends on the numeric thread count."""
    return fold.index, *thread_sensitive_sums()


def test_the_stand_in_fold_depends_on_the_thread_count():
    with pinned_threads(1):
        one = thread_sensitive_sums()
    with pinned_threads(2):
        two = thread_sensitive_sums()
    assert one[0] != two[0] and one[1] != two[1]  # else the tests below could not fail


@pytest.mark.parametrize(("fold_threads", "command_threads"), [(None, 2), (2, 1)])
def test_serial_folds_equal_ray_folds_bit_for_bit(
    local_ray, monkeypatch, fold_threads, command_threads
):
    """The command's own thread count (one per core by default) must not leak into its serial
    folds, nor a Ray worker's (1) into the Ray folds: both run the fold's count."""
    monkeypatch.setattr(walk_forward, "run_fold", thread_sensitive_fold)
    cfg = EvaluationConfig(train=TrainConfig(threads=fold_threads))
    folds = [SimpleNamespace(index=index, train=range(100 * index)) for index in range(4)]
    arguments = (None, None, folds, "stand-in", cfg, 1.0)
    with pinned_threads(command_threads):  # a command process with this many threads
        threads_before = torch.get_num_threads()
        serial = [run for run, _ in serial_folds(*arguments)]
        assert torch.get_num_threads() == threads_before  # restored after each fold
        parallel = [run for run, _ in ray_folds(*arguments)]
    assert parallel == serial
    with pinned_threads(fold_threads):
        assert serial[0][1:] == thread_sensitive_sums()  # the fold's count, not the command's


def test_a_task_runs_with_its_own_threads_here_and_on_ray(local_ray):
    tasks = [Task(f"sums {n}", thread_sensitive_sums, threads=2) for n in range(2)]
    with pinned_threads(1):
        here = [outcome.value for outcome in run_serially(tasks)]
    on_ray = [outcome.value for outcome in run_tasks(tasks, progress=lambda _: None)]
    assert here == on_ray
    with pinned_threads(2):
        assert here[0] == thread_sensitive_sums()
