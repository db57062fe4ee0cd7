"""Calibration tables stored in the manifest: percentiles of training-set statistics, the
validated mean slope, and the recalibration map of the conditional forecaster's predictive CDF.

Confidence is the percentile of |signal| among training states, never a ratio to the
maximum of the current batch (the chapter's batch-of-one made that always 1).

The CDF map (:class:`CdfMap`, Kuleshov, Fenner & Ermon 2018): with u_i = F_i(r_i) the PIT of
each validation row's realised return under its predictive F_i, g is the empirical CDF of the
u_i, stored as their quantiles at the levels j / (M - 1) (M = 101 knots; non-decreasing by
construction), linear between the knots. The calibrated predictive is G(x) = g(F(x)); its
tau-quantile is F^{-1}(g^{-1}(tau)). A calibrated forecaster has u ~ U(0, 1), so g is close to
the identity. :func:`cdf_map` and :func:`cdf_map_inverse` are the one implementation of g
and g^{-1}: compiled, called by the predictive's kernels and, through :meth:`CdfMap.horizon`,
by the policy when it re-reads a probability (:func:`policy.edge.shrink_view`).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np
from numba import njit

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


CDF_KNOTS = 101  # g's table: the PITs' quantiles at the levels 0, 1/100, ..., 1


@njit(cache=True)
def cdf_map(knots: np.ndarray, u: float) -> float:
    """g(u): the share of validation PITs at or below u, linear between the knots (the PITs'
    quantiles at the levels j / (M - 1)). An empty table is the identity."""
    last = knots.shape[0] - 1
    if last < 1:
        return u
    if u <= knots[0]:
        return 0.0
    if u >= knots[last]:
        return 1.0
    lo, hi = 0, last  # knots[lo] < u < knots[hi]: bisect to adjacent knots
    while hi - lo > 1:
        mid = (lo + hi) >> 1
        if knots[mid] <= u:
            lo = mid
        else:
            hi = mid
    span = knots[hi] - knots[lo]
    fraction = (u - knots[lo]) / span if span > 0.0 else 1.0
    return (lo + fraction) / last


@njit(cache=True)
def cdf_map_inverse(knots: np.ndarray, tau: float) -> float:
    """g^{-1}(tau): the validation PITs' tau-quantile, linear between the knots (the inverse
    of :func:`cdf_map` where g rises). An empty table is the identity."""
    last = knots.shape[0] - 1
    if last < 1:
        return tau
    position = min(max(tau, 0.0), 1.0) * last
    j = min(int(position), last - 1)
    return knots[j] + (knots[j + 1] - knots[j]) * (position - j)


@dataclass(frozen=True, eq=False)
class HorizonCdfMap:
    """g of one horizon as a plain callable on a CDF value (what the policy is handed)."""

    knots: np.ndarray

    def __call__(self, u: float) -> float:
        return float(cdf_map(self.knots, float(u)))


PRIOR_ROWS = 200  # the identity's weight in a fitted CDF map, in validation rows


@dataclass(frozen=True, eq=False)
class CdfMap:
    """The recalibration map g of the predictive CDF, one table per horizon: ``knots`` (K, M),
    row k the quantiles of horizon k's validation PITs at the levels j / (M - 1)."""

    knots: np.ndarray
    rows: int = 0  # validation rows it was fitted on

    def __post_init__(self) -> None:
        knots = np.ascontiguousarray(self.knots, dtype=np.float64)
        if knots.ndim != 2 or knots.shape[1] < 2 or not np.isfinite(knots).all():
            raise ValueError("a CDF map needs finite knots, one row of at least 2 per horizon")
        if knots[:, 0].any() or (knots[:, -1] != 1.0).any() or (np.diff(knots, axis=1) < 0).any():
            raise ValueError("a CDF map's knots must rise from 0 to 1")
        object.__setattr__(self, "knots", knots)

    @classmethod
    def fit(cls, pit: np.ndarray, n_knots: int = CDF_KNOTS) -> CdfMap:
        """g per column of ``pit`` (N, K): the empirical CDF of its finite values, as their
        quantiles at n_knots levels, the ends pinned to 0 and 1 (g maps [0, 1] onto itself),
        shrunk toward the identity by the weight w = n / (n + PRIOR_ROWS) of its n values: a
        few hundred validation rows (a small retraining window) describe their own regime more
        than the next one, and a map fitted on them alone can overshoot (measured: 169 rows
        took a 50 % interval from 84 % to 14 % coverage out of sample)."""
        pit = np.asarray(pit, dtype=np.float64).reshape(len(pit), -1)
        levels = np.linspace(0.0, 1.0, n_knots)
        rows = []
        for k in range(pit.shape[1]):
            u = pit[np.isfinite(pit[:, k]), k]
            if u.size == 0:
                raise ValueError(f"no finite PIT to fit the CDF map of horizon {k} on")
            knots = np.clip(np.quantile(np.clip(u, 0.0, 1.0), levels), 0.0, 1.0)
            knots[0], knots[-1] = 0.0, 1.0
            weight = u.size / (u.size + PRIOR_ROWS)
            rows.append(weight * np.maximum.accumulate(knots) + (1.0 - weight) * levels)
        return cls(np.array(rows), rows=int(np.isfinite(pit).all(axis=1).sum()))

    @classmethod
    def identity(cls, n_horizons: int, n_knots: int = CDF_KNOTS) -> CdfMap:
        return cls(np.tile(np.linspace(0.0, 1.0, n_knots), (n_horizons, 1)))

    @property
    def n_horizons(self) -> int:
        return self.knots.shape[0]

    def horizon(self, k: int) -> HorizonCdfMap:
        """g of horizon ``k`` (negative counts from the end) as a callable u -> g(u)."""
        return HorizonCdfMap(self.knots[range(self.n_horizons)[k]])

    def apply(self, u: np.ndarray, k: int) -> np.ndarray:
        """g(u) elementwise for horizon ``k`` (the same arithmetic as :func:`cdf_map`)."""
        knots = self.knots[range(self.n_horizons)[k]]
        flat = np.asarray(u, dtype=np.float64)
        return np.array([cdf_map(knots, x) for x in flat.ravel()]).reshape(flat.shape)

    def inverse(self, tau: np.ndarray, k: int) -> np.ndarray:
        """g^{-1}(tau) elementwise for horizon ``k`` (:func:`cdf_map_inverse`)."""
        knots = self.knots[range(self.n_horizons)[k]]
        flat = np.asarray(tau, dtype=np.float64)
        return np.array([cdf_map_inverse(knots, x) for x in flat.ravel()]).reshape(flat.shape)

    def to_dict(self) -> dict:
        return {"pit_quantiles": self.knots.tolist(), "rows": self.rows}

    @classmethod
    def from_dict(cls, data: dict) -> CdfMap:
        return cls(np.asarray(data["pit_quantiles"], dtype=np.float64), rows=int(data["rows"]))
