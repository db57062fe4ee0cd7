"""Run ScoreMatchingStrategy live on Bybit: the TradingNode, its clients, start and shutdown.

Modes (``live.mode`` in the run config, or ``run_live.py --mode``):

- ``sandbox``: Bybit's public market data (LINEAR), paper fills by Nautilus's sandbox
  execution client; no API key. Balance, leverage and fees come from the ``live`` section.
- ``demo`` / ``testnet``: Bybit's execution client on the demo / testnet environment. Keys are
  read by the adapter itself from ``BYBIT_DEMO_API_KEY``/``BYBIT_DEMO_API_SECRET`` or
  ``BYBIT_TESTNET_API_KEY``/``BYBIT_TESTNET_API_SECRET``; they are never put into a config
  object, so Nautilus cannot log or serialise them.
- ``mainnet``: real money; refused unless the caller passes ``allow_mainnet`` (the CLI flag
  ``--i-understand-this-trades-real-money``). Keys: ``BYBIT_API_KEY``/``BYBIT_API_SECRET``.

The strategy config gets what live trading adds: a claim on reconciled positions and orders
of its instrument, a risk state file (not in sandbox, whose paper account starts afresh), the
kill switch file polled on a timer, quote subscriptions in sandbox (its matching engine
fills on quotes), and the run configuration's execution style (``backtest.execution``:
``maker`` sends post-only limits through the Bybit adapter, cancelled after
``maker_timeout_bars`` bars if unfilled; the venue rejects one that would cross).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import signal
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import msgspec
from nautilus_trader.accounting.factory import AccountFactory
from nautilus_trader.adapters.bybit.config import BybitExecClientConfig
from nautilus_trader.adapters.bybit.factories import BybitLiveExecClientFactory
from nautilus_trader.adapters.bybit.factories import get_cached_bybit_http_client
from nautilus_trader.adapters.bybit.factories import get_cached_bybit_instrument_provider
from nautilus_trader.config import InstrumentProviderConfig
from nautilus_trader.config import LiveExecEngineConfig
from nautilus_trader.config import LoggingConfig
from nautilus_trader.config import TradingNodeConfig
from nautilus_trader.core import nautilus_pyo3
from nautilus_trader.core.nautilus_pyo3 import BybitEnvironment
from nautilus_trader.core.nautilus_pyo3 import BybitProductType
from nautilus_trader.core.uuid import UUID4
from nautilus_trader.live.data_client import LiveMarketDataClient
from nautilus_trader.live.execution_client import LiveExecutionClient
from nautilus_trader.live.node import TradingNode
from nautilus_trader.model.currencies import USDT
from nautilus_trader.model.enums import AccountType
from nautilus_trader.model.events import AccountState
from nautilus_trader.model.identifiers import AccountId
from nautilus_trader.model.identifiers import TraderId
from nautilus_trader.model.objects import AccountBalance
from nautilus_trader.model.objects import Money

from cli_errors import UserError
from cli_errors import one_line
from output_paths import check_writable_directory
from output_paths import os_error_reason
from output_paths import write_atomically
from policy.risk import RiskState
from runtime.backtest import execution_fields
from runtime.bybit_clients import BybitDataClientEndpointsConfig
from runtime.bybit_clients import BybitEndpointsDataClientFactory
from runtime.run_config import LiveSettings
from runtime.run_config import RunConfig
from runtime.sandbox import SandboxFeesConfig
from runtime.sandbox import SandboxFeesExecClientFactory
from scoremodel.registry import check_registry
from strategies.kill_switch import KillSwitchError
from strategies.kill_switch import arm_kill_switch
from strategies.kill_switch import check_kill_switch_path
from strategies.kill_switch import check_removable
from strategies.kill_switch import disarm_kill_switch
from strategies.reconciliation import bybit_venue_books
from strategies.score_matching import ScoreMatchingConfig
from strategies.score_matching import ScoreMatchingStrategy
from strategies.state_file import RiskStateFile

VENUE = "BYBIT"
MODES = ("sandbox", "demo", "testnet", "mainnet")
MAINNET_FLAG = "--i-understand-this-trades-real-money"
KEY_ENV_VARS: dict[str, tuple[str, str]] = {
    "demo": ("BYBIT_DEMO_API_KEY", "BYBIT_DEMO_API_SECRET"),
    "testnet": ("BYBIT_TESTNET_API_KEY", "BYBIT_TESTNET_API_SECRET"),
    "mainnet": ("BYBIT_API_KEY", "BYBIT_API_SECRET"),
}
ENVIRONMENTS: dict[str, BybitEnvironment] = {
    "sandbox": BybitEnvironment.MAINNET,  # public market data only
    "demo": BybitEnvironment.DEMO,
    "testnet": BybitEnvironment.TESTNET,
    "mainnet": BybitEnvironment.MAINNET,
}
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
SANDBOX_CURRENCY = "USDT"  # settlement currency of Bybit's USDT perpetuals (LINEAR)
MARKET_EXIT_INTERVAL_MS = 100  # how often a stopping strategy checks for orders in flight
#: How the Bybit clients' errors (reqwest, tungstenite) say that a host name did not resolve.
DNS_FAILURE_MARKERS = ("dns error", "failed to lookup address")


class LiveError(UserError, RuntimeError):
    """A live run cannot start or continue; the message (one line) says what to do."""


# ----- checks before anything connects -----------------------------------------------------------


def check_mode(mode: str, allow_mainnet: bool = False) -> None:
    """Known mode; mainnet only with the explicit permission."""
    if mode not in MODES:
        raise LiveError(f"unknown mode {mode!r}; use sandbox, demo or testnet")
    if mode == "mainnet" and not allow_mainnet:
        raise LiveError(
            f"refusing to trade real money on Bybit mainnet; pass {MAINNET_FLAG} if that is "
            "really what you want (try sandbox, demo or testnet first)"
        )


def check_keys(mode: str, environ: Mapping[str, str] = os.environ) -> None:
    """The API key and secret environment variables of ``mode`` are set (sandbox needs none)."""
    if mode not in KEY_ENV_VARS:
        return
    missing = [name for name in KEY_ENV_VARS[mode] if not environ.get(name)]
    if missing:
        key, secret = KEY_ENV_VARS[mode]
        raise LiveError(
            f"{mode} mode reads the API key from the environment: set {key} and {secret} "
            f"(missing: {', '.join(missing)})"
        )


def check_inputs(run: RunConfig, mode: str) -> None:
    """The paths the node writes (state directory, log directory, kill switch file) can be
    written, the model loads for the strategy config, and the risk state file (if any) is valid.

    Raises :class:`~scoremodel.checkpoint.CheckpointError`, :class:`StateFileError` or
    :class:`LiveError`, each with one line saying what to do.
    """
    from strategies.model_loading import load_model_for

    state_path = risk_state_path(run, mode)
    if state_path is not None:  # None: the sandbox keeps no risk state
        check_writable_directory(
            Path(state_path).parent, "the risk state directory (live.state_dir)"
        )
    if run.live.log_directory:
        check_writable_directory(run.live.log_directory, "live.log_directory")
    check_kill_switch_path(kill_switch_path(run))
    load_model_for(run.strategy)
    registry = retrain_registry(run, mode)
    if registry is not None:
        check_writable_directory(registry, "the model registry (retrain.registry)")
        check_registry(registry)  # a restart resumes with its current version: it must load
    state_file = risk_state_file(run, mode)
    if state_file is not None:
        state_file.load()  # validated field by field: a bad file stops here, before connecting


async def check_credentials(
    live: LiveSettings, mode: str, environ: Mapping[str, str] = os.environ
) -> None:
    """One signed request (``/v5/user/query-api``) so a bad key fails now, clearly, once."""
    if mode not in KEY_ENV_VARS:
        return
    environment = ENVIRONMENTS[mode]
    url = live.base_url_http or nautilus_pyo3.get_bybit_http_base_url(environment)
    key_var, secret_var = KEY_ENV_VARS[mode]
    client = nautilus_pyo3.BybitHttpClient(
        api_key=None,  # the client reads the environment variables itself
        api_secret=None,
        base_url=url,
        demo=environment == BybitEnvironment.DEMO,
        testnet=environment == BybitEnvironment.TESTNET,
        max_retries=1,
    )
    try:
        details = await client.get_account_details()
    except Exception as error:  # the client raises ValueError("Bybit error <code>: <msg>")
        reason = redact(str(error), [environ.get(key_var, ""), environ.get(secret_var, "")])
        raise LiveError(
            f"checking the key in {key_var}/{secret_var} with Bybit {mode} at {url} failed: "
            f"{reason}"
        ) from None
    if details.read_only:
        raise LiveError(f"the key in {key_var} is read-only; trading needs order permissions")


def redact(text: str, secrets: list[str]) -> str:
    """``text`` with every non-empty secret replaced by a masked form."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, f"{secret[:2]}...{secret[-2:]}")
    return text


