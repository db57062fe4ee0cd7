"""The recalibration map g of the conditional forecaster's predictive CDF
(:class:`scoremodel.calibration.CdfMap`): monotone, the identity for a calibrated predictive,
calibrated intervals out of sample for a miscalibrated one, fitted after the mean shrinkage,
and the one rule the policy applies when it re-reads a probability."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from evaluation.forecast_quality import central_coverage
from evaluation.forecast_quality import interval_coverage
from policy.costs import Costs
from policy.edge import shrink_view
from scoremodel.calibration import CDF_KNOTS
from scoremodel.calibration import PRIOR_ROWS
from scoremodel.calibration import CdfMap
from scoremodel.calibration import cdf_map
from scoremodel.calibration import cdf_map_inverse
from scoremodel.calibration import mean_shrinkage
from scoremodel.cond_data import ConditionalScaling
from scoremodel.cond_data import prepare
from scoremodel.cond_network import ConditionalNetConfig
from scoremodel.cond_network import ConditionalScoreNet
from scoremodel.cond_predictive import BarPredictor
from scoremodel.cond_predictive import ConditionalModel
from scoremodel.cond_predictive import PredictiveConfig
from scoremodel.cond_predictive import predict_batch
from scoremodel.cond_predictive import predictive_cdf
from scoremodel.cond_training import ConditionalTrainConfig
from scoremodel.features import compute_features
from scoremodel.forecast import QUANTILES
from scoremodel.gaussian import norm_cdf
from scoremodel.normalise import Normaliser
from scoremodel.pipeline import FitConfig
from scoremodel.pipeline import fit_conditional
from tests.helpers import random_walk_bars

LEVELS = np.asarray(QUANTILES)
COSTS = Costs(fee=0.00055, slippage=0.0001)  # round trip c = 0.0013


def gaussian_model(
    mean: float, std: float, horizons: tuple[int, ...] = (1,), cdf: CdfMap | None = None
) -> ConditionalModel:
    """A conditional model whose predictive is exactly N(mean, std^2) in z-units whatever the
    context: raw r = v sqrt(h) y, v the state's last column (its 'volatility'). The head's
    unit score at sigma is the Gaussian's, sigma d/dy log N(y; mean, std^2 + sigma^2)."""
    network = ConditionalNetConfig(1, 2, len(horizons), hidden=4, head_width=2, embed_dim=4)
    net = ConditionalScoreNet(network)
    sigma = PredictiveConfig().sigma
    slope = sigma / (std**2 + sigma**2)
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.zero_()
        net.head.bias[-2] = -slope  # f(y) = b + l y: l
        net.head.bias[-1] = slope * mean  # b
    k = len(horizons)
    scaling = ConditionalScaling(
        states=Normaliser(np.zeros(2), np.ones(2), 5.0),
        targets=Normaliser(np.zeros(k), np.ones(k), 8.0),
        vol_floor=0.0,
        vol_column=1,
        horizons=horizons,
        context_len=1,
    )
    return ConditionalModel(network, net.state_dict(), scaling, cdf_map=cdf)


def gaussian_market(n: int, mean: float, std: float, horizons=(1,), seed: int = 0):
    """States with a varying volatility v and forward returns r = v sqrt(h) (mean + std e)."""
    rng = np.random.default_rng(seed)
    vol = 0.5 + rng.random(n)
    states = np.column_stack([rng.normal(size=n), vol])
    root = np.sqrt(np.asarray(horizons, dtype=np.float64))
    returns = vol[:, None] * root[None, :] * (mean + std * rng.normal(size=(n, len(horizons))))
    return states, returns


def test_the_map_is_monotone_and_maps_the_unit_interval_onto_itself():
    rng = np.random.default_rng(0)
    pit = np.column_stack([rng.beta(2.0, 2.0, 3_000), rng.beta(0.7, 1.3, 3_000)])
    fitted = CdfMap.fit(pit)
    assert fitted.knots.shape == (2, CDF_KNOTS) and fitted.rows == 3_000
    assert (np.diff(fitted.knots, axis=1) >= 0).all()
    assert (fitted.knots[:, 0] == 0.0).all() and (fitted.knots[:, -1] == 1.0).all()
    u = np.linspace(-0.1, 1.1, 2_001)
    for k in range(2):
        g = fitted.apply(u, k)
        assert (np.diff(g) >= 0).all() and g[0] == 0.0 and g[-1] == 1.0
        # g is the PITs' empirical CDF (to the knots' resolution), shrunk toward the identity
        # by the weight n / (n + PRIOR_ROWS)
        empirical = (pit[:, k][None, :] <= u[:, None]).mean(axis=1)
        weight = 3_000 / (3_000 + PRIOR_ROWS)
        target = weight * empirical + (1.0 - weight) * np.clip(u, 0.0, 1.0)
        assert np.abs(g - target).max() < 0.015
        inner = np.linspace(0.001, 0.999, 999)
        assert np.allclose(fitted.apply(fitted.inverse(inner, k), k), inner, atol=1e-12)
        by_kernel = cdf_map(fitted.knots[k], 0.3)
        assert fitted.horizon(k)(0.3) == fitted.apply(np.array([0.3]), k)[0] == by_kernel
    assert fitted.horizon(-1)(0.3) == fitted.horizon(1)(0.3)
    # the identity table is the identity; an empty table too (a model without a map)
    identity = CdfMap.identity(1)
    assert np.allclose(identity.apply(u[(u >= 0) & (u <= 1)], 0), u[(u >= 0) & (u <= 1)])
    assert cdf_map(np.zeros(0), 0.37) == 0.37 and cdf_map_inverse(np.zeros(0), 0.37) == 0.37


