"""Deterministic synthetic crypto-perpetual bars with realistic stylised facts.

The generator trades 24/7 and combines

- a **regime-switching Markov chain** (calm / trend-up / trend-down / turbulent) with
  per-regime drift, volatility multiplier, jump multiplier and mean duration;
- **volatility clustering** from two log-volatility factors (a fast and a slow
  Ornstein-Uhlenbeck process, given as half-lives and stationary standard deviations). This
  is a stochastic-volatility model: its clustering behaves like GARCH but, unlike GARCH's
  recursion, it can be simulated fully vectorised;
- compound-Poisson **jumps** in log price;
- **intrabar sub-steps**, so high and low are genuine extremes of the simulated path and every
  bar opens at the previous close;
- **volume** that scales with the interval and co-moves with ``|return|``.

All parameters are annualised or given in hours, so bars of any interval describe the same
market: 1-minute and 1-hour bars both show ``annual_vol`` (60 % by default). Output depends
only on ``(n_bars, interval, seed, config)``; a longer run is not an extension of a shorter one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

import numpy as np
import pandas as pd

from catalogs.bars import INDEX_NAME
from catalogs.bars import Interval
from catalogs.bars import bar_frame
from catalogs.bars import parse_interval

_YEAR: Final = pd.Timedelta(days=365)
_HOUR: Final = pd.Timedelta(hours=1)
_CHUNK_BARS: Final[int] = 1 << 16  # bars simulated per intrabar chunk (bounds memory)
_KERNEL_CUTOFF: Final[float] = 1e-9  # truncation of the AR(1) filter kernel
_VOLUME_FLOOR: Final[float] = 0.25  # volume of a zero-return bar relative to a typical one


@dataclass(frozen=True)
class RegimeParams:
    """One market regime.

    ``annual_drift`` is the log-price drift per year (before the ``-sigma^2/2`` correction);
    ``vol_multiplier`` and ``jump_multiplier`` scale the base volatility and jump intensity.
    """

    name: str
    annual_drift: float
    vol_multiplier: float
    mean_duration_hours: float
    jump_multiplier: float


DEFAULT_REGIMES: Final[tuple[RegimeParams, ...]] = (
    RegimeParams("calm", 0.0, 0.7, 48.0, 0.5),
    RegimeParams("trend_up", 2.0, 0.9, 24.0, 1.0),
    RegimeParams("trend_down", -1.5, 1.1, 18.0, 1.5),
    RegimeParams("turbulent", 0.0, 1.9, 8.0, 3.0),
)
# Probabilities of the next regime when a regime ends (rows: from, columns: to; zero diagonal).
DEFAULT_TRANSITIONS: Final[tuple[tuple[float, ...], ...]] = (
    (0.0, 0.40, 0.35, 0.25),
    (0.60, 0.0, 0.10, 0.30),
    (0.50, 0.15, 0.0, 0.35),
    (0.55, 0.20, 0.25, 0.0),
)


@dataclass(frozen=True)
class SyntheticMarketConfig:
    """Parameters of the synthetic market (annualised or in hours; see module docstring).

    ``annual_vol`` is the long-run volatility of log returns including jumps; the base diffusive
    volatility is derived from it, the regime occupancy and the jump variance. The clustering
    factors are log-volatility processes with stationary standard deviation ``*_vol`` and
    half-life ``*_half_life_hours``. ``volume_per_hour`` is the volume traded in an hour of
    typical activity, in base-currency units; ``volume_elasticity`` is the exponent of volume
    on ``|return|`` relative to a typical return. ``start`` is the open time of the first bar.
    """

    start_price: float = 40_000.0
    start: str = "2024-01-01T00:00:00Z"
    annual_vol: float = 0.60
    vol_clustering_fast_vol: float = 0.30
    vol_clustering_fast_half_life_hours: float = 1.0
    vol_clustering_slow_vol: float = 0.35
    vol_clustering_slow_half_life_hours: float = 72.0
    regimes: tuple[RegimeParams, ...] = DEFAULT_REGIMES
    regime_transitions: tuple[tuple[float, ...], ...] = DEFAULT_TRANSITIONS
    jumps_per_year: float = 30.0
    jump_mean: float = -0.002
    jump_std: float = 0.012
    volume_per_hour: float = 1_500.0
    volume_elasticity: float = 1.0
    volume_noise: float = 0.6
    intrabar_steps: int = 16
    price_tick: float = 0.1
    volume_step: float = 0.001

    def __post_init__(self) -> None:
        positive = ("start_price", "annual_vol", "price_tick", "volume_step", "volume_per_hour")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"SyntheticMarketConfig.{name} must be > 0")
        if self.intrabar_steps < 1:
            raise ValueError("SyntheticMarketConfig.intrabar_steps must be >= 1")
        self._check_regimes()
        if self.base_annual_vol() <= 0:
            raise ValueError(
                "SyntheticMarketConfig: jump variance exceeds annual_vol**2; lower "
                "jumps_per_year/jump_std or raise annual_vol"
            )

    def _check_regimes(self) -> None:
        transitions = np.asarray(self.regime_transitions, dtype=float)
        count = len(self.regimes)
        if transitions.shape != (count, count):
            raise ValueError(f"regime_transitions must be {count}x{count} (one row per regime)")
        if np.any(np.diag(transitions) != 0) or np.any(transitions < 0):
            raise ValueError("regime_transitions needs a zero diagonal and non-negative entries")
        if not np.allclose(transitions.sum(axis=1), 1.0):
            raise ValueError("each row of regime_transitions must sum to 1")
        if any(regime.mean_duration_hours <= 0 for regime in self.regimes):
            raise ValueError("every regime needs mean_duration_hours > 0")

    @property
    def regime_names(self) -> tuple[str, ...]:
        """Names of the regimes, in code order."""
        return tuple(regime.name for regime in self.regimes)

    def regime_occupancy(self) -> np.ndarray:
        """Long-run fraction of time spent in each regime."""
        transitions = np.asarray(self.regime_transitions, dtype=float)
        eigenvalues, eigenvectors = np.linalg.eig(transitions.T)
        embedded = np.real(eigenvectors[:, np.argmin(np.abs(eigenvalues - 1.0))])
        durations = np.array([regime.mean_duration_hours for regime in self.regimes])
        occupancy = np.abs(embedded) * durations
        return occupancy / occupancy.sum()

    def base_annual_vol(self) -> float:
        """Diffusive volatility of a regime with ``vol_multiplier == 1``."""
        occupancy = self.regime_occupancy()
        vol_mult = np.array([regime.vol_multiplier for regime in self.regimes])
        jump_mult = np.array([regime.jump_multiplier for regime in self.regimes])
        jump_variance = (
            self.jumps_per_year
            * float(occupancy @ jump_mult)
            * (self.jump_std**2 + self.jump_mean**2)
        )
        diffusive_variance = self.annual_vol**2 - jump_variance
        if diffusive_variance <= 0:
            return 0.0
        return math.sqrt(diffusive_variance / float(occupancy @ vol_mult**2))


@dataclass(frozen=True)
class SyntheticMarket:
    """Synthetic bars plus the latent state that produced them (all indexed by ``ts_close``)."""

    bars: pd.DataFrame
    regimes: pd.Series  # categorical regime name per bar
    annual_vol: pd.Series  # instantaneous annualised diffusive volatility per bar
    jumps: pd.Series  # number of jumps inside each bar


def generate_bars(
    n_bars: int,
    interval: str = "1min",
    seed: int = 7,
    config: SyntheticMarketConfig | None = None,
) -> pd.DataFrame:
    """Return ``n_bars`` synthetic bars as a canonical bar frame (see :func:`simulate_market`)."""
    return simulate_market(n_bars, interval, seed, config).bars


def simulate_market(
    n_bars: int,
    interval: Interval = "1min",
    seed: int = 7,
    config: SyntheticMarketConfig | None = None,
) -> SyntheticMarket:
    """Simulate ``n_bars`` bars and return them with their regime, volatility and jump paths."""
    if not isinstance(n_bars, int | np.integer) or n_bars < 1:
        raise ValueError(f"n_bars must be a positive integer, got {n_bars!r}")
    config = config or SyntheticMarketConfig()
    delta = parse_interval(interval)
    n_bars = int(n_bars)
    dt_years = delta / _YEAR
    dt_hours = delta / _HOUR
    rng = np.random.default_rng(seed)

    regimes = _regime_path(rng, n_bars, dt_hours, config)
    sigma = _volatility_path(rng, n_bars, dt_hours, config, regimes)
    jump_counts, jump_sizes = _jumps(rng, dt_years, config, regimes)
    drift = np.array([regime.annual_drift for regime in config.regimes])[regimes]
    bar_drift = (drift - 0.5 * sigma**2) * dt_years
    returns, highs, lows = _intrabar_extremes(
        rng, bar_drift, sigma * math.sqrt(dt_years), jump_sizes, config.intrabar_steps
    )
    volume = _volume(rng, returns, dt_years, dt_hours, config)

    index = _close_index(n_bars, delta, config.start)
    bars = _ohlc_frame(index, returns, highs, lows, volume, config)
    names = config.regime_names
    return SyntheticMarket(
        bars=bars,
        regimes=pd.Series(pd.Categorical.from_codes(regimes, names), index=index, name="regime"),
        annual_vol=pd.Series(sigma, index=index, name="annual_vol"),
        jumps=pd.Series(jump_counts, index=index, name="jumps"),
    )


def _close_index(n_bars: int, delta: pd.Timedelta, start: str) -> pd.DatetimeIndex:
    first_open = pd.Timestamp(start)
    first_open = first_open.tz_localize("UTC") if first_open.tz is None else first_open
    if first_open.value % delta.value:
        raise ValueError(
            f"SyntheticMarketConfig.start {first_open} is not on the {delta} grid; choose a start "
            "that is a multiple of the interval since 1970-01-01 UTC"
        )
    stamps = first_open.value + delta.value * np.arange(1, n_bars + 1, dtype=np.int64)
    return pd.DatetimeIndex(pd.to_datetime(stamps, utc=True)).as_unit("ns").rename(INDEX_NAME)


def _regime_path(
    rng: np.random.Generator, n_bars: int, dt_hours: float, config: SyntheticMarketConfig
) -> np.ndarray:
    """Simulate the regime chain by sojourns: geometric durations, then a jump to a new regime."""
    transitions = np.asarray(config.regime_transitions, dtype=float)
    leave_prob = -np.expm1(-dt_hours / np.array([r.mean_duration_hours for r in config.regimes]))
    state = int(rng.choice(len(config.regimes), p=config.regime_occupancy()))
    states: list[int] = []
    lengths: list[int] = []
    total = 0
    while total < n_bars:
        length = int(rng.geometric(leave_prob[state]))
        states.append(state)
        lengths.append(length)
        total += length
        state = int(rng.choice(len(config.regimes), p=transitions[state]))
    return np.repeat(np.array(states, dtype=np.int8), lengths)[:n_bars]


def _volatility_path(
    rng: np.random.Generator,
    n_bars: int,
    dt_hours: float,
    config: SyntheticMarketConfig,
    regimes: np.ndarray,
) -> np.ndarray:
    """Annualised diffusive volatility per bar: base x regime multiplier x clustering factor."""
    fast = _ou_path(
        rng,
        n_bars,
        dt_hours,
        config.vol_clustering_fast_half_life_hours,
        config.vol_clustering_fast_vol,
    )
    slow = _ou_path(
        rng,
        n_bars,
        dt_hours,
        config.vol_clustering_slow_half_life_hours,
        config.vol_clustering_slow_vol,
    )
    # Subtracting the variance makes E[exp(2 * log_vol)] == 1, so the long-run vol is unchanged.
    log_vol = fast + slow - (config.vol_clustering_fast_vol**2 + config.vol_clustering_slow_vol**2)
    multiplier = np.array([regime.vol_multiplier for regime in config.regimes])[regimes]
    return config.base_annual_vol() * multiplier * np.exp(log_vol)


def _ou_path(
    rng: np.random.Generator,
    n_bars: int,
    dt_hours: float,
    half_life_hours: float,
    stationary_std: float,
) -> np.ndarray:
    """Stationary AR(1) (exact OU discretisation) computed as an FFT filter of white noise."""
    if stationary_std == 0:
        return np.zeros(n_bars)
    phi = 0.5 ** (dt_hours / half_life_hours)
    if phi < _KERNEL_CUTOFF:
        return rng.standard_normal(n_bars) * stationary_std
    memory = math.ceil(math.log(_KERNEL_CUTOFF) / math.log(phi))
    shocks = rng.standard_normal(n_bars + memory) * (stationary_std * math.sqrt(1 - phi**2))
    kernel = phi ** np.arange(memory)
    return _fft_convolve(shocks, kernel)[memory : memory + n_bars]


def _fft_convolve(signal: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    size = len(signal) + len(kernel) - 1
    n_fft = 1 << (size - 1).bit_length()
    spectrum = np.fft.rfft(signal, n_fft) * np.fft.rfft(kernel, n_fft)
    return np.fft.irfft(spectrum, n_fft)[:size]


def _jumps(
    rng: np.random.Generator,
    dt_years: float,
    config: SyntheticMarketConfig,
    regimes: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Compound-Poisson jumps per bar: counts and total log-price jump."""
    multiplier = np.array([regime.jump_multiplier for regime in config.regimes])[regimes]
    counts = rng.poisson(config.jumps_per_year * dt_years * multiplier)
    sizes = np.zeros(len(counts))
    hit = np.flatnonzero(counts)
    sizes[hit] = counts[hit] * config.jump_mean + np.sqrt(counts[hit]) * (
        config.jump_std * rng.standard_normal(len(hit))
    )
    return counts, sizes