# ----- configuration ---------------------------------------------------------------------------


def kill_switch_path(run: RunConfig) -> str:
    """The kill switch file: the strategy's own setting, else ``live.kill_switch_path``."""
    return run.strategy.kill_switch_path or run.live.kill_switch_path


def risk_state_path(run: RunConfig, mode: str) -> str | None:
    """``{state_dir}/{trader_id}/{mode}/{strategy id}.risk.json`` (see :func:`strategy_id`),
    or the strategy's ``state_path``; None in sandbox."""
    if run.strategy.state_path:
        return run.strategy.state_path
    if mode == "sandbox":
        return None  # the paper account restarts at starting_balance, so does its risk state
    return str(_state_dir(run, mode) / f"{strategy_id(run.strategy)}.risk.json")


def strategy_id(strategy: ScoreMatchingConfig) -> str:
    """The StrategyId Nautilus (1.231) gives the strategy, the only one of its node.

    ``Strategy.__init__`` makes it ``{strategy_id or class name}-{order_id_tag}``; when the tag
    is unset, ``Trader.add_strategy`` renames it ``{that id up to its first '-'}-000`` (000: the
    first strategy's tag). So by default: ``ScoreMatchingStrategy-000``.
    """
    name = strategy.strategy_id or ScoreMatchingStrategy.__name__
    if strategy.order_id_tag in (None, "None"):
        return f"{name.partition('-')[0]}-000"
    return f"{name}-{strategy.order_id_tag}"


