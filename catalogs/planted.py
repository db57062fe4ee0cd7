"""Planted synthetic markets: bars with a known conditional law and its exact oracle forecast.

Each bar's log return is ``r_t = d_t + s_t m_t e_t``: ``e_t`` i.i.d. N(0, 1), ``s_t`` a
GARCH(1, 1) volatility driven by ``e``, ``m_t`` a volatility multiplier on volume-spike bars,
``d_t`` a planted drift. Volume is lognormal with independent spikes (``spike_volume`` times the
usual level), so it never carries the sign of a return.

Planted structure (``kind``), read from the project's 10 state features (so a model that sees
them can learn it):

- ``volume_reversal``: at a bar whose ``volume_ratio_20 > volume_threshold``, the next
  ``drift_bars`` bars drift by ``-beta r_t`` in total (``r_t`` is ``ret_1``);
- ``vol_momentum``: at a bar whose previous bar's ``vol_ratio_5_20`` crossed above
  ``vol_ratio_threshold`` (the start of a volatility burst: above it at t - 1, not at t - 2),
  the next ``drift_bars`` bars drift by ``+beta r_t`` in total;
- ``reversal_to_momentum``: a market whose structure changes once: ``volume_reversal``'s
  trigger, with drift ``-beta r_t`` for events that start before the switch bar and ``+beta
  r_t`` (momentum after a volume spike) for events from the switch bar on
  (:meth:`PlantedConfig.switch_index`: ``switch_bar``, else ``switch_fraction`` of the bars,
  half way by default);
- ``no_edge``: ``d_t = 0`` (a random walk with GARCH volatility).

An event starts only if no event happened in the ``refractory`` bars before it (``refractory
>= drift_bars``). Then a future event's drift is exactly zero in expectation: whenever an event
can start at ``t'``, no drift is active at ``t'``, and its trigger does not depend on the sign
of ``e_t'``. Hence the oracle mean of the h-bar forward return ``log(c_{t+h} / c_t)`` is
**exact** for every h: the part of the known events' drift that falls into ``(t, t + h]``.
The oracle std is exact for h = 1 (``s_{t+1}`` is known at t, ``m`` has known moments); for
h > 1 it uses the GARCH variance forecast (exact) and, for events that may start inside the
horizon, their unconditional rate (an approximation of a term of order ``beta * rate``).
The oracle at bar t uses bars up to t only (generated sequentially; each random stream is
prefix-stable, so a longer run extends a shorter one; for ``reversal_to_momentum`` only with a
fixed ``switch_bar``, since ``switch_fraction`` places the switch by the run's length). Every
event's drift carries the sign in force at the bar it started, and so does the oracle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from catalogs.bars import INDEX_NAME
from catalogs.bars import bar_frame
from catalogs.bars import parse_interval
from scoremodel.features import DEFAULT_SPEC
from scoremodel.features import IncrementalFeatures

MarketKind = Literal["volume_reversal", "vol_momentum", "no_edge", "reversal_to_momentum"]
KINDS: tuple[str, ...] = ("volume_reversal", "vol_momentum", "no_edge", "reversal_to_momentum")
VOLUME_KINDS = ("volume_reversal", "reversal_to_momentum")  # triggered by a volume spike
# the kinds whose law never changes (a forecast benchmark's train and test blocks agree)
STATIONARY_KINDS: tuple[str, ...] = ("volume_reversal", "vol_momentum", "no_edge")
_INTRABAR_STEPS = 8


@dataclass(frozen=True)
class PlantedConfig:
    """Parameters of a planted market (per-bar units)."""

    kind: MarketKind = "volume_reversal"
    bar_vol: float = 0.002  # long-run std of a one-bar log return, spikes included
    garch_alpha: float = 0.06
    garch_beta: float = 0.90
    spike_prob: float = 0.05
    spike_volume: float = 6.0  # volume multiple on a spike bar
    spike_return_vol: float = 2.0  # return-volatility multiple m on a spike bar
    volume_noise: float = 0.3  # std of log volume
    volume_per_bar: float = 100.0
    volume_threshold: float = 2.5  # volume_reversal trigger on volume_ratio_20
    vol_ratio_threshold: float = 1.5  # vol_momentum: vol_ratio_5_20 crossing at t - 1
    beta: float = 0.5  # total planted drift = -+beta r_t
    drift_bars: int = 3
    refractory: int = 8  # >= drift_bars, and >= the longest horizon - 1 for the oracle std
    # share of bars where vol_ratio_5_20 crosses vol_ratio_threshold (0.051 measured on 10^5
    # bars of preset("vol_momentum")); only the h > 1 oracle std uses it (future events)
    momentum_trigger_rate: float = 0.05
    # reversal_to_momentum: the first bar whose events drift with +beta (momentum); switch_bar
    # (a bar index) if given, else int(switch_fraction * n_bars)
    switch_fraction: float = 0.5
    switch_bar: int | None = None
    start_price: float = 40_000.0
    interval: str = "5min"
    start: str = "2024-01-01T00:00:00Z"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"PlantedConfig.kind must be one of {KINDS}, got {self.kind!r}")
        if self.refractory < self.drift_bars or self.drift_bars < 1:
            raise ValueError("PlantedConfig needs 1 <= drift_bars <= refractory")
        if not (self.garch_alpha >= 0 and self.garch_alpha + self.garch_beta < 1):
            raise ValueError("PlantedConfig needs garch_alpha + garch_beta < 1")
        if not 0.0 <= self.switch_fraction <= 1.0:
            raise ValueError(
                f"PlantedConfig.switch_fraction must be in [0, 1], got {self.switch_fraction!r}"
            )
        if self.switch_bar is not None and self.switch_bar < 0:
            raise ValueError(f"PlantedConfig.switch_bar must be >= 0, got {self.switch_bar!r}")

    def switch_index(self, n_bars: int) -> int | None:
        """``reversal_to_momentum``: index of the first bar whose event drifts with ``+beta``
        (momentum) in a run of ``n_bars``; None for the kinds that never switch."""
        if self.kind != "reversal_to_momentum":
            return None
        if self.switch_bar is not None:
            return self.switch_bar
        return int(self.switch_fraction * n_bars)

    def event_sign(self, bar: int, switch: int | None) -> float:
        """The sign of the drift of an event starting at ``bar`` (-1 reversal, +1 momentum)."""
        if self.kind == "reversal_to_momentum":
            return -1.0 if switch is None or bar < switch else 1.0
        return -1.0 if self.kind == "volume_reversal" else 1.0

    @property
    def spike_second_moment(self) -> float:
        """E[m^2] of the return-volatility multiplier."""
        return 1.0 + self.spike_prob * (self.spike_return_vol**2 - 1.0)

    @property
    def garch_omega(self) -> float:
        """omega such that E[s^2] E[m^2] = bar_vol^2."""
        mean_s2 = self.bar_vol**2 / self.spike_second_moment
        return mean_s2 * (1.0 - self.garch_alpha - self.garch_beta)


@dataclass(frozen=True)
class PlantedMarket:
    """Bars (close-stamped canonical frame) and the oracle forecast per bar and horizon."""

    bars: pd.DataFrame
    oracle_mean: pd.DataFrame  # columns h=1.. : E[log(c_{t+h}/c_t) | bars <= t]
    oracle_std: pd.DataFrame  # columns as oracle_mean
    events: pd.Series  # bool: an event started at this bar
    # reversal_to_momentum: close time of the switch bar (its events and later ones are
    # momentum); None for the other kinds or a switch beyond the last bar
    switch: pd.Timestamp | None = None


def preset(kind: MarketKind) -> PlantedConfig:
    """The benchmark's market of each kind (edge sizes tuned to an oracle IC of ~0.05-0.09)."""
    if kind == "vol_momentum":
        return PlantedConfig(kind=kind, beta=1.0, vol_ratio_threshold=1.3)
    return PlantedConfig(kind=kind, beta=0.5)


