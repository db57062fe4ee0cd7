"""Market-state features: a named, ordered, versioned spec with batch and incremental paths.

The state at bar ``t`` uses bars ``<= t`` only (bars are stamped at their close), so it is
known when bar ``t`` closes. Both implementations below compute exactly the same numbers:

- :func:`compute_features` is vectorised over a whole bar frame (training, evaluation);
- :class:`IncrementalFeatures` updates in O(1) per bar (the strategy's hot path).

Notation: ``c`` close, ``h`` high, ``l`` low, ``v`` volume, ``r_t = log(c_t / c_{t-1})``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from scoremodel.compiled import ZERO_VOLATILITY as _ZERO_VOL
from scoremodel.compiled import update_market_state

FEATURE_SPEC_VERSION = 1


@dataclass(frozen=True)
class FeatureSpec:
    """Windows of the market-state vector; ``names`` fixes the order of the columns."""

    return_horizons: tuple[int, ...] = (1, 5, 10, 20)
    vol_window: int = 20
    short_vol_window: int = 5
    # The chapter used a 20-bar lookback, which makes momentum a copy of ret_20.
    momentum_lookback: int = 60
    volume_window: int = 20
    range_window: int = 20
    gain_window: int = 14
    version: int = FEATURE_SPEC_VERSION

    @property
    def names(self) -> tuple[str, ...]:
        return (
            *(f"ret_{h}" for h in self.return_horizons),
            f"vol_{self.vol_window}",
            f"vol_ratio_{self.short_vol_window}_{self.vol_window}",
            f"momentum_{self.momentum_lookback}",
            f"volume_ratio_{self.volume_window}",
            f"range_pos_{self.range_window}",
            f"gain_ratio_{self.gain_window}",
        )

    @property
    def dim(self) -> int:
        return len(self.names)

    @property
    def return_index(self) -> int:
        """Column of the one-bar return: the component the direction signal reads."""
        return self.names.index("ret_1")

    @property
    def warmup_bars(self) -> int:
        """Bars consumed before the first complete state (the state of the last of them)."""
        needs_returns = max(
            *self.return_horizons, self.vol_window, self.momentum_lookback, self.gain_window
        )
        return max(needs_returns + 1, self.volume_window, self.range_window)

    def to_dict(self) -> dict:
        return {**asdict(self), "names": list(self.names)}

    @classmethod
    def from_dict(cls, data: dict) -> FeatureSpec:
        fields = {k: v for k, v in data.items() if k != "names"}
        fields["return_horizons"] = tuple(fields["return_horizons"])
        spec = cls(**fields)
        if "names" in data and tuple(data["names"]) != spec.names:
            raise ValueError(f"feature names {data['names']} do not match the spec {spec.names}")
        return spec

    def fingerprint(self) -> str:
        """Short hash of the spec: two specs with equal fingerprints compute equal features."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


DEFAULT_SPEC = FeatureSpec()


def compute_features(bars: pd.DataFrame, spec: FeatureSpec = DEFAULT_SPEC) -> pd.DataFrame:
    """Market states for every bar after warm-up; index = the bars' (close) timestamps.

    ``bars`` needs columns ``high, low, close, volume`` of consecutive bars (validate gaps
    first). Rows before ``spec.warmup_bars - 1`` are dropped, so no NaN reaches the model.
    """
    _require_columns(bars)
    n = len(bars)
    if n < spec.warmup_bars:
        raise ValueError(
            f"{n} bars are fewer than the feature warm-up of {spec.warmup_bars} bars; "
            "provide more history"
        )
    close = bars["close"].to_numpy(np.float64)
    log_close = np.log(close)
    first = spec.warmup_bars - 1  # index of the first bar with a complete state
    t = np.arange(first, n)
    returns = np.diff(log_close)  # returns[i] = r_{i+1}

    columns: list[np.ndarray] = [log_close[t] - log_close[t - h] for h in spec.return_horizons]
    vol_long = _window_std(returns, spec.vol_window)[t - spec.vol_window]
    vol_short = _window_std(returns, spec.short_vol_window)[t - spec.short_vol_window]
    columns.append(vol_long)
    columns.append(_volatility_ratio(vol_short, vol_long))
    columns.append(log_close[t] - log_close[t - spec.momentum_lookback])

    volume = bars["volume"].to_numpy(np.float64)
    volume_mean = sliding_window_view(volume, spec.volume_window).mean(axis=1)
    columns.append(_volume_ratio(volume[t], volume_mean[t - spec.volume_window + 1]))

    high_max = sliding_window_view(bars["high"].to_numpy(np.float64), spec.range_window).max(1)
    low_min = sliding_window_view(bars["low"].to_numpy(np.float64), spec.range_window).min(1)
    k = t - spec.range_window + 1
    columns.append(_range_position(close[t], low_min[k], high_max[k]))

    gains = sliding_window_view(np.maximum(returns, 0.0), spec.gain_window).sum(axis=1)
    losses = sliding_window_view(np.maximum(-returns, 0.0), spec.gain_window).sum(axis=1)
    j = t - spec.gain_window
    columns.append(_gain_ratio(gains[j], losses[j]))

    values = np.column_stack(columns)
    return pd.DataFrame(values, index=bars.index[first:], columns=list(spec.names))