def risk_state_file(run: RunConfig, mode: str) -> RiskStateFile | None:
    """The risk state file of ``mode`` (None in sandbox); refuses to go on while a state file
    is still at the name versions before this one wrote (``...-None.risk.json``), which would
    otherwise be ignored (its halt and high-water mark with it)."""
    path = risk_state_path(run, mode)
    if path is None:
        return None
    legacy = _legacy_risk_state_path(run, mode)
    if legacy is not None and legacy.exists():
        if Path(path).exists():
            raise LiveError(
                f"two risk state files: {path} and {legacy} (the name earlier versions wrote); "
                f"keep the one with the current state at {path} and delete {legacy}"
            )
        raise LiveError(
            f"the risk state file is now {path}, but it is still at {legacy} (the name earlier "
            f"versions wrote); rename it: mv '{legacy}' '{path}'"
        )
    return RiskStateFile(path)


def _legacy_risk_state_path(run: RunConfig, mode: str) -> Path | None:
    """Where versions before this one kept the state file, when that differs from now."""
    strategy = run.strategy
    if strategy.state_path or mode == "sandbox":
        return None
    name = f"{strategy.strategy_id or ScoreMatchingStrategy.__name__}-{strategy.order_id_tag}"
    legacy = _state_dir(run, mode) / f"{name}.risk.json"
    return None if legacy == Path(risk_state_path(run, mode)) else legacy


def _state_dir(run: RunConfig, mode: str) -> Path:
    return Path(run.live.state_dir) / run.live.trader_id / mode


def retrain_registry(run: RunConfig, mode: str) -> Path | None:
    """Where a live node's retrained versions go: ``retrain.registry``, by default
    ``{model_path}/live/{mode}`` (one registry per mode, so a model trained on testnet bars never
    becomes the current model of a mainnet node); None when retraining is off."""
    if not run.retrain.enabled:
        return None
    return Path(run.retrain.registry or Path(run.strategy.model_path) / "live" / mode)


def live_retrain_fields(run: RunConfig, mode: str) -> dict[str, object]:
    """The strategy's ``retrain`` field for ``mode`` (its registry made explicit)."""
    registry = retrain_registry(run, mode)
    if registry is None:
        return {}
    return {"retrain": {**run.strategy.retrain, "registry": str(registry)}}


