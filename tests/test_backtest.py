"""Event-level backtests in the real Nautilus engine over a real ParquetDataCatalog."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from nautilus_trader.common.actor import Actor

from catalogs.catalog import read_bars_frame
from runtime.backtest import run_backtest
from runtime.reports import summarise
from runtime.reports import write_report
from scoremodel.features import compute_features
from scoremodel.inference import ScoreModel
from strategies.diagnostics import DIAGNOSTICS_DATA_TYPE
from strategies.diagnostics import ScoreMatchingDiagnostics
from tests.conftest import BAR_TYPE

# A permissive configuration trades often enough for the assertions below; the percentile
# density rule (the reliability rule finds no unreliable density region on this market).
ACTIVE = {"min_confidence": 0.5, "consistency_bars": 2, "density_rule": "percentile"}


@pytest.fixture
def outcome(run_config):
    result = run_backtest(run_config(**ACTIVE))
    yield result
    result.engine.dispose()


def test_backtest_trades_pays_fees_and_both_filters_block_some_bars(outcome, tmp_path):
    summary = write_report(outcome, tmp_path / "report")
    decided = summary["decided_bars"]
    assert decided > 1_000
    assert summary["orders"] > 10 and summary["fills"] > 10
    assert summary["fees"] > 0
    assert 0 < summary["filtered_by_density"] < decided
    assert 0 < summary["filtered_by_confidence"] < decided
    assert summary["traded_bars"] > 0
    for name in ("summary.json", "fills.csv", "positions.csv", "diagnostics.parquet", "equity.png"):
        assert (tmp_path / "report" / name).is_file(), name
    stored = json.loads((tmp_path / "report" / "summary.json").read_text())
    for key in (
        "bars", "orders", "fills", "final_equity", "total_return", "sharpe", "sortino",
        "max_drawdown", "win_rate", "in_distribution_ratio", "avg_confidence",
        "filtered_by_density", "filtered_by_confidence", "halted", "buy_and_hold",
    ):  # fmt: skip
        assert key in stored, key


def test_position_size_falls_when_volatility_rises(outcome):
    diagnostics = outcome.strategy.recorder.frame()
    states = compute_features(outcome.bars).reindex(diagnostics.index)
    traded = diagnostics[(diagnostics["blocked_by"] == "NONE") & (diagnostics["target_qty"] != 0)]
    assert len(traded) > 30
    notional_per_confidence = (traded["target_qty"].abs() * traded["close"]) / traded["confidence"]
    vol = states.loc[traded.index, "vol_20"]
    low, high = vol <= vol.quantile(0.3), vol >= vol.quantile(0.7)
    assert notional_per_confidence[high].median() < 0.8 * notional_per_confidence[low].median()


def test_orders_fill_at_the_next_bars_open_not_the_signal_bar_close(outcome):
    fills = outcome.engine.trader.generate_order_fills_report()
    bars = outcome.bars
    first = fills.iloc[0]
    decided_at = pd.Timestamp(first["ts_init"])
    filled_at = pd.Timestamp(first["ts_last"])
    assert filled_at > decided_at
    next_open = bars["open"].iloc[bars.index.get_loc(decided_at) + 1]
    tick = 0.1
    assert abs(float(first["avg_px"]) - next_open) <= 2 * tick + 1e-9


def test_engine_signals_equal_the_batch_computation(outcome, trained_model):
    diagnostics = outcome.strategy.recorder.frame()
    model = ScoreModel.load(trained_model, density_rule=ACTIVE["density_rule"])
    bars = read_bars_frame(outcome.run.backtest.catalog, BAR_TYPE)
    states = compute_features(bars).loc[diagnostics.index]
    batch = model.assess_batch(states)
    for column in ("signal", "confidence", "log_density"):
        assert np.abs(diagnostics[column].to_numpy() - batch[column].to_numpy()).max() <= 1e-9
    assert (diagnostics["in_distribution"].to_numpy() == batch["in_distribution"].to_numpy()).all()


def test_same_seed_gives_identical_summaries(run_config):
    summaries = []
    for _ in range(2):
        result = run_backtest(run_config(**ACTIVE))
        summary = summarise(result)
        result.engine.dispose()
        summary.pop("wall_seconds")
        summaries.append(summary)
    assert summaries[0] == summaries[1]


def write_variant(bars: pd.DataFrame, directory) -> str:
    from catalogs.catalog import write_bars
    from catalogs.instruments import make_perpetual

    write_bars(directory, bars, make_perpetual("BTCUSDT"), "1h")
    return str(directory)


def reopen(bars: pd.DataFrame, i: int, price: float) -> None:
    """Set bar i's open (the bar after a splice) and keep its high/low consistent."""
    ts = bars.index[i]
    bars.loc[ts, "open"] = price
    bars.loc[ts, "high"] = max(bars.loc[ts, "high"], price)
    bars.loc[ts, "low"] = min(bars.loc[ts, "low"], price)


