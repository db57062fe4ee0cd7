"""NautilusTrader 1.231 vs 2.0: the engine's own speed and the strategy's on each.

Per engine, over every bar of a catalog of synthetic 1-minute bars (one quote per bar for
next-open fills, the Bybit-like venue of runtime.backtest):

- bare bars/s: a strategy whose ``on_bar`` only counts (the engine's own cost);
- full bars/s and ``on_bar`` latency (mean, p50, p99): the score-matching strategy in edge
  mode, the default signal mode (``--signal-mode score``: score mode);
- full/bare: how much of the run is the strategy's own per-bar code.

The installed engine runs in this process, the other one in its venv (.venv or .venv-v2,
skipped with a printed line when absent)::

    python -m benchmarks.engines [--bars 50000] [--signal-mode edge] [--work-dir var/bench-engines]
                                 [--json FILE]

``python -m benchmarks`` runs this too (``--no-engines`` skips it) and stores the figures under
``engines`` in docs/benchmarks.json (:func:`record_engines`), from which the docs' engines table
is rendered. The catalog and the model (few epochs: the per-bar cost does not depend on
training) are made once with 1.231, in the 1.231 venv when this runs on 2.0.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from output_paths import write_atomically
from runtime.engines import ROOT
from runtime.engines import VENVS
from runtime.engines import engine_major
from runtime.engines import other_python

BAR_TYPE = "BTCUSDT-LINEAR.BYBIT-1-MINUTE-LAST-EXTERNAL"
SIGNAL_MODES = ("edge", "score")  # the first is the default (the strategy's own default)
# what docs/benchmarks.json's ``engines`` holds for each engine, keyed by its version string
RECORD_KEYS = (
    "bare_bars_per_s",
    "full_bars_per_s",
    "on_bar_mean_us",
    "on_bar_p50_us",
    "on_bar_p99_us",
    "orders",
    "bars",
    "signal_mode",
)


def prepare(work: Path, n_bars: int, seed: int, mode: str = SIGNAL_MODES[0]) -> Path:
    """On 1.231: the catalog, a quickly trained model and the job of signal mode ``mode``
    (``job-MODE.json``) in ``work`` (each cached)."""
    import dataclasses

    from catalogs.catalog import read_bars_frame
    from catalogs.catalog import write_bars
    from catalogs.instruments import make_perpetual
    from catalogs.synthetic import generate_bars
    from runtime.engines import job_from_run
    from runtime.run_config import load_run_config
    from scoremodel.cond_training import ConditionalTrainConfig
    from scoremodel.pipeline import FitConfig
    from scoremodel.pipeline import fit_model
    from scoremodel.pipeline import save_model
    from scoremodel.training import TrainConfig

    job_file = _job_file(work, mode)
    if job_file.exists():
        return job_file
    catalog, model_dir = work / "catalog", work / "model"
    if not model_dir.exists():  # written atomically, after the catalog
        shutil.rmtree(catalog, ignore_errors=True)  # a run stopped before its model
        frame = generate_bars(n_bars, interval="1min", seed=seed)
        write_bars(catalog, frame, make_perpetual("BTCUSDT"), "1min", round_prices=True)
        train = read_bars_frame(catalog, BAR_TYPE).iloc[: max(n_bars // 5, 3_000)]
        config = FitConfig(
            train=TrainConfig(max_epochs=2, seed=seed),
            conditional=ConditionalTrainConfig(max_epochs=1, seed=seed),
            modes=("score", "edge"),
        )
        save_model(fit_model(train, BAR_TYPE, config, progress=False), model_dir)
    run = load_run_config(model_path=str(model_dir), bar_type=BAR_TYPE, signal_mode=mode)
    run = dataclasses.replace(run, backtest=dataclasses.replace(run.backtest, catalog=str(catalog)))
    job = job_from_run(run)
    job["start"] = job["end"] = None  # every bar
    job["strategy"]["warmup_from_history"] = False  # as benchmarks.strategies.run_engine
    write_atomically(job_file, json.dumps(job))
    return job_file


def _job_file(work: Path, mode: str) -> Path:
    return work / f"job-{mode}.json"


def measure(job: dict) -> dict:
    """Bare and full runs on the installed engine."""
    import nautilus_trader

    if engine_major() >= 2:
        bare, full = _run_v2(job, timed=False), _run_v2(job, timed=True)
    else:
        from benchmarks.strategies import run_engine

        model = Path(job["strategy"]["model_path"])
        bare = run_engine(Path(job["catalog"]), model, "bare")
        full = run_engine(Path(job["catalog"]), model, job["strategy"]["signal_mode"])
        full = {
            "bars_per_s": full["bars_per_s"],
            "orders": full["orders"],
            "mean_us": full["latency_us"]["mean"],
            "p50_us": full["latency_us"]["p50"],
            "p99_us": full["latency_us"]["p99"],
        }
    return {
        "engine": nautilus_trader.__version__,
        "bare_bars_per_s": bare["bars_per_s"],
        "full_bars_per_s": full["bars_per_s"],
        "on_bar_mean_us": full["mean_us"],
        "on_bar_p50_us": full["p50_us"],
        "on_bar_p99_us": full["p99_us"],
        "full_over_bare_time": bare["bars_per_s"] / full["bars_per_s"],
        "orders": full["orders"],
        "bars": len(_bars(job)),
        "signal_mode": job["strategy"]["signal_mode"],
    }


def _run_v2(job: dict, timed: bool) -> dict:
    from nautilus_trader.model import BarType
    from nautilus_trader.trading import Strategy
    from nautilus_trader.trading import StrategyConfig

    from runtime.backtest_v2 import BacktestJob
    from runtime.backtest_v2 import build_engine_v2
    from runtime.backtest_v2 import make_bars
    from runtime.backtest_v2 import make_instrument
    from runtime.backtest_v2 import next_open_quotes
    from runtime.backtest_v2 import strategy_config
    from runtime.catalog_files import read_catalog_bars
    from runtime.catalog_files import read_catalog_instrument
    from strategies.score_matching_v2 import ScoreMatchingStrategyV2

    class BareStrategy(Strategy):
        """Subscribes to the bars and only counts them."""

        def __init__(self, bar_type: BarType) -> None:
            super().__init__(StrategyConfig())
            self.bar_type, self.count = bar_type, 0

        def on_start(self) -> None:
            self.subscribe_bars(self.bar_type)

        def on_bar(self, bar: object) -> None:
            self.count += 1

    class TimedStrategy(ScoreMatchingStrategyV2):
        """The 2.0 strategy with each on_bar's wall time recorded."""

        latency_ns: list[int]

        def on_bar(self, bar: object) -> None:
            started = time.perf_counter_ns()
            super().on_bar(bar)
            self.latency_ns.append(time.perf_counter_ns() - started)

    run = BacktestJob(**job)
    fields = read_catalog_instrument(run.catalog, run.strategy["instrument_id"])
    instrument = make_instrument(fields)
    frame = read_catalog_bars(run.catalog, run.bar_type)
    bar_type = BarType.from_str(run.bar_type)
    engine = build_engine_v2(run.backtest, instrument, fields)
    engine.add_instrument(instrument)
    engine.add_data(make_bars(frame, bar_type, instrument))
    engine.add_data(next_open_quotes(frame, instrument))
    if timed:
        strategy = TimedStrategy(strategy_config(run.strategy, fee=float(fields["taker_fee"])))
        strategy.latency_ns = []
    else:
        strategy = BareStrategy(bar_type)
    engine.add_strategy(strategy)
    started = time.perf_counter()
    engine.run()
    seconds = time.perf_counter() - started
    result = {"bars_per_s": len(frame) / seconds, "orders": len(engine.cache.orders())}
    if timed:
        latency = np.asarray(strategy.latency_ns) / 1_000
        result.update(
            mean_us=float(latency.mean()),
            p50_us=float(np.percentile(latency, 50)),
            p99_us=float(np.percentile(latency, 99)),
        )
    engine.dispose()
    return result


