"""Trade only an edge that beats its costs: entry, hysteresis and fractional-Kelly size.

The model's view is a predictive distribution of the forward log return r over the next h
bars. With c the round-trip cost (:class:`policy.costs.Costs`):

- enter long when E[r] >= (1 + m) c (short: E[r] <= -(1 + m) c), m the ``edge_margin`` (else
  the edge filter blocks), and only with enough confidence: the probability that the trade
  clears its cost, P(r > c) long or P(r < -c) short (:func:`edge_confidence`), at least
  ``min_confidence`` (else the confidence filter blocks);
- hold a position for the horizon unless the forecast crosses the cost band the other way,
  s E[r] < -c / 2 (staying is then expected to lose more than leaving costs); after h bars keep
  it only while s E[r] > 0 (s the position's side) — hysteresis: no churn around the band;
- the forecaster's mean is first shrunk by beta, the slope of realised on predicted returns
  over its validation block (:func:`shrink_view`): a forecaster whose means the held-out block
  did not bear out (beta = 0) trades nothing; its probabilities are then re-read from the
  shrunk predictive, through the forecaster's validated CDF map g where it has one;
- size by edge over variance, fractional Kelly: L = k (|E[r]| - c) / Var[r], k the
  ``kelly_fraction``, then capped by the volatility target, the leverage and the notional caps
  (:func:`policy.sizing.target_notional`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

from policy.costs import Costs


class ForecastView(NamedTuple):
    """The predictive distribution of the h-bar forward log return, summarised (built per bar)."""

    mean: float  # E[r | context]
    std: float  # sqrt(Var[r | context])
    p_above_cost: float  # P(r > c)
    p_below_cost: float  # P(r < -c)


NO_VIEW = ForecastView(mean=0.0, std=0.0, p_above_cost=0.0, p_below_cost=0.0)  # not ready yet


def shrink_view(
    mean: float,
    std: float,
    p_above: float,
    p_below: float,
    shrinkage: float,
    costs: Costs,
    cdf_map: Callable[[float], float] | None = None,
) -> ForecastView:
    """The view with its mean shrunk by the forecaster's validated slope beta: E'[r] = beta E[r];
    with beta < 1 the probabilities are re-read from N(E'[r], std^2), through ``cdf_map``, the
    forecaster's validated map g of its CDF values when it has one
    (:class:`scoremodel.calibration.CdfMap`, fitted on this shrunk predictive):
    P(r > c) = 1 - g(Phi((c - E'[r]) / std)), P(r < -c) = g(Phi((-c - E'[r]) / std)). With
    beta = 1 the forecaster's own probabilities stand (a calibrated forecaster published them
    through g already)."""
    if shrinkage >= 1.0:
        return ForecastView(mean, std, p_above, p_below)
    mean = shrinkage * mean
    if not std > 0.0:
        return ForecastView(mean, std, 0.0, 0.0)
    c = costs.round_trip
    below_up, below_down = _phi((c - mean) / std), _phi((-c - mean) / std)
    if cdf_map is not None:
        below_up, below_down = cdf_map(below_up), cdf_map(below_down)
    return ForecastView(mean, std, 1.0 - below_up, below_down)


def _phi(x: float) -> float:
    """Phi(x), the standard normal CDF."""
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def entry_side(view: ForecastView, costs: Costs, edge_margin: float) -> int:
    """+1 / -1 when a long / short edge beats the round-trip cost by the margin, else 0."""
    band = (1.0 + edge_margin) * costs.round_trip
    if view.mean >= band:
        return 1
    if view.mean <= -band:
        return -1
    return 0


def edge_confidence(view: ForecastView) -> float:
    """Edge mode's confidence: the probability that a trade on the side the mean points to
    clears its round-trip cost, P(r > c) for a long, P(r < -c) for a short (0: no view)."""
    if view.mean > 0.0:
        return view.p_above_cost
    if view.mean < 0.0:
        return view.p_below_cost
    return 0.0


def keeps_position(
    side: int, bars_held: int, horizon: int, view: ForecastView, costs: Costs
) -> bool:
    """Whether a position on ``side`` held for ``bars_held`` bars is kept without a new entry."""
    expected = side * view.mean
    if bars_held < horizon:
        return expected >= -costs.per_side
    return expected > 0.0


def kelly_leverage(view: ForecastView, costs: Costs, kelly_fraction: float) -> float:
    """L = k (|E[r]| - c) / Var[r]: fractional Kelly on the edge net of the round-trip cost."""
    variance = view.std * view.std
    edge = abs(view.mean) - costs.round_trip
    if edge <= 0.0 or variance <= 0.0:
        return 0.0
    return kelly_fraction * edge / variance
