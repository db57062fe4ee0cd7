"""Predictive distribution of the forward returns from the conditional score, per bar or batch.

Method (per horizon, one-dimensional target y in z-units): on a grid y_g the network gives the
y-score s(y_g | c) of the target smoothed with N(0, sigma^2) at one moderate sigma. Integrating
it (trapezoid) gives log p_sigma(y | c) up to a constant; normalising on the grid gives
p_sigma. A Gaussian convolution moves neither the mean nor any cumulant beyond the variance:

    E_sigma[y | c] = E[y | c],   Var_sigma[y | c] = Var[y | c] + sigma^2,

so the mean and the std are deconvolved exactly (up to quadrature and the grid's range).
Quantiles and exceedance probabilities of p(y | c) are approximated by shrinking p_sigma about
its mean by k = sqrt(Var / Var_sigma): exact for a Gaussian conditional, and validated against
a Gaussian mixture in the tests (``tests/test_conditional_model.py``).

Recalibration (:class:`scoremodel.calibration.CdfMap`, fitted on the validation block by
:func:`scoremodel.pipeline.fit_conditional`): with F that CDF and g the model's map of horizon
k, the published predictive is G = g(F): P(r > x) = 1 - g(F(x)), P(r < x) = g(F(x)), the
tau-quantile F^{-1}(g^{-1}(tau)). The mean and the std stay F's (the mean is what the validated
slope beta multiplies; :mod:`policy.edge`). A model without a map (older manifests) publishes F.

Two paths compute the same numbers: :func:`predict_batch` (numpy encoder over many rows, then
the compiled grid kernel row by row) and :class:`BarPredictor` (one compiled call per bar: the
state pushed into an L-bar ring, the encoder, the grid and the summary). They agree to ~1e-13.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numba import njit

from scoremodel.calibration import CdfMap
from scoremodel.calibration import HorizonCdfMap
from scoremodel.calibration import cdf_map
from scoremodel.calibration import cdf_map_inverse
from scoremodel.cond_data import ConditionalScaling
from scoremodel.cond_data import context_windows
from scoremodel.cond_network import ConditionalNetConfig
from scoremodel.cond_network import ConditionalScoreNet
from scoremodel.forecast import QUANTILES

DEFAULT_COST = 2 * 0.00055  # round-trip taker fee, in log-return units
VARIANCE_FLOOR = 0.04  # deconvolved variance >= this x Var_sigma (std >= 0.2 std_sigma)
# columns of the per-horizon output row: then one column per quantile level
MEAN, STD, P_UP, P_UP_COST, P_DOWN_COST, FIRST_QUANTILE = range(6)
_FLAGS = {"reassoc", "contract"}


@dataclass(frozen=True)
class PredictiveConfig:
    """The noise level and grid of the predictive computation (model z-units)."""

    sigma: float = 0.5
    grid_half_width: float = 6.0
    grid_size: int = 49

    def grid(self) -> np.ndarray:
        return np.linspace(-self.grid_half_width, self.grid_half_width, self.grid_size)

    def to_dict(self) -> dict:
        return {
            "sigma": self.sigma,
            "grid_half_width": self.grid_half_width,
            "grid_size": self.grid_size,
        }


@dataclass
class ConditionalModel:
    """Everything a forecast needs: weights, architecture, scaling and predictive settings."""

    network: ConditionalNetConfig
    state_dict: dict[str, torch.Tensor]
    scaling: ConditionalScaling
    predictive: PredictiveConfig = PredictiveConfig()
    cdf_map: CdfMap | None = None  # the validated recalibration g per horizon; None: identity

    def __post_init__(self) -> None:
        if self.cdf_map is not None and self.cdf_map.n_horizons != self.network.n_horizons:
            raise ValueError(
                f"the CDF map has {self.cdf_map.n_horizons} horizons, the network "
                f"{self.network.n_horizons}"
            )

    def horizon_map(self, k: int) -> HorizonCdfMap | None:
        """g of horizon ``k`` (negative counts from the end) as a callable; None: identity."""
        return None if self.cdf_map is None else self.cdf_map.horizon(k)

    @property
    def horizons(self) -> tuple[int, ...]:
        return self.scaling.horizons

    @property
    def context_len(self) -> int:
        return self.network.context_len


@dataclass(frozen=True)
class Predictive:
    """Predictive distribution of log(c_{t+h}/c_t) (raw units); arrays (N, K) or (N, K, Q)."""

    mean: np.ndarray
    std: np.ndarray
    quantiles: np.ndarray  # levels QUANTILES
    p_up: np.ndarray  # P(r > 0)
    p_up_cost: np.ndarray  # P(r > cost)
    p_down_cost: np.ndarray  # P(r < -cost)

    @classmethod
    def from_rows(cls, rows: np.ndarray) -> Predictive:
        """From kernel output rows (..., K, 5 + Q)."""
        return cls(
            mean=rows[..., MEAN],
            std=rows[..., STD],
            quantiles=rows[..., FIRST_QUANTILE:],
            p_up=rows[..., P_UP],
            p_up_cost=rows[..., P_UP_COST],
            p_down_cost=rows[..., P_DOWN_COST],
        )


# ----- weights as float64 arrays -------------------------------------------------------------


@dataclass(frozen=True)
class _Weights:
    """float64 weights in torch's (out, in) layout; ``condition`` per horizon at sigma."""

    encoder_in: np.ndarray
    encoder_in_bias: np.ndarray
    encoder_hidden: np.ndarray
    encoder_hidden_bias: np.ndarray
    condition: np.ndarray
    condition_shift: np.ndarray  # (K, H): bias + sigma embedding + horizon embedding
    head: np.ndarray
    head_bias: np.ndarray

    @classmethod
    def from_model(cls, model: ConditionalModel) -> _Weights:
        net = ConditionalScoreNet(model.network).to(torch.float64)
        net.load_state_dict({k: v.to(torch.float64) for k, v in model.state_dict.items()})
        k = model.network.n_horizons
        with torch.no_grad():
            log_sigma = torch.full((k,), math.log(model.predictive.sigma), dtype=torch.float64)
            shift = net.condition.bias + net.sigma_embed(log_sigma) + net.horizon_embed

        def numpy(t: torch.Tensor) -> np.ndarray:
            return np.ascontiguousarray(t.detach().numpy())

        return cls(
            numpy(net.encoder_in.weight),
            numpy(net.encoder_in.bias),
            numpy(net.encoder_hidden.weight),
            numpy(net.encoder_hidden.bias),
            numpy(net.condition.weight),
            numpy(shift),
            numpy(net.head.weight),
            numpy(net.head.bias),
        )


