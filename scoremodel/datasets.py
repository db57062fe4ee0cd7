"""From bars to training arrays: states, forward returns, chronological splits with a purge."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from scoremodel.features import DEFAULT_SPEC
from scoremodel.features import FeatureSpec
from scoremodel.features import compute_features

DEFAULT_FRACTIONS = (0.70, 0.15, 0.15)


@dataclass(frozen=True)
class Split:
    """Row ranges [start, stop) of train / validation / test, in time order."""

    train: slice
    val: slice
    test: slice

    def to_dict(self) -> dict:
        return {k: [s.start, s.stop] for k, s in self.__dict__.items()}


def chronological_split(
    n_rows: int, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS, purge: int = 0
) -> Split:
    """Consecutive train/val/test blocks; ``purge`` rows are dropped after train and after val.

    A purge as long as the label horizon keeps labels of one block from overlapping the
    inputs of the next (a forward return over h bars at the end of train looks into val).
    """
    if not np.isclose(sum(fractions), 1.0) or min(fractions) <= 0:
        raise ValueError(f"split fractions must be positive and sum to 1, got {fractions}")
    n_train = int(n_rows * fractions[0])
    n_val = int(n_rows * fractions[1])
    val_start = n_train + purge
    test_start = val_start + n_val + purge
    if n_train < 100 or n_val < 10 or n_rows - test_start < 10:
        raise ValueError(
            f"{n_rows} states are too few for a {fractions} split with purge {purge}; "
            "use more bars (a few thousand at least)"
        )
    return Split(slice(0, n_train), slice(val_start, val_start + n_val), slice(test_start, n_rows))


def forward_returns(bars: pd.DataFrame, horizon: int) -> pd.Series:
    """log(c_{t+h} / c_t) stamped at t: a label about the next h bars (NaN for the last h)."""
    log_close = np.log(bars["close"].to_numpy(np.float64))
    values = np.full(len(bars), np.nan)
    values[:-horizon] = log_close[horizon:] - log_close[:-horizon]
    return pd.Series(values, index=bars.index, name=f"fwd_ret_{horizon}")


@dataclass(frozen=True)
class MarketDataset:
    """States (and forward returns) for every bar after warm-up, with their timestamps."""

    states: pd.DataFrame
    forward: pd.Series  # NaN where the horizon runs past the data

    @classmethod
    def from_bars(
        cls, bars: pd.DataFrame, spec: FeatureSpec = DEFAULT_SPEC, horizon: int = 12
    ) -> MarketDataset:
        states = compute_features(bars, spec)
        forward = forward_returns(bars, horizon).loc[states.index]
        return cls(states=states, forward=forward)

    def joint(self) -> np.ndarray:
        """[state, forward return] rows, only where the forward return is known."""
        known = self.forward.notna().to_numpy()
        return np.column_stack([self.states.to_numpy()[known], self.forward.to_numpy()[known]])