def demo_preset(interval: str = "1h", kind: MarketKind = "volume_reversal") -> PlantedConfig:
    """The embedded demo's market (``make demo``) and ``catalogs synth --planted``: 60 %
    annual volatility at ``interval``, volume spikes with 3x the usual return volatility, and
    for ``volume_reversal`` an edge far beyond a taker round trip: the next 3 bars give back a
    spike's whole return (on hourly bars ~0.8 % on average against a 0.13 % round trip, about
    half the standard deviation of the 6-bar return). ``reversal_to_momentum``: the same edge
    until half way through the run, then the next 3 bars repeat a spike's whole return
    (``benchmarks/retraining.py``)."""
    bars_per_year = pd.Timedelta(days=365) / parse_interval(interval)
    return PlantedConfig(
        kind=kind,
        bar_vol=0.6 / math.sqrt(bars_per_year),
        spike_return_vol=3.0,
        beta=1.0,
        interval=interval,
    )


def generate_planted(
    n_bars: int,
    horizons: tuple[int, ...] = (1, 3, 6),
    seed: int = 0,
    config: PlantedConfig | None = None,
) -> PlantedMarket:
    """Simulate ``n_bars`` bars of a planted market with the oracle for ``horizons``."""
    config = config or PlantedConfig()
    if max(horizons) - 1 > config.refractory:
        raise ValueError(f"horizons up to {config.refractory + 1} bars (the refractory + 1)")
    if n_bars < DEFAULT_SPEC.warmup_bars + 2:
        raise ValueError(f"n_bars must be at least {DEFAULT_SPEC.warmup_bars + 2}")
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5)]
    shocks = streams[0].standard_normal(n_bars)
    spikes = streams[1].random(n_bars) < config.spike_prob
    volume_noise = streams[2].standard_normal(n_bars)
    bridge = streams[3].standard_normal((n_bars, _INTRABAR_STEPS))
    volume = config.volume_per_bar * np.exp(
        config.volume_noise * volume_noise - 0.5 * config.volume_noise**2
    )
    volume = np.where(spikes, volume * config.spike_volume, volume)
    multiplier = np.where(spikes, config.spike_return_vol, 1.0)

    switch = config.switch_index(n_bars)
    path = _simulate(config, shocks, multiplier, volume, switch)
    bars = _bars(config, path, bridge, multiplier, volume)
    mean, std = _oracle(config, horizons, path, switch)
    index = bars.index
    columns = [f"h{h}" for h in horizons]
    return PlantedMarket(
        bars=bars,
        oracle_mean=pd.DataFrame(mean, index=index, columns=columns),
        oracle_std=pd.DataFrame(std, index=index, columns=columns),
        events=pd.Series(path.events, index=index, name="event"),
        switch=index[switch] if switch is not None and switch < n_bars else None,
    )