def _act(x: np.ndarray) -> np.ndarray:
    return x * (0.5 + 0.5 * x / np.sqrt(1.0 + x * x))


class _Constants:
    """Arrays shared by both paths: scaling, grid, quantile levels, settings."""

    def __init__(self, model: ConditionalModel, cost: float) -> None:
        scaling = model.scaling
        self.weights = _Weights.from_model(model)
        self.norm = np.stack([scaling.states.mean, scaling.states.std])
        self.target = np.stack(
            [
                scaling.targets.mean,
                scaling.targets.std,
                np.sqrt(np.asarray(scaling.horizons, float)),
            ]
        )
        self.grid = model.predictive.grid()
        n_horizons = model.network.n_horizons
        self.knots = (  # one row of g's knots per horizon; no columns: the identity
            np.zeros((n_horizons, 0)) if model.cdf_map is None else model.cdf_map.knots
        )
        self.levels = np.asarray(QUANTILES, dtype=np.float64)
        self.settings = np.array(
            [
                scaling.states.clip,
                model.predictive.sigma,
                scaling.vol_floor,
                cost,
                scaling.vol_column,
                model.network.head_width,
            ]
        )
        self.n_outputs = FIRST_QUANTILE + len(QUANTILES)


def summarise_scores(
    unit_scores: np.ndarray,
    predictive: PredictiveConfig,
    cost: float = DEFAULT_COST,
    knots: np.ndarray | None = None,
) -> Predictive:
    """The predictive method alone: unit scores sigma s(y_g) on ``predictive.grid()`` (N, G)
    -> summaries in the target's own units (what the tests check against analytic laws);
    ``knots``: one horizon's CDF map (:class:`scoremodel.calibration.CdfMap`), else none."""
    settings = np.array([0.0, predictive.sigma, 0.0, cost, 0.0, 0.0])
    scores = np.ascontiguousarray(np.atleast_2d(unit_scores), dtype=np.float64)
    out = np.empty((len(scores), FIRST_QUANTILE + len(QUANTILES)))
    levels = np.asarray(QUANTILES, dtype=np.float64)
    knots = np.zeros(0) if knots is None else np.ascontiguousarray(knots, dtype=np.float64)
    _summarise_score_rows(scores, predictive.grid(), levels, settings, knots, out)
    return Predictive.from_rows(out)


