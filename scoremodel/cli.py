"""``python -m scoremodel train|info|versions|sample``: the command line of the ML core.

The ML modules import neither Nautilus nor ``catalogs``; only this shell's ``train`` reads bars,
through ``catalogs`` (imported lazily in it), from a Nautilus ParquetDataCatalog. The
walk-forward evaluation is ``python -m evaluation``.
A mistake (a bad path, a model that does not fit, an option out of range) ends with one
``error:`` line and exit status 2 (``--debug`` shows the traceback); nothing is written then.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING

import numpy as np

from cli_errors import UserError
from cli_errors import add_debug_flag
from cli_errors import non_negative_int
from cli_errors import positive_float
from cli_errors import positive_int
from cli_errors import run_cli
from output_paths import check_output_file
from output_paths import write_atomically
from scoremodel.checkpoint import CONDITIONAL
from scoremodel.inference import SIGNAL_MODES
from scoremodel.training import TrainConfig

if TYPE_CHECKING:
    from scoremodel.pipeline import FitConfig

DEFAULT_CATALOG = "var/catalog"
DEFAULT_BAR_TYPE = "BTCUSDT-LINEAR.BYBIT-1-HOUR-LAST-EXTERNAL"


class TrainingInputError(UserError):
    """The selected bars cannot train a model (too few for the split)."""


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; returns its exit status (2 for a user error)."""
    args = _parser().parse_args(argv)
    return run_cli(lambda: args.run(args), args.debug)


def signal_modes(text: str) -> tuple[str, ...]:
    """argparse type of --modes: a comma-separated subset of SIGNAL_MODES with 'score'."""
    modes = tuple(m.strip() for m in text.split(",") if m.strip())
    if "score" not in modes or not set(modes) <= set(SIGNAL_MODES):
        raise argparse.ArgumentTypeError(
            f"must include 'score' and be among {', '.join(SIGNAL_MODES)} (e.g. score,edge), "
            f"got {text!r}"
        )
    return modes


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scoremodel", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train",
        help="train a model on bars from a catalog",
        description="Train the state model (and the forecast model) on bars from a catalog and "
        "write a new model directory. --out is checked before training: an existing model "
        "directory is replaced only with --overwrite, and only once the new one is complete.",
    )
    train.add_argument("--catalog", default=DEFAULT_CATALOG, help="ParquetDataCatalog directory")
    train.add_argument("--bar-type", default=DEFAULT_BAR_TYPE, help="e.g. %(default)s")
    train.add_argument("--out", required=True, help="model directory to write")
    train.add_argument(
        "--overwrite", action="store_true", help="replace the model directory --out if it exists"
    )
    train.add_argument("--start", help="first bar (ISO time, UTC)")
    train.add_argument("--end", help="last bar (ISO time, UTC)")
    defaults = TrainConfig()
    train.add_argument("--epochs", type=positive_int, default=defaults.max_epochs)
    train.add_argument("--hidden", type=positive_int, default=defaults.hidden)
    train.add_argument("--blocks", type=positive_int, default=defaults.n_blocks)
    train.add_argument("--batch-size", type=positive_int, default=defaults.batch_size)
    train.add_argument("--learning-rate", type=positive_float, default=defaults.learning_rate)
    train.add_argument("--sigma-min", type=positive_float, default=defaults.sigma_min)
    train.add_argument("--patience", type=positive_int, default=defaults.patience)
    train.add_argument("--seed", type=non_negative_int, default=defaults.seed)
    train.add_argument("--threads", type=positive_int, help="torch threads (default: torch's)")
    train.add_argument("--horizon", type=positive_int, default=12, help="forecast horizon, bars")
    train.add_argument(
        "--modes",
        type=signal_modes,
        default=SIGNAL_MODES,
        help="models to train: score[,forecast] (default: score,forecast)",
    )
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    add_debug_flag(train)
    train.set_defaults(run=_train)

    info = commands.add_parser(
        "info",
        help="check and describe a model directory",
        description="Run the checks a backtest or live run makes when it loads the model "
        "(files, checksums, a complete manifest, this code's feature spec; with --bar-type and "
        "--signal-mode also the fit to those bars and mode), then describe it.",
    )
    info.add_argument("model", help="model directory")
    info.add_argument("--bar-type", help="also check the model was trained on these bars")
    info.add_argument(
        "--signal-mode",
        choices=SIGNAL_MODES,
        default="score",
        help="also check the model has what this mode needs (default: %(default)s)",
    )
    add_debug_flag(info)
    info.set_defaults(run=_info)

    versions = commands.add_parser(
        "versions",
        help="list a model's retrained versions",
        description="The model directory's own model (the base) and every version a retraining "
        "stored (its live registries under MODEL/live/<mode> too; a backtest's under "
        "REPORT_DIR/models): id, training window, promoted or not and why; * marks each "
        "registry's current version, the one a restarted node resumes with.",
    )
    versions.add_argument("model", help="model directory, or a registry (REPORT_DIR/models)")
    add_debug_flag(versions)
    versions.set_defaults(run=_versions)

    sample = commands.add_parser(
        "sample",
        help="predictor-corrector samples of market states",
        description="Draw market states from the state model with the reverse-diffusion "
        "predictor-corrector sampler (scoremodel.sampling.predictor_corrector), the sampler "
        "the evaluation's scenarios use: annealed Langevin with the model's few noise levels "
        "cannot equilibrate in these low dimensions and comes out ~10-17 % too wide.",
    )
    sample.add_argument("model", help="model directory")
    sample.add_argument(
        "-n", "--samples", type=positive_int, default=1000, help="how many (%(default)s)"
    )
    sample.add_argument(
        "--steps", type=positive_int, default=200, help="predictor-corrector steps (%(default)s)"
    )
    sample.add_argument("--seed", type=non_negative_int, default=0)
    sample.add_argument("--out", required=True, help="CSV file for the samples (raw feature units)")
    sample.add_argument(
        "--overwrite", action="store_true", help="replace the file --out if it exists"
    )
    add_debug_flag(sample)
    sample.set_defaults(run=_sample)
    return parser


