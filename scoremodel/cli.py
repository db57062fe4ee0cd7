"""``python -m scoremodel train|info|sample|evaluate``: the command line of the ML core.

The ML modules import no Nautilus; only ``train`` and ``evaluate`` read bars, through
``catalogs`` (imported lazily here), from a Nautilus ParquetDataCatalog or a CSV file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from scoremodel.checkpoint import CheckpointError
from scoremodel.inference import SIGNAL_MODES
from scoremodel.training import TrainConfig

DEFAULT_CATALOG = "var/catalog"
DEFAULT_BAR_TYPE = "BTCUSDT-LINEAR.BYBIT-1-HOUR-LAST-EXTERNAL"
DEFAULT_REPORT_DIR = "reports/evaluation"
# The demo's synthetic catalog (strategies/defaults.py): 30,000 one-hour bars, seed 7.
DEMO_BARS = 30_000
DEMO_SEED = 7


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (CheckpointError, ValueError, FileNotFoundError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scoremodel", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train a model on bars from a catalog")
    train.add_argument("--catalog", default=DEFAULT_CATALOG, help="ParquetDataCatalog directory")
    train.add_argument("--bar-type", default=DEFAULT_BAR_TYPE, help="e.g. %(default)s")
    train.add_argument("--out", required=True, help="model directory to write")
    train.add_argument("--start", help="first bar (ISO time, UTC)")
    train.add_argument("--end", help="last bar (ISO time, UTC)")
    defaults = TrainConfig()
    train.add_argument("--epochs", type=int, default=defaults.max_epochs)
    train.add_argument("--hidden", type=int, default=defaults.hidden)
    train.add_argument("--blocks", type=int, default=defaults.n_blocks)
    train.add_argument("--batch-size", type=int, default=defaults.batch_size)
    train.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    train.add_argument("--sigma-min", type=float, default=defaults.sigma_min)
    train.add_argument("--patience", type=int, default=defaults.patience)
    train.add_argument("--seed", type=int, default=defaults.seed)
    train.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    train.add_argument("--horizon", type=int, default=12, help="forecast horizon in bars")
    train.add_argument(
        "--modes", default=",".join(SIGNAL_MODES), help="models to train: score[,forecast]"
    )
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(run=_train)

    info = commands.add_parser("info", help="describe a model directory")
    info.add_argument("model", help="model directory")
    info.set_defaults(run=_info)

    sample = commands.add_parser("sample", help="annealed Langevin samples of market states")
    sample.add_argument("model", help="model directory")
    sample.add_argument("-n", "--samples", type=int, default=1000)
    sample.add_argument("--steps", type=int, default=20, help="Langevin steps per noise level")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--out", required=True, help="CSV file for the samples (raw feature units)")
    sample.set_defaults(run=_sample)
    _add_evaluate(commands)
    return parser


def _add_evaluate(commands: argparse._SubParsersAction) -> None:
    from scoremodel.evaluation.walk_forward import EVAL_TRAINING
    from scoremodel.evaluation.walk_forward import EvaluationConfig

    defaults = EvaluationConfig()
    evaluate = commands.add_parser(
        "evaluate",
        help="walk-forward out-of-sample evaluation against baselines, with a report",
        description="Train one model per walk-forward fold on past bars only, trade the next "
        "window with costs, compare with baselines; write report.md, evaluation.json and PNGs.",
    )
    evaluate.add_argument("--catalog", default=DEFAULT_CATALOG, help="default: %(default)s")
    evaluate.add_argument("--bar-type", default=DEFAULT_BAR_TYPE, help="default: %(default)s")
    evaluate.add_argument("--csv", help="evaluate bars from this OHLCV CSV instead of a catalog")
    evaluate.add_argument("--interval", default="1min", help="bar interval of --csv (1min)")
    evaluate.add_argument("--start", help="first bar (ISO time, UTC)")
    evaluate.add_argument("--end", help="last bar (ISO time, UTC)")
    evaluate.add_argument("--out", default=DEFAULT_REPORT_DIR, help="default: %(default)s")
    evaluate.add_argument("--folds", type=int, default=defaults.n_folds)
    evaluate.add_argument("--scheme", choices=("expanding", "rolling"), default=defaults.scheme)
    evaluate.add_argument(
        "--min-train-fraction",
        type=float,
        default=defaults.min_train_fraction,
        help="first training window as a share of the bars (%(default)s)",
    )
    evaluate.add_argument("--train-bars", type=int, help="rolling window length in bars")
    evaluate.add_argument("--horizon", type=int, default=defaults.horizon, help="h in bars")
    evaluate.add_argument("--epochs", type=int, default=EVAL_TRAINING.max_epochs)
    evaluate.add_argument("--hidden", type=int, default=EVAL_TRAINING.hidden)
    evaluate.add_argument("--blocks", type=int, default=EVAL_TRAINING.n_blocks)
    evaluate.add_argument("--seed", type=int, default=EVAL_TRAINING.seed)
    evaluate.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    evaluate.add_argument("--random-draws", type=int, default=defaults.random_draws)
    evaluate.add_argument("--bootstrap", type=int, default=defaults.n_boot)
    evaluate.add_argument("--scenario-samples", type=int, default=defaults.scenario_samples)
    evaluate.add_argument("--pc-steps", type=int, default=defaults.pc_steps)
    evaluate.set_defaults(run=_evaluate)


def _train(args: argparse.Namespace) -> int:
    from catalogs.catalog import read_bars_frame  # the one Nautilus-facing import
    from scoremodel.pipeline import FitConfig
    from scoremodel.pipeline import fit_model
    from scoremodel.pipeline import save_model

    bars = read_bars_frame(args.catalog, args.bar_type, start=args.start, end=args.end)
    config = FitConfig(
        train=TrainConfig(
            hidden=args.hidden,
            n_blocks=args.blocks,
            sigma_min=args.sigma_min,
            batch_size=args.batch_size,
            max_epochs=args.epochs,
            learning_rate=args.learning_rate,
            patience=args.patience,
            seed=args.seed,
            threads=args.threads,
        ),
        modes=tuple(m.strip() for m in args.modes.split(",") if m.strip()),
        horizon=args.horizon,
    )
    print(f"{len(bars)} bars of {args.bar_type}: {bars.index[0]} .. {bars.index[-1]}")
    started = time.perf_counter()
    model = fit_model(bars, args.bar_type, config, progress=not args.quiet)
    path = save_model(model, args.out)
    print(describe(model.manifest))
    print(f"wrote {path} in {time.perf_counter() - started:.1f} s")
    return 0


def _info(args: argparse.Namespace) -> int:
    from scoremodel.checkpoint import load_checkpoint

    manifest, _ = load_checkpoint(Path(args.model))
    print(describe(manifest))
    return 0


def _sample(args: argparse.Namespace) -> int:
    import pandas as pd

    from scoremodel.inference import ScoreModel
    from scoremodel.sampling import annealed_langevin

    model = ScoreModel.load(args.model)
    z = annealed_langevin(
        model.torch_network(), model.sigmas(), args.samples, args.steps, seed=args.seed
    ).numpy()
    raw = model.normaliser.inverse(np.clip(z, -model.normaliser.clip, model.normaliser.clip))
    pd.DataFrame(raw, columns=list(model.spec.names)).to_csv(args.out, index=False)
    print(f"wrote {args.samples} samples to {args.out}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from scoremodel.evaluation import EvaluationConfig
    from scoremodel.evaluation import evaluate
    from scoremodel.evaluation import write_report
    from scoremodel.evaluation.report import verdict
    from scoremodel.evaluation.walk_forward import EVAL_TRAINING

    bars, source = _csv_bars(args) if args.csv else _catalog_bars(args)
    defaults = EvaluationConfig()
    train = replace(
        EVAL_TRAINING,
        max_epochs=args.epochs,
        hidden=args.hidden,
        n_blocks=args.blocks,
        seed=args.seed,
        threads=args.threads,
    )
    config = replace(
        defaults,
        n_folds=args.folds,
        scheme=args.scheme,
        min_train_fraction=args.min_train_fraction,
        train_bars=args.train_bars,
        horizon=args.horizon,
        train=train,
        random_draws=args.random_draws,
        n_boot=args.bootstrap,
        scenario_samples=args.scenario_samples,
        pc_steps=args.pc_steps,
    )
    results, runs, scenarios = evaluate(bars, source, config)
    directory = write_report(args.out, results, runs, scenarios)
    print("\n".join(f"- {line}" for line in verdict(results)))
    print(f"report: {(directory / 'report.md').resolve()} ({results['seconds']:.0f} s)")
    return 0


def _csv_bars(args: argparse.Namespace) -> tuple[object, str]:
    from catalogs.bars import validate_bars
    from catalogs.csv_import import read_ohlcv_csv

    bars, report = validate_bars(read_ohlcv_csv(args.csv, interval=args.interval), args.interval)
    if report.gaps:
        print(
            f"warning: {report.missing_bars} bars missing in {len(report.gaps)} gaps; "
            "features straddle them"
        )
    bars = bars.loc[args.start : args.end] if args.start or args.end else bars
    return bars, f"{Path(args.csv).name} ({args.interval})"


def _catalog_bars(args: argparse.Namespace) -> tuple[object, str]:
    from catalogs.catalog import list_bar_types
    from catalogs.catalog import read_bars_frame  # the one Nautilus-facing import

    catalog = Path(args.catalog)
    present = catalog.exists() and args.bar_type in list_bar_types(catalog)
    if not present:
        if args.catalog != DEFAULT_CATALOG or args.bar_type != DEFAULT_BAR_TYPE:
            raise FileNotFoundError(
                f"no {args.bar_type} bars in the catalog {catalog}; create them with "
                "`python -m catalogs synth --interval 1h --bars 30000 --seed 7` or "
                "`python -m catalogs import-csv FILE --interval 1min`, or pass --csv FILE"
            )
        _build_demo_catalog(catalog, args.bar_type)
    bars = read_bars_frame(catalog, args.bar_type, start=args.start, end=args.end)
    return bars, args.bar_type


def _build_demo_catalog(catalog: Path, bar_type: str) -> None:
    """The synthetic catalog of the demo (as strategies/defaults.py builds it)."""
    from catalogs.bars import interval_of_bar_type
    from catalogs.catalog import write_bars
    from catalogs.instruments import make_perpetual
    from catalogs.synthetic import generate_bars

    print(f"building the demo catalog {catalog}: {DEMO_BARS:,} bars of {bar_type} (seed 7)")
    interval = interval_of_bar_type(bar_type)
    frame = generate_bars(DEMO_BARS, interval=interval, seed=DEMO_SEED)
    write_bars(catalog, frame, make_perpetual(bar_type.split("-")[0]), interval)


def describe(manifest: dict) -> str:
    """A few readable lines about a checkpoint."""
    data = manifest["data"]
    lines = [
        f"bar type      {data['bar_type']}  ({data['n_bars']} bars, "
        f"{data['first_bar']} .. {data['last_bar']})",
        "split         "
        + ", ".join(
            f"{name} {block['rows']} ({block['first'][:10]}..{block['last'][:10]})"
            for name, block in data["blocks"].items()
        ),
        f"features      v{manifest['feature_spec']['version']} "
        + ", ".join(manifest["feature_spec"]["names"]),
    ]
    for name, entry in manifest["models"].items():
        net = entry["network"]
        lines.append(
            f"{name:<13} hidden {net['hidden']} x {net['n_blocks']} blocks, sigma "
            f"{entry['sigma_min']:.3g}..{entry['sigma_max']:.3g} ({len(entry['sigmas'])} levels), "
            f"val loss {entry['best_val_loss']:.4f} (epoch {entry['best_epoch']}), "
            f"test loss {entry['test_loss']:.4f}, {entry['train_seconds']:.0f} s, "
            f"{entry['states_per_second']:,.0f} states/s"
        )
    table = manifest["calibration"].get("log_density")
    if table:
        threshold = np.interp(5.0, table["percentiles"], table["values"])
        lines.append(f"density       5th percentile of training log-density: {threshold:.3f}")
    lines.append(f"versions      {json.dumps(manifest.get('versions', {}))}")
    return "\n".join(lines)