def predict_batch(
    model: ConditionalModel, raw_states: np.ndarray, cost: float = DEFAULT_COST
) -> Predictive:
    """Predictive for every row of consecutive raw states (N, F); rows < L - 1 are NaN."""
    constants = _Constants(model, cost)
    raw_states = np.asarray(raw_states, dtype=np.float64)
    rows = np.full((len(raw_states), model.network.n_horizons, constants.n_outputs), np.nan)
    for part, params, vol in _batch_heads(model, constants, raw_states):
        out = np.empty((len(part), params.shape[1], constants.n_outputs))
        _summarise_rows(
            params, vol, constants.target, constants.grid, constants.levels,
            constants.settings, constants.knots, out,
        )  # fmt: skip
        rows[part] = out
    return Predictive.from_rows(rows)


def predictive_cdf(model: ConditionalModel, raw_states: np.ndarray, x: np.ndarray) -> np.ndarray:
    """P(r_k <= x[t, k]) under row t's published predictive (G = g(F) with the model's CDF
    map, F without one), for every row of consecutive raw states (N, F) and values ``x``
    (N, K) in raw log-return units; NaN where x is NaN and for rows < L - 1. With x the
    realised returns this is the PIT."""
    constants = _Constants(model, DEFAULT_COST)
    raw_states = np.asarray(raw_states, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64).reshape(len(raw_states), model.network.n_horizons)
    out = np.full(x.shape, np.nan)
    for part, params, vol in _batch_heads(model, constants, raw_states):
        values = np.ascontiguousarray(x[part])
        result = np.empty_like(values)
        _cdf_rows(
            params, vol, values, constants.target, constants.grid, constants.settings,
            constants.knots, result,
        )  # fmt: skip
        out[part] = result
    return out


def _batch_heads(model: ConditionalModel, constants: _Constants, raw_states: np.ndarray):
    """(rows, head parameters (n, K, P), the bars' volatility (n,)) per block of 4,096 rows
    that have a full context: the numpy encoder and conditioning of the batch path."""
    w = constants.weights
    scaling = model.scaling
    contexts = context_windows(scaling.states.transform(raw_states), model.context_len)
    ready = np.arange(model.context_len - 1, len(raw_states))
    for start in range(0, len(ready), 4096):
        part = ready[start : start + 4096]
        e = _act(contexts[part] @ w.encoder_in.T + w.encoder_in_bias)
        e = _act(e @ w.encoder_hidden.T + w.encoder_hidden_bias)
        base = e @ w.condition.T
        t = _act(base[:, None, :] + w.condition_shift[None])  # (n, K, H)
        params = t @ w.head.T + w.head_bias  # (n, K, P)
        vol = np.maximum(raw_states[part, scaling.vol_column], scaling.vol_floor)
        yield part, params, vol


