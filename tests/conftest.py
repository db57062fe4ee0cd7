"""Shared fixtures: a small synthetic catalog and a quickly trained model (session scope)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from catalogs.catalog import read_bars_frame
from catalogs.catalog import write_bars
from catalogs.instruments import make_perpetual
from catalogs.synthetic import generate_bars
from scoremodel.cond_training import ConditionalTrainConfig
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
FAST_CONDITIONAL = ConditionalTrainConfig(hidden=32, max_epochs=3, batch_size=512, seed=3)
FAST_FIT = FitConfig(train=FAST_TRAINING, conditional=FAST_CONDITIONAL)


# Tests that use these fixtures train a model, run a backtest or start a live node: `slow`.
HEAVY_FIXTURES = frozenset({"trained_model", "minute_model", "run_config", "market", "live_bars"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the heavy tests ``slow`` (``pytest -m "not slow"`` is the quick loop), and run the
    ``bybit_account`` tests first: once a backtest or sandbox used venue BYBIT, Nautilus (1.231)
    computes every later BYBIT account in the process from fills, on top of the venue's wallet
    updates (see runtime.live.check_venue_accounts). Order is only an optimisation:
    :func:`pytest_pyfunc_call` runs such a test in a fresh interpreter when it comes later."""
    for item in items:
        if HEAVY_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    items.sort(key=lambda item: item.get_closest_marker("bybit_account") is None)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """A ``bybit_account`` test in a process that already simulated BYBIT runs alone in a fresh
    interpreter (its result is this test's result)."""
    if pyfuncitem.get_closest_marker("bybit_account") is None or _bybit_accounts_are_real():
        return None
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", pyfuncitem.nodeid]
    done = subprocess.run(
        command, cwd=pyfuncitem.config.rootpath, capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        pytest.fail(f"in a fresh process:\n{(done.stdout + done.stderr)[-6000:]}")
    return True


def _bybit_accounts_are_real() -> bool:
    from runtime.live import LiveError
    from runtime.live import check_venue_accounts

    try:
        check_venue_accounts("demo")
    except LiveError:
        return False
    return True


@pytest.fixture
def market(live_bars):
    """The loopback Bybit emulator serving ``live_bars`` as a live market."""
    from tests.live_support import LiveMarket

    market = LiveMarket(live_bars)
    yield market
    market.stop()


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
    model = fit_model(bars, BAR_TYPE, FAST_FIT, progress=False)
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
    config = FitConfig(train=FAST_TRAINING, conditional=FAST_CONDITIONAL, modes=("score", "edge"))
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
        # score mode unless a test asks otherwise: it trades on this market, which the tests
        # of the engine, reports and equivalences need (edge mode stays flat on it)
        fields = {"model_path": str(trained_model), "signal_mode": "score", **strategy}
        run = load_run_config(**fields)
        values = {
            "catalog": str(synthetic_catalog),
            "report_dir": str(tmp_path / "report"),
            "tearsheet": False,
            **(backtest or {}),
        }
        settings = dataclasses.replace(run.backtest, **values)
        return dataclasses.replace(run, backtest=settings)

    return make