def live_strategy_config(run: RunConfig, mode: str) -> ScoreMatchingConfig:
    """The run's strategy config plus what live trading needs (see the module docstring)."""
    strategy = run.strategy
    overrides = {
        "external_order_claims": strategy.external_order_claims or [strategy.instrument_id],
        "kill_switch_path": kill_switch_path(run),
        "kill_switch_poll_secs": strategy.kill_switch_poll_secs or run.live.kill_switch_poll_secs,
        "state_path": risk_state_path(run, mode),
        **live_retrain_fields(run, mode),
        # the run configuration's execution style, as in the backtest: post-only limits
        # through the Bybit adapter (a crossing one is rejected) under "maker"
        **execution_fields(run),
    }
    if strategy.close_positions_on_stop:
        # Nautilus's managed stop: cancel, close, and wait (up to timeout_post_stop) for orders
        # in flight; on_stop alone misses a position whose opening fill arrives after the stop
        overrides["manage_stop"] = True
        overrides["market_exit_reduce_only"] = strategy.reduce_only_on_stop
        overrides["market_exit_interval_ms"] = MARKET_EXIT_INTERVAL_MS
        overrides["market_exit_max_attempts"] = max(
            1, math.ceil(run.live.timeout_post_stop * 1000 / MARKET_EXIT_INTERVAL_MS)
        )
    if mode == "sandbox":
        overrides["subscribe_quotes"] = True
    return msgspec.structs.replace(strategy, **overrides)


def data_client_config(live: LiveSettings, mode: str) -> BybitDataClientEndpointsConfig:
    """Bybit market data (LINEAR) for ``mode``; keys, if any, come from the environment."""
    return BybitDataClientEndpointsConfig(
        product_types=(BybitProductType.LINEAR,),
        environment=ENVIRONMENTS[mode],
        base_url_http=live.base_url_http,
        base_url_ws_public=live.base_url_ws_public,
        instrument_provider=InstrumentProviderConfig(load_all=True),
    )


def exec_client_config(live: LiveSettings, mode: str) -> BybitExecClientConfig | SandboxFeesConfig:
    """Paper fills in sandbox; otherwise Bybit's execution client (keys from the environment)."""
    if mode == "sandbox":
        return SandboxFeesConfig(
            venue=VENUE,
            starting_balances=[f"{live.starting_balance} {SANDBOX_CURRENCY}"],
            account_type="MARGIN",
            oms_type="NETTING",
            default_leverage=Decimal(str(live.venue_leverage)),
            bar_execution=False,  # fill on the live quotes, not on bar prices
            maker_fee=_decimal_or_none(live.sandbox_maker_fee),
            taker_fee=_decimal_or_none(live.sandbox_taker_fee),
        )
    return BybitExecClientConfig(
        product_types=(BybitProductType.LINEAR,),
        environment=ENVIRONMENTS[mode],
        base_url_http=live.base_url_http,
        base_url_ws_private=live.base_url_ws_private,
        base_url_ws_trade=live.base_url_ws_trade,
        instrument_provider=InstrumentProviderConfig(load_all=True),
    )


def node_config(run: RunConfig, mode: str) -> TradingNodeConfig:
    """The TradingNode: one Bybit data client, one execution client, reconciliation on."""
    live = run.live
    return TradingNodeConfig(
        trader_id=TraderId(live.trader_id),
        logging=LoggingConfig(
            log_level=live.log_level,
            log_level_file=live.log_level if live.log_directory else None,
            log_directory=live.log_directory,
            log_colors=False,
        ),
        data_clients={VENUE: data_client_config(live, mode)},
        exec_clients={VENUE: exec_client_config(live, mode)},
        exec_engine=LiveExecEngineConfig(reconciliation=True),
        timeout_connection=live.timeout_connection,
        timeout_reconciliation=10.0,
        timeout_portfolio=10.0,
        timeout_disconnection=10.0,
        timeout_post_stop=live.timeout_post_stop,
    )