class BarPredictor:
    """Per-bar predictive: push one raw state per closed bar; numpy + one compiled call.

    After :meth:`update` returns True (L states seen) the arrays ``mean``, ``std`` (K,),
    ``quantiles`` (K, Q), ``p_up``, ``p_up_cost``, ``p_down_cost`` (K,) hold the forecast of
    that bar; they are views reused by the next update (copy them to keep them). Quantiles and
    probabilities are the model's CDF map applied (:meth:`cdf_map`, as in :func:`predict_batch`).

    ``horizons``: the positions (in ``model.horizons``; negative counts from the end) to
    compute, default all; the others stay NaN. The strategy trades one horizon, so it computes
    only that one (the encoder is shared; each horizon adds its head and grid summary).
    """

    def __init__(
        self,
        model: ConditionalModel,
        cost: float = DEFAULT_COST,
        horizons: Sequence[int] | None = None,
    ) -> None:
        self.model = model
        n_horizons = model.network.n_horizons
        every = range(n_horizons)
        self._active = np.array(
            sorted({every[k] for k in horizons}) if horizons is not None else every,
            dtype=np.int64,
        )
        c = _Constants(model, cost)
        self._c = c
        w = c.weights
        self._weights = (
            w.encoder_in, w.encoder_in_bias, w.encoder_hidden, w.encoder_hidden_bias,
            w.condition, w.condition_shift, w.head, w.head_bias,
        )  # fmt: skip
        hidden, n_params = w.encoder_in.shape[0], w.head.shape[0]
        self._ring = np.zeros((model.context_len, model.network.n_features))
        self._count = np.zeros(1, dtype=np.int64)
        self._work = np.zeros(3 * hidden + n_params + 2 * len(c.grid) + 1)
        self.rows = np.full((model.network.n_horizons, c.n_outputs), np.nan)
        predictive = Predictive.from_rows(self.rows)
        self.mean, self.std, self.quantiles = predictive.mean, predictive.std, predictive.quantiles
        self.p_up, self.p_up_cost = predictive.p_up, predictive.p_up_cost
        self.p_down_cost = predictive.p_down_cost
        self.update(np.ones(model.network.n_features))  # compile / load the kernel now
        self.reset()

    def cdf_map(self, k: int) -> HorizonCdfMap | None:
        """The model's map g of horizon ``k`` as a callable u -> g(u) (None: the identity): what
        :func:`policy.edge.shrink_view` applies when it re-reads a probability."""
        return self.model.horizon_map(k)

    def reset(self) -> None:
        self._ring[:] = 0.0
        self._count[:] = 0
        self.rows[:] = np.nan

    def update(self, raw_state: np.ndarray) -> bool:
        """Consume the state of a closed bar; True once the forecast of this bar is ready."""
        c = self._c
        return _bar_predict(
            raw_state, self._ring, self._count, c.norm, c.target, c.settings, c.grid, c.levels,
            c.knots, *self._weights, self._active, self._work, self.rows,
        )  # fmt: skip


# ----- compiled kernels ------------------------------------------------------------------------


@njit(cache=True, fastmath=_FLAGS)
def _kact(x: float) -> float:
    return x * (0.5 + 0.5 * x / math.sqrt(1.0 + x * x))


@njit(cache=True, fastmath=_FLAGS)
def _grid_scores(params: np.ndarray, grid: np.ndarray, width: int, scores: np.ndarray) -> None:
    """Unit scores f(y_g) = b + l y + sum_m v_m act(a_m + w_m y) on the grid."""
    offset, linear = params[3 * width + 1], params[3 * width]
    for g in range(grid.shape[0]):
        scores[g] = offset + linear * grid[g]
    for m in range(width):  # the inner loop over the grid vectorises (SIMD sqrt and divide)
        a, w, v = params[m], params[width + m], params[2 * width + m]
        for g in range(grid.shape[0]):
            x = a + w * grid[g]
            scores[g] += v * (x * (0.5 + 0.5 * x / math.sqrt(1.0 + x * x)))


@njit(cache=True, fastmath=_FLAGS)
def _cdf(cumulative: np.ndarray, first_edge: float, step: float, x: float) -> float:
    """F(x) of the grid distribution (cell g uniform on [y_g -+ step / 2]).

    ``cumulative[g]`` = mass of cells 0 .. g - 1, so cumulative[0] = 0 and cumulative[G] = 1.
    """
    position = (x - first_edge) / step
    n = cumulative.shape[0] - 1
    if position >= n:
        return 1.0
    if position <= 0:
        return 0.0
    cell = int(position)
    return cumulative[cell] + (cumulative[cell + 1] - cumulative[cell]) * (position - cell)


@njit(cache=True, fastmath=_FLAGS)
def _law(scores: np.ndarray, sigma: float, grid: np.ndarray, work: np.ndarray) -> tuple:
    """Unit scores on the grid -> p_sigma's CDF at the cell edges in ``work`` (G + 1), and
    (mean, Var, shrink) in z-units: Var deconvolved, shrink = sqrt(Var / Var_sigma)."""
    n = grid.shape[0]
    step = grid[1] - grid[0]
    cumulative = work
    log_p, top = 0.0, 0.0
    cumulative[1] = 0.0  # cumulative[g + 1] holds log p at y_g for now
    for g in range(1, n):  # log p_sigma by the trapezoid rule on score = f / sigma
        log_p += 0.5 * (scores[g] + scores[g - 1]) / sigma * step
        cumulative[g + 1] = log_p
        top = max(top, log_p)
    total, first, second = 0.0, 0.0, 0.0
    cumulative[0] = 0.0
    for g in range(n):
        mass = math.exp(cumulative[g + 1] - top)
        total += mass
        first += mass * grid[g]
        second += mass * grid[g] * grid[g]
        cumulative[g + 1] = total
    mean = first / total
    var_sigma = max(second / total - mean * mean, 1e-300)
    for g in range(1, n + 1):
        cumulative[g] /= total
    var = max(var_sigma - sigma * sigma, VARIANCE_FLOOR * var_sigma)
    return mean, var, math.sqrt(var / var_sigma)