def test_changing_the_future_never_changes_a_past_decision(outcome, run_config, tmp_path):
    diagnostics = outcome.strategy.recorder.frame()
    cut = diagnostics.index[len(diagnostics) // 2]
    bars = read_bars_frame(outcome.run.backtest.catalog, BAR_TYPE)
    future = bars.index > cut
    other = bars.copy()
    other.loc[future, ["open", "high", "low", "close"]] *= 1.3
    other.loc[future, "volume"] *= 3.0
    reopen(other, bars.index.get_loc(cut) + 1, bars.loc[cut, "close"])
    other[["open", "high", "low", "close"]] = other[["open", "high", "low", "close"]].round(1)
    result = run_backtest(run_config({"catalog": write_variant(other, tmp_path / "c")}, **ACTIVE))
    changed = result.strategy.recorder.frame()
    result.engine.dispose()
    past = diagnostics.index <= cut
    columns = ["signal", "confidence", "log_density", "target_qty", "position_qty", "equity"]
    pd.testing.assert_frame_equal(diagnostics.loc[past, columns], changed.loc[past, columns])
    assert not np.allclose(diagnostics.loc[~past, "close"], changed.loc[~past, "close"])


def test_a_crash_makes_the_drawdown_rule_flatten_and_halt(outcome, run_config, tmp_path):
    diagnostics = outcome.strategy.recorder.frame()
    kept = np.sign(diagnostics["target_qty"]) == np.sign(diagnostics["position_qty"])
    holding = diagnostics[(diagnostics["position_qty"] != 0) & kept]  # held into the next bar
    exposure = holding["position_qty"].abs() * holding["close"] / holding["equity"]
    k = exposure.idxmax()  # the bar after it moves against the largest position
    side = np.sign(holding.loc[k, "position_qty"])
    bars = read_bars_frame(outcome.run.backtest.catalog, BAR_TYPE)
    i = bars.index.get_loc(k) + 1  # the next bar moves 15 % against the position
    crashed = bars.copy()
    factor = 1.0 - 0.15 * side
    crashed.iloc[i:, :4] *= factor
    reopen(crashed, i, bars["close"].iloc[i - 1])
    crashed[["open", "high", "low", "close"]] = crashed[["open", "high", "low", "close"]].round(1)
    run = run_config(
        {"catalog": write_variant(crashed, tmp_path / "crash")},
        max_drawdown=0.05,
        reduce_drawdown=0.02,
        daily_loss_limit=0.5,
        **ACTIVE,
    )
    result = run_backtest(run)
    after = result.strategy.recorder.frame()
    summary = summarise(result)
    result.engine.dispose()
    assert summary["halted"] and "max drawdown" in summary["halt_reason"]
    crash_bar = bars.index[i]
    assert after.loc[crash_bar, "risk_status"] == "HALTED"
    assert after.loc[crash_bar, "target_qty"] == 0.0
    later = after.loc[after.index > bars.index[i + 1]]
    assert len(later) > 10
    assert (later["position_qty"] == 0).all()  # flattened on the next bar, never re-entered
    assert (later["blocked_by"] == "RISK").all()


class DiagnosticsListener(Actor):
    """A user's actor that subscribes to the strategy's per-bar diagnostics."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[ScoreMatchingDiagnostics] = []

    def on_start(self) -> None:
        self.msgbus.subscribe(f"data.{DIAGNOSTICS_DATA_TYPE.topic}", self.received.append)


@pytest.mark.parametrize("publish", [True, False])
def test_diagnostics_reach_a_subscribed_actor_only_when_published(run_config, publish):
    listener = DiagnosticsListener()
    result = run_backtest(run_config(publish_diagnostics=publish, **ACTIVE), actors=[listener])
    recorded = result.strategy.recorder.frame()  # the report's copy, recorded either way
    result.engine.dispose()
    if not publish:
        assert listener.received == []
        return
    assert len(listener.received) == len(recorded) > 0
    signals = [d.signal for d in listener.received]
    assert np.allclose(signals, recorded["signal"].to_numpy())
    assert [d.ts_event for d in listener.received] == list(recorded.index.asi8)
