"""ScoreMatchingStrategy: trade the direction of a learned score, in familiar markets only.

Per closed bar: update features -> model -> filters -> target position -> risk rules ->
order for the difference.

- features: the incremental market state of :mod:`scoremodel.features` (O(1) per bar);
- model: direction, calibrated confidence and log-density (:class:`scoremodel.ScoreModel`),
  in "score" mode (the chapter's signal) or "forecast" mode (next-h-bar predictive
  distribution);
- filters: density (only familiar states), confidence, direction stable for k bars;
- target: volatility-targeted notional scaled by confidence, capped by leverage and notional,
  rounded to the instrument's lot rules;
- risk rules (:mod:`policy.risk`): drawdown ladder, max-drawdown flatten-and-halt, daily
  loss stop, kill switch;
- order: for the difference, outside a no-trade band, reduce-only when it only reduces: a
  market order (``execution: taker``), or a post-only limit on the passive side of the bar's
  close, cancelled after ``maker_timeout_bars`` bars if unfilled (``execution: maker``).

Importable by path: ``strategies.score_matching:ScoreMatchingStrategy`` with
``strategies.score_matching:ScoreMatchingConfig``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from nautilus_trader.common.component import TestClock
from nautilus_trader.common.enums import LogColor
from nautilus_trader.common.events import TimeEvent
from nautilus_trader.config import NonNegativeFloat
from nautilus_trader.config import NonNegativeInt
from nautilus_trader.config import PositiveInt
from nautilus_trader.config import StrategyConfig
from nautilus_trader.model.data import Bar
from nautilus_trader.model.data import BarType
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.trading.strategy import Strategy

from field_rules import NON_NEGATIVE
from field_rules import PATH
from field_rules import Choice
from field_rules import Flag
from field_rules import Integer
from field_rules import Nullable
from field_rules import Parsed
from field_rules import Rejected
from field_rules import rules_of
from policy.costs import EXECUTION_STYLES
from policy.costs import MAKER
from policy.costs import TAKER
from policy.costs import execution_fee
from policy.costs import maker_limit_price
from policy.decision import Decision
from policy.decision import Policy
from policy.risk import RiskState
from policy.settings import ACTS_IN
from policy.settings import DEFAULT_POLICY
from policy.settings import PolicySettings
from policy.settings import inactive_settings
from scoremodel.cond_predictive import BarPredictor
from scoremodel.inference import SIGNAL_MODES
from scoremodel.inference import Assessment
from scoremodel.inference import ScoreModel
from strategies.bar_decider import KILL_SWITCH_TAG
from strategies.bar_decider import STOP_TAG
from strategies.bar_decider import BarDecider
from strategies.bar_decider import lot_rules
from strategies.decision_record import DiagnosticsRecorder
from strategies.diagnostics import DIAGNOSTICS_DATA_TYPE
from strategies.diagnostics import ScoreMatchingDiagnostics
from strategies.kill_switch import kill_switch_armed
from strategies.model_loading import load_model_for
from strategies.reconciliation import VenueBooks
from strategies.reconciliation import VenueReconciler
from strategies.retraining import InlineTrainer
from strategies.retraining import ModelLifecycle
from strategies.retraining import ProcessTrainer
from strategies.retraining import RetrainRule
from strategies.retraining import RetrainSettings
from strategies.state_file import RiskStateFile
from strategies.state_file import parse_risk_state

RISK_STATE_KEY = "risk_state"
KILL_SWITCH_TIMER = "kill-switch"
RETRAIN_TIMER = "retrain-poll"  # live: collect a finished training off the bar path


class ScoreMatchingConfig(StrategyConfig, frozen=True):
    """
    Configuration for ``ScoreMatchingStrategy``; every field is a plain serialisable value.

    Parameters
    ----------
    instrument_id : InstrumentId
        The instrument to trade, e.g. ``BTCUSDT-LINEAR.BYBIT``.
    bar_type : BarType
        The bars that drive decisions; must match the model's bar type.
    model_path : str
        Directory of a checkpoint written by ``python -m scoremodel train``.
    signal_mode : str, default "edge"
        "edge": the conditional forecaster's predictive distribution of the forward return,
        traded only where its edge beats the round-trip cost (:mod:`policy.edge`);
        "score": sign of the score's return component (the chapter's contrarian signal);
        "forecast": P(up) - 0.5 of the joint model read on a grid (superseded by "edge").
    density_percentile : float, default 5.0
        The percentile rule: states whose log-density is below this percentile of training
        states are unfamiliar.
    density_rule : str, default "reliability"
        How the density filter's threshold is set (:mod:`scoremodel.density_rule`):
        "percentile", ``density_percentile`` of training log-densities; "reliability", the
        log-density below which the conditional forecaster's CRPS skill (against a
        rolling-volatility Gaussian) degrades significantly on its validation block, stored in
        the model's manifest at training (none found: the filter flags nothing). A model saved
        without that measurement keeps the percentile rule.
    min_confidence : float, default 0.6
        Minimum confidence, 0-1. Score and forecast modes: the percentile of |signal| among
        training states. Edge mode: the probability that the trade clears its round-trip cost,
        P(r > c) for a long, P(r < -c) for a short, read from the forecaster's predictive
        distribution (its mean shrunk by the validated slope).
    consistency_bars : PositiveInt, default 3
        Score and forecast modes: the model's direction must be the same on this many
        consecutive bars (edge mode holds for the forecast's horizon instead).
    hold_when_blocked : bool, default False
        Score and forecast modes: keep the current position when only confidence/consistency
        block (else go flat).
    target_annual_vol : float, default 0.30
        Target annualised volatility of equity (annualised for the bar frequency, 24/7).
    max_leverage : float, default 2.0
        Cap on |notional| / equity.
    max_notional : float, optional
        Cap on |notional| in the settlement currency.
    no_trade_band : float, default 0.05
        Position changes smaller than this fraction of equity are not traded.
    edge_margin, kelly_fraction, slippage
        Edge mode: trade only an edge that beats the round-trip cost (the venue's fee plus
        ``slippage`` per side) by ``edge_margin``, with at least ``min_confidence``; size by
        ``kelly_fraction`` of the Kelly leverage; see :mod:`policy.edge`. A setting that does
        nothing in the chosen mode (these in score mode, ``consistency_bars`` and
        ``hold_when_blocked`` in edge mode) is refused when set to anything but its default.
    max_drawdown, reduce_drawdown, daily_loss_limit, resume_after_halt, halt_cooldown_hours
        Risk rules, see :mod:`policy.risk`.
    warmup_from_history : bool, default True
        Request the bars needed for warm-up before the first live/backtest bar.
    history_page_bars : PositiveInt, default 1000
        Bars per history request (Bybit serves at most 1000 klines per request).
    allow_bar_type_mismatch : bool, default False
        Use a model trained on another bar type (not recommended).
    publish_diagnostics : bool, default False
        Publish ``ScoreMatchingDiagnostics`` custom data on every decided bar, for an actor
        that subscribes to ``strategies.diagnostics.DIAGNOSTICS_DATA_TYPE`` (off by default:
        building and publishing it costs ~10 us a bar, a seventh of the per-bar budget).
    record_diagnostics : bool, default False
        Keep per-bar diagnostics in memory for reports (8 bytes x 13 fields per bar; the
        backtest runner turns it on, a long-running live node should leave it off).
    log_every_bars : PositiveInt, default 1000
        One INFO summary line every N bars.
    kill_switch_path : str, optional
        If this file exists, flatten and halt (checked every bar).
    kill_switch_poll_secs : float, default 0.0
        Also check ``kill_switch_path`` on a timer every this many seconds and, when it
        appears, cancel orders, close positions and halt at once (live; 0 = at bars only).
    state_path : str, optional
        JSON file holding the risk state (high-water mark, halt, daily baseline): loaded on
        start, written atomically whenever it changes (live restarts; ``None`` in backtests).
    subscribe_quotes : bool, default False
        Also subscribe quotes (the sandbox execution client matches on quotes, not bars).
    close_positions_on_stop : bool, default True
    reduce_only_on_stop : bool, default True
    reconcile_interval_secs : float, default 30.0
        Live: compare the strategy's position and balance with the venue's every this many
        seconds; a disagreement lasting three checks warns and halts (see
        :mod:`strategies.reconciliation`; needs ``venue_books`` from the live node; 0 = off).
    execution : str, default "taker"
        "taker": market orders, costed at the instrument's taker fee; "maker": post-only limit
        orders one tick on the passive side of the decision bar's close (a crossing one is
        rejected by the venue), costed at the maker fee (:func:`policy.costs.execution_fee`).
        ``run_backtest.py`` and ``run_live.py`` set it from the run configuration's
        ``backtest.execution`` (and ``maker_timeout_bars``).
    maker_timeout_bars : PositiveInt, default 1
        "maker": a limit still open this many bars after it was placed is cancelled (counted
        as unfilled); the next decision places a fresh one at its own bar's close.
    retrain : dict, optional
        Keep the model current (:class:`strategies.retraining.RetrainSettings`: ``every``,
        ``window``, ``min_bars``, ``epochs``, ``delay_bars``, ``keep``, ``validate``,
        ``on_drift``, ``registry``, the drift thresholds); ``run_backtest.py`` and
        ``run_live.py`` set it from the run configuration's ``retrain:`` section. A backtest
        trains in the engine's thread, a live node in a separate process.

    """

    instrument_id: InstrumentId
    bar_type: BarType
    model_path: str
    signal_mode: str = "edge"
    # the policy's settings (policy.settings.PolicySettings holds the defaults)
    density_percentile: float = DEFAULT_POLICY.density_percentile
    density_rule: str = DEFAULT_POLICY.density_rule
    min_confidence: float = DEFAULT_POLICY.min_confidence
    consistency_bars: PositiveInt = DEFAULT_POLICY.consistency_bars
    hold_when_blocked: bool = DEFAULT_POLICY.hold_when_blocked
    target_annual_vol: float = DEFAULT_POLICY.target_annual_vol
    max_leverage: float = DEFAULT_POLICY.max_leverage
    max_notional: float | None = DEFAULT_POLICY.max_notional
    no_trade_band: float = DEFAULT_POLICY.no_trade_band
    edge_margin: float = DEFAULT_POLICY.edge_margin
    kelly_fraction: float = DEFAULT_POLICY.kelly_fraction
    slippage: float = DEFAULT_POLICY.slippage
    max_drawdown: float = DEFAULT_POLICY.max_drawdown
    reduce_drawdown: float = DEFAULT_POLICY.reduce_drawdown
    daily_loss_limit: float = DEFAULT_POLICY.daily_loss_limit
    resume_after_halt: bool = DEFAULT_POLICY.resume_after_halt
    halt_cooldown_hours: float = DEFAULT_POLICY.halt_cooldown_hours
    warmup_from_history: bool = True
    history_page_bars: PositiveInt = 1000
    allow_bar_type_mismatch: bool = False
    publish_diagnostics: bool = False
    record_diagnostics: bool = False
    log_every_bars: NonNegativeInt = 1000
    kill_switch_path: str | None = None
    kill_switch_poll_secs: NonNegativeFloat = 0.0
    state_path: str | None = None
    subscribe_quotes: bool = False
    close_positions_on_stop: bool = True
    reduce_only_on_stop: bool = True
    reconcile_interval_secs: NonNegativeFloat = 30.0
    execution: str = TAKER
    maker_timeout_bars: PositiveInt = 1
    retrain: dict[str, Any] | None = None


INSTRUMENT_ID = Parsed(InstrumentId.from_str, "an instrument id such as BTCUSDT-LINEAR.BYBIT")
BAR_TYPE = Parsed(BarType.from_str, "a bar type such as BTCUSDT-LINEAR.BYBIT-1-HOUR-LAST-EXTERNAL")
# The rule of each ScoreMatchingConfig field (field_rules); the fields it inherits from
# Nautilus's StrategyConfig (strategy_id, order_id_tag, oms_type...) are checked by msgspec.
STRATEGY_RULES: dict[str, object] = {
    **rules_of(PolicySettings),  # the policy's own rules (policy/settings.py)
    "instrument_id": INSTRUMENT_ID,
    "bar_type": BAR_TYPE,
    "model_path": PATH,
    "signal_mode": Choice(SIGNAL_MODES),
    "warmup_from_history": Flag(),
    "history_page_bars": Integer(1),
    "allow_bar_type_mismatch": Flag(),
    "publish_diagnostics": Flag(),
    "record_diagnostics": Flag(),
    "log_every_bars": Integer(0),
    "kill_switch_path": Nullable(PATH),
    "kill_switch_poll_secs": NON_NEGATIVE,
    "state_path": Nullable(PATH),
    "subscribe_quotes": Flag(),
    "close_positions_on_stop": Flag(),
    "reduce_only_on_stop": Flag(),
    "reconcile_interval_secs": NON_NEGATIVE,
    "execution": Choice(EXECUTION_STYLES),
    "maker_timeout_bars": Integer(1),
    "retrain": RetrainRule(),
}


class ScoreMatchingStrategy(Strategy):
    """Trades the learned score's direction; see the module docstring for the pipeline."""

    def __init__(self, config: ScoreMatchingConfig) -> None:
        settings = validate_config(config)
        super().__init__(config)
        self.settings = settings
        self.model: ScoreModel | None = None
        self.instrument: Instrument | None = None
        # features, model and policy per bar (strategies.bar_decider), made in on_start
        self.decider: BarDecider | None = None
        self.lifecycle: ModelLifecycle | None = None  # versions, retraining, drift (on_start)
        self.recorder = DiagnosticsRecorder() if config.record_diagnostics else None
        self.bars_decided = 0
        self.gaps_seen = 0
        self._bar_ns = 0
        self._history_pending = False
        self._buffered: list[Bar] = []
        self._account = None  # the venue account, looked up on the first decided bar
        self._risk_file: RiskStateFile | None = None
        self._kill_requested = False  # SIGUSR1: halt even if the kill file cannot be written
        self._restored_risk: RiskState | None = None  # on_load before on_start
        self.venue_books: VenueBooks | None = None  # the venue's books, set by the live node
        self.reconciler: VenueReconciler | None = None
        # maker execution: orders submitted, cancelled unfilled after the timeout, rejected as
        # crossing; and the orders the timeout is cancelling
        self.maker_stats = dict.fromkeys(("submitted", "unfilled", "post_only_rejected"), 0)
        self._maker_timed_out: set = set()

    # ----- lifecycle ----------------------------------------------------------------------

    def on_start(self) -> None:
        self.instrument = self.cache.instrument(self.config.instrument_id)
        if self.instrument is None:
            raise RuntimeError(
                f"instrument {self.config.instrument_id} is not in the cache; add it to the "
                "backtest venue or load it through the live instrument provider"
            )
        self._bar_ns = bar_interval_ns(self.config.bar_type)
        self.model = load_model_for(self.config)
        self.lifecycle = self._lifecycle()  # a live registry's current version replaces it
        self.model = self.lifecycle.model
        fee = execution_fee(
            self.config.execution,
            float(self.instrument.maker_fee),
            float(self.instrument.taker_fee),
        )
        self.decider = BarDecider(
            self.settings,
            self.config.signal_mode,
            self.model,
            bar_ns=self._bar_ns,
            fee=fee,  # the cost-aware policy prices a round trip at the style's fee
            lots=lot_rules(self.instrument),
            risk=self._restored_risk,
        )
        if self.recorder is not None:
            self.recorder.version_ids = self.lifecycle.ids
        self.log.info(
            f"model {self.config.model_path} version {self.lifecycle.version} "
            f"({self.config.signal_mode} mode), density threshold "
            f"{self.model.density_threshold:.3f} ({self.model.density_rule_in_force} rule)",
            LogColor.BLUE,
        )
        if self.config.state_path:
            self._restore_risk_state(self.config.state_path)
        if self.config.kill_switch_path and self.config.kill_switch_poll_secs > 0:
            self.clock.set_timer(
                KILL_SWITCH_TIMER,
                pd.Timedelta(seconds=self.config.kill_switch_poll_secs),
                callback=self._poll_kill_switch,
            )
        if self.venue_books is not None and self.config.reconcile_interval_secs > 0:
            self.reconciler = VenueReconciler(
                self, self.venue_books, self.config.reconcile_interval_secs
            )
            self.reconciler.start(self._reconcile_with_venue)
        if self.lifecycle.schedule is not None and not self._backtesting:
            self.clock.set_timer(
                RETRAIN_TIMER, pd.Timedelta(seconds=1), callback=lambda _e: self.lifecycle.poll()
            )
        if self.config.warmup_from_history:
            self._request_history()
        self.subscribe_bars(self.config.bar_type)
        if self.config.subscribe_quotes:
            self.subscribe_quote_ticks(self.config.instrument_id)

    def on_stop(self) -> None:
        self.cancel_all_orders(self.config.instrument_id)
        if self.config.close_positions_on_stop:
            self.close_all_positions(
                self.config.instrument_id,
                reduce_only=self.config.reduce_only_on_stop,
                tags=[STOP_TAG],  # not a model's decision: the stop's
            )
        self.unsubscribe_bars(self.config.bar_type)
        if self.config.subscribe_quotes:
            self.unsubscribe_quote_ticks(self.config.instrument_id)
        if self._risk_file is not None:
            self._risk_file.save_if_changed(self.policy.risk)
        if self.lifecycle is not None:
            self.lifecycle.close()  # a training process still running is stopped

    def on_reset(self) -> None:
        self.decider = None
        self._restored_risk = None
        self.recorder = DiagnosticsRecorder() if self.config.record_diagnostics else None
        self.bars_decided = self.gaps_seen = 0

    @property
    def policy(self) -> Policy | None:
        """The trading policy (filters, targets, risk state), once started."""
        return None if self.decider is None else self.decider.policy

    @property
    def forecaster(self) -> BarPredictor | None:
        """Edge mode's per-bar conditional forecaster, once started."""
        return None if self.decider is None else self.decider.forecaster

    def on_save(self) -> dict[str, bytes]:
        risk = self.policy.risk if self.policy is not None else RiskState()
        return {RISK_STATE_KEY: risk.to_json().encode()}

    def on_load(self, state: dict[str, bytes]) -> None:
        if RISK_STATE_KEY in state:
            text = state[RISK_STATE_KEY].decode()
            self._restored_risk = parse_risk_state(text, "the strategy's saved state")
            if self.policy is not None:
                self.policy.risk = self._restored_risk
            self.log.info(f"restored risk state {self._restored_risk}", LogColor.BLUE)

    # ----- the model's versions (strategies.retraining) ------------------------------------------

    @property
    def _backtesting(self) -> bool:
        return isinstance(self.clock, TestClock)

    def _lifecycle(self) -> ModelLifecycle:
        """Versions, retraining and drift monitors: a backtest trains in the engine's thread
        (deterministic), a live node in a separate process (``on_bar`` never waits)."""
        settings = RetrainSettings.from_mapping(self.config.retrain)
        if settings.enabled and settings.registry is None and self._backtesting:
            raise ValueError(
                "retrain.registry is not set: a backtest that retrains stores its versions "
                "there (run_backtest.py uses REPORT_DIR/models); the model directory is the "
                "live node's registry"
            )
        return ModelLifecycle(
            settings,
            self.model,
            self.config.model_path,
            bar_ns=self._bar_ns,
            bar_type=str(self.config.bar_type),
            signal_mode=self.config.signal_mode,
            density_percentile=self.config.density_percentile,
            density_rule=self.config.density_rule,
            trainer=InlineTrainer() if self._backtesting else ProcessTrainer(settings.timeout_secs),
            resume=not self._backtesting,  # a backtest never starts from a later model
            log=lambda line: self.log.info(line, LogColor.BLUE),
            warn=self.log.warning,
        )

    # ----- restart safety and the kill switch (live) -------------------------------------------

    def _restore_risk_state(self, path: str) -> None:
        self._risk_file = RiskStateFile(path)
        restored = self._risk_file.load()
        if restored is not None:
            self.policy.risk = restored
            self.log.info(f"restored risk state from {path}: {restored}", LogColor.BLUE)

    def _reconcile_with_venue(self, _event: TimeEvent | None = None) -> None:
        """Compare position and balance with the venue's (strategies.reconciliation)."""
        self.reconciler.check()

    def request_kill(self) -> None:
        """Halt, cancel and flatten at the next kill switch check whether or not the kill
        switch file could be written (the live node's SIGUSR1 handler calls it)."""
        self._kill_requested = True

    def _poll_kill_switch(self, _event: TimeEvent | None = None) -> None:
        """While the kill switch is armed (its file exists, or :meth:`request_kill`): halt,
        cancel, and close the position as soon as no order is in flight (an order in flight
        when the kill came may still fill)."""
        path = self.config.kill_switch_path
        if not kill_switch_armed(path, self._kill_requested):
            return
        if not self.policy.risk.halted:
            self.policy.halt(self.clock.timestamp_ns(), f"kill switch {path}")
            self.log.warning("kill switch file found: cancel, flatten, halt", LogColor.RED)
            self.cancel_all_orders(self.config.instrument_id)
            if self._risk_file is not None:
                self._risk_file.save_if_changed(self.policy.risk)
        instrument_id = self.config.instrument_id
        if not self._orders_working() and self.cache.positions_open(
            instrument_id=instrument_id, strategy_id=self.id
        ):
            self.close_all_positions(instrument_id, reduce_only=True, tags=[KILL_SWITCH_TAG])

    # ----- warm-up from history ------------------------------------------------------------

    def _request_history(self) -> None:
        """Request warm-up bars in pages the venue accepts; live bars wait in a buffer."""
        now = self.clock.utc_now()
        needed = self.decider.history_bars()
        interval = pd.Timedelta(self._bar_ns, unit="ns")
        start = min(  # the features' warm-up, or the first training window's bars
            now - needed * interval,
            pd.Timestamp(self.lifecycle.history_start_ns(now.value), tz="UTC"),
        )
        pages = history_pages(start, now, interval, self.config.history_page_bars)
        self._history_pending = True
        self._request_page(pages, 0)

    def _request_page(self, pages: list[tuple[pd.Timestamp, pd.Timestamp]], i: int) -> None:
        start, end = pages[i]
        done = (
            self._finish_history
            if i == len(pages) - 1
            else lambda _: self._request_page(pages, i + 1)
        )
        self.request_bars(self.config.bar_type, start=start, end=end, callback=done)

    def _finish_history(self, _request_id: object = None) -> None:
        self._history_pending = False
        buffered, self._buffered = self._buffered, []
        for bar in buffered:
            self.on_bar(bar)

    def on_historical_data(self, data: object) -> None:
        if isinstance(data, Bar) and data.bar_type == self.config.bar_type:
            self._consume(data, trade=False)

    # ----- the decision per bar --------------------------------------------------------------

    def on_bar(self, bar: Bar) -> None:
        if self._history_pending:
            self._buffered.append(bar)
            return
        self._consume(bar, trade=True)
        if self._risk_file is not None:
            self._risk_file.save_if_changed(self.policy.risk)

    def _consume(self, bar: Bar, trade: bool) -> None:
        decider = self.decider
        missing = decider.accept(bar.ts_event)
        if missing is None:
            return  # a duplicate or out-of-order bar
        if missing:
            self.gaps_seen += 1
            self.log.warning(f"gap of {missing} bars before {bar}; features warm up again")
            self.lifecycle.reset_drift()
        close = bar.close.as_double()
        high, low, volume = bar.high.as_double(), bar.low.as_double(), bar.volume.as_double()
        lifecycle = self.lifecycle
        lifecycle.observe(bar.ts_event, bar.open.as_double(), high, low, close, volume)
        if trade:
            swapped = lifecycle.model_for(bar.ts_event)  # a promoted version due from this bar
            if swapped is not None:
                decider.swap_model(swapped)
                self.model = swapped
        view = decider.observe(high, low, close, volume)
        if not trade:
            return  # history
        if view is None:
            lifecycle.end_of_bar(bar.ts_event)  # warming up after a gap: the schedule runs on
            return

        position, equity = self._position_and_equity(close)
        decider.halt_on_kill_switch(
            self.config.kill_switch_path, bar.ts_event, self._kill_requested
        )
        was_halted = decider.policy.risk.halted
        decision = decider.decide(bar.ts_event, view, equity, close, position)
        if decider.policy.risk.halted and not was_halted:
            self.log.warning(f"HALTED: {decider.policy.risk.halt_reason}", LogColor.RED)
        if decision.order != 0.0 and not self._orders_working():
            self._submit(decision)
        self._report(bar, view.assessment, decision, position, equity, close)
        forecast = decider.view
        lifecycle.after_decision(
            bar.ts_event, close, forecast.mean, forecast.std, view.assessment.in_distribution
        )
        lifecycle.end_of_bar(bar.ts_event)

    def _submit(self, decision: Decision) -> None:
        if self.config.execution == MAKER:
            self._submit_maker(decision)
            return
        order = self.order_factory.market(
            instrument_id=self.config.instrument_id,
            order_side=OrderSide.BUY if decision.order > 0 else OrderSide.SELL,
            quantity=self.instrument.make_qty(abs(decision.order)),
            reduce_only=decision.reduce_only,
            tags=[self.lifecycle.order_tag],
        )
        self.submit_order(order)

    # ----- maker execution (execution: maker; runtime.backtest documents the fill rule) ------

    def _submit_maker(self, decision: Decision) -> None:
        """A post-only limit on the passive side of the decision bar's close (buy one tick
        below, sell one tick above: after a bar the book's bid and ask are both its close), and
        a timer that cancels it if it is still open ``maker_timeout_bars`` bars later."""
        tick = self.instrument.price_increment.as_double()
        close = self.cache.bar(self.config.bar_type).close.as_double()
        buy = decision.order > 0
        order = self.order_factory.limit(
            instrument_id=self.config.instrument_id,
            order_side=OrderSide.BUY if buy else OrderSide.SELL,
            quantity=self.instrument.make_qty(abs(decision.order)),
            price=self.instrument.make_price(maker_limit_price(close, buy, tick)),
            post_only=True,
            reduce_only=decision.reduce_only,
            tags=[self.lifecycle.order_tag],
        )
        self.submit_order(order)
        self.maker_stats["submitted"] += 1
        self.clock.set_time_alert_ns(
            f"maker-timeout-{order.client_order_id}",
            self.clock.timestamp_ns() + self.config.maker_timeout_bars * self._bar_ns,
            callback=lambda _event, order_id=order.client_order_id: self._maker_timeout(order_id),
        )

    def _maker_timeout(self, client_order_id: object) -> None:
        order = self.cache.order(client_order_id)
        if order is not None and order.is_open:
            self._maker_timed_out.add(client_order_id)
            self.cancel_order(order)

    def on_order_canceled(self, event: object) -> None:
        if event.client_order_id in self._maker_timed_out:
            self._maker_timed_out.discard(event.client_order_id)
            self.maker_stats["unfilled"] += 1

    def on_order_rejected(self, event: object) -> None:
        # the backtest venue flags due_post_only; Nautilus's Bybit adapter (1.231) leaves it
        # False and gives Bybit's reason EC_PostOnlyWillTakeLiquidity
        if event.due_post_only or "PostOnly" in event.reason:
            self.maker_stats["post_only_rejected"] += 1

    # ----- account views ----------------------------------------------------------------------

    def _position_and_equity(self, price: float) -> tuple[float, float]:
        """This strategy's signed position, and account balance + its unrealised PnL at price."""
        if self._account is None:
            self._account = self.portfolio.account(self.config.instrument_id.venue)
            if self._account is None:
                return 0.0, 0.0
        equity = self._account.balance_total(self.instrument.settlement_currency).as_double()
        position = 0.0
        for open_position in self.cache.positions_open(
            instrument_id=self.config.instrument_id, strategy_id=self.id
        ):
            position += open_position.signed_qty
            equity += open_position.unrealized_pnl(self.instrument.make_price(price)).as_double()
        return position, equity

    def _orders_working(self) -> bool:
        return (
            self.cache.orders_inflight_count(strategy_id=self.id) > 0
            or self.cache.orders_open_count(strategy_id=self.id) > 0
        )

    # ----- diagnostics ------------------------------------------------------------------------

    def _report(
        self,
        bar: Bar,
        assessment: Assessment,
        decision: Decision,
        position: float,
        equity: float,
        close: float,
    ) -> None:
        self.bars_decided += 1
        blocker, risk, target = decision.blocker, decision.risk, decision.target
        if self.recorder is not None:
            self.recorder.record(
                bar.ts_event,
                assessment,
                decision,
                position,
                equity,
                close,
                self.lifecycle.version_index,
            )
        if self.config.publish_diagnostics:
            self.publish_data(
                DIAGNOSTICS_DATA_TYPE,
                ScoreMatchingDiagnostics(
                    ts_event=bar.ts_event,
                    ts_init=bar.ts_init,
                    signal=assessment.signal,
                    confidence=assessment.confidence,
                    log_density=assessment.log_density,
                    in_distribution=assessment.in_distribution,
                    blocked_by=blocker.name,
                    target_qty=target,
                    position_qty=position,
                    equity=equity,
                    drawdown=risk.drawdown,
                    exposure=risk.exposure,
                    risk_status=risk.status.name,
                ),
            )
        if self.config.log_every_bars and self.bars_decided % self.config.log_every_bars == 0:
            self.log.info(
                f"bar {self.bars_decided}: signal {assessment.signal:+.3f} conf "
                f"{assessment.confidence:.2f} logp {assessment.log_density:.2f} "
                f"{blocker.name} target {target:g} position {position:g} equity {equity:,.2f} "
                f"dd {risk.drawdown:.2%} {risk.status.name}"
            )