@njit(cache=True, fastmath=_FLAGS)
def _summarise(
    scores: np.ndarray,
    offset: float,
    scale: float,
    grid: np.ndarray,
    levels: np.ndarray,
    settings: np.ndarray,
    knots: np.ndarray,
    work: np.ndarray,
    out: np.ndarray,
) -> None:
    """Unit scores on the grid -> mean, std, quantiles, exceedances in raw = offset + scale y,
    the quantiles and exceedances through the CDF map ``knots`` (none: the identity).

    ``work`` has G + 1 elements; it ends holding p_sigma's CDF at the cell edges.
    """
    cost = settings[3]
    n = grid.shape[0]
    step = grid[1] - grid[0]
    cumulative = work
    mean, var, shrink = _law(scores, settings[1], grid, cumulative)
    out[MEAN] = offset + scale * mean
    out[STD] = scale * math.sqrt(var)
    first_edge = grid[0] - 0.5 * step
    cell = 0
    for q in range(levels.shape[0]):  # levels ascend, and g^-1 keeps them so: one pass
        tau = cdf_map_inverse(knots, levels[q])
        while cell < n - 1 and cumulative[cell + 1] < tau:
            cell += 1
        mass = cumulative[cell + 1] - cumulative[cell]
        fraction = (tau - cumulative[cell]) / mass if mass > 0 else 0.5
        value = first_edge + step * (cell + min(max(fraction, 0.0), 1.0))
        out[FIRST_QUANTILE + q] = offset + scale * (mean + shrink * (value - mean))
    # P(y > x) = 1 - F_sigma(mean + (x - mean) / shrink) for thresholds given in raw units
    up = mean + ((0.0 - offset) / scale - mean) / shrink
    up_cost = mean + ((cost - offset) / scale - mean) / shrink
    down_cost = mean + ((-cost - offset) / scale - mean) / shrink
    out[P_UP] = 1.0 - cdf_map(knots, _cdf(cumulative, first_edge, step, up))
    out[P_UP_COST] = 1.0 - cdf_map(knots, _cdf(cumulative, first_edge, step, up_cost))
    out[P_DOWN_COST] = cdf_map(knots, _cdf(cumulative, first_edge, step, down_cost))


@njit(cache=True, fastmath=_FLAGS)
def _cdf_at(
    scores: np.ndarray,
    offset: float,
    scale: float,
    grid: np.ndarray,
    settings: np.ndarray,
    knots: np.ndarray,
    work: np.ndarray,
    x: float,
) -> float:
    """g(F(x)) at a raw value x = offset + scale y, F as :func:`_summarise` reads it."""
    step = grid[1] - grid[0]
    mean, _, shrink = _law(scores, settings[1], grid, work)
    position = mean + ((x - offset) / scale - mean) / shrink
    return cdf_map(knots, _cdf(work, grid[0] - 0.5 * step, step, position))


@njit(cache=True, fastmath=_FLAGS)
def _summarise_score_rows(
    scores: np.ndarray,
    grid: np.ndarray,
    levels: np.ndarray,
    settings: np.ndarray,
    knots: np.ndarray,
    out: np.ndarray,
) -> None:
    """Unit scores (N, G) in z-units -> out (N, 5 + Q) in z-units."""
    weights = np.empty(grid.shape[0] + 1)
    for r in range(scores.shape[0]):
        _summarise(scores[r], 0.0, 1.0, grid, levels, settings, knots, weights, out[r])


@njit(cache=True, fastmath=_FLAGS)
def _summarise_rows(
    params: np.ndarray,
    vol: np.ndarray,
    target: np.ndarray,
    grid: np.ndarray,
    levels: np.ndarray,
    settings: np.ndarray,
    knots: np.ndarray,
    out: np.ndarray,
) -> None:
    """Batch: params (N, K, P), the bar's volatility (N,) -> out (N, K, 5 + Q)."""
    weights = np.empty(grid.shape[0] + 1)
    scores = np.empty(grid.shape[0])
    width = int(settings[5])
    for r in range(params.shape[0]):
        for k in range(params.shape[1]):
            scale = vol[r] * target[2, k]
            _grid_scores(params[r, k], grid, width, scores)
            _summarise(
                scores, scale * target[0, k], scale * target[1, k],
                grid, levels, settings, knots[k], weights, out[r, k],
            )  # fmt: skip


