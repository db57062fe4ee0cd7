"""Side-by-side benchmark of the per-bar path, in one process on the same bars.

1. bare engine: a strategy whose on_bar does nothing;
2. the full ScoreMatchingStrategy (features, model, density, filters, sizing, risk, orders),
   in both signal modes, with on_bar latency and RSS measured inside the engine;
3. the chapter's naive per-bar approach (pandas rolling features over a window, one torch
   forward, a 100-step path integral, 20 Langevin denoise steps), on a subset, extrapolated;
4. batch inference over all states (the model's own throughput limit);
plus DSM training throughput next to the machine's peak float32 GEMM rate, and a check that
the compiled per-bar path equals the torch reference model on every state; then NautilusTrader
1.231 against 2.0 (benchmarks/engines.py, edge mode, ``--bars`` synthetic bars, the other
engine skipped when its venv is absent), stored under ``engines`` in the same record.

    python -m benchmarks                 # 200k synthetic 1-minute bars
    python -m benchmarks --no-engines    # without the engines comparison
    python -m benchmarks --real          # the real BTC bars in ../shared/data (if present)
    python -m benchmarks --ray           # Ray scaling of the evaluation (benchmarks/ray_scaling.py)
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmarks.engines import record_engines
from benchmarks.engines import run_comparison
from benchmarks.naive import naive_bars_per_second
from benchmarks.strategies import run_engine
from catalogs.catalog import list_bar_types
from catalogs.catalog import read_bars_frame
from catalogs.catalog import write_bars
from catalogs.csv_import import read_ohlcv_csv
from catalogs.instruments import make_perpetual
from catalogs.synthetic import generate_bars
from output_paths import write_atomically
from scoremodel.checkpoint import usable_checkpoint
from scoremodel.cond_predictive import DEFAULT_COST
from scoremodel.cond_predictive import BarPredictor
from scoremodel.cond_predictive import predict_batch
from scoremodel.cond_training import ConditionalTrainConfig
from scoremodel.features import DEFAULT_SPEC
from scoremodel.features import compute_features
from scoremodel.inference import ScoreModel
from scoremodel.pipeline import FitConfig
from scoremodel.pipeline import fit_model
from scoremodel.pipeline import save_model
from scoremodel.training import TrainConfig
from scoremodel.training import train_score_network

BAR_TYPE = "BTCUSDT-LINEAR.BYBIT-1-MINUTE-LAST-EXTERNAL"
SHARED_CSV = Path(__file__).resolve().parents[1].parent / "shared/data/btcusdt_perp_1m_2022-01.csv"
FAST_PATH_TOLERANCE = 1e-6
EDGE_PATH_TOLERANCE = 1e-9  # the per-bar and batch paths of the conditional forecaster
MODES = ("score", "forecast", "edge")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    work = Path(args.work_dir) / ("real" if args.real else f"synthetic-{args.bars}")
    catalog, model_dir = prepare(work, args.bars, args.real, args.seed)
    results: dict = {"bars_source": "real" if args.real else "synthetic", "machine": _machine()}
    bars = read_bars_frame(catalog, BAR_TYPE)
    results["bars"] = len(bars)

    print(f"engine runs on {len(bars):,} bars ...")
    bare = run_engine(catalog, model_dir, "bare")
    results["bare_bars_per_s"] = bare["bars_per_s"]
    results["hold_bars_per_s"] = run_engine(catalog, model_dir, "hold")["bars_per_s"]
    results["full_bars_per_s"] = {}
    for mode in MODES:
        full = run_engine(catalog, model_dir, mode)
        results["full_bars_per_s"][mode] = full["bars_per_s"]
        results[f"latency_{mode}"] = full["latency_us"]
        results[f"rss_{mode}"] = full["rss_mb"]
        results[f"orders_{mode}"] = full["orders"]
    busy = run_engine(catalog, model_dir, "score", order_heavy=True)
    results["order_heavy"] = {k: busy[k] for k in ("bars_per_s", "orders")}

    model = ScoreModel.load(model_dir)
    states = compute_features(bars).to_numpy()
    results["naive_bars_per_s"] = naive_bars_per_second(model, bars, n_bars=args.naive_bars)
    results["batch_states_per_s"] = batch_states_per_second(model, states)
    results["fast_path_max_abs_diff"] = fast_path_difference(model, states)
    results["edge_path_max_abs_diff"] = edge_path_difference(model, states)
    results.update(training_throughput(states, args.seed))
    summarise(results)
    engines_failed = False
    if args.engines:
        print(f"NautilusTrader 1.231 against 2.0 on {args.bars:,} synthetic bars ...", flush=True)
        try:
            comparison = run_comparison(args.bars, args.seed, args.engines_work_dir)
        except RuntimeError as error:  # the rest of the record is still written
            print(f"FAIL: {error}; the record has no engines figures")
            engines_failed = True
        else:
            results = record_engines(results, comparison)
    write(results, Path(args.out_dir))
    print(table(results))
    difference = results["fast_path_max_abs_diff"]
    if difference > FAST_PATH_TOLERANCE:
        print(f"FAIL: the fast path differs from the torch model by {difference:.2e}")
        return 1
    if results["edge_path_max_abs_diff"] > EDGE_PATH_TOLERANCE:
        print("FAIL: the per-bar conditional forecast differs from the batch path")
        return 1
    return 1 if engines_failed else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--bars", type=int, default=200_000, help="synthetic 1-minute bars")
    parser.add_argument("--real", action="store_true", help="use ../shared/data instead")
    parser.add_argument("--naive-bars", type=int, default=300, help="bars for the naive path")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--work-dir", default="var/bench", help="cached catalog and model")
    parser.add_argument("--out-dir", default="docs", help="benchmarks.json / benchmarks.md")
    parser.add_argument(
        "--no-engines", dest="engines", action="store_false",
        help="skip NautilusTrader 1.231 against 2.0 (benchmarks/engines.py, edge mode, --bars)",
    )  # fmt: skip
    parser.add_argument(
        "--engines-work-dir", default="var/bench-engines", help="its cached catalog and model"
    )
    return parser


# ----- inputs ------------------------------------------------------------------------------------


def prepare(work: Path, n_bars: int, real: bool, seed: int) -> tuple[Path, Path]:
    """A catalog of 1-minute bars and a model trained on its first 30 % (both cached)."""
    catalog, model_dir = work / "catalog", work / "model"
    if not catalog.exists() or BAR_TYPE not in list_bar_types(catalog):
        if real:
            if not SHARED_CSV.exists():
                raise SystemExit(f"--real needs {SHARED_CSV}, which is absent")
            frame = read_ohlcv_csv(SHARED_CSV, interval="1min")
        else:
            frame = generate_bars(n_bars, interval="1min", seed=seed)
        write_bars(catalog, frame, make_perpetual("BTCUSDT"), "1min", round_prices=True)
    if usable_checkpoint(model_dir, DEFAULT_SPEC) is not None or not _has_conditional(model_dir):
        bars = read_bars_frame(catalog, BAR_TYPE)
        train_bars = bars.iloc[: max(int(0.3 * len(bars)), 5_000)]
        print(f"training the benchmark model on {len(train_bars):,} bars (cached) ...")
        config = FitConfig(
            train=TrainConfig(max_epochs=40, seed=seed),
            conditional=ConditionalTrainConfig(max_epochs=10, seed=seed),
        )
        model = fit_model(train_bars, BAR_TYPE, config, progress=False)
        save_model(model, model_dir, overwrite=True)  # the benchmark's own cache
    return catalog, model_dir


# ----- model-only measurements -------------------------------------------------------------------


def batch_states_per_second(model: ScoreModel, states: np.ndarray) -> float:
    started = time.perf_counter()
    model.assess_batch(states)
    return len(states) / (time.perf_counter() - started)


def _has_conditional(model_dir: Path) -> bool:
    return "conditional" in ScoreModel.load(model_dir).manifest["models"]


def fast_path_difference(model: ScoreModel, states: np.ndarray) -> float:
    """max |compiled one-bar path - torch reference| over every state (score and density)."""
    fast = np.array([(a.signal, a.log_density) for a in map(model.assess, states)])
    reference = torch_reference(model, states)
    return float(np.abs(fast - reference).max())


def edge_path_difference(model: ScoreModel, states: np.ndarray) -> float:
    """max |compiled per-bar conditional forecast - batch path| over every state (mean, std,
    P(r > 0), P(r > c), P(r < -c), quantiles, every horizon)."""
    batch = predict_batch(model.conditional, states, DEFAULT_COST)
    predictor = BarPredictor(model.conditional, cost=DEFAULT_COST)
    worst = 0.0
    for i, state in enumerate(states):
        if not predictor.update(state):
            continue
        for name in ("mean", "std", "p_up", "p_up_cost", "p_down_cost", "quantiles"):
            ours, theirs = getattr(predictor, name), getattr(batch, name)[i]
            worst = max(worst, float(np.abs(ours - theirs).max()))
    return worst


def torch_reference(model: ScoreModel, states: np.ndarray) -> np.ndarray:
    """Score and ray log-density (Simpson on 0, 1/2, 1) from the torch module in float64."""
    net = model.torch_network("signal", torch.float64)
    sigma = model.settings.signal_sigma
    z = torch.as_tensor(model.normaliser.transform(states))
    with torch.no_grad():
        sigmas = torch.full((len(z),), sigma, dtype=torch.float64)
        end, mid = net(z, sigmas), net(0.5 * z, sigmas)
        origin = net(torch.zeros_like(z[:1]), sigmas[:1])
        g = lambda s: (s * z).sum(dim=1)  # noqa: E731
        density = (g(origin) + 4 * g(mid) + g(end)) / 6
    return np.column_stack([end[:, model.spec.return_index].numpy(), density.numpy()])


def training_throughput(states: np.ndarray, seed: int) -> dict:
    """DSM training states/s (steps only) and its share of the measured peak GEMM rate."""
    z = (states - states.mean(0)) / states.std(0)
    config = TrainConfig(max_epochs=4, patience=100, seed=seed)
    n_train = min(int(0.8 * len(z)), 100_000)
    result = train_score_network(z[:n_train], z[n_train:], config, progress=False)
    flops = result.network.training_flops()
    achieved = result.states_per_second * flops / 1e9
    peak = peak_gemm_gflops()
    hidden = result.network.hidden
    layer = gemm_gflops(config.batch_size, hidden, hidden)  # the model's own layer shape
    return {
        "train_states_per_s": result.states_per_second,
        "train_gflops": achieved,
        "train_flops_per_state": flops,
        "train_batch_size": config.batch_size,
        "gemm_gflops": peak,
        "train_gemm_share": achieved / peak,
        "layer_gemm_gflops": layer,
        "layer_gemm_share": layer / peak,
        "torch_threads": torch.get_num_threads(),
    }


def peak_gemm_gflops(size: int = 2048) -> float:
    """float32 matrix-product rate of this machine as torch sees it (large square GEMM)."""
    return gemm_gflops(size, size, size)


def gemm_gflops(m: int, k: int, n: int, seconds: float = 1.0) -> float:
    """Best-of-3 float32 rate of an (m x k) @ (k x n) product, each trial ~``seconds``/3."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    a @ b
    repeats = max(1, int(seconds / 3 * 100e9 / (2 * m * k * n)))
    best = 0.0
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(repeats):
            a @ b
        best = max(best, 2 * m * k * n * repeats / (time.perf_counter() - started) / 1e9)
    return best


