"""``python -m benchmarks.retrain_latency``: the live node's ``on_bar`` latency while a model
retrains in its separate process, against the same node without a training running.

The product's live node (``runtime.live``, sandbox mode: the real Nautilus Bybit data client,
Nautilus's sandbox execution client) runs against the loopback Bybit emulator of the tests and
decides synthetic one-minute bars pushed as fast as it decides them. Two runs of the same bars:
without retraining, then with ``retrain.every`` small and a large ``retrain.epochs``, so that a
training process (``strategies.retraining.ProcessTrainer``, niceness 10) runs while bars keep
arriving. ``on_bar`` is timed from the strategy (``time.perf_counter_ns`` around the handler);
the bars of the second run counted are those decided while the training process was alive.

Prints the figures and writes them to ``--json`` (default ``docs/retrain_latency.json``). The
machine's other load shows in the figures: run it on a quiet machine and say so.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from output_paths import write_atomically

MINUTE_BAR_TYPE = "BTCUSDT-LINEAR.BYBIT-1-MINUTE-LAST-EXTERNAL"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.retrain_latency")
    parser.add_argument("--bars", type=int, default=300, help="live bars per run (300)")
    parser.add_argument("--epochs", type=int, default=60, help="epochs of the retraining (60)")
    parser.add_argument("--json", default="docs/retrain_latency.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="retrain-latency-") as work:
        results = measure(Path(work), args.bars, args.epochs)
    for name, figures in results["runs"].items():
        print(
            f"{name:<24} bars {figures['bars']:>4}  on_bar mean {figures['mean_us']:7.0f} us  "
            f"p50 {figures['p50_us']:7.0f} us  p99 {figures['p99_us']:7.0f} us  "
            f"max {figures['max_us']:7.0f} us"
        )
    write_atomically(args.json, json.dumps(results, indent=2))
    print(f"wrote {args.json}")
    return 0


def measure(work: Path, n_bars: int, epochs: int) -> dict:
    """Both runs' on_bar latency figures (microseconds)."""
    from catalogs.synthetic import generate_bars
    from scoremodel.cond_training import ConditionalTrainConfig
    from scoremodel.pipeline import FitConfig
    from scoremodel.pipeline import fit_model
    from scoremodel.pipeline import save_model
    from scoremodel.training import TrainConfig

    bars = generate_bars(3_000 + 2 * n_bars + 400, interval="1min", seed=11)
    fit = FitConfig(
        train=TrainConfig(hidden=32, n_blocks=2, max_epochs=4, batch_size=256, seed=3, threads=1),
        conditional=ConditionalTrainConfig(hidden=32, max_epochs=3, seed=3, threads=1),
        modes=("score", "edge"),
    )
    model_dir = work / "model"
    save_model(fit_model(bars.iloc[:3_000], MINUTE_BAR_TYPE, fit, progress=False), model_dir)
    live = bars.iloc[3_000 - 400 :]
    baseline = _run(work / "baseline", model_dir, live, n_bars, retrain=None)
    training = _run(
        work / "training",
        model_dir,
        live,
        n_bars,
        retrain={"every": 20, "window": 400, "min_bars": 300, "epochs": epochs},
    )
    return {
        "what": "on_bar of the live node (sandbox, loopback emulator), one-minute bars pushed as "
        "fast as they are decided; edge mode",
        "runs": {"no training": baseline, "training in its process": training},
        "cpus": _cpus(),
    }


def _run(work: Path, model_dir: Path, bars, n_bars: int, retrain: dict | None) -> dict:
    from runtime.live import build_node
    from runtime.run_config import load_run_config
    from strategies.score_matching import ScoreMatchingStrategy
    from tests.live_support import LiveHarness
    from tests.live_support import LiveMarket
    from tests.live_support import live_settings
    from tests.live_support import strategy_settings

    class TimedStrategy(ScoreMatchingStrategy):
        """The product's strategy, its on_bar timed (and whether a training was running)."""

        def __init__(self, config) -> None:
            super().__init__(config)
            self.timings: list[tuple[int, bool]] = []

        def on_bar(self, bar) -> None:
            busy = self.lifecycle is not None and self.lifecycle.trainer.busy
            started = time.perf_counter_ns()
            super().on_bar(bar)
            self.timings.append((time.perf_counter_ns() - started, busy))

    work.mkdir(parents=True)
    market = LiveMarket(bars, history=400, headroom_s=25.0)
    config = work / "live.yaml"
    settings = strategy_settings(model_dir, signal_mode="edge", history_page_bars=200)
    text = {"strategy": settings, "live": live_settings(market.emu, work)}
    if retrain is not None:
        text["retrain"] = {**retrain, "registry": str(work / "registry")}
    config.write_text(json.dumps(text))
    run = load_run_config(config)
    harness = LiveHarness(
        None,
        "sandbox",
        build=lambda loop: build_node(run, "sandbox", loop, strategy_class=TimedStrategy),
    )
    try:
        harness.start()
        assert harness.wait_until(harness.warmed_up, timeout=30), "no warm-up"
        for _ in range(n_bars):
            harness.decide(market, timeout=30)
        timings = harness.strategy.timings
    finally:
        harness.stop()
        market.stop()
    counted = [ns for ns, busy in timings if busy or retrain is None]
    micros = np.asarray(counted, dtype=np.float64) / 1_000
    return {
        "bars": len(micros),
        "mean_us": float(micros.mean()) if len(micros) else float("nan"),
        "p50_us": float(np.percentile(micros, 50)) if len(micros) else float("nan"),
        "p99_us": float(np.percentile(micros, 99)) if len(micros) else float("nan"),
        "max_us": float(micros.max()) if len(micros) else float("nan"),
    }


def _cpus() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    raise SystemExit(main())
