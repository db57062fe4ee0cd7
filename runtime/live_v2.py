"""Run ScoreMatchingStrategy live on NautilusTrader 2.0: a ``LiveNode`` with 2.0's own Bybit
adapter (``nautilus_trader.adapters.bybit``) or its sandbox execution client.

``run_live.py`` dispatches here when the installed NautilusTrader is 2.x. The run configuration,
its defaults and the checks before anything connects (mode, key variables, model, risk state
file) stay in 1.231's ``runtime.live``: the 1.231 venv resolves the arguments into a job
(``python -m runtime.engines resolve_live``), this process runs it. ``kill`` and ``resume``
only touch files; the 1.231 venv runs them as they are.

The same modes as on 1.231: ``sandbox`` (Bybit's public data, paper fills by 2.0's sandbox
execution client, fees from ``live.sandbox_maker_fee``/``sandbox_taker_fee``), ``demo``,
``testnet`` and ``mainnet`` (Bybit's execution client; keys from the environment, read by the
adapter itself). Before connecting, one signed request checks the key and reads the account's
taker and maker fees for the strategy's cost rules (2.0 instruments carry no fees). The same restart
safety (the risk state file) and kill switch (the file, polled on a timer; SIGUSR1 arms it).
SIGINT/SIGTERM stop the node (2.0 catches them itself; so does this module, to say so): the
strategy cancels its orders and, during the node's post-stop wait (``live.timeout_post_stop``,
at least 1 s), closes its position once no order is pending, so a fill in flight at the stop
is closed too (unless ``close_positions_on_stop: false``).

``execution: maker`` as on 1.231: post-only limits one tick inside the decision bar's close,
cancelled after ``maker_timeout_bars`` bars, costed at the account's (sandbox: the ``live``
section's) maker fee; a post-only order the venue refuses as crossing is counted.

Not bound on 2.0: the diagnostics, and the venue reconciler of the 1.231 node
(``reconcile_interval_secs`` is ignored).
"""

from __future__ import annotations

import asyncio
import math
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from nautilus_trader.adapters.bybit import BybitDataClientConfig
from nautilus_trader.adapters.bybit import BybitDataClientFactory
from nautilus_trader.adapters.bybit import BybitEnvironment
from nautilus_trader.adapters.bybit import BybitExecutionClientConfig
from nautilus_trader.adapters.bybit import BybitExecutionClientFactory
from nautilus_trader.adapters.bybit import BybitHttpClient
from nautilus_trader.adapters.bybit import BybitProductType
from nautilus_trader.adapters.sandbox import SandboxExecutionClientConfig
from nautilus_trader.adapters.sandbox import SandboxExecutionClientFactory
from nautilus_trader.common import Environment
from nautilus_trader.common import FileWriterConfig
from nautilus_trader.common import LoggerConfig
from nautilus_trader.common import LogLevel
from nautilus_trader.execution import MakerTakerFeeModel
from nautilus_trader.live import LiveNode
from nautilus_trader.model import AccountType
from nautilus_trader.model import Currency
from nautilus_trader.model import InstrumentId
from nautilus_trader.model import Money
from nautilus_trader.model import OmsType
from nautilus_trader.model import TraderId
from nautilus_trader.model import Venue

from cli_errors import UserError
from cli_errors import one_line
from runtime.backtest_v2 import strategy_config
from runtime.engines import ROOT
from runtime.engines import VENVS
from runtime.engines import in_other_engine
from strategies.kill_switch import KillSwitchError
from strategies.kill_switch import arm_kill_switch
from strategies.score_matching_v2 import ScoreMatchingStrategyV2

VENUE = "BYBIT"
SANDBOX_CURRENCY = "USDT"  # settlement currency of Bybit's USDT perpetuals (LINEAR)
MAINNET_FLAG = "--i-understand-this-trades-real-money"  # run_live.py's
ENVIRONMENTS = {
    "sandbox": BybitEnvironment.MAINNET,  # public market data only
    "demo": BybitEnvironment.DEMO,
    "testnet": BybitEnvironment.TESTNET,
    "mainnet": BybitEnvironment.MAINNET,
}
PRODUCT_TYPES = [BybitProductType.LINEAR]


class LiveV2Error(UserError, RuntimeError):
    """A live run on NautilusTrader 2.0 cannot start; the message (one line) says what to do."""


@dataclass(frozen=True)
class LiveJob:
    """A live run as plain values (``runtime.engines.resolve_live`` makes it on 1.231)."""

    mode: str
    strategy: dict[str, Any]  # the live strategy config's fields (1.231 names)
    live: dict[str, Any]  # runtime.run_config.LiveSettings' fields
    key_env_vars: list[str]  # the key and secret variables of the mode (none in sandbox)


def live_command(args: dict[str, Any]) -> int:
    """run_live.py on NautilusTrader 2.0 (``args``: its parsed arguments)."""
    if args["command"] != "run":
        return _on_1231(args)
    with tempfile.TemporaryDirectory(prefix="resolve-") as work:
        job = LiveJob(**in_other_engine("resolve_live", args, Path(work)))
    run_live_v2(job)
    return 0


