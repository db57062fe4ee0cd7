"""The volatility yardsticks: no lookahead, arch's own recursion, the HAR-RV and EWMA definitions,
and their place in the evaluation's forecast comparison."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from arch import arch_model

from evaluation.folds import Fold
from evaluation.forecast_quality import pit_from_quantiles
from evaluation.forecast_quality import pit_summary
from evaluation.summary import FORECASTERS
from evaluation.summary import YARDSTICKS
from evaluation.volatility import GARCH_SCALE
from evaluation.volatility import EwmaForecaster
from evaluation.volatility import GarchForecaster
from evaluation.volatility import HarForecaster
from evaluation.volatility import PointGaussian
from evaluation.volatility import ReturnForecast
from evaluation.volatility import bars_per_day
from evaluation.volatility import forward_realised_variance
from evaluation.volatility import one_bar_returns
from evaluation.volatility import realised_variance_components
from evaluation.walk_forward import _volatility_predictives
from scoremodel.datasets import forward_returns
from scoremodel.forecast import QUANTILES

LEVELS = np.asarray(QUANTILES)
TRUE = {"mu": 0.01, "omega": 0.02, "alpha[1]": 0.08, "beta[1]": 0.9, "nu": 6.0}


def garch_bars(n: int = 6_000, seed: int = 0, freq: str = "1h") -> pd.DataFrame:
    """Closes whose hourly log returns (percent / 100) follow a GARCH(1, 1)-t with TRUE."""
    simulated = _simulate_garch_t(n, np.random.default_rng(seed))
    close = 100.0 * np.exp(np.concatenate([[0.0], np.cumsum(simulated[0] / GARCH_SCALE)]))
    index = pd.date_range("2024-01-01", periods=n + 1, freq=freq, tz="UTC")
    bars = pd.DataFrame({"close": close}, index=index)
    bars.attrs["variance"] = np.concatenate([[np.nan], simulated[1]]) / GARCH_SCALE**2
    return bars


def _simulate_garch_t(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(returns, conditional variances) in percent units, unit-variance t innovations."""
    nu = TRUE["nu"]
    z = rng.standard_t(nu, n + 500) * math.sqrt((nu - 2) / nu)
    omega, alpha, beta = TRUE["omega"], TRUE["alpha[1]"], TRUE["beta[1]"]
    s2 = np.empty(n + 500)
    r = np.empty(n + 500)
    s2[0] = omega / (1 - alpha - beta)
    for t in range(n + 500):
        if t:
            s2[t] = omega + alpha * (r[t - 1] - TRUE["mu"]) ** 2 + beta * s2[t - 1]
        r[t] = TRUE["mu"] + math.sqrt(s2[t]) * z[t]
    return r[500:], s2[500:]


BARS = garch_bars()
TRAIN = BARS.iloc[:4_000]
H = 6


def fitted() -> dict:
    return {
        "garch": GarchForecaster(H).fit(TRAIN),
        "har": HarForecaster(H).fit(TRAIN),
        "ewma": EwmaForecaster(H).fit(TRAIN),
    }


FITTED = fitted()


@pytest.mark.parametrize("name", ["garch", "har", "ewma"])
def test_the_forecast_at_t_uses_no_bar_after_t(name):
    """Perturb every bar after t: the forecasts up to t are unchanged to the last bit, later
    ones change (the forecaster does read the bars it may read)."""
    forecaster = FITTED[name]
    before = forecaster.predict(BARS)
    rng = np.random.default_rng(1)
    for t in (4_500, 5_000, len(BARS) - 2):
        changed = BARS.copy()
        changed.iloc[t + 1 :, 0] *= np.exp(rng.normal(0, 0.05, len(BARS) - t - 1))
        after = forecaster.predict(changed)
        np.testing.assert_array_equal(after.std[: t + 1], before.std[: t + 1])
        np.testing.assert_array_equal(after.mean[: t + 1], before.mean[: t + 1])
        assert not np.allclose(after.std[t + 1 :], before.std[t + 1 :])
        # a prefix of the bars gives the same forecasts (what "bars up to t" means)
        prefix = forecaster.predict(BARS.iloc[: t + 1])
        np.testing.assert_array_equal(prefix.std, before.std[: t + 1])


@pytest.mark.parametrize("name", ["garch", "har", "ewma"])
def test_the_fit_reads_its_training_bars_only(name):
    """A fit on the training bars of a longer series equals a fit on those bars alone, and the
    bars after the window change nothing fitted."""
    changed = BARS.copy()
    changed.iloc[len(TRAIN) :, 0] *= 1.5
    refit = type(FITTED[name])(H).fit(changed.iloc[: len(TRAIN)])
    np.testing.assert_array_equal(refit.predict(BARS).std, FITTED[name].predict(BARS).std)