# ----- helpers (pure) ----------------------------------------------------------------------------


def validate_config(config: ScoreMatchingConfig) -> PolicySettings:
    """The config's policy settings; a value that breaks its field's rule (:data:`STRATEGY_RULES`)
    or a rule across fields is refused with the field named (ValueError)."""
    for name, rule in STRATEGY_RULES.items():
        value = getattr(config, name)
        try:
            rule.parse(
                value
                if isinstance(value, bool | int | float | str | dict) or value is None
                else str(value)
            )
        except Rejected:
            raise ValueError(f"{name} = {value!r} is invalid; expected {rule.allowed}") from None
    inactive = inactive_settings(config, config.signal_mode)
    if inactive:
        name = inactive[0]
        raise ValueError(
            f"{name} = {getattr(config, name)!r} does nothing in {config.signal_mode} mode (it "
            f"acts in {' and '.join(ACTS_IN[name])} mode); remove it or set signal_mode"
        )
    return PolicySettings.from_fields(config)


def bar_interval_ns(bar_type: BarType) -> int:
    """Length of one bar, for time-aggregated bar types."""
    return bar_type.spec.timedelta.value


def history_pages(
    start: pd.Timestamp, end: pd.Timestamp, interval: pd.Timedelta, page_bars: int
) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """[start, end) cut into consecutive ranges of at most ``page_bars`` bars."""
    pages, page_start = [], start
    while page_start < end:
        page_end = min(page_start + page_bars * interval, end)
        pages.append((page_start, page_end))
        page_start = page_end
    return pages