def test_a_map_fitted_on_few_rows_stays_near_the_identity():
    """A few hundred validation rows describe their own regime: the map is shrunk toward the
    identity in proportion (w = n / (n + PRIOR_ROWS))."""
    rng = np.random.default_rng(1)
    few, many = rng.beta(5.0, 5.0, (50, 1)), rng.beta(5.0, 5.0, (20_000, 1))
    levels = np.linspace(0.0, 1.0, CDF_KNOTS)
    drift_few = np.abs(CdfMap.fit(few).knots[0] - levels).max()
    drift_many = np.abs(CdfMap.fit(many).knots[0] - levels).max()
    assert drift_few < 0.4 * drift_many  # 50 rows: w = 0.2; 20,000 rows: w = 0.99


def test_the_map_refuses_knots_that_do_not_rise_from_0_to_1():
    for knots in ([[0.0, 0.6, 0.5, 1.0]], [[0.1, 0.5, 1.0]], [[0.0, 0.5, 0.9]], [[0.0, math.nan]]):
        with pytest.raises(ValueError, match="CDF map"):
            CdfMap(np.array(knots))
    round_trip = CdfMap.from_dict(CdfMap.fit(np.random.default_rng(1).random((50, 3))).to_dict())
    assert round_trip.knots.shape == (3, CDF_KNOTS) and round_trip.rows == 50


def test_a_calibrated_gaussian_predictive_gives_a_map_close_to_the_identity():
    """The model's predictive is the data's law: its PITs are uniform, so g is the identity
    up to sampling noise (DKW: 1.36 / sqrt(5000) = 0.019)."""
    model = gaussian_model(0.2, 0.8, horizons=(1, 4))
    states, returns = gaussian_market(5_000, 0.2, 0.8, horizons=(1, 4), seed=1)
    pit = predictive_cdf(model, states, returns)
    assert np.isfinite(pit).all()
    fitted = CdfMap.fit(pit)
    levels = np.linspace(0.0, 1.0, CDF_KNOTS)
    assert np.abs(fitted.knots - levels[None, :]).max() < 0.025
    # the kernel's PIT equals the analytic one (the grid predictive is exact for a Gaussian)
    z = returns / (states[:, 1:] * np.sqrt([1.0, 4.0]))
    assert np.abs(pit - norm_cdf((z - 0.2) / 0.8)).max() < 0.003


def test_a_too_wide_predictive_is_calibrated_out_of_sample():
    """The predictive is 1.6x too wide: its central 50 / 80 / 90 % intervals cover far more.
    g fitted on 5,000 validation rows brings them within 2 points on 20,000 fresh rows, in
    the published quantiles and in the PIT, the per-bar path equal to the batch path."""
    truth_mean, truth_std = -0.1, 0.5
    raw_model = gaussian_model(truth_mean, 1.6 * truth_std)
    val_states, val_returns = gaussian_market(5_000, truth_mean, truth_std, seed=2)
    fitted = CdfMap.fit(predictive_cdf(raw_model, val_states, val_returns))
    model = gaussian_model(truth_mean, 1.6 * truth_std, cdf=fitted)
    states, returns = gaussian_market(20_000, truth_mean, truth_std, seed=3)
    y = returns[:, 0]
    before = interval_coverage(LEVELS, predict_batch(raw_model, states).quantiles[:, 0], y)
    assert before["0.5"] > 0.68 and before["0.9"] > 0.98  # too wide
    batch = predict_batch(model, states)
    after = interval_coverage(LEVELS, batch.quantiles[:, 0], y)
    assert abs(after["0.5"] - 0.5) < 0.02 and abs(after["0.9"] - 0.9) < 0.02, after
    central = central_coverage(predictive_cdf(model, states, returns)[:, 0])
    for level, coverage in central.items():
        assert abs(coverage - float(level)) < 0.02, central
    # the published probabilities are the truth's (up to g's sampling noise)
    scale = states[:, 1]
    cost = 0.2
    truth_up = 1.0 - norm_cdf((cost / scale - truth_mean) / truth_std)
    assert np.abs(predict_batch(model, states, cost=cost).p_up_cost[:, 0] - truth_up).max() < 0.02
    predictor = BarPredictor(model)
    for t in range(200):
        assert predictor.update(states[t])
        for name in ("mean", "std", "quantiles", "p_up", "p_up_cost", "p_down_cost"):
            assert np.abs(getattr(predictor, name) - getattr(batch, name)[t]).max() < 1e-9