def test_point_gaussian_is_row_wise_with_the_training_residual_std():
    rng = np.random.default_rng(2)
    forecast, outcome = rng.normal(0, 0.01, 500), rng.normal(0, 0.02, 500)
    point = PointGaussian().fit(forecast, outcome)
    assert point.std == pytest.approx(np.std(outcome - forecast, ddof=1))
    mean = rng.normal(0, 0.01, 50)
    full = point.predict(mean)
    np.testing.assert_array_equal(full.mean, mean)
    np.testing.assert_array_equal(point.predict(mean[:20]).quantiles(LEVELS),
                                  full.quantiles(LEVELS)[:20])  # fmt: skip
    assert (full.std == point.std).all() and full.df is None


def test_garch_recursion_is_archs_own_and_recovers_the_parameters():
    garch = FITTED["garch"]
    for key, tolerance in (("alpha[1]", 0.04), ("beta[1]", 0.05), ("nu", 2.5)):
        assert garch.params[key] == pytest.approx(TRUE[key], abs=tolerance)
    returns = GARCH_SCALE * one_bar_returns(TRAIN)[1:]
    model = arch_model(returns, mean="Constant", vol="GARCH", p=1, q=1, dist="t", rescale=False)
    result = model.fit(disp="off", backcast=garch.backcast)
    # the filtered variance of each training return given the returns before it
    s1 = garch.one_step_variance(TRAIN)
    np.testing.assert_allclose(s1[:-1], result.conditional_volatility**2, rtol=1e-9)
    # arch's h-step forecasts from every training bar, summed over the h steps
    forecast = result.forecast(horizon=H, start=100, reindex=False)
    expected = forecast.variance.to_numpy().sum(axis=1) / GARCH_SCALE**2
    np.testing.assert_allclose(garch.h_bar_variance(TRAIN)[101:], expected, rtol=1e-6)
    mean = garch.predict(TRAIN).mean
    assert np.all(mean == H * garch.params["mu"] / GARCH_SCALE)


def test_garch_h_bar_predictive_is_calibrated_out_of_sample():
    garch = FITTED["garch"]
    test = slice(len(TRAIN), len(BARS) - H)
    forecast = garch.predict(BARS)
    y = forward_returns(BARS, H).to_numpy()[test]
    mean, std = forecast.mean[test], forecast.std[test]
    # the h-bar variance forecast against the true conditional variances that followed
    true = pd.Series(BARS.attrs["variance"]).rolling(H).sum().shift(-H).to_numpy()[test]
    assert np.corrcoef(std**2, true)[0, 1] > 0.9  # the future variances are random too
    q = ReturnForecast(mean, std, forecast.df).quantiles(LEVELS)
    pit = pit_summary(pit_from_quantiles(LEVELS, q, y))
    assert pit["ks"] < 2 * pit["ks_critical_5pct"]


def test_t_forecast_has_the_stated_variance_and_quantiles():
    f = ReturnForecast(np.array([0.001, -0.002]), np.array([0.01, 0.03]), df=4.5)
    taus = (np.arange(200_000) + 0.5) / 200_000
    q = f.quantiles(taus)
    variance = ((q - f.mean[:, None]) ** 2).mean(axis=1)
    np.testing.assert_allclose(variance, f.std**2, rtol=0.02)  # heavy tails converge slowly
    np.testing.assert_allclose(f.cdf(f.quantiles(LEVELS)[:, 2]), 0.5)
    np.testing.assert_allclose(f.p_up(), 1 - f.cdf(np.zeros(2)))
    assert f.p_up()[0] > 0.5 > f.p_up()[1]


def test_har_components_and_target_follow_their_definitions():
    r2 = one_bar_returns(TRAIN) ** 2
    day = 24
    components = realised_variance_components(r2, day)
    for t in (22 * day, 2_000, len(r2) - 1):
        assert components[t, 0] == pytest.approx(r2[t - day + 1 : t + 1].sum(), rel=1e-9)
        assert components[t, 1] == pytest.approx(r2[t - 5 * day + 1 : t + 1].sum() / 5, rel=1e-9)
        assert components[t, 2] == pytest.approx(r2[t - 22 * day + 1 : t + 1].sum() / 22, rel=1e-9)
    assert np.isnan(components[22 * day - 1, 2])  # r_0 does not exist
    forward = forward_realised_variance(r2, H)
    assert forward[100] == pytest.approx(r2[101 : 101 + H].sum(), rel=1e-12)
    assert np.isnan(forward[-H:]).all() and np.isfinite(forward[-H - 1])


def test_har_day_is_one_day_of_bars_capped_by_the_training_window():
    hourly = pd.date_range("2024-01-01", periods=10, freq="1h")
    assert bars_per_day(hourly) == 24
    assert bars_per_day(pd.date_range("2024-01-01", periods=10, freq="5min")) == 288
    assert bars_per_day(pd.date_range("2024-01-01", periods=10, freq="1D")) == 1
    assert HarForecaster(H).fit(TRAIN).day_bars == 24
    minutes = TRAIN.copy()
    minutes.index = pd.date_range("2024-01-01", periods=len(TRAIN), freq="1min", tz="UTC")
    assert HarForecaster(H).fit(minutes).day_bars == len(TRAIN) // 66  # not 1,440


