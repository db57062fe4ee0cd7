"""``python -m evaluation``: walk-forward out-of-sample evaluation of the policy you trade.

Reads the run configuration that run_backtest.py and run_live.py read (``--config``), so the
policy evaluated is the policy traded; without one, the defaults. Bars come from that
configuration's catalog and bar type, from ``--catalog``/``--bar-type``, or from any OHLCV CSV
(``--csv``). A mistake ends with one ``error:`` line and exit status 2 (``--debug``: traceback).

A configuration with a ``retrain:`` section (``retrain.every`` set) is evaluated on its
schedule: one fold per retraining (:func:`evaluation.folds.retrain_folds`) instead of
``--folds``, each model made and promoted as the strategy makes it
(:func:`evaluation.walk_forward.schedule_models`); ``--folds``, ``--scheme``,
``--min-train-fraction`` and ``--train-bars`` are refused with it.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd

from cli_errors import UserError
from cli_errors import add_debug_flag
from cli_errors import non_negative_int
from cli_errors import open_fraction
from cli_errors import positive_int
from cli_errors import run_cli
from evaluation.folds import EvaluationInputError
from evaluation.folds import RetrainPlan
from evaluation.parallel import DEFAULT_TASK_THREADS
from evaluation.parallel import default_workers
from evaluation.parallel import ray_evaluation
from evaluation.parallel import ray_session
from evaluation.report import jsonable
from evaluation.report import verdict
from evaluation.report import write_report
from evaluation.walk_forward import EVAL_CONDITIONAL
from evaluation.walk_forward import EVAL_TRAINING
from evaluation.walk_forward import EvaluationConfig
from evaluation.walk_forward import ScenarioChecksError
from evaluation.walk_forward import evaluate
from evaluation.walk_forward import funded_bars
from evaluation.walk_forward import run_execution
from output_paths import check_output_dir
from output_paths import claim_output_dir
from output_paths import write_atomically
from policy.settings import PolicySettings
from scoremodel.training import TrainConfig

DEFAULT_REPORT_DIR = "reports/evaluation"
DEFAULT_SWEEP_DIR = "reports/sweep"
DEFAULT_INSTRUMENTS_DIR = "reports/instruments"
PARTIAL_RESULTS = "evaluation.partial.json"  # a run whose scenario checks failed


class CatalogLocationError(UserError):
    """The catalog is named in a way this command cannot read."""


def main(argv: list[str] | None = None) -> int:
    """Run the evaluation, or the ``sweep`` / ``instruments`` command named first; returns the
    exit status (2 for a user error)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "sweep":
        args = _sweep_parser().parse_args(argv[1:])
        return run_cli(lambda: _sweep(args), args.debug)
    if argv and argv[0] == "instruments":
        args = _instruments_parser().parse_args(argv[1:])
        return run_cli(lambda: _instruments(args), args.debug)
    args = _parser().parse_args(argv)
    return run_cli(lambda: _evaluate(args), args.debug)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m evaluation",
        description="Train one model per walk-forward fold on past bars only, trade the next "
        "window with the run configuration's policy and costs, compare with baselines and "
        "controls; write report.md, evaluation.json and PNGs. Other commands: "
        "`python -m evaluation sweep SPACE.yaml ...` (parameter sweeps) and "
        "`python -m evaluation instruments ...` (train and backtest many bar types).",
    )
    _add_data_options(parser)
    parser.add_argument("--out", default=DEFAULT_REPORT_DIR, help="default: %(default)s")
    _add_evaluation_options(parser)
    _add_ray_options(
        parser,
        "run the folds and the scenario checks as Ray tasks on a local Ray with N CPUs "
        "(--workers alone: all cores); default: one after the other here",
    )
    add_debug_flag(parser)
    return parser


def _sweep_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m evaluation sweep",
        description="Evaluate every trial of a grid or random space of policy (PolicySettings) "
        "and model (TrainConfig) settings walk-forward, one Ray task per trial; write "
        "trials.parquet/.csv, sweep.json and report.md (ranking by out-of-sample Sharpe, "
        "deflated Sharpe, SPA test against the baselines). Finished trials are kept in "
        "OUT/tasks and skipped by a re-run.",
    )
    parser.add_argument("space", help="sweep space YAML (see evaluation/sweep.py)")
    _add_data_options(parser)
    parser.add_argument("--out", default=DEFAULT_SWEEP_DIR, help="default: %(default)s")
    _add_evaluation_options(parser)
    _add_ray_options(parser, "local Ray with N CPUs (default: all cores)")
    add_debug_flag(parser)
    return parser