class IncrementalFeatures:
    """O(1)-per-bar market state, equal to :func:`compute_features` on the same bars.

    Call :meth:`update` once per closed bar; it returns ``None`` until warm-up is complete,
    then the state. The returned array is reused by the next update: copy it to keep it.
    The arithmetic runs in one compiled call (:func:`scoremodel.compiled.update_market_state`).
    """

    def __init__(self, spec: FeatureSpec = DEFAULT_SPEC) -> None:
        self.spec = spec
        size = max(*spec.return_horizons, spec.momentum_lookback, spec.vol_window,
                   spec.volume_window, spec.range_window, spec.gain_window) + 1  # fmt: skip
        self._ring = np.zeros((5, 2 * size))  # each value twice: see update_market_state
        self._cursor = np.zeros(2, dtype=np.int64)  # next write position, bars seen
        self._horizons = np.asarray(spec.return_horizons, dtype=np.int64)
        self._windows = np.array(
            [spec.vol_window, spec.short_vol_window, spec.momentum_lookback, spec.volume_window,
             spec.range_window, spec.gain_window, spec.warmup_bars],
            dtype=np.int64,
        )  # fmt: skip
        self._state = np.zeros(spec.dim)
        self._warm_kernel()

    def _warm_kernel(self) -> None:
        """Compile (or load from numba's cache) the update now, not on the first live bar."""
        self.update(1.0, 1.0, 1.0, 0.0)
        self.reset()

    @property
    def bars_seen(self) -> int:
        return int(self._cursor[1])

    @property
    def is_warm(self) -> bool:
        return self.bars_seen >= self.spec.warmup_bars

    def reset(self) -> None:
        self._ring[:] = 0.0
        self._cursor[:] = 0

    def update(self, high: float, low: float, close: float, volume: float) -> np.ndarray | None:
        """Consume one closed bar; return the state once warm, else ``None``."""
        warm = update_market_state(
            self._ring, self._cursor, high, low, close, volume,
            self._horizons, self._windows, self._state,
        )  # fmt: skip
        return self._state if warm else None


def _require_columns(bars: pd.DataFrame) -> None:
    missing = [c for c in ("high", "low", "close", "volume") if c not in bars.columns]
    if missing:
        raise ValueError(f"bar frame lacks columns {missing}; it has {list(bars.columns)}")


def _window_std(x: np.ndarray, window: int) -> np.ndarray:
    """std (ddof=1) of every full window; element i covers x[i : i + window]."""
    windows = sliding_window_view(x, window)
    mean = windows.sum(axis=1) / window
    deviations = windows - mean[:, None]
    return np.sqrt((deviations * deviations).sum(axis=1) / (window - 1))


def _volatility_ratio(short: np.ndarray, long: np.ndarray) -> np.ndarray:
    safe = np.where(long > _ZERO_VOL, long, 1.0)
    return np.where(long > _ZERO_VOL, short / safe, 1.0)


def _volume_ratio(volume: np.ndarray, mean: np.ndarray) -> np.ndarray:
    safe = np.where(mean > 0.0, mean, 1.0)
    return np.where(mean > 0.0, volume / safe, 1.0)


def _range_position(close: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    span = high - low
    safe = np.where(span > 0.0, span, 1.0)
    return np.where(span > 0.0, (close - low) / safe, 0.5)


def _gain_ratio(gains: np.ndarray, losses: np.ndarray) -> np.ndarray:
    moved = gains + losses
    safe = np.where(moved > 0.0, moved, 1.0)
    return np.where(moved > 0.0, gains / safe, 0.5)