def _on_1231(args: dict[str, Any]) -> int:
    """``kill`` / ``resume`` by the 1.231 venv's run_live.py (they touch only the kill switch
    and risk state files); its output and exit status are this command's."""
    python = VENVS[1] / "bin" / "python"
    if not python.is_file():
        raise LiveV2Error(
            f"`run_live.py {args['command']}` runs in the 1.231 venv {VENVS[1]}, which is not set "
            "up; run `NAUTILUS=2 make setup` (it makes both)"
        )
    argv = [args["command"]]
    for option in ("config", "mode"):
        if args[option] is not None:
            argv += [f"--{option}", args[option]]
    argv += [MAINNET_FLAG] * bool(args["allow_mainnet"]) + ["--debug"] * bool(args["debug"])
    return subprocess.run([str(python), str(ROOT / "run_live.py"), *argv]).returncode


def run_live_v2(job: LiveJob) -> None:
    """Trade until SIGINT/SIGTERM, then stop cleanly; SIGUSR1 arms the kill switch.

    Raises :class:`LiveV2Error` (one line) when something prevents trading."""
    if job.mode != "sandbox" and job.strategy["reconcile_interval_secs"] > 0:
        print(
            "warning: the venue reconciler (reconcile_interval_secs) is not bound on "
            "NautilusTrader 2.0: the strategy does not compare its books with Bybit's",
            file=sys.stderr,
        )
    node, strategy = build_node_v2(job, *venue_fees(job))
    run_node(node, strategy, job)


def run_node(node: LiveNode, strategy: ScoreMatchingStrategyV2, job: LiveJob) -> None:
    """Run ``node`` until SIGINT/SIGTERM (its stop: the strategy cancels and closes, the node
    waits ``timeout_post_stop`` for the fills, then disconnects); SIGUSR1 arms the kill
    switch. A node that cannot connect ends with a :class:`LiveV2Error`."""
    handle = node.handle()  # the node itself may only be touched from this thread
    kill_path = job.strategy["kill_switch_path"]

    def request_stop(signum: int, _frame: object) -> None:
        print(f"{signal.Signals(signum).name} received: stopping", file=sys.stderr, flush=True)
        handle.stop()

    def on_kill_signal(_signum: int, _frame: object) -> None:
        strategy.request_kill()  # halts and flattens even if the file cannot be written
        try:
            what = f"kill switch armed at {arm_kill_switch(kill_path)}"
        except KillSwitchError as error:
            what = f"halting and flattening now, but {error}"
        print(f"SIGUSR1 received: {what}", file=sys.stderr, flush=True)

    handlers = {
        signal.SIGINT: request_stop,
        signal.SIGTERM: request_stop,
        signal.SIGUSR1: on_kill_signal,
    }
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    try:
        node.run()
    except RuntimeError as error:  # 2.0 raises RuntimeError("data-connect timeout")
        failure = start_failure(str(error), job)
        if failure is None:
            raise
        raise LiveV2Error(failure) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        node.dispose()
    if strategy.decider is None:
        raise LiveV2Error("the strategy did not start; the log above says why")


def start_failure(reason: str, job: LiveJob) -> str | None:
    """What to do when a client did not connect (``reason``: 2.0's error); None for other
    errors (a bug: they keep their traceback)."""
    seconds = job.live["timeout_connection"]
    if reason.startswith("data-connect"):
        return (
            f"the Bybit data client did not connect within {seconds:g} s ({reason}); check the "
            "network, a proxy, or live.base_url_http / base_url_ws_public"
        )
    if reason.startswith("exec-connect"):
        return (
            f"the {job.mode} execution client did not connect within {seconds:g} s ({reason}); "
            "check the API key permissions, the network and live.base_url_http / "
            "base_url_ws_private / base_url_ws_trade"
        )
    return None


def venue_fees(job: LiveJob) -> tuple[float, float]:
    """The taker and maker fees the strategy's cost rules use (the execution style picks
    one): the sandbox's from the ``live`` section; otherwise the account's, read with one
    signed request that also checks the key."""
    if job.mode == "sandbox":
        taker, maker = job.live["sandbox_taker_fee"], job.live["sandbox_maker_fee"]
        if taker is None or maker is None:
            raise LiveV2Error(
                "the sandbox on NautilusTrader 2.0 needs live.sandbox_maker_fee and "
                "live.sandbox_taker_fee (2.0 instruments carry no fees); set both, or run on 1.231"
            )
        return float(taker), float(maker)
    return asyncio.run(_check_key_and_read_fees(job))


