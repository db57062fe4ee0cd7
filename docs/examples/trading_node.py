"""Plug ScoreMatchingStrategy into an existing TradingNode configuration by import path only.

A user's TradingNodeConfig with Bybit's data and execution clients (the demo account here)
gets the strategy as an ImportableStrategyConfig; nothing imports the strategy class, exactly
as with a YAML/JSON node configuration. Keys come from BYBIT_DEMO_API_KEY/BYBIT_DEMO_API_SECRET.

    BYBIT_DEMO_API_KEY=... BYBIT_DEMO_API_SECRET=... \\
        python docs/examples/trading_node.py --model var/models/default

What the strategy needs from a live node, besides its own fields:
- ``external_order_claims``: the node's reconciliation hands the venue's open position and
  orders for the instrument to the strategy after a restart (else they stay EXTERNAL);
- ``state_path``: the risk state (high-water mark, halt, daily loss) survives restarts;
- ``kill_switch_path`` + ``kill_switch_poll_secs``: ``touch var/KILL`` flattens and halts;
- ``manage_stop``: on stop, Nautilus cancels, closes and waits for fills still in flight;
- ``subscribe_quotes: true`` if the execution client is Nautilus's sandbox (it fills on quotes).
The execution style is a strategy field like any other: ``execution: "maker"`` (with
``maker_timeout_bars``) sends post-only limits through Bybit's adapter, costed at the maker fee.
Funding needs nothing here: the venue settles it on the account.
Without endpoint overrides, a plain ``BybitDataClientConfig`` with the stock
``BybitLiveDataClientFactory`` works the same; the overrides here let the tests use a loopback
emulator (and users reach Bybit through a proxy).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from nautilus_trader.adapters.bybit.config import BybitExecClientConfig
from nautilus_trader.adapters.bybit.factories import BybitLiveExecClientFactory
from nautilus_trader.config import ImportableStrategyConfig
from nautilus_trader.config import InstrumentProviderConfig
from nautilus_trader.config import LiveExecEngineConfig
from nautilus_trader.config import LoggingConfig
from nautilus_trader.config import TradingNodeConfig
from nautilus_trader.core.nautilus_pyo3 import BybitEnvironment
from nautilus_trader.core.nautilus_pyo3 import BybitProductType
from nautilus_trader.live.node import TradingNode

from runtime.bybit_clients import BybitDataClientEndpointsConfig
from runtime.bybit_clients import BybitEndpointsDataClientFactory

INSTRUMENT_ID = "BTCUSDT-LINEAR.BYBIT"
BAR_TYPE = f"{INSTRUMENT_ID}-1-HOUR-LAST-EXTERNAL"


def build_node_config(
    model_path: str,
    base_url_http: str | None = None,
    base_url_ws_public: str | None = None,
    base_url_ws_private: str | None = None,
    base_url_ws_trade: str | None = None,
    **strategy_fields: Any,
) -> TradingNodeConfig:
    """A user's TradingNodeConfig with the strategy added as an ImportableStrategyConfig."""
    strategy = ImportableStrategyConfig(
        strategy_path="strategies.score_matching:ScoreMatchingStrategy",
        config_path="strategies.score_matching:ScoreMatchingConfig",
        config={
            "instrument_id": INSTRUMENT_ID,
            "bar_type": BAR_TYPE,
            "model_path": model_path,
            "external_order_claims": [INSTRUMENT_ID],
            "state_path": "var/live-state/example.risk.json",
            "kill_switch_path": "var/KILL",
            "kill_switch_poll_secs": 1.0,
            "manage_stop": True,
            **strategy_fields,
        },
    )
    products = (BybitProductType.LINEAR,)
    return TradingNodeConfig(
        trader_id="EXAMPLE-001",
        logging=LoggingConfig(log_level="INFO"),
        data_clients={
            "BYBIT": BybitDataClientEndpointsConfig(
                product_types=products,
                environment=BybitEnvironment.DEMO,
                base_url_http=base_url_http,
                base_url_ws_public=base_url_ws_public,
                instrument_provider=InstrumentProviderConfig(load_all=True),
            )
        },
        exec_clients={
            "BYBIT": BybitExecClientConfig(
                product_types=products,
                environment=BybitEnvironment.DEMO,
                base_url_http=base_url_http,
                base_url_ws_private=base_url_ws_private,
                base_url_ws_trade=base_url_ws_trade,
                instrument_provider=InstrumentProviderConfig(load_all=True),
            )
        },
        exec_engine=LiveExecEngineConfig(reconciliation=True),
        strategies=[strategy],
    )


def build_node(
    config: TradingNodeConfig, loop: asyncio.AbstractEventLoop | None = None
) -> TradingNode:
    """The node with Bybit's client factories registered, built."""
    node = TradingNode(config=config, loop=loop)
    node.add_data_client_factory("BYBIT", BybitEndpointsDataClientFactory)
    node.add_exec_client_factory("BYBIT", BybitLiveExecClientFactory)
    node.build()
    return node


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="var/models/default")
    args = parser.parse_args()
    node = build_node(build_node_config(args.model))
    try:
        node.run()
    finally:
        node.dispose()


if __name__ == "__main__":
    main()
