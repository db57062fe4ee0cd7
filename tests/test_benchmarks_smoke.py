"""The benchmark script runs end to end on a small input and writes its figures.

Speed targets are checked by reading the benchmark's output, never by timed tests; this test
asserts that every figure is produced, is a plausible measurement (positive, finite, quantiles
in order), and that the compiled path matches the torch model.
"""

from __future__ import annotations

import json

from benchmarks.run import main

REQUIRED = (
    "bars", "bare_bars_per_s", "full_bars_per_s", "naive_bars_per_s", "batch_states_per_s",
    "full_to_bare", "full_to_naive", "p50_us", "p99_us", "max_us", "rss_growth_mb",
    "train_states_per_s", "gemm_gflops", "train_gemm_share", "orders",
)  # fmt: skip


def test_benchmark_writes_every_figure(tmp_path):
    code = main(
        ["--bars", "6000", "--naive-bars", "5", "--work-dir", str(tmp_path / "work"),
         "--out-dir", str(tmp_path / "out")]
    )  # fmt: skip
    assert code == 0  # non-zero when the fast path differs from the torch model
    results = json.loads((tmp_path / "out" / "benchmarks.json").read_text())
    for key in REQUIRED:
        assert key in results, key
    assert set(results["full_bars_per_s"]) == {"score", "forecast", "edge"}
    assert results["edge_path_max_abs_diff"] <= 1e-9
    assert results["fast_path_max_abs_diff"] <= 1e-6
    assert results["bars"] == 6000
    for key in ("bare_bars_per_s", "naive_bars_per_s", "batch_states_per_s", "gemm_gflops"):
        assert 0 < results[key] < float("inf"), key
    for mode, rate in results["full_bars_per_s"].items():
        assert 0 < rate < results["bare_bars_per_s"] * 1.5, mode  # a strategy costs time
    assert 0 < results["p50_us"] <= results["p99_us"] <= results["max_us"]
    assert "| 1. bare engine" in (tmp_path / "out" / "benchmarks.md").read_text()
