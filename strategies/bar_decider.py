"""The per-bar decision of the score-matching strategy, free of any engine.

Both engine bindings (``strategies.score_matching`` on NautilusTrader 1.231,
``strategies.score_matching_v2`` on 2.0) feed it plain floats and integers and act on the
:class:`~policy.decision.Decision` it returns: features -> model (or the conditional forecaster
in edge mode) -> policy (filters, sizing, risk rules). What stays in a binding is what only the
engine knows: the bar objects, the account and position, orders, logging and the message bus.

This is ScoreMatchingStrategy's ``_consume``/``_forecast``/``_in_sequence`` and the warm-up
length of ``_request_history`` lifted out of the Nautilus class (its on_start builds the same
Policy and forecaster).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from policy.calendar import bars_per_year
from policy.decision import Decision
from policy.decision import Policy
from policy.edge import NO_VIEW
from policy.edge import ForecastView
from policy.edge import edge_confidence
from policy.edge import shrink_view
from policy.risk import RiskState
from policy.settings import PolicySettings
from policy.sizing import LotRules
from scoremodel.cond_predictive import BarPredictor
from scoremodel.features import DEFAULT_SPEC
from scoremodel.features import IncrementalFeatures
from scoremodel.inference import Assessment
from scoremodel.inference import ScoreModel
from strategies.kill_switch import kill_switch_armed

TRADED_HORIZON = -1  # edge mode trades the forecaster's longest horizon
# the tags of the orders that are not a model's decision (a decision's: "model:<version id>",
# strategies.retraining.ModelLifecycle.order_tag)
STOP_TAG = "stop"
KILL_SWITCH_TAG = "kill-switch"


def lot_rules(instrument: object) -> LotRules:
    """An instrument's lot rules, read from the attributes both engines' instruments have."""
    return LotRules(
        qty_step=instrument.size_increment.as_double(),
        min_qty=instrument.min_quantity.as_double() if instrument.min_quantity else 0.0,
        min_notional=instrument.min_notional.as_double() if instrument.min_notional else 0.0,
        max_qty=instrument.max_quantity.as_double() if instrument.max_quantity else math.inf,
    )


class BarView(NamedTuple):
    """One closed bar's market state and the model's reading of it."""

    state: np.ndarray
    assessment: Assessment


class BarDecider:
    """Features, model and policy for one instrument's bars (one decision per closed bar)."""

    def __init__(
        self,
        settings: PolicySettings,
        signal_mode: str,
        model: ScoreModel,
        *,
        bar_ns: int,
        fee: float,
        lots: LotRules,
        risk: RiskState | None = None,
    ) -> None:
        self.settings = settings
        self.signal_mode = signal_mode
        self.model = model
        self.bar_ns = bar_ns
        self.features = IncrementalFeatures(DEFAULT_SPEC)
        costs = settings.costs(fee=fee)  # the execution style's fee (policy.costs)
        self.forecaster: BarPredictor | None = None
        self._shrinkage = 1.0
        self._cdf_map = None  # edge mode: the forecaster's validated CDF map g (None: identity)
        self._view = NO_VIEW
        horizon = 1
        self._recent: np.ndarray | None = None  # edge mode: the last L states, for a swap
        if signal_mode == "edge":  # the conditional forecaster, per bar
            self.forecaster = BarPredictor(
                model.conditional, cost=costs.round_trip, horizons=(TRADED_HORIZON,)
            )
            horizon = model.conditional.horizons[TRADED_HORIZON]
            self._shrinkage = model.mean_shrinkage[TRADED_HORIZON]
            self._cdf_map = model.conditional.horizon_map(TRADED_HORIZON)
            self._recent = np.zeros((model.conditional.context_len, DEFAULT_SPEC.dim))
        self._states_seen = 0  # since the start or the last gap
        self.policy = Policy(
            settings,
            annualisation=bars_per_year(bar_ns / 1e9),
            lots=lots,
            risk=risk,
            costs=costs,
            horizon=horizon,
        )
        self._vol_index = DEFAULT_SPEC.names.index(f"vol_{DEFAULT_SPEC.vol_window}")
        self.last_bar_ns = 0  # close time of the last accepted bar (0: none yet)

    def history_bars(self) -> int:
        """Bars of history to observe before the first traded bar: the features' warm-up plus
        the directions the consistency rule looks back on (edge mode: a full context)."""
        lead = self.settings.consistency_bars
        if self.forecaster is not None:
            lead = max(lead, self.model.conditional.context_len)
        return DEFAULT_SPEC.warmup_bars + lead

    def accept(self, ts_ns: int) -> int | None:
        """None for a duplicate or out-of-order bar (drop it); else the number of bars missing
        before it (0 in sequence; after a gap the features warm up again)."""
        if ts_ns <= self.last_bar_ns:
            return None
        missing = 0
        if self.last_bar_ns and ts_ns - self.last_bar_ns != self.bar_ns:
            missing = (ts_ns - self.last_bar_ns) // self.bar_ns - 1
            self.features.reset()
            self.policy.forget_directions()
            self._states_seen = 0
            if self.forecaster is not None:
                self.forecaster.reset()
        self.last_bar_ns = ts_ns
        return missing

    def observe(self, high: float, low: float, close: float, volume: float) -> BarView | None:
        """Update the features with a bar and read the model; None while warming up."""
        state = self.features.update(high, low, close, volume)
        if state is None:
            return None
        if self._recent is not None:
            self._recent[self._states_seen % len(self._recent)] = state
        self._states_seen += 1
        if self.forecaster is not None:
            assessment = self._forecast(state)
        else:
            assessment = self.model.assess(state, self.signal_mode)
            self.policy.observe(assessment.direction)
        return BarView(state, assessment)

    @property
    def view(self) -> ForecastView:
        """Edge mode's view of the last observed bar (NO_VIEW in the other modes)."""
        return self._view

    def swap_model(self, model: ScoreModel) -> None:
        """Decide with ``model`` from the next bar on (a retrained version of the same recipe):
        the features, the policy and its risk state stay; edge mode's forecaster is rebuilt
        and fed the last L states, so its first forecast is as if it had run all along."""
        self.model = model
        if self.forecaster is None:
            return
        self.forecaster = BarPredictor(
            model.conditional, cost=self.policy.costs.round_trip, horizons=(TRADED_HORIZON,)
        )
        self._shrinkage = model.mean_shrinkage[TRADED_HORIZON]
        self._cdf_map = model.conditional.horizon_map(TRADED_HORIZON)
        length = len(self._recent)
        for i in range(max(0, self._states_seen - length), self._states_seen):
            self.forecaster.update(self._recent[i % length])

    def halt_on_kill_switch(self, path: str | None, ts_ns: int, requested: bool = False) -> bool:
        """Halt when the kill switch is armed (its file exists, or a kill was ``requested`` in
        memory); True when this call halted."""
        if not self.policy.risk.halted and kill_switch_armed(path, requested):
            self.policy.halt(ts_ns, f"kill switch {path}")
            return True
        return False

    def decide(
        self, ts_ns: int, view: BarView, equity: float, close: float, position: float
    ) -> Decision:
        """The policy's decision for this bar given the account's equity and position."""
        assessment = view.assessment
        vol = view.state[self._vol_index]
        if self.forecaster is not None:
            return self.policy.decide_forecast(
                ts_ns, assessment.in_distribution, self._view, vol, equity, close, position
            )
        return self.policy.decide(
            ts_ns,
            assessment.in_distribution,
            assessment.direction,
            assessment.confidence,
            vol,
            equity,
            close,
            position,
        )

    def _forecast(self, state: np.ndarray) -> Assessment:
        """Edge mode: the density of the state, and the conditional forecaster's predictive
        distribution of the traded horizon's forward return (``self._view``)."""
        log_density, familiar = self.model.log_density(state)
        k = TRADED_HORIZON
        forecaster = self.forecaster
        if forecaster.update(state):
            self._view = shrink_view(
                float(forecaster.mean[k]),
                float(forecaster.std[k]),
                float(forecaster.p_up_cost[k]),
                float(forecaster.p_down_cost[k]),
                self._shrinkage,
                self.policy.costs,
                self._cdf_map,
            )
        else:  # fewer than L states since the start or a gap: no view yet
            self._view = NO_VIEW
        view = self._view
        return Assessment(
            direction=(view.mean > 0.0) - (view.mean < 0.0),
            signal=view.mean,
            confidence=edge_confidence(view),
            log_density=log_density,
            in_distribution=familiar,
            forecast_mean=view.mean,
            forecast_std=view.std,
        )
