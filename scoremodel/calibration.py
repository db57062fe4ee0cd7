"""Quantile tables: percentiles of training-set statistics, stored in the manifest.

Confidence is the percentile of |signal| among training states, never a ratio to the
maximum of the current batch (the chapter's batch-of-one made that always 1).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np

PERCENTILES = np.linspace(0.0, 100.0, 401)  # every 0.25 %


@dataclass(frozen=True)
class QuantileTable:
    """Values of a statistic at fixed percentiles of its training distribution."""

    values: tuple[float, ...]
    percentiles: tuple[float, ...] = tuple(PERCENTILES.tolist())

    @classmethod
    def fit(cls, samples: np.ndarray) -> QuantileTable:
        samples = np.asarray(samples, dtype=np.float64)
        if samples.size == 0 or not np.isfinite(samples).all():
            raise ValueError("calibration samples must be non-empty and finite")
        return cls(tuple(np.percentile(samples, PERCENTILES).tolist()))

    def value_at(self, percentile: float) -> float:
        """The statistic's value at ``percentile`` (0-100) of the training distribution."""
        if not 0.0 <= percentile <= 100.0:
            raise ValueError(f"percentile must be in [0, 100], got {percentile}")
        return float(np.interp(percentile, self.percentiles, self.values))

    def rank(self, value: float) -> float:
        """Share (0-1) of training values at or below ``value``, linearly interpolated."""
        values = self.values
        i = bisect.bisect_right(values, value)
        if i == 0:
            return 0.0
        if i == len(values):
            return 1.0
        lo, hi = values[i - 1], values[i]
        p_lo, p_hi = self.percentiles[i - 1], self.percentiles[i]
        frac = (value - lo) / (hi - lo) if hi > lo else 1.0
        return (p_lo + frac * (p_hi - p_lo)) / 100.0

    def ranks(self, values: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`rank` (same arithmetic, same results)."""
        table = np.asarray(self.values)
        percent = np.asarray(self.percentiles)
        values = np.asarray(values, dtype=np.float64)
        i = np.clip(np.searchsorted(table, values, side="right"), 1, len(table) - 1)
        lo, hi = table[i - 1], table[i]
        span = np.where(hi > lo, hi - lo, 1.0)
        frac = np.where(hi > lo, (values - lo) / span, 1.0)
        ranks = (percent[i - 1] + frac * (percent[i] - percent[i - 1])) / 100.0
        ranks = np.where(values < table[0], 0.0, ranks)
        return np.where(values >= table[-1], 1.0, ranks)

    def to_dict(self) -> dict:
        return {"percentiles": list(self.percentiles), "values": list(self.values)}

    @classmethod
    def from_dict(cls, data: dict) -> QuantileTable:
        return cls(values=tuple(data["values"]), percentiles=tuple(data["percentiles"]))


def mean_shrinkage(predicted: np.ndarray, realised: np.ndarray) -> np.ndarray:
    """beta_k = clip(Cov(m_k, r_k) / Var(m_k), 0, 1) per column k over the rows where both are
    known: the share of a forecaster's predicted mean that a held-out block bore out (the slope
    of the realised on the predicted return). 0: none, so nothing is traded on it."""
    m = np.asarray(predicted, dtype=np.float64).reshape(len(predicted), -1)
    r = np.asarray(realised, dtype=np.float64).reshape(len(realised), -1)
    betas = []
    for k in range(m.shape[1]):
        ok = np.isfinite(m[:, k]) & np.isfinite(r[:, k])
        mk, rk = m[ok, k] - m[ok, k].mean(), r[ok, k] - r[ok, k].mean()
        variance = float(mk @ mk)
        betas.append(float(np.clip(mk @ rk / variance, 0.0, 1.0)) if variance > 0 else 0.0)
    return np.asarray(betas)