def _intrabar_extremes(
    rng: np.random.Generator,
    drift: np.ndarray,
    bar_sigma: np.ndarray,
    jump: np.ndarray,
    steps: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Simulate each bar's sub-step path; return log return, max and min relative to the open."""
    n_bars = len(drift)
    returns, highs, lows = np.empty(n_bars), np.empty(n_bars), np.empty(n_bars)
    jump_step = rng.integers(0, steps, n_bars)
    for start in range(0, n_bars, _CHUNK_BARS):
        part = slice(start, min(n_bars, start + _CHUNK_BARS))
        size = part.stop - part.start
        increments = rng.standard_normal((size, steps))
        increments *= (bar_sigma[part] / math.sqrt(steps))[:, None]
        increments += (drift[part] / steps)[:, None]
        increments[np.arange(size), jump_step[part]] += jump[part]
        path = np.cumsum(increments, axis=1)
        returns[part] = path[:, -1]
        highs[part] = np.maximum(path.max(axis=1), 0.0)
        lows[part] = np.minimum(path.min(axis=1), 0.0)
    return returns, highs, lows


def _volume(
    rng: np.random.Generator,
    returns: np.ndarray,
    dt_years: float,
    dt_hours: float,
    config: SyntheticMarketConfig,
) -> np.ndarray:
    """Volume proportional to the interval, rising with ``|return|``, with lognormal noise."""
    typical_abs_return = config.annual_vol * math.sqrt(dt_years) * math.sqrt(2 / math.pi)
    activity = (_VOLUME_FLOOR + np.abs(returns) / typical_abs_return) / (_VOLUME_FLOOR + 1)
    noise = np.exp(
        config.volume_noise * rng.standard_normal(len(returns)) - 0.5 * config.volume_noise**2
    )
    volume = config.volume_per_hour * dt_hours * activity**config.volume_elasticity * noise
    return _round_to_step(volume, config.volume_step)


def _ohlc_frame(
    index: pd.DatetimeIndex,
    returns: np.ndarray,
    highs: np.ndarray,
    lows: np.ndarray,
    volume: np.ndarray,
    config: SyntheticMarketConfig,
) -> pd.DataFrame:
    log_path = np.cumsum(np.concatenate(([math.log(config.start_price)], returns)))
    log_open = log_path[:-1]
    tick = config.price_tick
    open_ = _round_to_step(np.exp(log_open), tick)
    close = _round_to_step(np.exp(log_path[1:]), tick)
    # Rounding is monotone, so these bounds hold already; the clamp documents the invariant.
    high = np.maximum.reduce([_round_to_step(np.exp(log_open + highs), tick), open_, close])
    low = np.minimum.reduce([_round_to_step(np.exp(log_open + lows), tick), open_, close])
    return bar_frame(index, open_, high, low, close, volume)


def _round_to_step(values: np.ndarray, step: float) -> np.ndarray:
    decimals = max(0, -Decimal(str(step)).normalize().as_tuple().exponent)
    return np.round(np.round(values / step) * step, decimals)