@dataclass(frozen=True)
class _Path:
    log_close: np.ndarray
    returns: np.ndarray
    variance: np.ndarray  # s_t^2
    next_variance: np.ndarray  # s_{t+1}^2, known when bar t closes (it depends on e_t)
    events: np.ndarray  # an event started at t
    event_size: np.ndarray  # its total drift
    armed: np.ndarray  # vol_momentum: bar t's state triggers an event at t + 1 (if eligible)


def _simulate(
    config: PlantedConfig,
    shocks: np.ndarray,
    multiplier: np.ndarray,
    volume: np.ndarray,
    switch: int | None = None,
) -> _Path:
    """Sequential simulation: each bar's drift and trigger read the states of bars <= t."""
    n = len(shocks)
    features = IncrementalFeatures(DEFAULT_SPEC)
    names = DEFAULT_SPEC.names
    volume_column = names.index(f"volume_ratio_{DEFAULT_SPEC.volume_window}")
    ratio_column = names.index(
        f"vol_ratio_{DEFAULT_SPEC.short_vol_window}_{DEFAULT_SPEC.vol_window}"
    )
    omega, alpha, garch_beta = config.garch_omega, config.garch_alpha, config.garch_beta
    s2 = omega / (1.0 - alpha - garch_beta)
    log_closes, returns, variance, next_variance = (np.zeros(n) for _ in range(4))
    events, event_size, armed = np.zeros(n, dtype=bool), np.zeros(n), np.zeros(n, dtype=bool)
    last_event = -(10**9)
    previous_ratio, earlier_ratio = 0.0, 0.0
    log_close = math.log(config.start_price)
    for t in range(n):
        drift = 0.0
        if 0 < t - last_event <= config.drift_bars:
            drift = event_size[last_event] / config.drift_bars
        r = drift + math.sqrt(s2) * multiplier[t] * shocks[t]
        returns[t], variance[t] = r, s2
        log_close += r
        log_closes[t] = log_close
        close = math.exp(log_close)
        # high/low only feed range features; the trigger features use close and volume
        state = features.update(close, close, close, volume[t])
        if state is not None and t - last_event > config.refractory:
            trigger = (
                config.kind in VOLUME_KINDS and state[volume_column] > config.volume_threshold
            ) or (config.kind == "vol_momentum" and _crossed(previous_ratio, earlier_ratio, config))
            if trigger:
                events[t], last_event = True, t
                event_size[t] = config.event_sign(t, switch) * config.beta * r
        earlier_ratio = previous_ratio
        previous_ratio = state[ratio_column] if state is not None else 0.0
        armed[t] = config.kind == "vol_momentum" and _crossed(previous_ratio, earlier_ratio, config)
        s2 = omega + alpha * s2 * shocks[t] ** 2 + garch_beta * s2
        next_variance[t] = s2
    return _Path(log_closes, returns, variance, next_variance, events, event_size, armed)


def _crossed(ratio: float, earlier: float, config: PlantedConfig) -> bool:
    """vol_ratio_5_20 crossed above the threshold between two consecutive bars."""
    return ratio > config.vol_ratio_threshold >= earlier


