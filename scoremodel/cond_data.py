"""Arrays for the conditional model: contexts of L states, vol-scaled forward-return targets.

Context at bar t: the z-scored states of bars t - L + 1 .. t (oldest first), flattened.
Target at bar t, per horizon h: ``y = log(c_{t+h} / c_t) / (sqrt(h) v_t)`` z-scored, with
``v_t = max(vol_20_t, floor)`` the state's rolling one-bar volatility (known at t). Scaling by
v_t makes the target's conditional spread roughly constant across volatility regimes, so one
noise level sigma suits every bar. Every statistic (feature and target z-scores, the floor)
comes from the training block only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from scoremodel.datasets import chronological_split
from scoremodel.datasets import forward_returns
from scoremodel.features import DEFAULT_SPEC
from scoremodel.features import FeatureSpec
from scoremodel.features import compute_features
from scoremodel.normalise import Normaliser

TARGET_CLIP = 8.0  # z-units: wide, so the clip never shapes the tails the model must learn
VOL_FLOOR_FRACTION = 0.1  # floor = this x the median training vol_20


@dataclass(frozen=True)
class ConditionalScaling:
    """Normalisers of states and targets, the volatility floor, the horizons and L."""

    states: Normaliser
    targets: Normaliser  # one column per horizon
    vol_floor: float
    vol_column: int
    horizons: tuple[int, ...]
    context_len: int

    @classmethod
    def fit(
        cls,
        train_states: np.ndarray,
        train_forward: np.ndarray,
        horizons: tuple[int, ...],
        context_len: int,
        spec: FeatureSpec = DEFAULT_SPEC,
    ) -> ConditionalScaling:
        """Fit on training rows only: states (n, F), raw forward returns (n, K)."""
        vol_column = spec.names.index(f"vol_{spec.vol_window}")
        floor = VOL_FLOOR_FRACTION * float(np.median(train_states[:, vol_column]))
        partial = cls(
            Normaliser.fit(train_states),
            Normaliser(np.zeros(len(horizons)), np.ones(len(horizons)), TARGET_CLIP),
            floor,
            vol_column,
            tuple(horizons),
            context_len,
        )
        scaled = train_forward / partial.vol_scale(train_states)
        targets = Normaliser.fit(scaled, clip=TARGET_CLIP)
        return cls(partial.states, targets, floor, vol_column, tuple(horizons), context_len)

    def vol_scale(self, raw_states: np.ndarray) -> np.ndarray:
        """sqrt(h) max(vol_20, floor) per row and horizon: (n, K)."""
        vol = np.maximum(np.asarray(raw_states)[..., self.vol_column], self.vol_floor)
        return vol[..., None] * np.sqrt(np.asarray(self.horizons, dtype=np.float64))

    def target_z(self, forward: np.ndarray, raw_states: np.ndarray) -> np.ndarray:
        """Raw forward returns (n, K) -> the model's target units."""
        return self.targets.transform(forward / self.vol_scale(raw_states))

    def raw_affine(self, raw_states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(offset, scale) with raw return = offset + scale z, per row and horizon."""
        vol = self.vol_scale(raw_states)
        return vol * self.targets.mean, vol * self.targets.std

    def to_dict(self) -> dict:
        return {
            "states": self.states.to_dict(),
            "targets": self.targets.to_dict(),
            "vol_floor": self.vol_floor,
            "vol_column": self.vol_column,
            "horizons": list(self.horizons),
            "context_len": self.context_len,
        }

    @classmethod
    def from_dict(cls, data: dict) -> ConditionalScaling:
        return cls(
            Normaliser.from_dict(data["states"]),
            Normaliser.from_dict(data["targets"]),
            float(data["vol_floor"]),
            int(data["vol_column"]),
            tuple(int(h) for h in data["horizons"]),
            int(data["context_len"]),
        )


def context_windows(z_states: np.ndarray, context_len: int) -> np.ndarray:
    """(N, F) -> (N, L F): row t holds states t - L + 1 .. t; rows t < L - 1 are NaN."""
    n, f = z_states.shape
    out = np.full((n, context_len * f), np.nan)
    for lag in range(context_len):  # block ``context_len - 1 - lag`` holds state t - lag
        block = slice((context_len - 1 - lag) * f, (context_len - lag) * f)
        out[lag:, block] = z_states[: n - lag]
    return out


@dataclass(frozen=True)
class ConditionalArrays:
    """Model inputs of one block: contexts, targets (z and raw), states and timestamps."""

    context: np.ndarray  # (n, L F)
    target: np.ndarray  # (n, K) z-units
    forward: np.ndarray  # (n, K) raw log returns
    states: np.ndarray  # (n, F) raw states of the bar itself
    index: pd.DatetimeIndex


@dataclass(frozen=True)
class PreparedData:
    """Train / validation / test blocks (time order, purged) and the training-block scaling."""

    scaling: ConditionalScaling
    train: ConditionalArrays
    val: ConditionalArrays
    test: ConditionalArrays


def prepare(
    bars: pd.DataFrame,
    horizons: tuple[int, ...],
    context_len: int,
    fractions: tuple[float, float, float] = (0.6, 0.15, 0.25),
    spec: FeatureSpec = DEFAULT_SPEC,
) -> PreparedData:
    """States, forward returns and contexts of ``bars``, split with a purge of max(h) bars."""
    states = compute_features(bars, spec)
    forward = np.column_stack(
        [forward_returns(bars, h).loc[states.index].to_numpy() for h in horizons]
    )
    raw = states.to_numpy()
    usable = np.arange(context_len - 1, len(raw))
    usable = usable[np.isfinite(forward[usable]).all(axis=1)]
    split = chronological_split(len(usable), fractions, purge=max(horizons))
    train_rows = usable[split.train]
    scaling = ConditionalScaling.fit(
        raw[train_rows], forward[train_rows], horizons, context_len, spec
    )
    contexts = context_windows(scaling.states.transform(raw), context_len)

    def block(rows: np.ndarray) -> ConditionalArrays:
        return ConditionalArrays(
            context=contexts[rows],
            target=scaling.target_z(forward[rows], raw[rows]),
            forward=forward[rows],
            states=raw[rows],
            index=states.index[rows],
        )

    return PreparedData(
        scaling, block(train_rows), block(usable[split.val]), block(usable[split.test])
    )
