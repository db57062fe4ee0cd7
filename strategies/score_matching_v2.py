"""ScoreMatchingStrategy on NautilusTrader 2.0 (the PyO3 engine): the binding only.

The decision per bar is :class:`strategies.bar_decider.BarDecider` (features, model, policy),
the same code the 1.231 strategy runs; this class feeds it the engine's bars, account and
position, and turns its decisions into market orders.

What differs from the 1.231 binding (``strategies.score_matching``):

- the config is a plain frozen dataclass (:class:`ScoreMatchingV2Config`): 2.0's
  ``StrategyConfig`` is a Rust type that takes only its own fields;
- the fees come from the config (2.0 instruments carry no fees; the venue's fee model does),
  and warm-up history from the runner (``history``: 2.0's catalog does not read a 1.231
  catalog, see runtime.backtest_v2), as many bars as 1.231 requests;
- the strategy's id is ``strategy_id`` (1.231: ``id``); an order just submitted is not yet
  counted in flight by 2.0's cache, so the working order is tracked by its client order id;
  accounts are copies with their whole event history, so the balance is re-read after fills;
- live (runtime.live_v2): warm-up bars are requested from the data client in pages, one at a
  time (2.0's ``request_bars`` takes no callback; ``on_historical_bars`` gets one call per
  request, an empty list included), live bars wait until they have arrived; the kill switch
  file is polled on a timer; the balance is re-read on every bar (the venue's wallet pushes
  move it too);
- the per-bar record for the report (``record_diagnostics``) is 1.231's
  (:mod:`strategies.decision_record`);
- maker execution: the maker fee comes from the config too (``maker_fee``), the timeout is a
  time alert (2.0's clock API is 1.231's), ``cancel_order`` takes the client order id, and the
  maker counts are logged on stop (live: 2.0 calls no handler of a stopped strategy);
- not bound yet: diagnostics on the message bus, and the venue reconciler of the 1.231 live
  node.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field

from nautilus_trader.common import TimeEvent
from nautilus_trader.model import Bar
from nautilus_trader.model import BarType
from nautilus_trader.model import InstrumentId
from nautilus_trader.model import OrderSide
from nautilus_trader.model import StrategyId
from nautilus_trader.trading import Strategy
from nautilus_trader.trading import StrategyConfig

from policy.costs import EXECUTION_STYLES
from policy.costs import MAKER
from policy.costs import TAKER
from policy.costs import execution_fee
from policy.costs import maker_limit_price
from policy.decision import Decision
from policy.settings import PolicySettings
from strategies.bar_decider import KILL_SWITCH_TAG
from strategies.bar_decider import STOP_TAG
from strategies.bar_decider import BarDecider
from strategies.bar_decider import lot_rules
from strategies.decision_record import DiagnosticsRecorder
from strategies.kill_switch import kill_switch_armed
from strategies.model_loading import load_model_for
from strategies.retraining import InlineTrainer
from strategies.retraining import ModelLifecycle
from strategies.retraining import ProcessTrainer
from strategies.retraining import RetrainSettings
from strategies.state_file import RiskStateFile

# (ts_event ns, open, high, low, close, volume) of a bar before the first traded one
HistoryBar = tuple[int, float, float, float, float, float]
# the last n bar intervals before the first traded bar (up to and including it)
HistorySource = Callable[[int], Sequence[HistoryBar]]
KILL_SWITCH_TIMER = "kill-switch"
RETRAIN_TIMER = "retrain-poll"  # live: collect a finished training off the bar path
LATE_FILLS_TIMER = "close-after-stop"
LATE_FILLS_POLL_MS = 100


@dataclass(frozen=True)
class ScoreMatchingV2Config:
    """The 2.0 strategy's settings: the 1.231 config's fields that this binding supports."""

    instrument_id: str
    bar_type: str
    model_path: str
    fee: float  # the venue's taker fee (the cost rules use it; 2.0 instruments carry none)
    signal_mode: str = "edge"
    policy: PolicySettings = field(default_factory=PolicySettings)
    allow_bar_type_mismatch: bool = False
    kill_switch_path: str | None = None
    kill_switch_poll_secs: float = 0.0  # > 0: poll the kill switch file on a timer (live)
    state_path: str | None = None
    close_positions_on_stop: bool = True
    reduce_only_on_stop: bool = True
    strategy_id: str = "ScoreMatchingStrategy-000"
    # without a history source: request the warm-up bars from the data client, in pages
    warmup_from_history: bool = True
    history_page_bars: int = 1000
    subscribe_quotes: bool = False  # a sandbox execution client matches on quotes
    external_order_claims: tuple[str, ...] = ()  # instruments whose venue orders it claims
    reread_balance_every_bar: bool = False  # live: wallet pushes move the balance too
    # live: close on stop once no order is pending, on a timer that runs during the node's
    # post-stop wait (so a fill in flight at the stop is closed too)
    close_fills_after_stop: bool = False
    # keep every decided bar for the report (13 x 8 bytes a bar; the backtest turns it on)
    record_diagnostics: bool = False
    # "taker": market orders, costed at ``fee``; "maker": post-only limits one tick inside the
    # decision bar's close, cancelled unfilled after ``maker_timeout_bars`` bars, costed at
    # ``maker_fee`` (policy.costs.execution_fee)
    execution: str = TAKER
    maker_timeout_bars: int = 1
    maker_fee: float | None = None  # the venue's maker fee (needed by execution: maker)
    # keep the model current (strategies.retraining.RetrainSettings; the 1.231 config's field)
    retrain: dict | None = None
    inline_training: bool = False  # a backtest trains in the engine's thread (live: a process)

    def __post_init__(self) -> None:
        if self.execution not in EXECUTION_STYLES:
            raise ValueError(
                f"execution {self.execution!r} is not one of {', '.join(EXECUTION_STYLES)}"
            )
        if self.maker_timeout_bars < 1:
            raise ValueError(f"maker_timeout_bars must be >= 1, got {self.maker_timeout_bars}")
        if self.execution == MAKER and self.maker_fee is None:
            raise ValueError("execution: maker needs the venue's maker fee (maker_fee)")

    @property
    def cost_fee(self) -> float:
        """The fee per side the cost rules price a trade at: the execution style's."""
        maker_fee = self.fee if self.maker_fee is None else self.maker_fee
        return execution_fee(self.execution, maker_fee, self.fee)

    @property
    def density_percentile(self) -> float:  # read by strategies.model_loading
        return self.policy.density_percentile

    @property
    def density_rule(self) -> str:  # the density filter's rule (scoremodel.density_rule)
        return self.policy.density_rule


