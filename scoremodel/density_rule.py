"""Where the density filter draws its line: a percentile of training states, or reliability.

The density filter calls a state unfamiliar when its log-density (:mod:`scoremodel.density`)
is below a threshold. Two rules set the threshold (``density_rule``, a policy setting):

- ``percentile``: the ``density_percentile`` (default 5) percentile of training states'
  log-densities. It gates *rare* states, whether or not the forecaster is worse there.
- ``reliability``: the log-density below which the conditional forecaster's skill degrades
  significantly, measured once, at training, on the forecaster's *validation block* (the rows
  its mean slope and CDF map were calibrated on; never the test block):

  1. for each validation row: the log-density of its state, the CRPS of the forecaster's
     predictive of the traded (longest) horizon h, read through its published quantiles
     (linear in normal scores, as the evaluation scores it), and the CRPS of the
     rolling-volatility Gaussian N(0, h s^2), s the std of the last 100 one-bar log returns;
  2. rows binned by the deciles of their log-density; per bin the CRPS skill
     1 - sum CRPS_model / sum CRPS_baseline; the reference is the upper half (bins 6-10);
  3. walking up from the lowest bin (at most 3 bins, 30 % of the rows): a bin is *unreliable*
     when its skill minus the reference's has a 95 % moving-block bootstrap interval (blocks
     of max(h, sqrt(n)) rows: low-density states come in episodes) wholly below 0; the walk
     stops at the first bin that is not;
  4. the threshold is the upper log-density edge of the last unreliable bin; with none (the
     lowest bin is not significantly worse) there is no threshold and the filter flags
     nothing.

  The result is stored in the manifest's calibration section (``density_reliability``:
  the threshold or null, each bin's edges, rows and skill, the tested differences); a model
  without it (saved before this rule existed, or without a conditional forecaster) keeps the
  percentile rule, and :class:`scoremodel.inference.ScoreModel` says so
  (``density_rule_in_force``).

Nothing here is per bar: the threshold is one number compared with the log-density the model
computes anyway.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from scoremodel.cond_data import prepare
from scoremodel.cond_predictive import predict_batch
from scoremodel.datasets import DEFAULT_FRACTIONS
from scoremodel.features import compute_features
from scoremodel.forecast import QUANTILES
from scoremodel.gaussian import crps_gaussian
from scoremodel.quantile_scoring import crps_from_quantiles

if TYPE_CHECKING:
    from scoremodel.inference import ScoreModel

PERCENTILE = "percentile"
RELIABILITY = "reliability"
# policy.settings.DENSITY_RULES spells the same words (policy imports no scoremodel; a test
# checks the two agree)
DENSITY_RULES: tuple[str, ...] = (PERCENTILE, RELIABILITY)
# The default (policy.settings.PolicySettings.density_rule too): on the demo's planted market
# the percentile rule flags the spikes where the edge starts and costs the strategy a large
# part of its Sharpe, while the reliability rule finds the forecaster at its best there and
# flags nothing; on real hourly perpetuals neither changes anything measurable.
DEFAULT_DENSITY_RULE = RELIABILITY
RELIABILITY_KEY = "density_reliability"  # the manifest's calibration entry
BASELINE_WINDOW = 100  # W: the rolling-volatility Gaussian (the evaluation's baseline)
N_BINS = 10  # deciles of the validation log-density
REFERENCE_BINS = 5  # the upper half of the bins is the reference
MAX_UNRELIABLE_BINS = 3  # the rule never flags more than 30 % of the validation rows
MIN_ROWS = 200  # fewer validation rows: too few to tell, no threshold
N_BOOT = 500
CRPS_LEVELS = 200  # midpoint-rule levels of each row's CRPS (the measured thresholds used 200)
SEED = 0
MEASURE = (
    "CRPS skill of the traded horizon's predictive against N(0, h s^2), s the std of the last "
    f"{BASELINE_WINDOW} one-bar log returns, per decile of validation log-density"
)


def other_density_rule(rule: str) -> str:
    """The density rule that is not ``rule`` (the evaluation reports the filter by both)."""
    return next(other for other in DENSITY_RULES if other != check_rule(rule))


def check_rule(rule: str) -> str:
    """``rule`` if it is one of :data:`DENSITY_RULES`, else ValueError."""
    if rule not in DENSITY_RULES:
        raise ValueError(f"density_rule {rule!r} is not one of {', '.join(DENSITY_RULES)}")
    return rule


def reliability_threshold(
    log_density: np.ndarray,
    crps_model: np.ndarray,
    crps_baseline: np.ndarray,
    horizon: int,
    *,
    n_boot: int = N_BOOT,
    seed: int = SEED,
) -> dict:
    """The rule's decision from per-row arrays in time order (steps 2-4 of the module
    docstring); returns the manifest entry: ``threshold`` (None: the filter flags nothing),
    ``unreliable_bins``, ``rows``, ``reference_skill``, ``bins`` and ``reason``."""
    density = np.asarray(log_density, dtype=np.float64)
    model = np.asarray(crps_model, dtype=np.float64)
    base = np.asarray(crps_baseline, dtype=np.float64)
    keep = np.isfinite(density) & np.isfinite(model) & np.isfinite(base) & (base > 0)
    density, model, base = density[keep], model[keep], base[keep]
    n = len(density)
    entry = {
        "rule": RELIABILITY,
        "measure": MEASURE,
        "horizon": int(horizon),
        "baseline_window": BASELINE_WINDOW,
        "rows": n,
        "threshold": None,
        "unreliable_bins": 0,
        "reference_skill": None,
        "bins": [],
    }
    if n < MIN_ROWS:
        return entry | {"reason": f"{n} validation rows, fewer than {MIN_ROWS}: too few to tell"}
    edges = np.quantile(density, np.arange(1, N_BINS) / N_BINS)  # upper edges of bins 1-9
    which = np.searchsorted(edges, density, side="right")  # bin b: edges[b-1] <= x < edges[b]
    skill, reference = _skills(which, model, base)
    rng = np.random.default_rng(seed)
    block = max(int(horizon), math.ceil(math.sqrt(n)))
    starts = rng.integers(0, n, size=(n_boot, math.ceil(n / block)))
    idx = ((starts[:, :, None] + np.arange(block)) % n).reshape(n_boot, -1)[:, :n]
    boot_skill, boot_reference = _skills(which[idx], model[idx], base[idx])
    bins = []
    unreliable = 0
    for b in range(N_BINS):
        rows = int((which == b).sum())
        record = {
            "upper_edge": float(edges[b]) if b < N_BINS - 1 else float(density.max()),
            "rows": rows,
            "skill": _finite(skill[b]),
        }
        if b < MAX_UNRELIABLE_BINS and unreliable == b:  # still walking up
            gap = boot_skill[:, b] - boot_reference
            gap = gap[np.isfinite(gap)]
            low, high = np.quantile(gap, [0.025, 0.975]) if len(gap) else (math.nan, math.nan)
            record.update(
                difference=_finite(skill[b] - reference),
                difference_low=_finite(low),
                difference_high=_finite(high),
                unreliable=bool(high < 0.0),
            )
            if high < 0.0:
                unreliable += 1
        bins.append(record)
    entry.update(bins=bins, reference_skill=_finite(reference), unreliable_bins=unreliable)
    if unreliable == 0:
        return entry | {
            "reason": "the forecaster's skill in the lowest-density decile is not significantly "
            "below its skill in the upper half"
        }
    return entry | {
        "threshold": float(edges[unreliable - 1]),
        "reason": f"the forecaster's skill in the lowest {unreliable} decile(s) of validation "
        "log-density is significantly below its skill in the upper half",
    }


def _skills(which: np.ndarray, model: np.ndarray, base: np.ndarray) -> tuple:
    """Per-bin skill (..., N_BINS) and the reference's (...) of rows labelled ``which``; the
    leading axes are bootstrap draws when the arrays are 2-D."""
    which, model, base = np.atleast_2d(which), np.atleast_2d(model), np.atleast_2d(base)
    offset = (np.arange(len(which)) * N_BINS)[:, None]
    size = len(which) * N_BINS
    sum_model = np.bincount((which + offset).ravel(), model.ravel(), size).reshape(-1, N_BINS)
    sum_base = np.bincount((which + offset).ravel(), base.ravel(), size).reshape(-1, N_BINS)
    with np.errstate(invalid="ignore", divide="ignore"):
        skill = 1.0 - sum_model / sum_base
        upper = slice(N_BINS - REFERENCE_BINS, None)
        reference = 1.0 - sum_model[:, upper].sum(1) / sum_base[:, upper].sum(1)
    if len(which) == 1:
        return skill[0], float(reference[0])
    return skill, reference


def _finite(value: float) -> float | None:
    """A manifest number: finite, or None (the manifest holds no NaN)."""
    value = float(value)
    return value if math.isfinite(value) else None


def validation_reliability(
    model: ScoreModel, bars: pd.DataFrame, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
) -> dict | None:
    """The rule's manifest entry for ``model`` trained on ``bars`` with ``fractions``: step 1
    of the module docstring on the conditional forecaster's validation block (the same
    :func:`scoremodel.cond_data.prepare` split that trained and calibrated it), then
    :func:`reliability_threshold`. None for a model without a conditional forecaster."""
    conditional = model.conditional
    if conditional is None:
        return None
    horizons = conditional.horizons
    data = prepare(bars, horizons, conditional.context_len, fractions, model.spec)
    states = compute_features(bars, model.spec)
    raw = states.to_numpy()
    rows = states.index.get_indexer(data.val.index)
    if len(rows) == 0:
        return reliability_threshold(np.zeros(0), np.zeros(0), np.zeros(0), horizons[-1])
    start = max(int(rows[0]) - conditional.context_len + 1, 0)
    window = raw[start : int(rows[-1]) + 1]
    quantiles = predict_batch(conditional, window).quantiles[rows - start, -1]
    y = data.val.forward[:, -1]
    crps_model = crps_from_quantiles(np.asarray(QUANTILES), quantiles, y, CRPS_LEVELS)
    returns = np.log(bars["close"]).diff()
    sigma = math.sqrt(horizons[-1]) * returns.rolling(BASELINE_WINDOW).std()
    sigma = sigma.reindex(data.val.index).to_numpy()
    crps_base = crps_gaussian(0.0, sigma, y)
    log_density = model.assess_batch(data.val.states, mode="score")["log_density"].to_numpy()
    entry = reliability_threshold(log_density, crps_model, crps_base, horizons[-1])
    entry["validation_first"] = str(data.val.index[0])
    entry["validation_last"] = str(data.val.index[-1])
    return entry
