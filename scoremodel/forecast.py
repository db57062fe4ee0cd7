"""Forecast mode: the predictive distribution of the forward return given the current state.

The forecast model learns the score of the joint density p(x, y) of the state x and the
forward return y over h bars. For a fixed x, d/dy log p(x, y) = d/dy log p(y | x), so
integrating the y-component of the score along a grid of y values gives log p(y | x) up to a
constant: a one-dimensional line integral, exact up to quadrature (no path dependence), done
in ONE batched forward of G rows. Annealed Langevin inpainting (:mod:`scoremodel.sampling`)
gives the same distribution by sampling, and serves as the reference for this fast path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scoremodel.normalise import Normaliser

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


@dataclass(frozen=True)
class ForecastSummary:
    """Predictive distribution of the forward log return (raw units), arrays over states."""

    mean: np.ndarray
    std: np.ndarray
    quantiles: np.ndarray  # (..., len(QUANTILES))
    p_up: np.ndarray


class GridForecaster:
    """Grid rows [x, y_g] and the conditional distribution from their unit scores."""

    def __init__(self, normaliser: Normaliser, sigma: float, grid_size: int) -> None:
        self.normaliser = normaliser  # over [state, forward return]
        self.sigma = sigma
        self.grid = np.linspace(-normaliser.clip, normaliser.clip, grid_size)  # y_g, z-units
        self.step = self.grid[1] - self.grid[0]
        self.grid_raw = normaliser.inverse_column(self.grid, -1)
        self.edges_raw = normaliser.inverse_column(
            np.concatenate([self.grid - self.step / 2, [self.grid[-1] + self.step / 2]]), -1
        )
        self.raw_scale = float(normaliser.std[-1])  # raw units per z-unit of y

    def normalise_state(self, raw_state: np.ndarray) -> np.ndarray:
        """States (..., D) to the model's z-units (the forward-return column is left out)."""
        return self.normaliser.transform_columns(raw_state, slice(0, -1))

    def rows(self, z_state: np.ndarray) -> np.ndarray:
        """[z_state, y_g] for every grid point: shape (..., G, D + 1)."""
        lead = z_state.shape[:-1]
        states = np.broadcast_to(z_state[..., None, :], (*lead, len(self.grid), z_state.shape[-1]))
        ys = np.broadcast_to(self.grid[:, None], (*lead, len(self.grid), 1))
        return np.concatenate([states, ys], axis=-1)

    def probabilities(self, unit_scores: np.ndarray) -> np.ndarray:
        """p(y_g | x) on the grid from the y-scores, by cumulative trapezoid integration."""
        score_y = unit_scores[..., -1] / self.sigma  # d/dy log p(y | x) at y_g
        increments = 0.5 * (score_y[..., 1:] + score_y[..., :-1]) * self.step
        log_p = np.concatenate(
            [np.zeros((*score_y.shape[:-1], 1)), np.cumsum(increments, axis=-1)], axis=-1
        )
        log_p -= log_p.max(axis=-1, keepdims=True)
        p = np.exp(log_p)
        return p / p.sum(axis=-1, keepdims=True)

    def summarise(self, p: np.ndarray) -> ForecastSummary:
        """Mean, std, quantiles and P(y > 0) of the grid distribution, in raw return units.

        p_g is the mass of the cell [y_g - dy/2, y_g + dy/2]; the CDF is piecewise linear over
        cells. The model's density is p convolved with N(0, sigma^2) (in z-units), so the
        variance is deconvolved, var = var_grid - (sigma sd_y)^2, and the quantiles are shrunk
        towards the mean by the same factor (exact for a Gaussian, first order otherwise).
        """
        mean = p @ self.grid_raw
        grid_var = np.maximum(p @ self.grid_raw**2 - mean**2, 1e-300)
        var = np.maximum(grid_var - (self.sigma * self.raw_scale) ** 2, 0.04 * grid_var)
        shrink = np.sqrt(var / grid_var)
        cdf = np.cumsum(p, axis=-1)
        flat_cdf = np.concatenate([np.zeros((*cdf.shape[:-1], 1)), cdf], axis=-1)
        flat_cdf = flat_cdf.reshape(-1, flat_cdf.shape[-1])
        raw_quantiles = np.array(
            [np.interp(QUANTILES, row, self.edges_raw) for row in flat_cdf]
        ).reshape(*cdf.shape[:-1], len(QUANTILES))
        quantiles = mean[..., None] + (raw_quantiles - mean[..., None]) * shrink[..., None]
        below_zero = np.array([np.interp(0.0, self.edges_raw, row) for row in flat_cdf])
        return ForecastSummary(
            mean=mean,
            std=np.sqrt(var),
            quantiles=quantiles,
            p_up=1.0 - below_zero.reshape(cdf.shape[:-1]),
        )
