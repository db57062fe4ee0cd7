"""Backtest = live with retraining (issue 22, item 9): the live node against the loopback Bybit
emulator, replaying a bar series with a retrain schedule (training in a separate process), and
the Nautilus backtest over the same bars with the same schedule and delay, make the same
decisions with the same model versions at the same bars."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from catalogs.catalog import write_bars
from catalogs.instruments import make_perpetual
from runtime.backtest import run_backtest
from runtime.run_config import load_run_config
from runtime.run_config import with_backtest_overrides
from scoremodel.registry import Registry
from tests.live_support import LiveHarness
from tests.live_support import LiveMarket
from tests.live_support import clear_keys
from tests.live_support import live_settings
from tests.live_support import strategy_settings

HISTORY = 420  # bars the emulator holds before the first live one (the first training window)
PUSHED = 130  # live bars replayed
MINUTE = pd.Timedelta(minutes=1)
RETRAIN = {"every": 40, "window": 400, "min_bars": 300, "delay_bars": 2, "epochs": 1}


def bars_frame(bars: list) -> pd.DataFrame:
    """Nautilus bars as a bar frame (index: close time, UTC)."""
    return pd.DataFrame(
        {
            "open": [b.open.as_double() for b in bars],
            "high": [b.high.as_double() for b in bars],
            "low": [b.low.as_double() for b in bars],
            "close": [b.close.as_double() for b in bars],
            "volume": [b.volume.as_double() for b in bars],
        },
        index=pd.to_datetime([b.ts_event for b in bars], unit="ns", utc=True),
    )


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_live_retraining_decides_as_the_backtest_of_the_same_bars(
    minute_bars, minute_model, tmp_path, monkeypatch
):
    clear_keys(monkeypatch)  # the sandbox needs no key
    market = LiveMarket(minute_bars.iloc[-(HISTORY + PUSHED) :], history=HISTORY, headroom_s=25.0)
    strategy = strategy_settings(minute_model, record_diagnostics=True, history_page_bars=200)
    config = tmp_path / "live.yaml"
    config.write_text(
        json.dumps(
            {
                "strategy": strategy,
                "live": live_settings(market.emu, tmp_path),
                "retrain": {**RETRAIN, "registry": str(tmp_path / "live-registry")},
            }
        )
    )
    harness = LiveHarness(load_run_config(config), "sandbox")
    try:
        harness.start()
        live = harness.strategy
        assert harness.wait_until(harness.warmed_up, timeout=30)
        for _ in range(PUSHED):
            harness.decide(market)
            # training takes less than delay_bars here: let the process finish before the next
            # bar, as the backtest (which trains in the engine's thread) assumes
            assert harness.wait_until(lambda: not live.lifecycle.trainer.busy, timeout=120)
            harness.sleep(0)
        live_record = live.recorder.frame()
        live_versions = live.lifecycle.versions()
        bars = bars_frame([*live.history, *live.live_bars])
    finally:
        harness.stop()
        market.stop()

    # the backtest over the same bars, with the same schedule
    first_live = live_record.index[0]
    catalog = tmp_path / "catalog"
    write_bars(catalog, bars[~bars.index.duplicated()], make_perpetual("BTCUSDT"), "1min")
    config.write_text(
        json.dumps(
            {
                "strategy": strategy,
                # the bar at start arrives with the warm-up history (the catalog's bounds are
                # inclusive): the first decided bar is the one after it, as live
                "backtest": {
                    "catalog": str(catalog),
                    "start": str(first_live - MINUTE),
                    "starting_balance": load_run_config(None).live.starting_balance,  # sandbox's
                },
                "retrain": RETRAIN,
            }
        )
    )
    run = with_backtest_overrides(load_run_config(config), report_dir=str(tmp_path / "report"))
    outcome = run_backtest(run)
    record = outcome.strategy.recorder.frame()
    versions = outcome.strategy.lifecycle.versions()
    lot = outcome.strategy.instrument.size_increment.as_double()
    outcome.engine.dispose()

    assert len(live_record) == PUSHED and record.index.equals(live_record.index)
    # the same versions, trained on the same bars, deciding the same bars
    assert [v["id"] for v in versions] == [v["id"] for v in live_versions]
    assert len([v for v in versions if v["bars_decided"]]) >= 2
    assert (record["model_version"] == live_record["model_version"]).all()
    assert Registry(tmp_path / "live-registry").current_id() == versions[-1]["id"] or not any(
        v["promoted"] for v in versions[1:]
    )
    same_side = np.sign(record["target_qty"]) == np.sign(live_record["target_qty"])
    close_size = (record["target_qty"] - live_record["target_qty"]).abs() <= lot + 1e-12
    same = (record["blocked_by"] == live_record["blocked_by"]) & same_side & close_size
    assert same.mean() >= 0.99, live_record[~same.to_numpy()].head()
    assert Path(tmp_path / "report" / "models" / "versions").is_dir()
