"""The evaluation's simulator charges funding by the engine's rule and models maker execution;
the cost-aware policy prices a round trip at the fee of the execution style in force."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from catalogs import generate_bars
from catalogs import make_perpetual
from catalogs import write_bars
from catalogs.catalog import read_bars_frame
from catalogs.funding import synthetic_funding
from catalogs.funding import write_funding
from evaluation.report import markdown
from evaluation.simulate import FUNDING
from evaluation.simulate import FUNDING_TIMES
from evaluation.simulate import Execution
from evaluation.simulate import ForecastPath
from evaluation.simulate import simulate_forecasts
from evaluation.simulate import simulate_leverage
from evaluation.simulate import with_funding
from evaluation.walk_forward import costs_summary
from evaluation.walk_forward import evaluate
from evaluation.walk_forward import funded_bars
from evaluation.walk_forward import run_execution
from policy.calendar import bars_per_year
from policy.costs import execution_fee
from policy.settings import PolicySettings
from tests.test_evaluation_cli import TINY
from tests.test_funding import BAR_TYPE
from tests.test_funding import INSTRUMENT
from tests.test_funding import run_schedule

HOURLY = bars_per_year(3600)
FREE = PolicySettings(no_trade_band=0.0)  # every change is traded
HOLD = np.nan  # simulate_leverage: keep the position


def frame(opens, closes, lows=None, highs=None, start="2024-01-01 01:00") -> pd.DataFrame:
    """Hourly bars closing at ``start`` + n hours."""
    opens, closes = np.asarray(opens, float), np.asarray(closes, float)
    return pd.DataFrame(
        {
            "open": opens,
            "high": np.maximum(opens, closes) if highs is None else np.asarray(highs, float),
            "low": np.minimum(opens, closes) if lows is None else np.asarray(lows, float),
            "close": closes,
            "volume": 1.0,
        },
        index=pd.date_range(start, periods=len(closes), freq="1h", tz="UTC"),
    )


def rates_at(values: dict[str, float]) -> pd.Series:
    return pd.Series(list(values.values()), index=pd.DatetimeIndex(list(values), tz="UTC"))


def unit_account(**fields) -> Execution:
    """Equity 1 at the start and no fees unless given: hand computations in equity units."""
    return Execution(**{"taker_fee": 0.0, "starting_balance": 1.0, "close_at_end": False} | fields)


# -- funding -------------------------------------------------------------------------------------


def test_funding_matches_a_hand_computation_long_and_short_and_the_last_close_before_it():
    opens = [100, 101, 103, 104, 100, 98, 99]
    closes = [100, 102, 104, 101, 99, 98, 97]  # closing 01:00 .. 07:00
    rates = rates_at(
        {
            "2024-01-01 00:30": 0.003,  # before the first close: no mark, nothing charged
            "2024-01-01 02:00": 0.001,  # long, at a close, positive: paid
            "2024-01-01 03:30": -0.002,  # long, between closes, negative: received, mark 03:00
            "2024-01-01 05:00": 0.0015,  # short, at a close, positive: received
            "2024-01-01 05:30": -0.001,  # short, between closes, negative: paid, mark 05:00
            "2024-01-01 06:30": 0.004,  # flat (closed at 07:00's open): nothing
        }
    )
    bars = with_funding(frame(opens, closes), rates)
    # long 1x from bar 0's close (filled at 01:00-02:00's open), short 1x from bar 3's close,
    # flat from bar 5's close
    leverage = np.array([1.0, HOLD, HOLD, -1.0, HOLD, 0.0, HOLD])
    result = simulate_leverage(bars, leverage, FREE, HOURLY, unit_account(), risk_rules=False)

    long = 1.0 / 100
    paid_0200 = long * 102 * 0.001
    paid_0330 = long * 104 * -0.002
    equity_3 = 1.0 + long * (101 - 101) - paid_0200 - paid_0330
    short = -equity_3 / 101
    paid_0500 = short * 99 * 0.0015
    paid_0530 = short * 99 * -0.001
    expected = [0.0, paid_0200, 0.0, paid_0330, paid_0500, paid_0530, 0.0]
    np.testing.assert_allclose(result.funding.to_numpy(), expected, rtol=1e-12, atol=1e-15)
    assert [np.sign(x) for x in (paid_0200, paid_0330, paid_0500, paid_0530)] == [1, -1, -1, 1]
    assert result.funding_times == 5  # the 00:30 rate lies before the bars
    net = 1.0 + result.gross_pnl.sum() - result.fees.sum() - result.funding.sum()
    assert result.equity.iloc[-1] == pytest.approx(net, rel=1e-12)
    unfunded = simulate_leverage(
        frame(opens, closes), leverage, FREE, HOURLY, unit_account(), risk_rules=False
    )
    assert unfunded.funding_times is None and unfunded.funding.sum() == 0.0


def test_nothing_is_charged_while_flat():
    bars = with_funding(
        frame([100] * 5, [100] * 5), rates_at({"2024-01-01 02:00": 0.01, "2024-01-01 04:00": -0.01})
    )
    result = simulate_leverage(bars, np.zeros(5), FREE, HOURLY, unit_account(), risk_rules=False)
    assert (result.funding == 0.0).all() and (result.equity == 1.0).all()
    assert result.funding_times == 2


@pytest.fixture(scope="module")
def hour_catalog(tmp_path_factory):
    """72 one-hour bars closing 2024-01-01 01:00 .. 2024-01-04 00:00 (as tests/test_funding)."""
    path = tmp_path_factory.mktemp("funding-catalog")
    bars = generate_bars(72, interval="1h", seed=2)
    bars.index = pd.date_range("2024-01-01 01:00", periods=72, freq="1h", tz="UTC")
    write_bars(path, bars, make_perpetual("BTCUSDT"), "1h")
    return path


def test_the_simulator_charges_what_the_engine_s_funding_module_charges(hour_catalog):
    times = pd.date_range("2024-01-01 08:00", "2024-01-03 16:00", freq="8h", tz="UTC")
    rates = pd.Series([0.0001, -0.0002, 0.0003, -0.0001, 0.0005, -0.0004, 0.0002, 0.0001], times)
    # the engine: 2 long from bar 1's close, 1 short from bar 19's, flat from bar 43's
    _, module, _ = run_schedule(hour_catalog, {1: 2.0, 19: -1.0, 43: 0.0}, rates)

    # the simulator, the same positions from the same closes (no fees; the first pass gives the
    # equity at bar 19 so that the short is exactly 1)
    bars = with_funding(read_bars_frame(hour_catalog, BAR_TYPE), rates)
    closes, start = bars["close"].to_numpy(), 100_000.0
    account = unit_account(starting_balance=start)
    leverage = np.full(len(bars), HOLD)
    leverage[1] = 2.0 * closes[1] / start
    first = simulate_leverage(bars, leverage, FREE, HOURLY, account, risk_rules=False)
    leverage[19] = -1.0 * closes[19] / (first.equity.iloc[19] * start)
    leverage[43] = 0.0
    result = simulate_leverage(bars, leverage, FREE, HOURLY, account, risk_rules=False)

    charged = result.funding[result.funding != 0.0] * start
    assert len(module.payments) == len(charged) == 5
    assert list(charged.index) == [pd.Timestamp(p.ts_ns, tz="UTC") for p in module.payments]
    np.testing.assert_allclose(charged.to_numpy(), [p.paid for p in module.payments], rtol=1e-9)


def test_the_backtest_node_example_adds_the_funding_module_by_import_path(hour_catalog, tmp_path):
    import shutil

    from nautilus_trader.common.config import ActorFactory

    from runtime.funding import CatalogFundingModule
    from tests.test_backtest_node_example import load_example

    catalog = tmp_path / "catalog"
    shutil.copytree(hour_catalog, catalog)
    times = pd.date_range("2024-01-01 08:00", "2024-01-03 16:00", freq="8h", tz="UTC")
    write_funding(catalog, pd.Series(0.0001, index=times), INSTRUMENT, pd.Timedelta(hours=8))
    config = load_example().build_run_config(str(catalog), "unused-model", end="2024-01-03")
    [module] = [ActorFactory.create(m) for m in config.venues[0].modules]
    assert isinstance(module, CatalogFundingModule)
    assert module.funding_times == 6  # the rates up to the window's end, from the catalog


def test_catalog_bars_get_the_catalog_s_funding_rates_and_none_without_them(hour_catalog, tmp_path):
    import shutil

    bars = read_bars_frame(hour_catalog, BAR_TYPE)
    assert funded_bars(bars, hour_catalog, INSTRUMENT) is bars  # no rates stored: no funding
    catalog = tmp_path / "catalog"
    shutil.copytree(hour_catalog, catalog)
    times = pd.date_range("2024-01-01 08:00", "2024-01-03 16:00", freq="8h", tz="UTC")
    write_funding(catalog, pd.Series(0.0001, index=times), INSTRUMENT, pd.Timedelta(hours=8))
    funded = funded_bars(bars.loc[:"2024-01-02 12:00"], catalog, INSTRUMENT)
    assert funded[FUNDING_TIMES].sum() == 4  # the rates inside the bars' window
    at = pd.Timestamp("2024-01-01 16:00", tz="UTC")
    assert funded.loc[at, FUNDING] == pytest.approx(bars.loc[at, "close"] * 0.0001)


# -- maker execution -----------------------------------------------------------------------------


def test_a_maker_limit_fills_only_when_a_later_bar_trades_through_and_expires_after_n_bars():
    tick = 0.5
    opens = [100, 100, 100, 101, 101, 101, 101, 103]
    closes = [100, 100, 101, 101, 101, 101, 101, 103]
    lows = [99, 99.5, 99.4, 100, 100, 100, 100, 102]  # bar 1 touches the buy limit 99.5
    highs = [101, 101, 101, 101.5, 101.5, 101.5, 101, 104]  # bars 4-5 touch the sell 101.5
    bars = frame(opens, closes, lows, highs)
    account = unit_account(
        style="maker", maker_fee=0.0002, taker_fee=0.00055, maker_timeout_bars=2, price_tick=tick
    )
    leverage = np.array([1.0, HOLD, HOLD, 0.0, 0.0, 0.0, 0.0, HOLD])
    result = simulate_leverage(bars, leverage, FREE, HOURLY, account, risk_rules=False)

    q = 1.0 / 100
    lev = result.leverage.to_numpy()
    assert lev[1] == 0.0  # a touch of 99.5 does not fill the buy
    assert lev[2] == pytest.approx(q * 101 / result.equity.iloc[2])  # bar 2's low 99.4 does
    # the sell at 101.5 (bar 3's close + a tick) is touched by bars 4 and 5, never traded
    # through: cancelled after 2 bars, and bar 5's close sends nothing; bar 6's close sends a
    # fresh sell at 101.5, which bar 7 opens through (103): filled at that better open
    assert (lev[3:7] > 0).all() and lev[7] == 0.0
    assert (result.fills_maker, result.fills_taker, result.unfilled) == (2, 0, 1)
    fees = result.fees.to_numpy()
    assert fees[2] == pytest.approx(0.0002 * q * 99.5)  # the maker fee at the limit: no slippage
    assert fees[7] == pytest.approx(0.0002 * q * 103)
    assert np.count_nonzero(fees) == 2
    gross = result.gross_pnl.to_numpy()
    assert gross[2] == pytest.approx(q * (101 - 99.5))  # bought at the limit, marked at the close
    assert gross[7] == pytest.approx(q * (103 - 101) - q * (103 - 103))

    taker = simulate_leverage(
        bars, leverage, FREE, HOURLY, replace(account, style="taker"), risk_rules=False
    )
    assert (taker.fills_maker, taker.fills_taker, taker.unfilled) == (0, 2, 0)
    assert taker.fees.iloc[1] == pytest.approx(0.00055 * q * 100)  # next open, taker fee


def test_the_final_flatten_is_a_market_order_at_the_taker_fee_under_maker_execution():
    bars = frame([100, 100, 100], [100, 100, 100], lows=[99, 99, 99])
    account = unit_account(style="maker", maker_fee=0.0002, taker_fee=0.001, close_at_end=True)
    result = simulate_leverage(bars, np.array([1.0, HOLD, HOLD]), FREE, HOURLY, account, False)
    assert (result.fills_maker, result.fills_taker) == (1, 1)
    assert result.fees.iloc[-1] == pytest.approx(0.001 * 0.01 * 100)


def test_the_fee_of_the_execution_style_decides_whether_an_edge_is_traded():
    assert execution_fee("maker", 0.0002, 0.00055) == 0.0002
    assert execution_fee("taker", 0.0002, 0.00055) == 0.00055
    n = 6
    bars = frame([100] * n, [100] * n)
    settings = PolicySettings()  # round trip 2 (fee + 1 bp): maker 6 bp, taker 13 bp
    margin = 1.0 + settings.edge_margin
    maker_band = margin * settings.costs(0.0002).round_trip
    taker_band = margin * settings.costs(0.00055).round_trip
    mean = 0.5 * (maker_band + taker_band)  # beats the maker round trip, not the taker one
    assert maker_band < mean < taker_band
    path = ForecastPath(
        mean=np.full(n, mean),
        std=np.full(n, 0.002),
        p_above_cost=np.full(n, 0.9),
        p_below_cost=np.full(n, 0.01),
        in_distribution=np.ones(n, dtype=bool),
        bar_volatility=np.full(n, 0.005),
    )
    maker = Execution(style="maker")
    traded = simulate_forecasts(bars, path, settings, HOURLY, 6, maker)
    flat = simulate_forecasts(bars, path, settings, HOURLY, 6, replace(maker, style="taker"))
    assert traded.target[0] > 0 and traded.decisions[0].order > 0
    assert (flat.target == 0.0).all() and flat.fills_taker == 0


# -- the walk-forward evaluation -----------------------------------------------------------------


def test_an_evaluation_under_maker_execution_reports_fills_unfilled_orders_and_funding(tmp_path):
    from runtime.run_config import load_run_config

    config = tmp_path / "run.yaml"
    config.write_text("backtest:\n  execution: maker\n  maker_timeout_bars: 2\n")
    execution = run_execution(load_run_config(config))
    assert (execution.style, execution.maker_timeout_bars, execution.fee) == ("maker", 2, 0.0002)
    bars = generate_bars(3_000, interval="1h", seed=5)
    bars = with_funding(bars, synthetic_funding(bars, seed=1))
    cfg = replace(TINY, execution=execution)
    results, _, _ = evaluate(bars, "synthetic", cfg, log=lambda _: None)

    strategies = results["overall"]["strategies"]
    score = strategies["model_score"]  # the chapter's rules trade on this market
    assert score["fills_maker"] > 0 and score["unfilled"] > 0
    assert score["fills_taker"] <= len(results["folds"])  # only the final flatten of a window
    assert score["funding"] != 0.0
    hold = strategies["buy_and_hold"]
    assert hold["funding"] != 0.0 and hold["fills_maker"] >= 1
    costs = results["costs"]
    assert costs["execution"] == "maker" and costs["funding_charged"]
    report = markdown({**results, "verdict": ["v"], "policy_source": str(config)}, [])
    assert "maker execution" in report and "fills maker / taker" in report
    assert "Sharpe after fees and funding" in report
    assert "charged from the catalog's funding rates" in report


def test_without_funding_rates_the_evaluation_says_funding_was_not_charged():
    bars = frame([100] * 4, [101] * 4)
    unfunded = simulate_leverage(bars, np.ones(4), FREE, HOURLY, unit_account(), risk_rules=False)
    funded = simulate_leverage(
        with_funding(bars, rates_at({"2024-01-01 03:00": 0.001})), np.ones(4), FREE, HOURLY,
        unit_account(), risk_rules=False,
    )  # fmt: skip
    runs = [SimpleNamespace(sims={"model": funded}), SimpleNamespace(sims={"model": unfunded})]
    costs = costs_summary(Execution(), runs)
    assert costs["funding_charged"] is False and costs["funding"].startswith("not charged")
    assert costs["execution"] == "taker" and costs["fee"] == 0.00055
    assert costs_summary(Execution(), runs[:1])["funding_charged"] is True