def check_venue_accounts(mode: str) -> None:
    """Refuse a venue account when this process already simulated the venue.

    Nautilus (1.231) marks an issuer's accounts as "calculated from fills" process-wide once a
    backtest or sandbox execution client used it; a later real BYBIT account in the same
    process would then add every fee and PnL on top of the venue's own wallet updates.
    """
    if mode == "sandbox":
        return
    zero = Money(0, USDT)
    probe = AccountState(
        account_id=AccountId(f"{VENUE}-PROBE"),
        account_type=AccountType.MARGIN,
        base_currency=None,
        reported=True,
        balances=[AccountBalance(zero, zero, zero)],
        margins=[],
        info={},
        event_id=UUID4(),
        ts_event=0,
        ts_init=0,
    )
    if AccountFactory.create(probe).calculate_account_state:
        raise LiveError(
            f"this Python process already ran a backtest or sandbox on {VENUE}, after which "
            f"Nautilus would double count fees and PnL on a real {VENUE} account; run live "
            "trading in a fresh process"
        )


def build_node(
    run: RunConfig,
    mode: str,
    loop: asyncio.AbstractEventLoop,
    allow_mainnet: bool = False,
    strategy_class: type[ScoreMatchingStrategy] = ScoreMatchingStrategy,
) -> TradingNode:
    """A built TradingNode running ``strategy_class`` (a subclass may add hooks) on ``loop``."""
    check_mode(mode, allow_mainnet)
    check_venue_accounts(mode)
    # nautilus_trader 1.231 caches one Bybit HTTP client and instrument provider per process
    # and cancels the client when a node disconnects; a fresh node needs fresh ones.
    get_cached_bybit_http_client.cache_clear()
    get_cached_bybit_instrument_provider.cache_clear()
    node = TradingNode(config=node_config(run, mode), loop=loop)
    node.add_data_client_factory(VENUE, BybitEndpointsDataClientFactory)
    exec_factory = SandboxFeesExecClientFactory if mode == "sandbox" else BybitLiveExecClientFactory
    node.add_exec_client_factory(VENUE, exec_factory)
    strategy = strategy_class(live_strategy_config(run, mode))
    if mode != "sandbox":  # the strategy checks its books against the venue's (reconciliation)
        strategy.venue_books = bybit_venue_books(
            mode, run.live.base_url_http, strategy.config.instrument_id
        )
    node.trader.add_strategy(strategy)
    node.build()
    return node


