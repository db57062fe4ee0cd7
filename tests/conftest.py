"""Shared fixtures: a small synthetic catalog and a quickly trained model (session scope)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from catalogs.catalog import read_bars_frame
from catalogs.catalog import write_bars
from catalogs.instruments import make_perpetual
from catalogs.synthetic import generate_bars
from scoremodel.pipeline import FitConfig
from scoremodel.pipeline import fit_model
from scoremodel.pipeline import save_model
from scoremodel.training import TrainConfig

BAR_TYPE = "BTCUSDT-LINEAR.BYBIT-1-HOUR-LAST-EXTERNAL"
TEST_BARS = 8_000
FAST_TRAINING = TrainConfig(hidden=32, n_blocks=2, max_epochs=4, batch_size=256, seed=3)


@pytest.fixture(scope="session")
def synthetic_catalog(tmp_path_factory) -> Path:
    """8,000 one-hour BTCUSDT bars (seed 3) in a ParquetDataCatalog."""
    path = tmp_path_factory.mktemp("catalog")
    write_bars(
        path, generate_bars(TEST_BARS, interval="1h", seed=3), make_perpetual("BTCUSDT"), "1h"
    )
    return path


@pytest.fixture(scope="session")
def trained_model(synthetic_catalog, tmp_path_factory) -> Path:
    """Score and forecast models trained for a few epochs on the synthetic catalog."""
    bars = read_bars_frame(synthetic_catalog, BAR_TYPE)
    model = fit_model(bars, BAR_TYPE, FitConfig(train=FAST_TRAINING), progress=False)
    return save_model(model, tmp_path_factory.mktemp("model") / "model")


@pytest.fixture
def run_config(synthetic_catalog, trained_model, tmp_path):
    """A RunConfig on the test catalog and model; call it with strategy/backtest overrides."""
    from strategies.run_config import load_run_config

    def make(backtest: dict | None = None, **strategy):
        run = load_run_config(**{"model_path": str(trained_model), **strategy})
        values = {
            "catalog": str(synthetic_catalog),
            "report_dir": str(tmp_path / "report"),
            "tearsheet": False,
            **(backtest or {}),
        }
        settings = dataclasses.replace(run.backtest, **values)
        return dataclasses.replace(run, backtest=settings)

    return make