def _instruments_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m evaluation instruments",
        description="For each bar type of a catalog: train a model (the production split) and "
        "run the Nautilus backtest on its held-out block, one Ray task (own process) each; "
        "one report per instrument under OUT/<bar type>, the combined OUT/instruments.csv.",
    )
    parser.add_argument(
        "--config", help="run configuration YAML (the file run_backtest.py and run_live.py read)"
    )
    parser.add_argument("--catalog", help="ParquetDataCatalog directory (default: the config's)")
    parser.add_argument(
        "--bar-types", nargs="+", help="bar types to run (default: every bar type in the catalog)"
    )
    parser.add_argument("--out", default=DEFAULT_INSTRUMENTS_DIR, help="default: %(default)s")
    parser.add_argument("--epochs", type=positive_int, default=TrainConfig().max_epochs)
    parser.add_argument("--hidden", type=positive_int, default=TrainConfig().hidden)
    parser.add_argument("--blocks", type=positive_int, default=TrainConfig().n_blocks)
    parser.add_argument("--seed", type=non_negative_int, default=TrainConfig().seed)
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=DEFAULT_TASK_THREADS,
        help="torch and BLAS threads of each task (default: %(default)s)",
    )
    _add_ray_options(parser, "local Ray with N CPUs (default: all cores)")
    add_debug_flag(parser)
    return parser


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", help="run configuration YAML (the file run_backtest.py and run_live.py read)"
    )
    parser.add_argument("--catalog", help="ParquetDataCatalog directory (default: the config's)")
    parser.add_argument("--bar-type", help="bar type in the catalog (default: the config's)")
    parser.add_argument("--csv", help="evaluate bars from this OHLCV CSV instead of a catalog")
    parser.add_argument("--interval", default="1min", help="bar interval of --csv (1min)")
    parser.add_argument("--start", help="first bar (ISO time, UTC)")
    parser.add_argument("--end", help="last bar (ISO time, UTC)")


def _add_ray_options(parser: argparse.ArgumentParser, workers_help: str) -> None:
    parser.add_argument(
        "--workers", type=positive_int, nargs="?", const=default_workers(), help=workers_help
    )
    parser.add_argument(
        "--ray-address",
        help="use the running Ray cluster at this address (e.g. 10.0.0.1:6379) instead of a "
        "local Ray; every node must reach the catalog, CSV and output paths",
    )


def _add_evaluation_options(parser: argparse.ArgumentParser) -> None:
    defaults = EvaluationConfig()
    # the fold options default to None so that one given beside a retrain: section is refused
    # (FOLD_OPTIONS; evaluation_config fills in the defaults)
    parser.add_argument(
        "--folds",
        type=positive_int,
        help=f"walk-forward folds (default: {defaults.n_folds}; a retrain: section in "
        "--config makes one fold per retraining instead)",
    )
    parser.add_argument(
        "--scheme",
        choices=("expanding", "rolling"),
        help=f"training windows (default: {defaults.scheme})",
    )
    parser.add_argument(
        "--min-train-fraction",
        type=open_fraction,
        help=f"first training window as a share of the bars ({defaults.min_train_fraction})",
    )
    parser.add_argument("--train-bars", type=positive_int, help="rolling window length, bars")
    parser.add_argument("--horizon", type=positive_int, default=defaults.horizon, help="h, bars")
    parser.add_argument("--epochs", type=positive_int, default=EVAL_TRAINING.max_epochs)
    parser.add_argument("--hidden", type=positive_int, default=EVAL_TRAINING.hidden)
    parser.add_argument("--blocks", type=positive_int, default=EVAL_TRAINING.n_blocks)
    parser.add_argument("--seed", type=non_negative_int, default=EVAL_TRAINING.seed)
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=DEFAULT_TASK_THREADS,
        help="torch and BLAS threads of each fold, pinned alike in this process and in Ray "
        "workers so that any --workers gives the same results (default: %(default)s)",
    )
    parser.add_argument("--random-draws", type=positive_int, default=defaults.random_draws)
    parser.add_argument("--bootstrap", type=positive_int, default=defaults.n_boot)
    parser.add_argument("--scenario-samples", type=positive_int, default=defaults.scenario_samples)
    parser.add_argument("--pc-steps", type=positive_int, default=defaults.pc_steps)