# ----- report ------------------------------------------------------------------------------------


def summarise(results: dict) -> None:
    full = results["full_bars_per_s"]
    results["full_to_bare"] = {m: v / results["bare_bars_per_s"] for m, v in full.items()}
    results["full_to_hold"] = {m: v / results["hold_bars_per_s"] for m, v in full.items()}
    results["full_to_naive"] = {m: v / results["naive_bars_per_s"] for m, v in full.items()}
    latency = results["latency_score"]
    results.update(p50_us=latency["p50"], p99_us=latency["p99"], max_us=latency["max"])
    results["rss_growth_mb"] = results["rss_score"]["growth_mb"]
    results["orders"] = results["orders_score"]
    results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


RAY_ROW_PREFIX = "| Ray"  # see benchmarks.ray_scaling.TABLE_ROW_PREFIX


def write(results: dict, out_dir: Path) -> None:
    write_atomically(out_dir / "benchmarks.json", json.dumps(results, indent=2, default=float))
    table_path = out_dir / "benchmarks.md"
    ray_rows = [  # the Ray benchmark's rows (python -m benchmarks --ray) stay
        line
        for line in (table_path.read_text().splitlines() if table_path.is_file() else [])
        if line.startswith(RAY_ROW_PREFIX)
    ]
    write_atomically(table_path, "\n".join([table(results), *ray_rows]) + "\n")


