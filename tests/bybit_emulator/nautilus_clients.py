"""Point NautilusTrader's Bybit clients at the emulator.

The data client needs the product's factory,
:class:`runtime.bybit_clients.BybitEndpointsDataClientFactory` (nautilus_trader 1.231 derives
the public websocket URL from ``base_url_http``; that module's docstring explains why); the
execution client needs only the stock ``BybitExecClientConfig`` URLs.
"""

from __future__ import annotations

from typing import Any

from nautilus_trader.adapters.bybit.config import BybitExecClientConfig
from nautilus_trader.config import InstrumentProviderConfig
from nautilus_trader.core import nautilus_pyo3

from runtime.bybit_clients import BybitDataClientEndpointsConfig


def emulator_data_config(server: Any, **kwargs: Any) -> BybitDataClientEndpointsConfig:
    """Data client config for an ``EmulatorServer`` (LINEAR, the server's test keys)."""
    defaults: dict[str, Any] = {
        "api_key": server.config.api_key,
        "api_secret": server.config.api_secret,
        "product_types": (nautilus_pyo3.BybitProductType.LINEAR,),
        "base_url_http": server.base_url_http,
        "base_url_ws_public": server.ws_public_base,
        "instrument_provider": InstrumentProviderConfig(load_all=True),
        "max_retries": 1,
        "retry_delay_initial_ms": 100,
        "retry_delay_max_ms": 200,
    }
    defaults.update(kwargs)
    return BybitDataClientEndpointsConfig(**defaults)


def emulator_exec_config(server: Any, **kwargs: Any) -> BybitExecClientConfig:
    """Execution client config for an ``EmulatorServer`` (stock config, URLs only)."""
    defaults: dict[str, Any] = {
        "api_key": server.config.api_key,
        "api_secret": server.config.api_secret,
        "product_types": (nautilus_pyo3.BybitProductType.LINEAR,),
        "base_url_http": server.base_url_http,
        "base_url_ws_private": server.ws_private_url,
        "base_url_ws_trade": server.ws_trade_url,
        "instrument_provider": InstrumentProviderConfig(load_all=True),
        "max_retries": 1,
        "retry_delay_initial_ms": 100,
        "retry_delay_max_ms": 200,
    }
    defaults.update(kwargs)
    return BybitExecClientConfig(**defaults)