@njit(cache=True, fastmath=_FLAGS)
def _cdf_rows(
    params: np.ndarray,
    vol: np.ndarray,
    x: np.ndarray,
    target: np.ndarray,
    grid: np.ndarray,
    settings: np.ndarray,
    knots: np.ndarray,
    out: np.ndarray,
) -> None:
    """Batch: params (N, K, P), the bar's volatility (N,), raw values x (N, K) -> g(F(x))."""
    weights = np.empty(grid.shape[0] + 1)
    scores = np.empty(grid.shape[0])
    width = int(settings[5])
    for r in range(params.shape[0]):
        for k in range(params.shape[1]):
            if not math.isfinite(x[r, k]):
                out[r, k] = math.nan
                continue
            scale = vol[r] * target[2, k]
            _grid_scores(params[r, k], grid, width, scores)
            out[r, k] = _cdf_at(
                scores, scale * target[0, k], scale * target[1, k],
                grid, settings, knots[k], weights, x[r, k],
            )  # fmt: skip


@njit(cache=True, fastmath=_FLAGS)
def _dense(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, out: np.ndarray) -> None:
    """out = weight @ x + bias (weight in (out, in) layout)."""
    for j in range(weight.shape[0]):
        total = bias[j]
        row = weight[j]
        for i in range(x.shape[0]):
            total += row[i] * x[i]
        out[j] = total


@njit(cache=True, fastmath=_FLAGS)
def _bar_predict(
    raw_state: np.ndarray,
    ring: np.ndarray,
    count: np.ndarray,
    norm: np.ndarray,
    target: np.ndarray,
    settings: np.ndarray,
    grid: np.ndarray,
    levels: np.ndarray,
    knots: np.ndarray,
    encoder_in: np.ndarray,
    encoder_in_bias: np.ndarray,
    encoder_hidden: np.ndarray,
    encoder_hidden_bias: np.ndarray,
    condition: np.ndarray,
    condition_shift: np.ndarray,
    head: np.ndarray,
    head_bias: np.ndarray,
    active: np.ndarray,
    work: np.ndarray,
    out: np.ndarray,
) -> bool:
    """Push the z-scored state into the L-bar ring, then encoder, and the heads and summaries
    of the ``active`` horizons."""
    context_len, n_features = ring.shape
    clip = settings[0]
    for i in range(context_len - 1):  # oldest first: shift up by one bar
        for j in range(n_features):
            ring[i, j] = ring[i + 1, j]
    for j in range(n_features):
        z = (raw_state[j] - norm[0, j]) / norm[1, j]
        ring[context_len - 1, j] = min(max(z, -clip), clip)
    count[0] += 1
    if count[0] < context_len:
        return False
    hidden = encoder_in.shape[0]
    first, second, t = work[:hidden], work[hidden : 2 * hidden], work[2 * hidden : 3 * hidden]
    n_grid = grid.shape[0]
    params = work[3 * hidden : 3 * hidden + head.shape[0]]
    scores = work[3 * hidden + head.shape[0] : 3 * hidden + head.shape[0] + n_grid]
    weights = work[3 * hidden + head.shape[0] + n_grid :]
    _dense(ring.ravel(), encoder_in, encoder_in_bias, first)
    for j in range(hidden):
        first[j] = _kact(first[j])
    _dense(first, encoder_hidden, encoder_hidden_bias, second)
    for j in range(hidden):
        second[j] = _kact(second[j])
    vol = max(raw_state[int(settings[4])], settings[2])
    for k in active:
        _dense(second, condition, condition_shift[k], t)
        for j in range(hidden):
            t[j] = _kact(t[j])
        _dense(t, head, head_bias, params)
        _grid_scores(params, grid, int(settings[5]), scores)
        scale = vol * target[2, k]
        _summarise(
            scores, scale * target[0, k], scale * target[1, k],
            grid, levels, settings, knots[k], weights, out[k],
        )  # fmt: skip
    return True
