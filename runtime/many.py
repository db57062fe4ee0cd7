"""Many instruments: per bar type, train a model and run the Nautilus backtest, as Ray tasks.

Lives in runtime/ rather than evaluation/ because each task drives the event-level Nautilus
backtest (:func:`runtime.backtest.run_backtest`, :func:`runtime.reports.write_report`), which
the pure evaluation package does not import. Each task runs in a Ray worker process of its own
(the engine keeps process-wide state) and writes only under the output directory:
``OUT/models/<bar type>`` (the model), ``OUT/<bar type>/`` (the backtest report), and the
combined ``OUT/instruments.csv`` / ``.parquet``. Finished instruments are kept in
``OUT/tasks`` and skipped by a re-run with the same settings.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from evaluation.parallel import DEFAULT_TASK_THREADS
from evaluation.parallel import Task
from evaluation.parallel import TaskOutcome
from evaluation.parallel import run_tasks
from output_paths import claim_output_dir
from output_paths import claim_subdirectory
from output_paths import write_atomically
from scoremodel.training import TrainConfig

COLUMNS = (
    "bars",
    "orders",
    "fills",
    "total_return",
    "sharpe",
    "sortino",
    "max_drawdown",
    "fees",
    "final_equity",
)


def instrument_dir_name(bar_type: str) -> str:
    """A directory name for a bar type (path separators replaced)."""
    return bar_type.replace("/", "_").replace("\\", "_")


def train_and_backtest(
    config_path: str | None, catalog: str, bar_type: str, train: TrainConfig, out: str
) -> dict:
    """Train a model on ``bar_type``'s bars (the production split: the backtest then trades
    the model's held-out test block) and backtest it; the report's headline figures."""
    from catalogs.catalog import read_bars_frame
    from runtime.backtest import check_inputs
    from runtime.backtest import run_backtest
    from runtime.reports import write_report
    from runtime.run_config import load_run_config
    from runtime.run_config import with_backtest_overrides
    from scoremodel.pipeline import FitConfig
    from scoremodel.pipeline import fit_model
    from scoremodel.pipeline import save_model

    name = instrument_dir_name(bar_type)
    model_dir = Path(out) / "models" / name
    report_dir = Path(out) / name
    run = load_run_config(config_path, bar_type=bar_type, model_path=str(model_dir))
    run = with_backtest_overrides(run, catalog=catalog, report_dir=str(report_dir))
    bars = read_bars_frame(catalog, bar_type)
    model = fit_model(bars, bar_type, FitConfig(train=train), progress=False)
    save_model(model, model_dir, overwrite=(model_dir / "manifest.json").is_file())
    check_inputs(run)
    outcome = run_backtest(run)
    try:
        summary = write_report(outcome, report_dir)
    finally:
        outcome.engine.dispose()
    headline = {column: summary.get(column) for column in COLUMNS}
    hold = summary.get("buy_and_hold", {})
    return headline | {
        "buy_and_hold_return": hold.get("total_return"),
        "buy_and_hold_sharpe": hold.get("sharpe"),
        "first_bar": summary["first_bar"],
        "last_bar": summary["last_bar"],
        "report": str(report_dir),
    }


def run_instruments(
    config_path: str | None,
    catalog: str,
    bar_types: list[str],
    train: TrainConfig,
    out: str | Path,
    log: Callable[[str], None] = print,
) -> pd.DataFrame:
    """Every bar type as one task; writes and returns the combined table (failed ones with
    their error)."""
    out = Path(out)
    config_hash = _file_hash(config_path) if config_path else "defaults"
    tasks = [
        Task(
            bar_type,
            train_and_backtest,
            (config_path, catalog, bar_type, train, str(out)),
            settings={
                "catalog": str(catalog),
                "bars": _catalog_fingerprint(catalog, bar_type),
                "config": config_hash,
                "train": train.to_dict(),
                "out": str(out.resolve()),
            },
            fresh_process=True,
            threads=train.threads or DEFAULT_TASK_THREADS,
        )
        for bar_type in bar_types
    ]
    log(f"{len(tasks)} instruments from {catalog}")
    tasks_dir = claim_subdirectory(claim_output_dir(out, "--out"), "tasks", "--out")
    outcomes = run_tasks(tasks, tasks_dir, progress=log, what="instruments")
    table = instruments_table(outcomes)
    write_table(out, table)
    return table


def instruments_table(outcomes: list[TaskOutcome]) -> pd.DataFrame:
    """One row per bar type: the backtest's headline figures, or the error."""
    rows = []
    for outcome in outcomes:
        row: dict[str, Any] = {"bar_type": outcome.task.label}
        row |= outcome.value if outcome.ok else {}
        row |= {"status": "ok" if outcome.ok else "failed", "error": outcome.error or ""}
        rows.append(row)
    return pd.DataFrame(rows)


def write_table(out: Path, table: pd.DataFrame) -> None:
    """instruments.parquet and instruments.csv, each replaced atomically."""
    out = claim_output_dir(out, "--out")
    write_atomically(out / "instruments.parquet", lambda path: table.to_parquet(path, index=False))
    write_atomically(out / "instruments.csv", table.to_csv(index=False))


def _catalog_fingerprint(catalog: str, bar_type: str) -> str:
    """Names, sizes and modification times of the bar type's files (new bars: a new key)."""
    files = sorted((Path(catalog) / "data" / "bar").glob(f"{bar_type}/**/*.parquet"))
    listing = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    return hashlib.sha256(json.dumps(listing).encode()).hexdigest()[:16]


def _file_hash(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
