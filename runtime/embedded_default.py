"""The embedded default: a synthetic catalog and a model trained on it, made on first use.

The market is a planted one (:func:`catalogs.planted.demo_preset`): hourly GARCH returns in
which a volume spike's return is half given back over the next 3 bars, an edge that beats the
taker round trip on ~6 % of bars, so the demo shows edge mode finding and trading it (on a
market without such an edge, edge mode stays flat; see the README's "What comes out").

It lives at its own paths only, under ``var/demo`` (the catalog ``var/demo/catalog`` and the
model ``var/demo/model``, 1-hour BTCUSDT bars), never at the run configuration's defaults
(``var/catalog``, ``var/models/default``), which are the user's: ``python -m catalogs
import-csv`` and ``python -m scoremodel train`` write there. run_backtest.py and ``python -m
evaluation`` use it only when the user names no input of their own (no ``--config``,
``--catalog``, ``--model`` or ``--csv``). ``var/demo`` is claimed as this program's directory
(:func:`output_paths.claim_output_dir`): a ``var/demo`` holding anything this program did not
write, or a catalog there holding other bars, is refused rather than written into.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import msgspec

from catalogs.bars import interval_of_bar_type
from catalogs.catalog import list_bar_types
from catalogs.catalog import list_instrument_ids
from catalogs.catalog import read_bars_frame
from catalogs.catalog import write_bars
from catalogs.funding import DEFAULT_FUNDING_INTERVAL
from catalogs.funding import last_funding_time
from catalogs.funding import synthetic_funding
from catalogs.funding import write_funding
from catalogs.instruments import make_perpetual
from catalogs.planted import demo_preset
from catalogs.planted import generate_planted
from cli_errors import UserError
from output_paths import claim_output_dir
from runtime.run_config import RunConfig
from runtime.run_config import default_strategy_fields
from scoremodel.checkpoint import CheckpointError
from scoremodel.checkpoint import load_verified_checkpoint
from scoremodel.features import DEFAULT_SPEC
from scoremodel.pipeline import FitConfig
from scoremodel.pipeline import fit_model
from scoremodel.pipeline import save_model

DEFAULT_BARS = 30_000  # 1-hour bars: ~3.4 years; the last ~15% is the held-out backtest
DEFAULT_SEED = 7
DEMO_ROOT = "var/demo"
DEFAULT_CATALOG = f"{DEMO_ROOT}/catalog"
DEFAULT_MODEL = f"{DEMO_ROOT}/model"
DEFAULT_BAR_TYPE = default_strategy_fields()["bar_type"]
DEFAULT_INSTRUMENT = default_strategy_fields()["instrument_id"]


class EmbeddedDefaultError(UserError):
    """The embedded default's own paths hold something it did not write."""


def embedded_run(run: RunConfig) -> RunConfig:
    """``run`` reading the embedded default's catalog and model (its own paths)."""
    strategy = msgspec.structs.replace(run.strategy, model_path=DEFAULT_MODEL)
    backtest = dataclasses.replace(run.backtest, catalog=DEFAULT_CATALOG)
    return dataclasses.replace(run, strategy=strategy, backtest=backtest)


def is_embedded_default(run: RunConfig) -> bool:
    """True if ``run`` reads exactly the embedded default's catalog, bar type and model."""
    return (
        Path(run.backtest.catalog) == Path(DEFAULT_CATALOG)
        and Path(run.strategy.model_path) == Path(DEFAULT_MODEL)
        and str(run.strategy.bar_type) == DEFAULT_BAR_TYPE
        and str(run.strategy.instrument_id) == DEFAULT_INSTRUMENT
    )


def prepare_default_catalog(bars: int = DEFAULT_BARS, seed: int = DEFAULT_SEED) -> Path:
    """The embedded default's synthetic catalog at its own path, built if missing, with its
    synthetic funding rates (added to a catalog built before funding existed)."""
    claim_output_dir(DEMO_ROOT, "the embedded default's directory")
    catalog = Path(DEFAULT_CATALOG)
    _check_only_its_own(catalog)
    if not catalog.exists() or DEFAULT_BAR_TYPE not in list_bar_types(catalog):
        interval = interval_of_bar_type(DEFAULT_BAR_TYPE)
        print(f"building the synthetic catalog: {bars:,} bars of {DEFAULT_BAR_TYPE} (seed {seed})")
        frame = generate_planted(bars, seed=seed, config=demo_preset(interval)).bars
        instrument = make_perpetual(DEFAULT_INSTRUMENT.split("-")[0])
        write_bars(catalog, frame, instrument, interval, round_prices=True)  # onto the tick
    if last_funding_time(catalog, DEFAULT_INSTRUMENT) is None:
        print(f"adding synthetic funding rates (every 8 h) for {DEFAULT_INSTRUMENT}")
        frame = read_bars_frame(catalog, DEFAULT_BAR_TYPE)
        rates = synthetic_funding(frame, DEFAULT_FUNDING_INTERVAL, seed=seed)
        write_funding(catalog, rates, DEFAULT_INSTRUMENT, DEFAULT_FUNDING_INTERVAL)
    return catalog


def _check_only_its_own(catalog: Path) -> None:
    """Refuse a catalog at the default's path that holds bars or instruments it never writes."""
    if not catalog.is_dir():
        return
    foreign = sorted(set(list_bar_types(catalog)) - {DEFAULT_BAR_TYPE})
    foreign += sorted(set(list_instrument_ids(catalog)) - {DEFAULT_INSTRUMENT})
    if foreign:
        raise EmbeddedDefaultError(
            f"the embedded default's catalog {catalog} holds data it did not write "
            f"({', '.join(foreign)}); it writes nothing there: move your data to a catalog of "
            f"your own (e.g. var/catalog) and delete {DEMO_ROOT}, or run with --config/--catalog"
        )


def prepare_default_inputs(
    run: RunConfig, bars: int = DEFAULT_BARS, seed: int = DEFAULT_SEED
) -> None:
    """Create whatever of the default catalog and model is missing (idempotent).

    Refuses (ValueError, a bug in the caller) a ``run`` that points anywhere else, so a user's
    catalog or model can never receive synthetic bars or a freshly trained model.
    """
    if not is_embedded_default(run):
        raise ValueError(
            f"prepare_default_inputs writes only to {DEFAULT_CATALOG} and {DEFAULT_MODEL} "
            f"({DEFAULT_BAR_TYPE}); this run reads {run.backtest.catalog} and "
            f"{run.strategy.model_path} ({run.strategy.bar_type})"
        )
    catalog = prepare_default_catalog(bars, seed)
    model_dir = Path(DEFAULT_MODEL)
    problem = unusable_for(run, model_dir)
    if problem is None:
        return
    if model_dir.exists():
        print(
            f"the embedded default's own model {model_dir} cannot be used ({problem}); "
            "retraining it there"
        )
    print(f"training a model on {DEFAULT_BAR_TYPE} -> {model_dir} (once; later runs reuse it)")
    frame = read_bars_frame(catalog, DEFAULT_BAR_TYPE)
    save_model(fit_model(frame, DEFAULT_BAR_TYPE, FitConfig()), model_dir, overwrite=True)


def unusable_for(run: RunConfig, model_dir: Path) -> str | None:
    """None if ``run`` can trade the model in ``model_dir``, else why not."""
    try:
        load_verified_checkpoint(
            model_dir, DEFAULT_SPEC, str(run.strategy.bar_type), run.strategy.signal_mode
        )
    except CheckpointError as error:
        return str(error)
    return None