def _evaluate(args: argparse.Namespace) -> int:
    from runtime.run_config import load_run_config  # reads the strategy's config class

    run = load_run_config(args.config)
    check_output_dir(args.out, "--out")  # before minutes of folds, not after
    config = evaluation_config(args, run)  # options that contradict the configuration: now
    bars, source = _csv_bars(args) if args.csv else _catalog_bars(args, run)
    parallel = args.workers is not None or args.ray_address is not None
    try:
        if parallel:
            with ray_session(args.workers, args.ray_address):
                results, runs, scenarios = evaluate(bars, source, config, runner=ray_evaluation)
        else:
            results, runs, scenarios = evaluate(bars, source, config)
    except ScenarioChecksError as error:
        _keep_finished_folds(args, error.results)
        raise
    results["policy_source"] = args.config or "the defaults (no --config)"
    directory = write_report(args.out, results, runs, scenarios)
    print("\n".join(f"- {line}" for line in verdict(results)))
    print(f"report: {(directory / 'report.md').resolve()} ({results['seconds']:.0f} s)")
    return 0


def _keep_finished_folds(args: argparse.Namespace, results: dict) -> None:
    """The folds' and the pooled results of a run whose scenario checks failed, saved as
    OUT/evaluation.partial.json (report.md and the figures need the scenario checks)."""
    results = {**results, "policy_source": args.config or "the defaults (no --config)"}
    path = claim_output_dir(args.out, "--out") / PARTIAL_RESULTS
    write_atomically(path, json.dumps(jsonable(results)))
    print(
        f"the scenario checks failed; the folds and the pooled summary are kept in {path}",
        file=sys.stderr,
    )


def _sweep(args: argparse.Namespace) -> int:
    from evaluation.sweep import load_space
    from evaluation.sweep import sweep
    from evaluation.sweep import trial_configs
    from runtime.run_config import load_run_config

    space = load_space(args.space)
    run = load_run_config(args.config)
    if run.retrain.enabled:
        raise EvaluationInputError(
            f"{args.config}: the sweep does not evaluate a retrain: schedule (its folds are "
            "--folds walk-forward folds); evaluate the schedule with `python -m evaluation "
            "--config ...`, or sweep with a configuration without a retrain: section"
        )
    base = evaluation_config(args, run)
    trial_configs(base, space)  # every trial checked before bars are read or Ray starts
    check_output_dir(args.out, "--out")
    bars, source = _csv_bars(args) if args.csv else _catalog_bars(args, run)
    with ray_session(args.workers, args.ray_address):
        _, summary = sweep(bars, source, base, space, args.out)
    if "best" in summary:
        best = summary["best"]
        print(
            f"best: trial {best['trial']}, Sharpe {best['sharpe']:+.2f}, deflated Sharpe "
            f"{best['deflated_sharpe']:.2f} over {summary['finished']} trials"
        )
    print(f"report: {(Path(args.out) / 'report.md').resolve()}")
    return 0 if not summary["failed"] else 1


def _instruments(args: argparse.Namespace) -> int:
    from catalogs.catalog import list_bar_types
    from catalogs.errors import BarTypeNotFoundError
    from catalogs.errors import CatalogNotFoundError
    from catalogs.storage import catalog_at
    from runtime.many import run_instruments
    from runtime.run_config import load_run_config

    run = load_run_config(args.config)
    check_output_dir(args.out, "--out")
    location = str(args.catalog or run.backtest.catalog)
    local = catalog_at(location)  # file:// URLs as their path
    if not isinstance(local, Path):
        raise CatalogLocationError(
            f"instruments cannot use the catalog {location}: the Nautilus backtest reads its "
            "catalog by path; give a local path or file:// URL that every node mounts (the "
            "evaluation and sweep read fsspec URLs)"
        )
    catalog = str(local)
    if not Path(catalog).is_dir():
        raise CatalogNotFoundError(
            f"catalog {catalog} "
            f"{'is not a directory' if Path(catalog).exists() else 'does not exist'}; give "
            "--catalog or a --config whose backtest.catalog exists"
        )
    stored = list_bar_types(catalog)
    missing = [bar_type for bar_type in args.bar_types or [] if bar_type not in stored]
    if missing:
        raise BarTypeNotFoundError(
            f"no {', '.join(missing)} bars in the catalog {catalog} (it holds: "
            f"{', '.join(stored) or 'no bars'}); import them with `python -m catalogs "
            "import-csv` or leave them out of --bar-types"
        )
    train = replace(
        TrainConfig(),
        max_epochs=args.epochs,
        hidden=args.hidden,
        n_blocks=args.blocks,
        seed=args.seed,
        threads=args.threads,
    )
    with ray_session(args.workers, args.ray_address):
        table = run_instruments(args.config, catalog, args.bar_types or stored, train, args.out)
    print(f"table: {(Path(args.out) / 'instruments.csv').resolve()}")
    return 0 if (table["status"] == "ok").all() else 1


