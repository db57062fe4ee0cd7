"""Compiled per-bar kernels (numba): the score network forward for a few rows, and the
incremental market-state update.

Why not numpy: at one bar the network is a handful of 5 x 64 matrix products, and numpy's
per-call overhead (~1-4 us per ufunc or small matmul, ~50 calls per forward) costs more than
the arithmetic; ``python -m benchmarks`` measures both. The batch path stays in numpy/BLAS
(:class:`scoremodel.batch_forward.FusedScoreNet`), which wins for large batches; both compute the
same float64 maths and agree to ~1e-13.

Only reassociation and FMA contraction are allowed (no finite-math assumptions), so NaN and
inf propagate as in numpy.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_FLAGS = {"reassoc", "contract"}
LAYER_NORM_EPS = 1e-5


@njit(cache=True, fastmath=_FLAGS)
def _linear(a: np.ndarray, weight: np.ndarray, out: np.ndarray) -> None:
    """out[r, j] += sum_k a[r, k] weight[j, k]  (weight in torch's (out, in) layout)."""
    rows, inner = a.shape
    for r in range(rows):
        ar = a[r]
        for j in range(weight.shape[0]):
            wj = weight[j]
            total = 0.0
            for k in range(inner):
                total += ar[k] * wj[k]
            out[r, j] += total


@njit(cache=True, fastmath=_FLAGS)
def _normalise_rows(h: np.ndarray, out: np.ndarray) -> None:
    """LayerNorm without its affine part (folded into the next layer), row by row."""
    rows, width = h.shape
    for r in range(rows):
        mean = 0.0
        for j in range(width):
            mean += h[r, j]
        mean /= width
        variance = 0.0
        for j in range(width):
            centred = h[r, j] - mean
            out[r, j] = centred
            variance += centred * centred
        scale = 1.0 / math.sqrt(variance / width + LAYER_NORM_EPS)
        for j in range(width):
            out[r, j] *= scale


@njit(cache=True, fastmath=_FLAGS)
def unit_score_rows(
    x: np.ndarray,
    input_weight: np.ndarray,
    input_bias: np.ndarray,
    fc1_weight: np.ndarray,
    shifts: np.ndarray,
    fc2_weight: np.ndarray,
    fc2_bias: np.ndarray,
    output_weight: np.ndarray,
    output_bias: np.ndarray,
    h: np.ndarray,
    normed: np.ndarray,
    u: np.ndarray,
    out: np.ndarray,
) -> None:
    """f_theta for the rows of ``x`` into ``out``; h, normed, u are (R, H) work arrays.

    Weights are in (out, in) layout with LayerNorm scales folded in; ``shifts`` (B, R, H)
    holds each block's fc1 bias + LN shift + projected sigma embedding per row.
    """
    rows = x.shape[0]
    hidden = input_bias.shape[0]
    for r in range(rows):
        for j in range(hidden):
            h[r, j] = input_bias[j]
    _linear(x, input_weight, h)
    for b in range(fc1_weight.shape[0]):
        _normalise_rows(h, normed)
        for r in range(rows):
            for j in range(hidden):
                u[r, j] = shifts[b, r, j]
        _linear(normed, fc1_weight[b], u)
        for r in range(rows):
            for j in range(hidden):
                value = u[r, j]
                u[r, j] = value / (1.0 + math.exp(-value))  # SiLU; v << 0: v / inf = -0
        for r in range(rows):
            for j in range(hidden):
                h[r, j] += fc2_bias[b, j]
        _linear(u, fc2_weight[b], h)
    _normalise_rows(h, normed)
    for r in range(rows):
        for j in range(out.shape[1]):
            out[r, j] = output_bias[j]
    _linear(normed, output_weight, out)


@njit(cache=True, fastmath=_FLAGS)
def _std(values: np.ndarray) -> float:
    """Sample standard deviation (ddof=1), two-pass like numpy's."""
    count = values.shape[0]
    mean = 0.0
    for v in values:
        mean += v
    mean /= count
    total = 0.0
    for v in values:
        total += (v - mean) * (v - mean)
    return math.sqrt(total / (count - 1))


# ----- market state --------------------------------------------------------------------------

# ring-buffer rows
LOG_CLOSE, RETURN, HIGH, LOW, VOLUME = 0, 1, 2, 3, 4
ZERO_VOLATILITY = 1e-12  # below this a volatility counts as zero (flat market)


@njit(cache=True, fastmath=_FLAGS)
def update_market_state(
    ring: np.ndarray,
    cursor: np.ndarray,
    high: float,
    low: float,
    close: float,
    volume: float,
    horizons: np.ndarray,
    windows: np.ndarray,
    out: np.ndarray,
) -> bool:
    """Push one bar into the ring buffers; write the state into ``out`` once warm.

    ``ring`` (5, 2 S) stores every value twice, at p and p + S, so the last n values always
    form the contiguous slice ending at p + S (no modulo arithmetic per element).
    ``cursor`` = [next write position p, bars seen]; ``windows`` = [vol, short vol, momentum,
    volume, range, gain, warm-up]. Same formulas as :func:`scoremodel.features.compute_features`.
    """
    size = ring.shape[1] // 2
    position, seen = cursor[0], cursor[1]
    log_close = math.log(close)
    previous = ring[LOG_CLOSE, position - 1 + size]
    values = (log_close, log_close - previous if seen > 0 else 0.0, high, low, volume)
    for row in range(5):
        ring[row, position] = values[row]
        ring[row, position + size] = values[row]
    end = position + size + 1  # the window of the last n values is [end - n, end)
    cursor[0], cursor[1] = (position + 1) % size, seen + 1
    if seen + 1 < windows[6]:
        return False

    closes, returns = ring[LOG_CLOSE], ring[RETURN]
    i = 0
    for horizon in horizons:
        out[i] = log_close - closes[end - 1 - horizon]
        i += 1
    vol_long = _std(returns[end - windows[0] : end])
    vol_short = _std(returns[end - windows[1] : end])
    out[i] = vol_long
    out[i + 1] = vol_short / vol_long if vol_long > ZERO_VOLATILITY else 1.0
    out[i + 2] = log_close - closes[end - 1 - windows[2]]
    volume_mean = ring[VOLUME, end - windows[3] : end].sum() / windows[3]
    out[i + 3] = volume / volume_mean if volume_mean > 0.0 else 1.0
    high_max = ring[HIGH, end - windows[4] : end].max()
    low_min = ring[LOW, end - windows[4] : end].min()
    span = high_max - low_min
    out[i + 4] = (close - low_min) / span if span > 0.0 else 0.5
    gains = 0.0
    losses = 0.0
    for r in returns[end - windows[5] : end]:
        if r > 0.0:
            gains += r
        else:
            losses -= r
    moved = gains + losses
    out[i + 5] = gains / moved if moved > 0.0 else 0.5
    return True


# ----- one state through the model -------------------------------------------------------------


@njit(cache=True, fastmath=_FLAGS)
def normalise_into(
    raw: np.ndarray, mean: np.ndarray, std: np.ndarray, clip: float, z: np.ndarray
) -> None:
    """z = clip((raw - mean) / std, -clip, clip) for the first len(raw) columns."""
    for k in range(raw.shape[0]):
        value = (raw[k] - mean[k]) / std[k]
        z[k] = min(max(value, -clip), clip)


@njit(cache=True, fastmath=_FLAGS)
def ray_log_density(f: np.ndarray, z: np.ndarray, origin: np.ndarray, sigma: float) -> float:
    """Simpson: (f(0).z + 4 f(z/2).z + f(z).z) / (6 sigma); rows 0 and 1 of ``f`` are z, z/2."""
    total = 0.0
    for k in range(z.shape[0]):
        total += (origin[k] + 4.0 * f[1, k] + f[0, k]) * z[k]
    return total / (6.0 * sigma)


@njit(cache=True, fastmath=_FLAGS)
def grid_forecast(
    f: np.ndarray,
    grid_raw: np.ndarray,
    step: float,
    sigma: float,
    raw_scale: float,
    out: np.ndarray,
) -> None:
    """[mean, std, P(up)] of p(y | x) on the grid; see scoremodel.forecast.GridForecaster."""
    size = grid_raw.shape[0]
    last = f.shape[1] - 1
    log_p = np.empty(size)
    log_p[0] = 0.0
    for g in range(1, size):
        log_p[g] = log_p[g - 1] + 0.5 * (f[g, last] + f[g - 1, last]) / sigma * step
    peak = log_p.max()
    total = 0.0
    for g in range(size):
        log_p[g] = math.exp(log_p[g] - peak)
        total += log_p[g]
    mean = 0.0
    second = 0.0
    for g in range(size):
        p = log_p[g] / total
        log_p[g] = p
        mean += p * grid_raw[g]
        second += p * grid_raw[g] * grid_raw[g]
    grid_var = max(second - mean * mean, 1e-300)
    smoothing = (sigma * raw_scale) ** 2
    out[0] = mean
    out[1] = math.sqrt(max(grid_var - smoothing, 0.04 * grid_var))
    # P(y <= 0) from the piecewise-linear CDF over cells [y_g - dy/2, y_g + dy/2]
    half = 0.5 * (grid_raw[1] - grid_raw[0])
    below = 0.0
    for g in range(size):
        left, right = grid_raw[g] - half, grid_raw[g] + half
        if right <= 0.0:
            below += log_p[g]
        elif left < 0.0:
            below += log_p[g] * (0.0 - left) / (right - left)
    out[2] = 1.0 - below


@njit(cache=True, fastmath=_FLAGS)
def score_and_density(
    raw: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    clip: float,
    row_scale: np.ndarray,
    net: tuple,
    work: tuple,
    origin: np.ndarray,
    sigma: float,
    return_index: int,
) -> tuple[float, float]:
    """(score of the return component at sigma_min, ray log-density) for one raw state.

    Rows at sigma_min: 0 = the state z, 1 = z / 2 (see :mod:`scoremodel.density`).
    ``net`` = the 8 weight arrays of :func:`unit_score_rows`; ``work`` = (z, rows, h, normed,
    u, out) preallocated arrays.
    """
    z, rows, h, normed, u, out = work
    normalise_into(raw, mean, std, clip, z)
    for r in range(rows.shape[0]):
        for k in range(z.shape[0]):
            rows[r, k] = row_scale[r] * z[k]
    input_weight, input_bias, fc1, shifts, fc2, fc2_bias, output_weight, output_bias = net
    unit_score_rows(
        rows, input_weight, input_bias, fc1, shifts, fc2, fc2_bias, output_weight, output_bias,
        h, normed, u, out,
    )  # fmt: skip
    score = out[0, return_index] / sigma
    return score, ray_log_density(out, z, origin, sigma)


@njit(cache=True, fastmath=_FLAGS)
def forecast_summary(
    raw: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    clip: float,
    grid: np.ndarray,
    grid_raw: np.ndarray,
    step: float,
    sigma: float,
    raw_scale: float,
    net: tuple,
    work: tuple,
    summary: np.ndarray,
) -> None:
    """[mean, std, P(up)] of the forward return given one raw state (forecast model)."""
    z, rows, h, normed, u, out = work
    normalise_into(raw, mean, std, clip, z)
    last = rows.shape[1] - 1
    for g in range(rows.shape[0]):
        for k in range(last):
            rows[g, k] = z[k]
        rows[g, last] = grid[g]
    input_weight, input_bias, fc1, shifts, fc2, fc2_bias, output_weight, output_bias = net
    unit_score_rows(
        rows, input_weight, input_bias, fc1, shifts, fc2, fc2_bias, output_weight, output_bias,
        h, normed, u, out,
    )  # fmt: skip
    grid_forecast(out, grid_raw, step, sigma, raw_scale, summary)
