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


def test_retraining_benchmark_splits_both_runs_at_the_switch(tmp_path):
    """benchmarks/retraining.py on a tiny market: a frozen run and the retraining runs over the
    same bars, each split at the switch, and the retraining timeline (~20 s on 2 cores)."""
    from benchmarks.retraining import main as retraining_main

    out = tmp_path / "out" / "retraining.json"
    out.parent.mkdir()
    code = retraining_main(
        ["--bars", "3000", "--base-bars", "900", "--every", "10D", "--window", "500",
         "--min-bars", "400", "--epochs", "2", "--work-dir", str(tmp_path / "work"),
         "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    results = json.loads(out.read_text())
    assert set(results["runs"]) == {"frozen", "retraining", "retraining_unvalidated"}
    switch = results["market"]["switch"]
    assert results["market"]["switch_bar"] == 1500
    for name, run in results["runs"].items():
        before, after, whole = run["before"], run["after"], run["whole"]
        # bars 900..1499 / 1500..2999 (the window's first bar is the strategy's warm-up)
        assert 598 <= before["bars"] <= 600 and after["bars"] == 1500, name
        assert before["bars"] + after["bars"] == whole["bars"]
        assert before["last_bar"] < switch <= after["first_bar"]
        assert before["fills"] + after["fills"] == whole["fills"]
        assert abs(before["fees"] + after["fees"] - whole["fees"]) < 1e-6
        assert abs(before["pnl"] + after["pnl"] - whole["pnl"]) < 1e-6
        for part in (before, after):
            for key in ("return", "sharpe", "max_drawdown", "fees", "funding_paid"):
                assert isinstance(part[key], float), (name, key)
    for name in ("retraining", "retraining_unvalidated"):
        timeline = results["retrainings"][name]
        assert timeline[0]["retraining"] == 0 and timeline[0]["due_bar"] is None  # the base
        assert len(timeline) > 5  # every 10 days over 125 days
        assert any(row["due_after_switch"] for row in timeline)
        decided = sum(row["bars_decided"] for row in timeline)
        assert decided == results["runs"][name]["whole"]["bars"]
        assert "recovered" in results["recovery"][name]
    assert all(row["promoted"] for row in results["retrainings"]["retraining_unvalidated"])
    table = out.with_suffix(".md").read_text()
    assert "| frozen | before |" in table and "| retraining | after |" in table