def table(r: dict) -> str:
    rows = [
        ("bars", f"{r['bars']:,} ({r['bars_source']} 1-minute)"),
        ("1. bare engine", f"{r['bare_bars_per_s']:,.0f} bars/s"),
        (
            "   holding one position",
            f"{r['hold_bars_per_s']:,.0f} bars/s (Nautilus marks an open position to market)",
        ),
    ]
    for mode in MODES:
        lat = r[f"latency_{mode}"]
        rows.append((
            f"2. full strategy, {mode} mode",
            f"{r['full_bars_per_s'][mode]:,.0f} bars/s = {r['full_to_bare'][mode]:.0%} of bare "
            f"({r['full_to_hold'][mode]:.0%} of holding), "
            f"{r['full_to_naive'][mode]:,.0f}x naive; on_bar mean {lat['mean']:.0f} us, "
            f"p50 {lat['p50']:.0f} us, "
            f"p99 {lat['p99']:.0f} us (bars without an order: mean "
            f"{lat['mean_without_order']:.0f} us, p99 {lat['p99_without_order']:.0f} us), "
            f"max {lat['max']:,.0f} us; {r[f'orders_{mode}']:,} orders; "
            f"RSS growth 100k->end {r[f'rss_{mode}']['growth_mb']:+.1f} MB",
        ))  # fmt: skip
    heavy = r["order_heavy"]
    rows += [
        (
            "   order-heavy (score)",
            f"{heavy['bars_per_s']:,.0f} bars/s, {heavy['orders']:,} orders",
        ),
        ("3. naive reference", f"{r['naive_bars_per_s']:,.1f} bars/s (subset, extrapolated)"),
        ("4. batch inference", f"{r['batch_states_per_s']:,.0f} states/s"),
        (
            "fast path vs torch",
            f"max |diff| {r['fast_path_max_abs_diff']:.1e} (tolerance {FAST_PATH_TOLERANCE:g})",
        ),
        (
            "edge per-bar vs batch",
            f"max |diff| {r['edge_path_max_abs_diff']:.1e} (tolerance {EDGE_PATH_TOLERANCE:g})",
        ),
        (
            "DSM training",
            f"{r['train_states_per_s']:,.0f} states/s = {r['train_gflops']:.1f} GFLOP/s "
            f"(batch {r['train_batch_size']}, {r['torch_threads']} threads)",
        ),
        (
            "peak float32 GEMM",
            f"{r['gemm_gflops']:.1f} GFLOP/s; training runs at {r['train_gemm_share']:.0%} of it",
        ),
        (
            "   at the layer shape",
            f"{r['layer_gemm_gflops']:.1f} GFLOP/s ({r['layer_gemm_share']:.0%} of peak): the "
            "ceiling for this network's matrix shapes",
        ),
        ("peak RSS", f"{r['peak_rss_mb']:,.0f} MB"),
    ]
    width = max(len(label) for label, _ in rows)
    lines = ["| measure | result |", "|---|---|"]
    lines += [f"| {label:<{width}} | {text} |" for label, text in rows]
    return "\n".join(lines)


def _machine() -> dict:
    import os

    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
