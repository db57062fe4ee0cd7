"""The embedded default: a synthetic catalog and a model trained on it, made on first use."""

from __future__ import annotations

from pathlib import Path

from catalogs.bars import interval_of_bar_type
from catalogs.catalog import list_bar_types
from catalogs.catalog import read_bars_frame
from catalogs.catalog import write_bars
from catalogs.instruments import make_perpetual
from catalogs.synthetic import generate_bars
from scoremodel.checkpoint import MANIFEST
from scoremodel.checkpoint import usable_checkpoint
from scoremodel.features import DEFAULT_SPEC
from scoremodel.pipeline import FitConfig
from scoremodel.pipeline import fit_model
from scoremodel.pipeline import save_model
from strategies.run_config import RunConfig

DEFAULT_BARS = 30_000  # 1-hour bars: ~3.4 years; the last ~15% is the held-out backtest
DEFAULT_SEED = 7


def prepare_default_inputs(
    run: RunConfig, bars: int = DEFAULT_BARS, seed: int = DEFAULT_SEED
) -> None:
    """Create whatever of the default catalog and model is missing (idempotent)."""
    catalog = Path(run.backtest.catalog)
    bar_type = str(run.strategy.bar_type)
    if not catalog.exists() or bar_type not in list_bar_types(catalog):
        interval = interval_of_bar_type(bar_type)
        print(f"building the synthetic catalog: {bars:,} bars of {bar_type} (seed {seed})")
        frame = generate_bars(bars, interval=interval, seed=seed)
        instrument = make_perpetual(run.strategy.instrument_id.symbol.value.split("-")[0])
        write_bars(catalog, frame, instrument, interval)
    model_dir = Path(run.strategy.model_path)
    problem = usable_checkpoint(model_dir, DEFAULT_SPEC)
    if problem is not None:
        if (model_dir / MANIFEST).is_file():
            print(f"the default model cannot be used ({problem}); training a new one")
        print(f"training a model on {bar_type} -> {model_dir} (once; later runs reuse it)")
        frame = read_bars_frame(catalog, bar_type)
        save_model(fit_model(frame, bar_type, FitConfig()), model_dir)