def _in_venv(python: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(python), "-m", "benchmarks.engines", *args], cwd=ROOT, capture_output=True,
        text=True, timeout=3600,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    work = Path(args.work_dir) / f"synthetic-{args.bars}"
    work.mkdir(parents=True, exist_ok=True)
    if args.prepare_only:  # the 1.231 venv, asked by a 2.0 process
        prepare(work, args.bars, args.seed, args.signal_mode)
        return 0
    if engine_major() == 1:
        job_file = prepare(work, args.bars, args.seed, args.signal_mode)
    else:
        job_file = _job_file(work, args.signal_mode)
        if not job_file.exists():
            done = _in_venv(VENVS[1] / "bin" / "python", *_common(args), "--prepare-only")
            if done.returncode != 0:
                print(done.stderr[-4000:], file=sys.stderr)
                return 1
    job = json.loads(job_file.read_text())
    results = [measure(job)]
    if args.this_engine_only:
        write_atomically(args.json, json.dumps(results[0]))
        return 0
    other = other_python()
    if other is None:
        print(f"(the other engine's venv {VENVS[3 - engine_major()]} is not set up: skipped)")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "other.json"
            done = _in_venv(other, *_common(args), "--this-engine-only", "--json", str(out))
            if done.returncode != 0:
                print(done.stderr[-4000:], file=sys.stderr)
                return 1
            results.append(json.loads(out.read_text()))
    results.sort(key=lambda r: r["engine"])
    print(table(results, results[0]["bars"]))
    if args.json:
        write_atomically(args.json, json.dumps(results, indent=2))
    return 0


