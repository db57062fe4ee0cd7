"""Synthetic market generator: determinism, validity and stylised facts."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from catalogs.bars import BAR_COLUMNS
from catalogs.bars import validate_bars
from catalogs.synthetic import RegimeParams
from catalogs.synthetic import SyntheticMarket
from catalogs.synthetic import SyntheticMarketConfig
from catalogs.synthetic import generate_bars
from catalogs.synthetic import simulate_market

MINUTES_PER_YEAR = 365 * 24 * 60
HOURS_PER_YEAR = 365 * 24


@pytest.fixture(scope="module")
def minute_market() -> SyntheticMarket:
    return simulate_market(200_000, "1min", seed=11)


@pytest.fixture(scope="module")
def hourly_bars() -> pd.DataFrame:
    return generate_bars(20_000, "1h", seed=5)


def log_returns(bars: pd.DataFrame) -> np.ndarray:
    return np.diff(np.log(bars["close"].to_numpy()))


def autocorrelation(values: np.ndarray, lag: int = 1) -> float:
    return float(np.corrcoef(values[:-lag], values[lag:])[0, 1])


def test_same_seed_gives_identical_frames_and_other_seeds_differ() -> None:
    first = generate_bars(5_000, "5min", seed=3)
    again = generate_bars(5_000, "5min", seed=3)
    other = generate_bars(5_000, "5min", seed=4)

    pd.testing.assert_frame_equal(first, again)
    assert not first["close"].equals(other["close"])


def test_output_is_a_clean_canonical_frame(minute_market: SyntheticMarket) -> None:
    bars = minute_market.bars

    _, report = validate_bars(bars, "1min", gap_policy="error")

    assert report.is_clean
    assert list(bars.columns) == BAR_COLUMNS
    assert (bars.dtypes == np.float64).all()
    assert bars.index.name == "ts_close"
    assert bars.index[0] == pd.Timestamp("2024-01-01 00:01", tz="UTC")
    assert bars["open"].iloc[0] == 40_000.0


def test_bars_open_at_previous_close_and_ohlc_is_consistent(
    minute_market: SyntheticMarket,
) -> None:
    bars = minute_market.bars
    o, h, low, c = (bars[name].to_numpy() for name in ("open", "high", "low", "close"))

    assert np.array_equal(o[1:], c[:-1])
    assert (h >= np.maximum(o, c)).all()
    assert (low <= np.minimum(o, c)).all()
    assert (low > 0).all()
    assert (h > np.maximum(o, c)).mean() > 0.5  # intrabar extremes, not just max(open, close)
    assert np.allclose(bars["close"], bars["close"].round(1))  # BTCUSDT tick 0.1


def test_volatility_clusters(minute_market: SyntheticMarket) -> None:
    returns = log_returns(minute_market.bars)

    acf_returns = autocorrelation(returns)
    acf_abs = autocorrelation(np.abs(returns))

    assert abs(acf_returns) < 0.05
    assert acf_abs > 0.15
    assert acf_abs > acf_returns + 0.1
    assert autocorrelation(np.abs(returns), lag=60) > 0.1  # persistent over an hour


def test_returns_are_fat_tailed(minute_market: SyntheticMarket, hourly_bars: pd.DataFrame) -> None:
    assert pd.Series(log_returns(minute_market.bars)).kurt() > 3.0
    assert pd.Series(log_returns(hourly_bars)).kurt() > 1.0


def test_volume_co_moves_with_absolute_returns(minute_market: SyntheticMarket) -> None:
    bars = minute_market.bars
    absolute_returns = np.abs(log_returns(bars))

    correlation = np.corrcoef(bars["volume"].to_numpy()[1:], absolute_returns)[0, 1]

    assert correlation > 0.3
    assert (bars["volume"] >= 0).all()


def test_annual_volatility_is_realistic_at_both_intervals(
    minute_market: SyntheticMarket, hourly_bars: pd.DataFrame
) -> None:
    minute_vol = log_returns(minute_market.bars).std() * np.sqrt(MINUTES_PER_YEAR)
    hourly_vol = log_returns(hourly_bars).std() * np.sqrt(HOURS_PER_YEAR)

    assert 0.45 < minute_vol < 0.75
    assert 0.45 < hourly_vol < 0.75


def test_volume_scales_with_the_interval(
    minute_market: SyntheticMarket, hourly_bars: pd.DataFrame
) -> None:
    minute_volume_per_hour = minute_market.bars["volume"].mean() * 60
    hourly_volume = hourly_bars["volume"].mean()

    assert 0.5 < minute_volume_per_hour / hourly_volume < 2.0


def test_regime_path_is_exposed_and_regimes_differ(minute_market: SyntheticMarket) -> None:
    regimes = minute_market.regimes
    returns = pd.Series(np.log(minute_market.bars["close"])).diff()

    assert regimes.index.equals(minute_market.bars.index)
    assert set(regimes.cat.categories) == {"calm", "trend_up", "trend_down", "turbulent"}
    assert set(regimes.unique()) == set(regimes.cat.categories)
    realised = returns.groupby(regimes.to_numpy(), observed=True).std()
    assert realised["turbulent"] > 1.5 * realised["calm"]
    assert minute_market.jumps.sum() > 0
    assert (minute_market.annual_vol > 0).all()


def test_regime_durations_follow_the_configuration(minute_market: SyntheticMarket) -> None:
    codes = minute_market.regimes.cat.codes.to_numpy()
    run_starts = np.flatnonzero(np.diff(codes)) + 1
    run_lengths = np.diff(np.concatenate(([0], run_starts, [len(codes)])))
    run_codes = codes[np.concatenate(([0], run_starts))]
    calm_code = list(minute_market.regimes.cat.categories).index("calm")

    mean_calm_hours = run_lengths[run_codes == calm_code].mean() / 60

    assert 24 < mean_calm_hours < 96  # configured mean: 48 h


def test_configuration_is_validated() -> None:
    config = SyntheticMarketConfig()
    rows_not_summing_to_one = ((0, 0.5, 0.5, 0), (0.5, 0, 0.5, 0), (0.5, 0.5, 0, 0), (0.5, 0, 0, 0))
    with pytest.raises(ValueError, match="must sum to 1"):
        dataclasses.replace(config, regime_transitions=rows_not_summing_to_one)
    with pytest.raises(ValueError, match="zero diagonal"):
        dataclasses.replace(config, regime_transitions=((1, 0, 0, 0),) * 4)
    with pytest.raises(ValueError, match="jump variance exceeds"):
        dataclasses.replace(config, jump_std=0.5)
    with pytest.raises(ValueError, match="not on the"):
        generate_bars(10, "1h", config=dataclasses.replace(config, start="2024-01-01 00:30"))
    with pytest.raises(ValueError, match="n_bars must be a positive integer"):
        generate_bars(0)


def test_start_price_and_start_come_from_the_config() -> None:
    config = SyntheticMarketConfig(start_price=2_500.0, start="2023-06-01", price_tick=0.01)

    bars = generate_bars(48, "1h", seed=1, config=config)

    assert bars["open"].iloc[0] == 2_500.0
    assert bars.index[0] == pd.Timestamp("2023-06-01 01:00", tz="UTC")
    assert bars.index[-1] == pd.Timestamp("2023-06-03 00:00", tz="UTC")


def test_clustering_parameters_drive_volatility_clustering() -> None:
    flat_regimes = (
        RegimeParams("a", 0.0, 1.0, 24.0, 1.0),
        RegimeParams("b", 0.0, 1.0, 24.0, 1.0),
    )
    base = SyntheticMarketConfig(
        regimes=flat_regimes, regime_transitions=((0.0, 1.0), (1.0, 0.0)), jumps_per_year=0.0
    )
    no_clustering = dataclasses.replace(
        base, vol_clustering_fast_vol=0.0, vol_clustering_slow_vol=0.0
    )

    clustered = np.abs(log_returns(generate_bars(50_000, "1min", seed=2, config=base)))
    unclustered = np.abs(log_returns(generate_bars(50_000, "1min", seed=2, config=no_clustering)))

    assert autocorrelation(clustered) > 0.1
    assert abs(autocorrelation(unclustered)) < 0.03