class ScoreMatchingStrategyV2(Strategy):
    """The score-matching strategy on NautilusTrader 2.0 (see the module docstring)."""

    def __new__(cls, *_args: object, **_kwargs: object) -> ScoreMatchingStrategyV2:
        return super().__new__(cls)  # 2.0's Strategy.__new__ takes only its own config

    def __init__(self, config: ScoreMatchingV2Config, history: HistorySource | None = None) -> None:
        claims = [InstrumentId.from_str(claim) for claim in config.external_order_claims]
        super().__init__(
            StrategyConfig(
                strategy_id=StrategyId(config.strategy_id),
                external_order_instrument_ids=claims or None,
            )
        )
        self.settings = config
        self.instrument_id = InstrumentId.from_str(config.instrument_id)
        self.bar_type = BarType.from_str(config.bar_type)
        self.history = history
        self.decider: BarDecider | None = None
        self.lifecycle: ModelLifecycle | None = None  # versions, retraining, drift (on_start)
        self.instrument = None
        self.bars_decided = 0
        self.gaps_seen = 0
        self.recorder = DiagnosticsRecorder() if config.record_diagnostics else None
        self._working = None  # the client order id of the order not yet closed
        self._balance: float | None = None  # the account's balance, None: read it again
        self._risk_file: RiskStateFile | None = None
        self._kill_requested = False  # SIGUSR1: halt even if the kill file cannot be written
        self._history_pages: list[tuple[dt.datetime, dt.datetime]] = []  # still to request
        self._history_pending = False
        self._buffered: list[Bar] = []  # live bars that arrived during the warm-up
        # maker execution: orders submitted, cancelled unfilled after the timeout, rejected as
        # crossing (the names of 1.231's maker_stats); the orders the timeout is cancelling,
        # and those it has cancelled (the report tells them from orders left open)
        self.maker_stats = dict.fromkeys(("submitted", "unfilled", "post_only_rejected"), 0)
        self._maker_timed_out: set = set()
        self.maker_cancelled: set = set()

    def on_start(self) -> None:
        self.instrument = self.cache.instrument(self.instrument_id)
        if self.instrument is None:
            raise RuntimeError(f"instrument {self.instrument_id} is not in the cache")
        config = self.settings
        risk = None
        if config.state_path:
            self._risk_file = RiskStateFile(config.state_path)
            risk = self._risk_file.load()
            if risk is not None:
                self.log.info(f"restored risk state from {config.state_path}: {risk}")
        bar_ns = self.bar_type.spec.get_interval_ns()
        self.lifecycle = self._lifecycle(load_model_for(config), bar_ns)
        self.decider = BarDecider(
            config.policy,
            config.signal_mode,
            self.lifecycle.model,  # a live registry's current version, else the model's own
            bar_ns=bar_ns,
            fee=config.cost_fee,  # the cost-aware policy prices a round trip at the style's fee
            lots=lot_rules(self.instrument),
            risk=risk,
        )
        if self.recorder is not None:
            self.recorder.version_ids = self.lifecycle.ids
        if self.history is not None:  # the bars before the first one, as 1.231 requests them
            for bar in self.history(self._history_bars()):
                self._warm_up(*bar)
        elif config.warmup_from_history:
            self._request_history()
        if self.lifecycle.schedule is not None and not config.inline_training:
            self.clock.set_timer(
                RETRAIN_TIMER, dt.timedelta(seconds=1), callback=lambda _e: self.lifecycle.poll()
            )
        if config.kill_switch_path and config.kill_switch_poll_secs > 0:
            self.clock.set_timer(
                KILL_SWITCH_TIMER,
                dt.timedelta(seconds=config.kill_switch_poll_secs),
                callback=self._poll_kill_switch,
            )
        self.subscribe_bars(self.bar_type)
        if config.subscribe_quotes:
            self.subscribe_quotes(self.instrument_id)

    def _lifecycle(self, model: object, bar_ns: int) -> ModelLifecycle:
        """Versions, retraining and drift monitors (strategies.retraining), as on 1.231."""
        config = self.settings
        settings = RetrainSettings.from_mapping(config.retrain)
        if settings.enabled and settings.registry is None and config.inline_training:
            raise ValueError(
                "retrain.registry is not set: a backtest that retrains stores its versions "
                "there (run_backtest.py uses REPORT_DIR/models)"
            )
        return ModelLifecycle(
            settings,
            model,
            config.model_path,
            bar_ns=bar_ns,
            bar_type=config.bar_type,
            signal_mode=config.signal_mode,
            density_percentile=config.policy.density_percentile,
            density_rule=config.policy.density_rule,
            trainer=InlineTrainer()
            if config.inline_training
            else ProcessTrainer(settings.timeout_secs),
            resume=not config.inline_training,  # a backtest never starts from a later model
            log=self.log.info,
            warn=self.log.warning,
        )

    # ----- warm-up from the data client (live) ----------------------------------------------

    def _request_history(self) -> None:
        """Request the warm-up bars in pages the venue accepts, one page at a time; live bars
        wait in a buffer until the last page has arrived."""
        interval = dt.timedelta(microseconds=self.bar_type.spec.get_interval_ns() / 1000)
        end = self.clock.utc_now()
        start = end - self._history_bars() * interval
        page = self.settings.history_page_bars * interval
        while start < end:
            self._history_pages.append((start, min(start + page, end)))
            start += page
        self._history_pending = True
        self._request_next_page()

    def _request_next_page(self) -> None:
        if not self._history_pages:
            self._finish_history()
            return
        start, end = self._history_pages.pop(0)
        self.request_bars(self.bar_type, start=start, end=end)

    def on_historical_bars(self, bars: Sequence[Bar]) -> None:
        if not self._history_pending:
            return
        for bar in bars:
            if bar.bar_type == self.bar_type:
                self._warm_up(
                    bar.ts_event, bar.open.as_double(), bar.high.as_double(),
                    bar.low.as_double(), bar.close.as_double(), bar.volume.as_double(),
                )  # fmt: skip
        self._request_next_page()

    def _history_bars(self) -> int:
        """Bars of history before the first traded bar: the features' warm-up, or the first
        training window's (strategies.retraining)."""
        now_ns = self.clock.timestamp_ns()
        interval = self.bar_type.spec.get_interval_ns()
        window = (now_ns - self.lifecycle.history_start_ns(now_ns)) // interval
        return max(self.decider.history_bars(), window)

    def _warm_up(self, ts_ns: int, o: float, h: float, lo: float, c: float, v: float) -> None:
        """A bar before the first traded one: features, and the bars the retraining keeps."""
        if self.decider.accept(ts_ns) is not None:
            self.lifecycle.observe(ts_ns, o, h, lo, c, v)
            self.decider.observe(h, lo, c, v)

    def _finish_history(self) -> None:
        self._history_pending = False
        self.log.info(f"warm-up history received up to {self.decider.last_bar_ns} ns")
        buffered, self._buffered = self._buffered, []
        for bar in buffered:
            self.on_bar(bar)

    # ----- the kill switch (live) ------------------------------------------------------------

    def _poll_kill_switch(self, _event: TimeEvent | None = None) -> None:
        """While the kill switch is armed (its file exists, or :meth:`request_kill`): halt,
        cancel, and close the position as soon as no order of the strategy is pending (one in
        flight when the kill came may fill)."""
        path = self.settings.kill_switch_path
        if not kill_switch_armed(path, self._kill_requested) or self.decider is None:
            return
        risk = self.decider.policy.risk
        if not risk.halted:
            self.decider.policy.halt(self.clock.timestamp_ns(), f"kill switch {path}")
            self.log.warning("kill switch file found: cancel, flatten, halt")
            self.cancel_all_orders(self.instrument_id)
            if self._risk_file is not None:
                self._risk_file.save_if_changed(self.decider.policy.risk)
        self._close_when_nothing_pending(reduce_only=True, tag=KILL_SWITCH_TAG)

    def request_kill(self) -> None:
        """Halt, cancel and flatten at the next kill switch check whether or not the kill
        switch file could be written (the live node's SIGUSR1 handler calls it)."""
        self._kill_requested = True

    def on_stop(self) -> None:
        self.cancel_all_orders(self.instrument_id)
        if self.settings.execution == MAKER:
            stats = self.maker_stats
            self.log.info(
                f"maker orders: {stats['submitted']} post-only, {stats['unfilled']} cancelled "
                f"unfilled, {stats['post_only_rejected']} rejected as crossing"
            )
        if self.settings.close_positions_on_stop and self.settings.close_fills_after_stop:
            # live: 2.0 (rc6) stops a Python strategy without waiting for orders in flight
            self.clock.set_timer(
                LATE_FILLS_TIMER,
                dt.timedelta(milliseconds=LATE_FILLS_POLL_MS),
                callback=self._close_after_stop,
            )
        elif self.settings.close_positions_on_stop:
            self.close_all_positions(
                self.instrument_id,
                reduce_only=self.settings.reduce_only_on_stop,
                tags=[STOP_TAG],  # not a model's decision: the stop's
            )
        self.unsubscribe_bars(self.bar_type)
        if self.settings.subscribe_quotes:
            self.unsubscribe_quotes(self.instrument_id)
        if self._risk_file is not None:
            self._risk_file.save_if_changed(self.decider.policy.risk)
        if self.lifecycle is not None:
            self.lifecycle.close()  # a training process still running is stopped

    def on_bar(self, bar: Bar) -> None:
        if self._history_pending:
            self._buffered.append(bar)
            return
        decider = self.decider
        missing = decider.accept(bar.ts_event)
        if missing is None:
            return
        lifecycle = self.lifecycle
        if missing:
            self.gaps_seen += 1
            self.log.warning(f"gap of {missing} bars before {bar}; features warm up again")
            lifecycle.reset_drift()
        close = bar.close.as_double()
        high, low, volume = bar.high.as_double(), bar.low.as_double(), bar.volume.as_double()
        lifecycle.observe(bar.ts_event, bar.open.as_double(), high, low, close, volume)
        swapped = lifecycle.model_for(bar.ts_event)  # a promoted version due from this bar
        if swapped is not None:
            decider.swap_model(swapped)
        view = decider.observe(high, low, close, volume)
        if view is None:
            lifecycle.end_of_bar(bar.ts_event)  # warming up after a gap: the schedule runs on
            return
        if self.settings.reread_balance_every_bar:
            self._balance = None
        position, equity = self._position_and_equity(close)
        path = self.settings.kill_switch_path
        if decider.halt_on_kill_switch(path, bar.ts_event, self._kill_requested):
            self.log.warning("kill switch file found: flattening and halting")
        was_halted = decider.policy.risk.halted
        decision = decider.decide(bar.ts_event, view, equity, close, position)
        if decider.policy.risk.halted and not was_halted:
            self.log.warning(f"HALTED: {decider.policy.risk.halt_reason}")
        if decision.order != 0.0 and not self._order_working():
            self._submit(decision, close)
        self.bars_decided += 1
        if self.recorder is not None:
            self.recorder.record(
                bar.ts_event,
                view.assessment,
                decision,
                position,
                equity,
                close,
                lifecycle.version_index,
            )
        if self._risk_file is not None:
            self._risk_file.save_if_changed(decider.policy.risk)
        forecast = decider.view
        lifecycle.after_decision(
            bar.ts_event, close, forecast.mean, forecast.std, view.assessment.in_distribution
        )
        lifecycle.end_of_bar(bar.ts_event)

    def _submit(self, decision: Decision, close: float) -> None:
        if self.settings.execution == MAKER:
            self._submit_maker(decision, close)
            return
        order = self.order_factory.market(
            self.instrument_id,
            OrderSide.BUY if decision.order > 0 else OrderSide.SELL,
            self.instrument.make_qty(abs(decision.order)),
            reduce_only=decision.reduce_only,
            tags=[self.lifecycle.order_tag],
        )
        self._working = order.client_order_id
        self.submit_order(order)

    # ----- maker execution (execution: maker; runtime.backtest documents the fill rule) ------

    def _submit_maker(self, decision: Decision, close: float) -> None:
        """A post-only limit on the passive side of the decision bar's close (buy one tick
        below, sell one tick above), and a time alert that cancels it if it is still open
        ``maker_timeout_bars`` bars later (1.231's rule, policy.costs.maker_limit_price)."""
        tick = self.instrument.price_increment.as_double()
        buy = decision.order > 0
        order = self.order_factory.limit(
            self.instrument_id,
            OrderSide.BUY if buy else OrderSide.SELL,
            self.instrument.make_qty(abs(decision.order)),
            self.instrument.make_price(maker_limit_price(close, buy, tick)),
            post_only=True,
            reduce_only=decision.reduce_only,
            tags=[self.lifecycle.order_tag],
        )
        self._working = order.client_order_id
        self.submit_order(order)
        self.maker_stats["submitted"] += 1
        client_order_id = order.client_order_id
        self.clock.set_time_alert_ns(
            f"maker-timeout-{client_order_id}",
            self.clock.timestamp_ns()
            + self.settings.maker_timeout_bars * self.bar_type.spec.get_interval_ns(),
            callback=lambda _event: self._maker_timeout(client_order_id),
        )

    def _maker_timeout(self, client_order_id: object) -> None:
        order = self.cache.order(client_order_id)
        if order is not None and order.is_open:
            self._maker_timed_out.add(client_order_id)
            self.cancel_order(client_order_id)  # 2.0 takes the id (1.231: the order)

    def on_order_canceled(self, event: object) -> None:
        if event.client_order_id in self._maker_timed_out:
            self._maker_timed_out.discard(event.client_order_id)
            self.maker_cancelled.add(event.client_order_id)
            self.maker_stats["unfilled"] += 1

    def on_order_rejected(self, event: object) -> None:
        # the backtest venue flags due_post_only; a venue may give only its reason (Bybit:
        # EC_PostOnlyWillTakeLiquidity)
        if event.due_post_only or "PostOnly" in event.reason:
            self.maker_stats["post_only_rejected"] += 1

    def _order_working(self) -> bool:
        if self._working is None:
            return False
        order = self.cache.order(self._working)
        if order is None or order.is_closed:
            self._working = None
            return False
        return True

    def on_order_filled(self, _event: object) -> None:
        self._balance = None  # a fill moves the balance (commission, realised PnL)

    def _close_after_stop(self, _event: TimeEvent | None = None) -> None:
        """After the stop, while the node waits for residual events: close the position once no
        order of the strategy is pending, a fill in flight at the stop included (2.0 calls no
        handler of a stopped strategy, but its timers still run)."""
        reduce_only = self.settings.reduce_only_on_stop
        if self._close_when_nothing_pending(reduce_only=reduce_only, tag=STOP_TAG):
            self.log.info("stopped: closing the position")

    def _close_when_nothing_pending(self, reduce_only: bool, tag: str) -> bool:
        """Close this strategy's position unless one of its orders is still pending (a fill in
        flight may still change it); True when a close was sent."""
        mine = {"instrument_id": self.instrument_id, "strategy_id": self.strategy_id}
        if any(not order.is_closed for order in self.cache.orders(**mine)):
            return False
        if not self.cache.positions_open(**mine):
            return False
        self.close_all_positions(self.instrument_id, reduce_only=reduce_only, tags=[tag])
        return True

    def _position_and_equity(self, price: float) -> tuple[float, float]:
        """This strategy's signed position, and account balance + its unrealised PnL at price.

        2.0 hands out accounts as copies with their whole event history (0.1-0.2 ms a call
        after a thousand fills), so the balance is read again only after a fill: in a backtest
        nothing else moves it (live, ``reread_balance_every_bar`` re-reads it on every bar)."""
        if self._balance is None:
            account = self.cache.account_for_venue(self.instrument_id.venue)
            if account is None:
                return 0.0, 0.0
            self._balance = account.balance_total(self.instrument.settlement_currency).as_double()
        equity = self._balance
        position = 0.0
        mark = self.instrument.make_price(price)
        for open_position in self.cache.positions_open(
            instrument_id=self.instrument_id, strategy_id=self.strategy_id
        ):
            position += open_position.signed_qty
            equity += open_position.unrealized_pnl(mark).as_double()
        return position, equity