def _train(args: argparse.Namespace) -> int:
    from catalogs.catalog import read_bars_frame  # the one Nautilus-facing import
    from scoremodel.checkpoint import check_model_output
    from scoremodel.pipeline import FitConfig
    from scoremodel.pipeline import fit_model
    from scoremodel.pipeline import save_model

    out = check_model_output(args.out, args.overwrite)  # before hours of training, not after
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
        modes=args.modes,
        horizon=args.horizon,
    )
    print(f"{len(bars)} bars of {args.bar_type}: {bars.index[0]} .. {bars.index[-1]}")
    _require_enough_states(len(bars), config)
    started = time.perf_counter()
    model = fit_model(bars, args.bar_type, config, progress=not args.quiet)
    path = save_model(model, out, overwrite=args.overwrite)
    print(describe(model.manifest))
    print(f"wrote {path} in {time.perf_counter() - started:.1f} s")
    return 0


def _require_enough_states(n_bars: int, config: FitConfig) -> None:
    """Fail before training if the bars give too few states for the chronological split."""
    from scoremodel.datasets import chronological_split

    n_states = max(0, n_bars - config.spec.warmup_bars + 1)  # compute_features drops warm-up
    try:
        chronological_split(n_states, config.fractions, purge=config.horizon)
    except ValueError as error:  # the split's one complaint: too few rows
        raise TrainingInputError(f"too few bars to train on ({n_bars}): {error}") from error


def _info(args: argparse.Namespace) -> int:
    from scoremodel.checkpoint import load_verified_checkpoint

    manifest, _ = load_verified_checkpoint(
        args.model, bar_type=args.bar_type, signal_mode=args.signal_mode
    )
    print(describe(manifest))
    return 0


def _versions(args: argparse.Namespace) -> int:
    from scoremodel.registry import describe_versions

    print(describe_versions(args.model))
    return 0


def _sample(args: argparse.Namespace) -> int:
    import pandas as pd

    from scoremodel.inference import ScoreModel
    from scoremodel.sampling import predictor_corrector

    out = check_output_file(args.out, "--out", args.overwrite)  # before sampling
    model = ScoreModel.load(args.model)
    sigmas = model.sigmas()
    z = predictor_corrector(
        model.torch_network(),
        float(sigmas[0]),
        float(sigmas[-1]),
        args.samples,
        args.steps,
        seed=args.seed,
    ).numpy()
    clip = model.normaliser.clip
    raw = model.normaliser.inverse(np.clip(z.astype(np.float64), -clip, clip))
    csv = pd.DataFrame(raw, columns=list(model.spec.names)).to_csv(index=False)
    write_atomically(out, csv)
    print(f"wrote {args.samples} samples to {out}")
    return 0


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
        if name == CONDITIONAL:
            section = manifest[CONDITIONAL]
            lines.append(
                f"{name:<13} context L = {section['context_len']} bars, horizons "
                f"{section['horizons']} bars, val loss {entry['best_val_loss']:.4f} (epoch "
                f"{entry['best_epoch']} of {entry['epochs_run']})"
            )
            continue
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
