"""Shared fixtures: a small synthetic catalog and a quickly trained model (session scope)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
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
MINUTE_BAR_TYPE = "BTCUSDT-LINEAR.BYBIT-1-MINUTE-LAST-EXTERNAL"
TEST_BARS = 8_000
MINUTE_TRAINING_BARS = 3_000
MINUTE_LIVE_BARS = 400
FAST_TRAINING = TrainConfig(hidden=32, n_blocks=2, max_epochs=4, batch_size=256, seed=3)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run ``bybit_account`` tests first. Once a backtest or sandbox used venue BYBIT,
    Nautilus (1.231) computes every later BYBIT account in the process from fills, on top
    of the venue's wallet updates (see runtime.live.check_venue_accounts)."""
    items.sort(key=lambda item: item.get_closest_marker("bybit_account") is None)


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


@pytest.fixture(scope="session")
def minute_bars() -> pd.DataFrame:
    """1-minute synthetic bars (seed 11): the model trains on the first MINUTE_TRAINING_BARS,
    the live tests replay the rest through the emulator (the same market, not seen in training)."""
    return generate_bars(MINUTE_TRAINING_BARS + MINUTE_LIVE_BARS, interval="1min", seed=11)


@pytest.fixture(scope="session")
def minute_model(minute_bars, tmp_path_factory) -> Path:
    """A score model trained the same quick way on 1-minute bars (live tests push minute bars
    faster than real time, and the model's bar type must match the strategy's)."""
    config = FitConfig(train=FAST_TRAINING, modes=("score",))
    model = fit_model(
        minute_bars.iloc[:MINUTE_TRAINING_BARS], MINUTE_BAR_TYPE, config, progress=False
    )
    return save_model(model, tmp_path_factory.mktemp("minute-model") / "model")


@pytest.fixture(scope="session")
def live_bars(minute_bars) -> pd.DataFrame:
    """The bars after the minute model's training data, for the emulator's market."""
    return minute_bars.iloc[MINUTE_TRAINING_BARS:]


@pytest.fixture
def run_config(synthetic_catalog, trained_model, tmp_path):
    """A RunConfig on the test catalog and model; call it with strategy/backtest overrides."""
    from runtime.run_config import load_run_config

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