def test_har_tracks_the_true_variance_and_its_log_fit_is_sensible():
    har = FITTED["har"]
    # more realised variance today, more tomorrow; the log fit's residuals spread, so the
    # mean of RV lies above exp(the mean of log RV)
    assert har.coef[1:].sum() > 0.2 and har.smearing > 1.0
    test = slice(len(TRAIN), len(BARS) - H)
    true = pd.Series(BARS.attrs["variance"]).rolling(H).sum().shift(-H).to_numpy()[test]
    forecast = har.variance(BARS)[test]
    assert np.corrcoef(forecast, true)[0, 1] > 0.8
    assert forecast.mean() == pytest.approx(true.mean(), rel=0.25)


def test_ewma_is_the_normalised_exponentially_weighted_mean_of_squared_returns():
    ewma = EwmaForecaster(H)
    r2 = one_bar_returns(TRAIN) ** 2
    variance = ewma.one_bar_variance(TRAIN)
    for t in (1, 10, 3_000):
        weights = 0.94 ** np.arange(t)[::-1]
        assert variance[t] == pytest.approx((weights * r2[1 : t + 1]).sum() / weights.sum())
    # deep in the sample it is the RiskMetrics recursion
    t = 3_000
    assert variance[t] == pytest.approx(0.94 * variance[t - 1] + 0.06 * r2[t], rel=1e-9)
    forecast = ewma.predict(TRAIN)
    np.testing.assert_allclose(forecast.std**2, H * variance)
    assert (forecast.mean == 0).all() and forecast.df is None


def test_fold_predictives_are_aligned_with_the_test_bars():
    fold = Fold(index=0, train=range(0, 4_000), test=range(4_100, 5_000), purge=100, embargo=6)
    test_index = BARS.index[fold.test.start : fold.test.stop]
    out, fits = _volatility_predictives(BARS, fold, H, test_index)
    assert set(out) == set(fits) == {"garch", "har", "ewma"}
    assert fits["garch"]["converged"] and fits["har"]["day_bars"] == 24
    for quantiles, p_up in out.values():
        assert quantiles.shape == (len(test_index), len(LEVELS)) and np.isfinite(quantiles).all()
        assert (np.diff(quantiles, axis=1) > 0).all() and p_up.shape == (len(test_index),)
    expected = FITTED["ewma"].predict(BARS.iloc[: fold.test.stop]).last(len(test_index))
    np.testing.assert_allclose(out["ewma"][0], expected.quantiles(LEVELS))
    with pytest.raises(ValueError, match="test bars"):
        _volatility_predictives(BARS, fold, H, test_index[1:].append(test_index[:1]))


def test_every_yardstick_is_a_scored_forecaster():
    assert set(YARDSTICKS) == {"garch", "har", "ewma", "point_gauss"} <= set(FORECASTERS)


def test_the_evaluation_scores_every_forecaster_alike_and_reports_them(tmp_path):
    from catalogs.synthetic import generate_bars
    from evaluation.report import markdown
    from evaluation.report import verdict
    from evaluation.summary import MEAN_FORECASTERS
    from evaluation.walk_forward import evaluate
    from tests.test_evaluation_cli import TINY

    bars = generate_bars(3_000, interval="1h", seed=5)
    results, _, _ = evaluate(bars, "synthetic", TINY, log=lambda _: None)
    for summary in [*results["folds"], results["overall"]]:
        by_model = summary["forecast_by_model"]
        assert tuple(by_model) == FORECASTERS
        fields = set(by_model["model"])
        assert {"central_coverage_model", "ic_spearman", "ic_pearson"} <= fields
        for name, scores in by_model.items():
            assert set(scores) == fields and scores["n"] == by_model["model"]["n"] > 0
            assert np.isfinite(scores["crps_skill"]) and set(scores["central_coverage_model"]) == {
                "0.5",
                "0.8",
                "0.9",
            }
            assert (scores["ic_pearson"] is None) == (name not in MEAN_FORECASTERS)
    overall = results["overall"]["forecast_by_model"]
    # point_gauss is ridge's mean: the same IC, another width
    assert overall["point_gauss"]["ic_spearman"] == overall["ridge"]["ic_spearman"]
    assert overall["point_gauss"]["crps_model"] != overall["ridge"]["crps_model"]
    report = markdown({**results, "verdict": verdict(results)}, [])
    assert "## Forecasters compared" in report and "Gaussian rolling vol (baseline)" in report
    for name in FORECASTERS:
        assert f"| {name} |" in report