def _bars(
    config: PlantedConfig,
    path_: _Path,
    bridge: np.ndarray,
    multiplier: np.ndarray,
    volume: np.ndarray,
) -> pd.DataFrame:
    """OHLC from the returns; high/low from a Brownian bridge of the bar's volatility."""
    returns, variance = path_.returns, path_.variance
    n = len(returns)
    steps = np.arange(1, _INTRABAR_STEPS + 1) / _INTRABAR_STEPS
    walk = np.cumsum(bridge, axis=1) / math.sqrt(_INTRABAR_STEPS)
    scale = np.sqrt(variance) * multiplier
    path = returns[:, None] * steps + scale[:, None] * (walk - walk[:, -1:] * steps)
    log_close = path_.log_close
    log_open = np.concatenate([[math.log(config.start_price)], log_close[:-1]])
    high = np.exp(log_open + np.maximum(path.max(axis=1), 0.0))
    low = np.exp(log_open + np.minimum(path.min(axis=1), 0.0))
    close, open_ = np.exp(log_close), np.exp(log_open)
    high = np.maximum.reduce([high, open_, close])
    low = np.minimum.reduce([low, open_, close])
    delta = parse_interval(config.interval)
    first_open = pd.Timestamp(config.start)
    first_open = first_open.tz_localize("UTC") if first_open.tz is None else first_open
    stamps = first_open.value + delta.value * np.arange(1, n + 1, dtype=np.int64)
    index = pd.DatetimeIndex(pd.to_datetime(stamps, utc=True)).as_unit("ns").rename(INDEX_NAME)
    return bar_frame(index, open_, high, low, close, volume)


def _oracle(
    config: PlantedConfig, horizons: tuple[int, ...], path: _Path, switch: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """E and std of log(c_{t+h}/c_t) given bars <= t (see the module docstring); the known
    events' drift already carries the sign in force at their start (``event_size``)."""
    variance, events, event_size = path.variance, path.events, path.event_size
    n = len(variance)
    alpha, garch_beta, m2 = config.garch_alpha, config.garch_beta, config.spike_second_moment
    long_run = config.garch_omega / (1.0 - alpha - garch_beta)
    persistence = alpha + garch_beta
    next_s2 = path.next_variance
    last_event = np.full(n, -(10**9))
    flagged = np.flatnonzero(events)
    last_event[flagged] = flagged
    last_event = np.maximum.accumulate(last_event)
    t = np.arange(n)
    since = t - last_event
    size = np.where(last_event >= 0, event_size[np.maximum(last_event, 0)], 0.0)
    mean = np.zeros((n, len(horizons)))
    std = np.zeros((n, len(horizons)))
    for k, h in enumerate(horizons):
        # known drift: bars since+1 .. since+h of the last event's window 1..drift_bars
        lo, hi = since + 1, np.minimum(since + h, config.drift_bars)
        mean[:, k] = size / config.drift_bars * np.maximum(hi - lo + 1, 0)
        var = np.zeros(n)
        for j in range(1, h + 1):
            expected_s2 = long_run + persistence ** (j - 1) * (next_s2 - long_run)
            sign = _future_sign(config, t + j, switch)
            var += expected_s2 * _future_factor(config, j, h, since, path.armed, m2, sign)
        std[:, k] = np.sqrt(var)
    return mean, std


def _future_sign(config: PlantedConfig, bars: np.ndarray, switch: int | None) -> float | np.ndarray:
    """The drift sign of an event that would start at each of ``bars`` (one number for the
    kinds whose sign never changes)."""
    if config.kind != "reversal_to_momentum":
        return config.event_sign(0, None)
    if switch is None:
        return -1.0
    return np.where(bars < switch, -1.0, 1.0)


def _future_factor(
    config: PlantedConfig,
    j: int,
    h: int,
    since: np.ndarray,
    armed: np.ndarray,
    m2: float,
    sign: float | np.ndarray,
) -> np.ndarray:
    """E[(m c)^2] of bar t + j: spike moments and an event possibly starting at t + j.

    An event at t + j multiplies that bar's shock by c = 1 + sign beta (its drift bars inside
    the horizon) / drift_bars, ``sign`` the one in force at t + j. Its probability: exact for a
    momentum event at t + 1 (armed by bar t's state); otherwise the trigger's unconditional
    rate (the h > 1 approximation).
    """
    if config.kind == "no_edge" or j == h:
        return np.full(len(since), m2)
    carried = min(config.drift_bars, h - j)
    gain = (1.0 + sign * config.beta * carried / config.drift_bars) ** 2 - 1.0
    eligible = since + j > config.refractory
    if config.kind in VOLUME_KINDS:  # an event is a spike bar: m = spike_return_vol
        rate = config.spike_prob * config.spike_return_vol**2
    elif j == 1:
        rate = armed.astype(float) * m2
    else:
        rate = config.momentum_trigger_rate * m2
    return m2 + np.where(eligible, rate * gain, 0.0)