def _decimal_or_none(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(str(value))


# ----- running -----------------------------------------------------------------------------------


class LiveSession:
    """A built node on its loop: start (or fail clearly), stop, dispose."""

    def __init__(
        self,
        node: TradingNode,
        mode: str,
        timeout_connection: float = 30.0,
        timeout_stop: float = 5.0,
    ) -> None:
        self.node = node
        self.mode = mode
        self.timeout_connection = timeout_connection
        self.timeout_stop = timeout_stop
        self._stopped = False
        self._disposed = False

    @property
    def strategy(self) -> ScoreMatchingStrategy:
        return next(
            s for s in self.node.trader.strategies() if isinstance(s, ScoreMatchingStrategy)
        )

    async def start(self) -> None:
        """Connect, reconcile, start the strategy; raises LiveError when any step fails."""
        failure = await self._start()
        if failure is not None:
            raise LiveError(failure)

    async def _start(self) -> str | None:
        """Start the node; what went wrong, if anything.

        A client whose connect fails ends the start at once: Nautilus (1.231) logs the error
        and would otherwise wait out ``timeout_connection`` although nothing retries it.
        """
        connect_failed = self._watch_connects()
        start = asyncio.ensure_future(self.node.kernel.start_async())
        try:
            await asyncio.wait({start, connect_failed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if connect_failed.done() or not start.done():
                start.cancel()
                await asyncio.gather(start, return_exceptions=True)
        if connect_failed.done():
            return connect_failed.result()
        connect_failed.cancel()
        start.result()  # an error of Nautilus's own start, with its traceback
        if not self.node.trader.is_running:
            return self._startup_failure()
        if not self.strategy.is_running:
            return "the strategy did not start; the log above says why"
        return None

    async def stop(self) -> None:
        """Stop the strategies first, while the clients are still connected, and wait for their
        managed stops (cancel, close, fills in flight); then stop and disconnect the node."""
        if self._stopped:
            return
        self._stopped = True
        trader = self.node.trader
        if trader.is_running:
            trader.stop()
            if not await self._settled(self.timeout_stop + 1.0):
                self.node.kernel.logger.warning("orders still in flight; disconnecting anyway")
            trader.check_residuals()
        await self.node.stop_async()

    async def _settled(self, timeout: float) -> bool:
        """Every strategy stopped (managed stops done) and no order in flight (submits and
        cancels answered by the venue)."""
        loop, cache = self.node.kernel.loop, self.node.cache
        deadline = loop.time() + timeout
        strategies = self.node.trader.strategies()
        while any(s.is_running for s in strategies) or cache.orders_inflight_count() > 0:
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Start, trade until ``stop`` is set, stop (also when starting failed)."""
        try:
            failure = await self._start()
            if failure is None:
                await stop.wait()
        except BaseException:
            await self.stop()
            raise
        # stopped outside any exception context: Nautilus logs the current exception's
        # traceback with errors that happen while stopping, which would mislead here
        await self.stop()
        if failure is not None:
            raise LiveError(failure)

    def dispose(self) -> None:
        """Cancel what is left on the loop and dispose the node (closes the loop)."""
        if self._disposed:
            return
        self._disposed = True
        loop = self.node.get_event_loop()
        if loop is not None and not loop.is_closed():
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            with contextlib.suppress(BaseException):
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.node.dispose()

    def _watch_connects(self) -> asyncio.Future[str]:
        """A future that gets what went wrong (one line) when a client's connect fails."""
        kernel = self.node.kernel
        failed: asyncio.Future[str] = kernel.loop.create_future()
        key_vars = KEY_ENV_VARS.get(self.mode, ())
        secrets = [os.environ.get(name, "") for name in key_vars]
        for client in kernel.data_engine._clients.values():
            _report_connect_failure(
                client,
                failed,
                lambda reason: (
                    f"the Bybit data client could not connect: {reason}; check the network, "
                    "a proxy, or live.base_url_http / base_url_ws_public"
                ),
            )
        for client in kernel.exec_engine._clients.values():
            _report_connect_failure(
                client,
                failed,
                lambda reason: (
                    f"the {self.mode} execution client could not connect: "
                    f"{redact(reason, secrets)}; check the API key permissions, the network "
                    "and live.base_url_http / base_url_ws_private / base_url_ws_trade"
                ),
            )
        return failed

    def _startup_failure(self) -> str:
        kernel = self.node.kernel
        if not kernel.data_engine.check_connected():
            return (
                f"the Bybit data client did not connect within {self.timeout_connection:g} s; "
                "check the network, a proxy, or live.base_url_http / base_url_ws_public"
            )
        if not kernel.exec_engine.check_connected():
            return (
                f"the {self.mode} execution client did not connect within "
                f"{self.timeout_connection:g} s; check the API key permissions and the log above"
            )
        return "reconciliation or portfolio initialisation timed out; the log above says why"


def _report_connect_failure(
    client: LiveMarketDataClient | LiveExecutionClient,
    failed: asyncio.Future[str],
    describe: Callable[[str], str],
) -> None:
    """Make ``client``'s connect coroutine set ``failed`` to ``describe(reason)`` when it
    raises (Nautilus still logs the error as before)."""
    connect = client._connect

    async def _connect() -> None:  # the name Nautilus logs the connect task under
        try:
            await connect()
        except Exception as error:
            if not failed.done():
                failed.set_result(describe(connect_failure_reason(error)))
            raise

    client._connect = _connect


def connect_failure_reason(error: BaseException) -> str:
    """``error`` as one line; when a host name did not resolve, just that, with the name."""
    reason = one_line(error)
    if not any(marker in reason.lower() for marker in DNS_FAILURE_MARKERS):
        return reason
    url = re.search(r"\b(?:https?|wss?)://([^/:?)\s]+)", reason)
    host = f"the host name {url.group(1)}" if url else "a host name"
    return f"{host} does not resolve (no network, or no DNS)"


def run_live(run: RunConfig, mode: str, allow_mainnet: bool = False) -> None:
    """Trade until SIGINT/SIGTERM, then stop cleanly. SIGUSR1 arms the kill switch.

    Raises :class:`LiveError` (one line) when something prevents trading.
    """
    check_mode(mode, allow_mainnet)
    check_keys(mode)
    check_inputs(run, mode)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    session: LiveSession | None = None
    try:
        loop.run_until_complete(check_credentials(run.live, mode))
        node = build_node(run, mode, loop, allow_mainnet)
        session = LiveSession(
            node, mode, run.live.timeout_connection, timeout_stop=run.live.timeout_post_stop
        )
        stop = asyncio.Event()
        install_signal_handlers(
            loop,
            stop,
            kill_switch_path(run),
            node.kernel.logger.warning,
            session.strategy.request_kill,
        )
        loop.run_until_complete(session.run(stop))
    finally:
        if session is not None:
            remove_signal_handlers(loop)
            session.dispose()
        if not loop.is_closed():
            loop.close()
        asyncio.set_event_loop(None)


def install_signal_handlers(
    loop: asyncio.AbstractEventLoop,
    stop: asyncio.Event,
    kill_path: str,
    warn: Callable[[str], None],
    request_kill: Callable[[], None],
) -> None:
    """SIGINT/SIGTERM set ``stop`` (replacing Nautilus's own handlers); SIGUSR1 arms the kill
    switch file and tells the strategy in memory (``request_kill``), which acts on it within
    ``kill_switch_poll_secs``: a kill that cannot be written still flattens and halts."""

    def request_stop(sig: signal.Signals) -> None:
        warn(f"{sig.name} received: stopping (cancel orders, close positions as configured)")
        stop.set()

    def on_kill_signal() -> None:
        request_kill()
        try:
            warn(f"SIGUSR1 received: kill switch armed at {arm_kill_switch(kill_path)}")
        except KillSwitchError as error:
            warn(f"SIGUSR1 received: halting and flattening now, but {error}")

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, request_stop, sig)
    loop.add_signal_handler(signal.SIGUSR1, on_kill_signal)


def remove_signal_handlers(loop: asyncio.AbstractEventLoop) -> None:
    """Undo :func:`install_signal_handlers` (and Nautilus's handlers on the same signals)."""
    if not loop.is_closed():
        for sig in (*STOP_SIGNALS, signal.SIGUSR1, signal.SIGABRT):
            loop.remove_signal_handler(sig)


# ----- kill switch and resume ---------------------------------------------------------------------


def resume_trading(run: RunConfig, mode: str) -> list[str]:
    """Remove the kill switch file and clear the halt in ``mode``'s risk state file.

    Everything is checked before anything changes: a damaged state file or a kill switch path
    that cannot be removed raises (:class:`StateFileError`, :class:`LiveError`) and leaves both
    files as they were. The high-water mark restarts at the equity of the next bar (as after a
    cooldown); the daily-loss state is kept. Returns what was changed, for the user.
    """
    kill = Path(kill_switch_path(run))
    kill_armed = kill.exists() or kill.is_symlink()
    state_file = risk_state_file(run, mode)
    state = state_file.load() if state_file is not None else None
    if kill_armed:
        check_removable(kill)  # this program's file, or it is left alone
    halted = state is not None and state.halted
    original = state_file.path.read_bytes() if halted else b""

    changed = []
    if halted:
        try:
            state_file.save_if_changed(_resumed(state))
        except OSError as error:
            raise LiveError(
                f"cannot write the risk state file {state_file.path} ({os_error_reason(error)}); "
                "nothing was changed: fix the permissions of its directory and run resume again"
            ) from None
        changed.append(f"cleared the halt ({state.halt_reason}) in {state_file.path}")
    if kill_armed:
        try:
            disarm_kill_switch(kill)
        except (OSError, KillSwitchError) as error:
            if halted:  # put the halt back: a failed resume changes nothing
                write_atomically(state_file.path, original)
            reason = os_error_reason(error) if isinstance(error, OSError) else str(error)
            raise LiveError(
                f"cannot remove the kill switch file {kill} ({reason}); nothing was changed"
            ) from None
        changed.append(f"removed the kill switch file {kill}")
    return changed


def _resumed(state: RiskState) -> RiskState:
    return replace(state, halted=False, halted_at_ns=0, halt_reason="", high_water_mark=0.0)