def run_comparison(bars: int, seed: int, work_dir: str, mode: str = SIGNAL_MODES[0]) -> list[dict]:
    """Both engines' figures (``main``'s ``--json`` list), from ``python -m benchmarks.engines``
    in a process of its own on this interpreter: the measurement does not share a process (its
    heap, its garbage) with the caller's. Its output goes to this process's; raises
    RuntimeError when it fails."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "engines.json"
        args = ["--bars", str(bars), "--seed", str(seed), "--work-dir", work_dir]
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.engines", *args, "--signal-mode", mode,
             "--json", str(out)],
            cwd=ROOT, timeout=3600,
        )  # fmt: skip
        if done.returncode != 0 or not out.is_file():
            raise RuntimeError(f"python -m benchmarks.engines failed (exit {done.returncode})")
        return json.loads(out.read_text())


def record_engines(record: dict, results: list[dict]) -> dict:
    """``record`` (a docs/benchmarks.json record) with ``engines``: for each engine of
    ``results`` (``main``'s ``--json`` list), keyed by its ``nautilus_trader.__version__``, the
    figures named by :data:`RECORD_KEYS` (plus ``full_over_bare_time``)."""
    engines = {
        r["engine"]: {key: r[key] for key in (*RECORD_KEYS, "full_over_bare_time") if key in r}
        for r in results
    }
    for version, figures in engines.items():
        missing = [key for key in RECORD_KEYS if key not in figures]
        if missing:
            raise KeyError(f"the engines figures of {version} lack {', '.join(missing)}")
    return {**record, "engines": dict(sorted(engines.items()))}


def _bars(job: dict) -> list:
    from runtime.catalog_files import read_catalog_bars

    return read_catalog_bars(job["catalog"], job["bar_type"]).index.tolist()


def table(results: list[dict], n_bars: int) -> str:
    """The figures of each engine, one row each."""
    header = (
        f"{n_bars:,} one-minute bars, {results[0]['signal_mode']} mode\n"
        "| engine | bare bars/s | full bars/s | on_bar mean us | on_bar p50 us | on_bar p99 us "
        "| full/bare time | orders |\n|---|---|---|---|---|---|---|---|"
    )
    rows = [
        f"| {r['engine']} | {r['bare_bars_per_s']:,.0f} | {r['full_bars_per_s']:,.0f} | "
        f"{r['on_bar_mean_us']:,.0f} | {r['on_bar_p50_us']:,.0f} | {r['on_bar_p99_us']:,.0f} | "
        f"{r['full_over_bare_time']:.1f}x | {r['orders']:,} |"
        for r in results
    ]
    return "\n".join([header, *rows])


def _common(args: argparse.Namespace) -> list[str]:
    return [
        "--bars", str(args.bars), "--work-dir", args.work_dir, "--seed", str(args.seed),
        "--signal-mode", args.signal_mode,
    ]  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.engines",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--bars", type=int, default=50_000, help="synthetic 1-minute bars")
    parser.add_argument("--work-dir", default="var/bench-engines", help="cached inputs")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument(
        "--signal-mode", choices=SIGNAL_MODES, default=SIGNAL_MODES[0],
        help="the full strategy's signal mode",
    )  # fmt: skip
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("--prepare-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--this-engine-only", action="store_true", help=argparse.SUPPRESS)
    return parser


if __name__ == "__main__":
    sys.exit(main())