def test_the_published_quantiles_and_cdf_are_one_distribution():
    """G(Q(tau)) = tau: the quantiles and predictive_cdf read the same calibrated law."""
    rng = np.random.default_rng(4)
    fitted = CdfMap.fit(rng.beta(1.5, 1.5, size=(4_000, 1)))
    model = gaussian_model(0.3, 0.9, cdf=fitted)
    states, _ = gaussian_market(50, 0.3, 0.9, seed=5)
    quantiles = predict_batch(model, states).quantiles[:, 0]  # (50, Q)
    for q, tau in enumerate(LEVELS):
        x = quantiles[:, q : q + 1]
        assert np.abs(predictive_cdf(model, states, x)[:, 0] - tau).max() < 1e-9


def test_the_forecaster_fits_its_map_on_the_validation_pit_of_the_shrunk_predictive():
    """fit_conditional: beta first, then g on u = F(r + (1 - beta) E[r]) of the validation
    rows: the predictive as traded, the model's law moved to the shrunk mean."""
    bars = random_walk_bars(3_000, seed=3, interval="1h")
    tiny = ConditionalTrainConfig(
        hidden=16, head_width=6, embed_dim=8, batch_size=256, max_epochs=2, patience=2, seed=1
    )
    config = FitConfig(context_len=4, horizons=(1, 3), conditional=tiny)
    model, record = fit_conditional(bars, config, progress=False)
    assert model.cdf_map is not None and model.cdf_map.knots.shape == (2, CDF_KNOTS)
    data = prepare(bars, config.horizons, config.context_len, config.fractions, config.spec)
    states = compute_features(bars)
    rows = states.index.get_indexer(data.val.index)
    bare = ConditionalModel(model.network, model.state_dict, model.scaling)
    mean = predict_batch(bare, states.to_numpy()).mean
    beta = mean_shrinkage(mean[rows], data.val.forward)
    assert record["mean_shrinkage"] == beta.tolist()
    shifted = np.full(mean.shape, np.nan)
    shifted[rows] = data.val.forward + (1.0 - beta) * mean[rows]
    expected = CdfMap.fit(predictive_cdf(bare, states.to_numpy(), shifted)[rows])
    assert np.array_equal(model.cdf_map.knots, expected.knots)
    assert model.cdf_map.rows == len(rows)


def test_shrink_view_reads_the_shrunk_probabilities_through_the_map():
    """beta < 1: P(r > c) = 1 - g(Phi((c - beta m) / s)), P(r < -c) = g(Phi((-c - beta m) / s));
    without a map the view is the one before the map existed; beta = 1 keeps the forecaster's
    own (already calibrated) probabilities."""
    rng = np.random.default_rng(6)
    g = CdfMap.fit(rng.beta(2.0, 2.0, size=(3_000, 1))).horizon(0)
    mean, std, c = 0.004, 0.003, COSTS.round_trip
    plain = shrink_view(mean, std, 0.9, 0.01, 0.5, COSTS)
    mapped = shrink_view(mean, std, 0.9, 0.01, 0.5, COSTS, g)
    up, down = norm_cdf((c - 0.002) / std), norm_cdf((-c - 0.002) / std)
    assert plain.p_above_cost == pytest.approx(1.0 - up, abs=1e-12)
    assert mapped.mean == plain.mean == pytest.approx(0.002) and mapped.std == std
    assert mapped.p_above_cost == pytest.approx(1.0 - g(float(up)), abs=1e-12)
    assert mapped.p_below_cost == pytest.approx(g(float(down)), abs=1e-12)
    assert mapped.p_above_cost != pytest.approx(plain.p_above_cost, abs=1e-3)  # g matters
    assert shrink_view(mean, std, 0.9, 0.01, 1.0, COSTS, g) == (mean, std, 0.9, 0.01)