async def _check_key_and_read_fees(job: LiveJob) -> tuple[float, float]:
    """``/v5/user/query-api`` (the key works and may trade), then the account's taker and
    maker fees of the strategy's instrument (``/v5/account/fee-rate``)."""
    environment = ENVIRONMENTS[job.mode]
    client = BybitHttpClient(
        api_key=None,  # the client reads the environment variables itself
        api_secret=None,
        base_url=job.live["base_url_http"],
        demo=environment == BybitEnvironment.DEMO,
        testnet=environment == BybitEnvironment.TESTNET,
        max_retries=1,
    )
    key_var, secret_var = job.key_env_vars
    symbol = InstrumentId.from_str(job.strategy["instrument_id"]).symbol.value.split("-")[0]
    try:
        details = await client.get_account_details()
        if details.read_only:
            raise LiveV2Error(f"the key in {key_var} is read-only; trading needs order permissions")
        rates = await client.request_fee_rates(BybitProductType.LINEAR, symbol=symbol)
    except ValueError as error:  # the client raises ValueError("Bybit error <code>: <msg>")
        raise LiveV2Error(
            f"checking the key in {key_var}/{secret_var} with Bybit {job.mode} at "
            f"{client.base_url} failed: {one_line(error)}"
        ) from None
    if not rates:
        raise LiveV2Error(f"Bybit {job.mode} at {client.base_url} has no fee rate for {symbol}")
    return float(rates[0].taker_fee_rate), float(rates[0].maker_fee_rate)


def build_node_v2(
    job: LiveJob, fee: float, maker_fee: float | None = None
) -> tuple[LiveNode, ScoreMatchingStrategyV2]:
    """The 2.0 LiveNode: one Bybit data client, one execution client (Bybit's, or the sandbox's
    paper fills), reconciliation on; the strategy added to it."""
    live, mode = job.live, job.mode
    sandbox = mode == "sandbox"
    builder = (
        LiveNode.builder(
            "SCOREMATCH",
            TraderId(live["trader_id"]),
            Environment.SANDBOX if sandbox else Environment.LIVE,
        )
        .with_logging(_logger_config(live))
        .with_timeout_connection(max(1, round(live["timeout_connection"])))
        # the strategy closes its position during this wait (at least 1 s)
        .with_delay_post_stop_secs(max(1, math.ceil(live["timeout_post_stop"])))
        .with_reconciliation(not sandbox)
        .add_data_client(None, BybitDataClientFactory(), _data_client_config(live, mode))
    )
    if sandbox:
        builder = builder.add_simulated_exec_client(
            None, SandboxExecutionClientFactory(), _sandbox_config(live)
        )
    else:
        builder = builder.add_exec_client(
            None, BybitExecutionClientFactory(), _exec_client_config(live, mode)
        )
    node = builder.build()
    config = strategy_config(
        {
            **job.strategy,
            "external_order_claims": tuple(job.strategy["external_order_claims"]),
            "reread_balance_every_bar": True,
            "close_fills_after_stop": True,
        },
        fee=fee,
        maker_fee=maker_fee,
    )
    strategy = ScoreMatchingStrategyV2(config)
    node.add_strategy(strategy)
    return node, strategy


def _logger_config(live: dict[str, Any]) -> LoggerConfig:
    level = getattr(LogLevel, live["log_level"].upper())
    directory = live["log_directory"]
    return LoggerConfig(
        stdout_level=level,
        fileout_level=level if directory else None,
        file_config=FileWriterConfig(directory=directory) if directory else None,
        is_colored=False,
    )


def _ws_public_url(live: dict[str, Any]) -> str | None:
    """``live.base_url_ws_public`` is a prefix (1.231's meaning); 2.0 takes the whole URL."""
    base = live["base_url_ws_public"]
    return None if base is None else f"{base.rstrip('/')}/linear"


def _data_client_config(live: dict[str, Any], mode: str) -> BybitDataClientConfig:
    return BybitDataClientConfig(
        product_types=PRODUCT_TYPES,
        environment=ENVIRONMENTS[mode],
        base_url_http=live["base_url_http"],
        base_url_ws_public=_ws_public_url(live),
    )


def _exec_client_config(live: dict[str, Any], mode: str) -> BybitExecutionClientConfig:
    return BybitExecutionClientConfig(
        product_types=PRODUCT_TYPES,
        environment=ENVIRONMENTS[mode],
        base_url_http=live["base_url_http"],
        base_url_ws_private=live["base_url_ws_private"],
        base_url_ws_trade=live["base_url_ws_trade"],
    )


def _sandbox_config(live: dict[str, Any]) -> SandboxExecutionClientConfig:
    return SandboxExecutionClientConfig(
        venue=Venue(VENUE),
        starting_balances=[Money(live["starting_balance"], Currency.from_str(SANDBOX_CURRENCY))],
        oms_type=OmsType.NETTING,
        account_type=AccountType.MARGIN,
        default_leverage=Decimal(str(live["venue_leverage"])),
        bar_execution=False,  # fill on the live quotes, not on bar prices
        fee_model=MakerTakerFeeModel(
            Decimal(str(live["sandbox_maker_fee"])), Decimal(str(live["sandbox_taker_fee"]))
        ),
    )
