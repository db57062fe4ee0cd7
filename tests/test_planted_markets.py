"""Planted markets: frame format, triggers read from the state features, an exact oracle with
no lookahead, and an edge of the intended size."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from catalogs.planted import PlantedConfig
from catalogs.planted import demo_preset
from catalogs.planted import generate_planted
from catalogs.planted import preset
from catalogs.synthetic import generate_bars
from evaluation.metrics import spearman
from scoremodel.datasets import forward_returns
from scoremodel.features import compute_features

HORIZONS = (1, 3, 6)


@pytest.fixture(scope="module")
def reversal():
    return generate_planted(60_000, HORIZONS, seed=4, config=preset("volume_reversal"))


def labelled(market, h):
    """Oracle mean/std and the realised forward return where the label exists (after warm-up)."""
    forward = forward_returns(market.bars, h).to_numpy()
    keep = np.isfinite(forward)
    keep[:100] = False
    column = f"h{h}"
    return (
        market.oracle_mean[column].to_numpy()[keep],
        market.oracle_std[column].to_numpy()[keep],
        forward[keep],
    )


def test_frame_format_matches_the_synthetic_generator(reversal):
    bars = reversal.bars
    reference = generate_bars(10, interval="5min")
    assert list(bars.columns) == list(reference.columns)
    assert bars.index.name == reference.index.name and str(bars.index.tz) == "UTC"
    assert bars.index[0] == reference.index[0]  # close-stamped: start + one interval
    assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
    assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()
    assert np.allclose(bars["open"].to_numpy()[1:], bars["close"].to_numpy()[:-1], rtol=1e-12)


def test_triggers_are_read_from_the_state_features(reversal):
    features = compute_features(reversal.bars)
    events = reversal.events.loc[features.index]
    assert events.sum() > 500
    # every reversal event is a bar whose volume_ratio_20 feature exceeds the threshold
    assert (features.loc[events, "volume_ratio_20"] > PlantedConfig().volume_threshold).all()
    config = preset("vol_momentum")
    momentum = generate_planted(20_000, HORIZONS, seed=2, config=config)
    features = compute_features(momentum.bars)
    previous_ratio = features["vol_ratio_5_20"].shift(1)
    earlier_ratio = features["vol_ratio_5_20"].shift(2)
    events = momentum.events.loc[features.index]
    assert events.sum() > 100
    # a momentum event follows a bar whose vol_ratio_5_20 crossed the threshold
    assert (previous_ratio[events] > config.vol_ratio_threshold).all()
    assert (earlier_ratio[events] <= config.vol_ratio_threshold).all()


def test_oracle_is_prefix_stable_so_it_never_looks_ahead():
    config = preset("vol_momentum")
    short = generate_planted(3_000, HORIZONS, seed=9, config=config)
    longer = generate_planted(3_600, HORIZONS, seed=9, config=config)
    n = len(short.bars)
    assert short.bars.equals(longer.bars.iloc[:n])
    # the oracle at bar t is the same whether or not bars after t were generated
    assert np.array_equal(short.oracle_mean.to_numpy(), longer.oracle_mean.to_numpy()[:n])
    assert np.array_equal(short.oracle_std.to_numpy(), longer.oracle_std.to_numpy()[:n])


@pytest.mark.parametrize("h", HORIZONS)
def test_oracle_mean_is_unbiased_and_its_ic_is_what_the_construction_implies(reversal, h):
    mean, std, forward = labelled(reversal, h)
    residual = forward - mean
    # unbiased: the residual is uncorrelated with the forecast (slope of forward on mean ~ 1)
    slope = np.cov(mean, forward)[0, 1] / mean.var()
    assert 0.8 < slope < 1.2
    # Pearson correlation implied by the oracle's own mean and std: sd(mu) / sd(forward)
    implied = mean.std() / np.sqrt(mean.var() + np.mean(std**2))
    observed = np.corrcoef(mean, forward)[0, 1]
    assert abs(observed - implied) < 3.0 / np.sqrt(len(forward) / h) + 0.01
    assert abs(residual.mean()) < 4 * residual.std() / np.sqrt(len(forward) / h)


def test_oracle_std_is_exact_at_one_bar_and_calibrated_beyond(reversal):
    for h, tolerance in ((1, 0.03), (3, 0.05), (6, 0.06)):
        mean, std, forward = labelled(reversal, h)
        z = (forward - mean) / std
        assert abs(z.var() - 1.0) < tolerance, (h, z.var())


def test_edge_is_realistic_and_beats_a_taker_round_trip_on_some_bars(reversal):
    mean, _, forward = labelled(reversal, 3)
    ic = spearman(mean, forward)
    assert 0.05 < ic < 0.13
    beats_cost = np.mean(np.abs(mean) > 2 * 0.00055)
    assert 0.01 < beats_cost < 0.2


def test_no_edge_market_has_a_zero_oracle_mean_and_calibrated_std():
    market = generate_planted(20_000, HORIZONS, seed=5, config=preset("no_edge"))
    assert not market.events.any()
    assert (market.oracle_mean.to_numpy() == 0.0).all()
    _, std, forward = labelled(market, 1)
    assert abs((forward / std).var() - 1.0) < 0.05


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="kind"):
        PlantedConfig(kind="nonsense")
    with pytest.raises(ValueError, match="drift_bars"):
        PlantedConfig(drift_bars=5, refractory=3)
    with pytest.raises(ValueError, match="horizons"):
        generate_planted(1_000, (1, 20), config=dataclasses.replace(preset("no_edge")))


def test_the_demo_market_is_hourly_at_60_percent_and_its_edge_beats_a_round_trip():
    market = generate_planted(20_000, HORIZONS, seed=7, config=demo_preset("1h"))
    log_close = np.log(market.bars["close"].to_numpy())
    annual_vol = np.diff(log_close).std() * np.sqrt(24 * 365)
    assert 0.5 < annual_vol < 0.7
    mean, _, forward = labelled(market, 6)
    round_trip = 2 * (0.00055 + 0.0001)  # taker fee and slippage, both ways
    beats = np.abs(mean) > 1.25 * round_trip  # the policy's default edge margin
    assert 0.05 < beats.mean() < 0.15
    # where the oracle's edge beats the cost, trading its sign earns more than the cost
    gross = np.sign(mean[beats]) * forward[beats]
    assert gross.mean() > round_trip


@pytest.mark.parametrize(
    ("config", "min_sharpe"),
    [(demo_preset("5min"), 15.0), (preset("volume_reversal"), 3.0), (preset("no_edge"), None)],
    ids=["strong-reversal", "reversal", "no-edge"],
)
def test_the_edge_policy_fed_the_oracle_profits_after_fees_and_stays_flat_without_an_edge(
    config, min_sharpe
):
    """The control of every model claim: the policy (costs, Kelly sizing, hysteresis) trading
    the exact oracle forecast earns after fees where the planted edge beats a round trip, and
    never trades a market without one (measured: Sharpe 30.2, 8.2 and no trade)."""
    from evaluation.metrics import sharpe
    from evaluation.simulate import Execution
    from evaluation.simulate import ForecastPath
    from evaluation.simulate import simulate_forecasts
    from policy.calendar import bars_per_year
    from policy.settings import PolicySettings
    from scoremodel.gaussian import norm_cdf

    market = generate_planted(20_000, (6,), seed=5, config=config)
    states = compute_features(market.bars).dropna()
    mean = market.oracle_mean["h6"].loc[states.index].to_numpy()
    std = market.oracle_std["h6"].loc[states.index].to_numpy()
    settings = PolicySettings()
    cost = settings.costs(fee=0.00055).round_trip
    path = ForecastPath(
        mean=mean,
        std=std,
        p_above_cost=norm_cdf((mean - cost) / std),
        p_below_cost=norm_cdf((-cost - mean) / std),
        in_distribution=np.ones(len(states), dtype=bool),
        bar_volatility=states["vol_20"].to_numpy(),
    )
    per_year = bars_per_year(300)
    result = simulate_forecasts(
        market.bars.loc[states.index], path, settings, per_year, 6, Execution()
    )
    trades = int((result.traded > 0).sum())
    if min_sharpe is None:
        assert trades == 0 and result.fees.sum() == 0.0
        return
    returns = result.equity.pct_change().fillna(0.0).to_numpy()
    assert trades > 100
    assert sharpe(returns, per_year) > min_sharpe
    assert result.equity.iloc[-1] - 1.0 > result.fees.sum()  # the edge paid for its fees


# ----- reversal_to_momentum: a market whose structure changes once ---------------------------

SWITCHING_BARS = 20_000


@pytest.fixture(scope="module")
def switching():
    config = demo_preset("1h", "reversal_to_momentum")
    return generate_planted(SWITCHING_BARS, HORIZONS, seed=6, config=config)


def spike_slope(market, events, h=3):
    """Slope of the realised h-bar forward return on the event bar's return (the planted
    drift is sign x beta x r_t over the next drift_bars bars)."""
    returns = np.log(market.bars["close"]).diff().to_numpy()
    forward = forward_returns(market.bars, h).to_numpy()
    events = events[np.isfinite(forward[events])]
    return float(np.sum(forward[events] * returns[events]) / np.sum(returns[events] ** 2))


def test_switching_market_is_a_kind_of_the_cli_and_switches_half_way_by_default(switching):
    from catalogs.planted import KINDS
    from catalogs.planted import STATIONARY_KINDS

    assert "reversal_to_momentum" in KINDS
    assert set(STATIONARY_KINDS) == set(KINDS) - {"reversal_to_momentum"}
    config = demo_preset("1h", "reversal_to_momentum")
    assert config.switch_index(SWITCHING_BARS) == SWITCHING_BARS // 2
    assert switching.switch == switching.bars.index[SWITCHING_BARS // 2]
    assert dataclasses.replace(config, switch_fraction=0.25).switch_index(1_000) == 250
    assert dataclasses.replace(config, switch_bar=123).switch_index(1_000) == 123
    assert config.switch_index(10) is not None and demo_preset("1h").switch_index(10) is None
    assert generate_planted(2_000, config=demo_preset("1h")).switch is None
    # the trigger is volume_reversal's, read from the state features
    features = compute_features(switching.bars)
    events = switching.events.loc[features.index]
    assert events.sum() > 500
    assert (features.loc[events, "volume_ratio_20"] > config.volume_threshold).all()


def test_switching_oracle_uses_the_sign_in_force_at_each_event(switching):
    config = demo_preset("1h", "reversal_to_momentum")
    returns = np.log(switching.bars["close"]).diff().to_numpy()
    events = np.flatnonzero(switching.events.to_numpy())
    switch = SWITCHING_BARS // 2
    # at an event's bar the oracle's 3-bar mean is the whole planted drift: sign beta r_t
    sign = np.where(events < switch, -1.0, 1.0)
    expected = sign * config.beta * returns[events]
    assert np.allclose(switching.oracle_mean["h3"].to_numpy()[events], expected, atol=1e-15)
    before, after = events[events < switch], events[events >= switch]
    assert len(before) > 250 and len(after) > 250
    assert (
        np.sign(switching.oracle_mean["h3"].to_numpy()[before]) == -np.sign(returns[before])
    ).all()
    assert (np.sign(switching.oracle_mean["h3"].to_numpy()[after]) == np.sign(returns[after])).all()
    # the same bars as volume_reversal up to the switch (same streams, same law)
    reversal = generate_planted(SWITCHING_BARS, HORIZONS, seed=6, config=demo_preset("1h"))
    assert switching.bars.iloc[:switch].equals(reversal.bars.iloc[:switch])
    # the oracle mean too (it reads known events only); its std differs from switch - 5 on,
    # where a future event within 6 bars would be a momentum one
    assert np.array_equal(
        switching.oracle_mean.to_numpy()[:switch], reversal.oracle_mean.to_numpy()[:switch]
    )
    assert np.array_equal(
        switching.oracle_std.to_numpy()[: switch - 5], reversal.oracle_std.to_numpy()[: switch - 5]
    )
    assert not switching.bars.iloc[switch:].equals(reversal.bars.iloc[switch:])


def test_switching_market_realises_the_planted_sign_before_and_after(switching):
    """Measured (seed 6, 20,000 bars): slope -0.97 before the switch, +0.96 after (SE ~0.03)."""
    events = np.flatnonzero(switching.events.to_numpy())
    switch = SWITCHING_BARS // 2
    before = spike_slope(switching, events[events < switch])
    after = spike_slope(switching, events[events >= switch])
    assert -1.3 < before < -0.7, before
    assert 0.7 < after < 1.3, after


@pytest.mark.parametrize("h", HORIZONS)
def test_switching_oracle_is_unbiased_and_calibrated_on_both_sides(switching, h):
    mean, std, forward = labelled(switching, h)
    slope = np.cov(mean, forward)[0, 1] / mean.var()
    assert 0.8 < slope < 1.2
    z = (forward - mean) / std
    assert abs(z.var() - 1.0) < 0.06, z.var()


def test_switching_market_with_a_fixed_switch_bar_is_prefix_stable():
    config = dataclasses.replace(demo_preset("1h", "reversal_to_momentum"), switch_bar=1_500)
    short = generate_planted(3_000, HORIZONS, seed=9, config=config)
    longer = generate_planted(3_600, HORIZONS, seed=9, config=config)
    n = len(short.bars)
    assert short.switch == longer.switch == short.bars.index[1_500]
    assert short.bars.equals(longer.bars.iloc[:n])
    assert np.array_equal(short.oracle_mean.to_numpy(), longer.oracle_mean.to_numpy()[:n])
    assert np.array_equal(short.oracle_std.to_numpy(), longer.oracle_std.to_numpy()[:n])


def test_bad_switch_settings_are_refused():
    with pytest.raises(ValueError, match="switch_fraction"):
        PlantedConfig(kind="reversal_to_momentum", switch_fraction=1.5)
    with pytest.raises(ValueError, match="switch_bar"):
        PlantedConfig(kind="reversal_to_momentum", switch_bar=-1)