FOLD_OPTIONS = {  # option: its argparse destination
    "--folds": "folds",
    "--scheme": "scheme",
    "--min-train-fraction": "min_train_fraction",
    "--train-bars": "train_bars",
}


def evaluation_config(args: argparse.Namespace, run) -> EvaluationConfig:
    """The evaluation's settings: the run configuration's policy and account, the options'
    folds and training budget. Every fold runs with ``--threads`` torch and BLAS threads, a
    setting of the task (not of the process that runs it), so the serial run and any number
    of workers give the same results.

    With a ``retrain:`` section (``retrain.every`` set) its schedule makes the folds
    (``EvaluationConfig.retrain``): the fold options are refused, and every retraining uses
    the options' recipe with ``retrain.epochs`` (when set) and ``retrain.threads``
    (:func:`evaluation.walk_forward.retrain_fit`)."""
    given = [option for option, name in FOLD_OPTIONS.items() if getattr(args, name) is not None]
    retrain = RetrainPlan.of(run.retrain) if run.retrain.enabled else None
    if retrain is not None and given:
        raise EvaluationInputError(
            f"{', '.join(given)} cannot be used with the retrain: section of "
            f"{args.config}: its schedule makes the folds (one per retraining, every "
            f"{retrain.every}); drop {', '.join(given)}, or evaluate a configuration without "
            "a retrain: section"
        )
    defaults = EvaluationConfig()
    train = replace(
        EVAL_TRAINING,
        max_epochs=args.epochs,
        hidden=args.hidden,
        n_blocks=args.blocks,
        seed=args.seed,
        threads=args.threads,
    )
    conditional = replace(  # the forecaster and its NLL control get the same budget
        EVAL_CONDITIONAL,
        max_epochs=min(args.epochs, EVAL_CONDITIONAL.max_epochs),
        hidden=args.hidden,
        seed=args.seed,
    )
    return replace(
        EvaluationConfig(),
        n_folds=args.folds if args.folds is not None else defaults.n_folds,
        scheme=args.scheme or defaults.scheme,
        min_train_fraction=(
            args.min_train_fraction
            if args.min_train_fraction is not None
            else defaults.min_train_fraction
        ),
        train_bars=args.train_bars,
        horizon=args.horizon,
        train=train,
        conditional=conditional,
        signal_mode=run.strategy.signal_mode,
        policy=PolicySettings.from_fields(run.strategy),
        execution=run_execution(run),  # balance, execution style and maker timeout
        random_draws=args.random_draws,
        n_boot=args.bootstrap,
        scenario_samples=args.scenario_samples,
        pc_steps=args.pc_steps,
        retrain=retrain,
    )


def _csv_bars(args: argparse.Namespace) -> tuple[pd.DataFrame, str]:
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


def _catalog_bars(args: argparse.Namespace, run) -> tuple[pd.DataFrame, str]:
    from nautilus_trader.model.data import BarType

    from catalogs.catalog import list_bar_types
    from catalogs.catalog import read_bars_frame
    from catalogs.errors import BarTypeNotFoundError
    from catalogs.errors import CatalogNotFoundError
    from catalogs.storage import catalog_at
    from runtime.embedded_default import DEFAULT_BAR_TYPE
    from runtime.embedded_default import DEFAULT_CATALOG
    from runtime.embedded_default import prepare_default_catalog

    bar_type = args.bar_type or str(run.strategy.bar_type)
    embedded = args.config is None and args.catalog is None and bar_type == DEFAULT_BAR_TYPE
    location = DEFAULT_CATALOG if embedded else str(args.catalog or run.backtest.catalog)
    catalog = catalog_at(location)  # a path, or the catalog at a reachable fsspec URL
    if embedded:
        prepare_default_catalog()  # the embedded default, at its own path only
    elif isinstance(catalog, Path) and not catalog.is_dir():
        raise CatalogNotFoundError(
            f"catalog {location} "
            f"{'is not a directory' if catalog.exists() else 'does not exist'}; give "
            "--catalog, a --config whose backtest.catalog exists, or --csv FILE"
        )
    elif bar_type not in list_bar_types(catalog):
        raise BarTypeNotFoundError(
            f"no {bar_type} bars in the catalog {location}; import them with `python -m catalogs "
            "import-csv FILE --interval 1min --catalog ...`, or pass --bar-type / --csv FILE"
        )
    bars = read_bars_frame(catalog, bar_type, start=args.start, end=args.end)
    if len(bars) == 0:
        raise EvaluationInputError(f"no {bar_type} bars in {location} between the given dates")
    # the instrument's funding rates over the window, charged by the simulator (none: not charged)
    return funded_bars(bars, catalog, str(BarType.from_str(bar_type).instrument_id)), bar_type
