"""Point NautilusTrader's Bybit clients at the emulator (or any Bybit-compatible endpoint).

Why a data-client factory is needed (nautilus_trader 1.231): ``BybitDataClient.__init__``
creates its public websocket clients with ``BybitWebSocketClient.new_public(...,
url=config.base_url_http)``, and the Rust client uses that ``url`` verbatim as the websocket
address (no product path is appended). With ``base_url_http=None`` it connects to
``wss://stream.bybit.com/v5/public/{product}``; with ``base_url_http="http://host:port"`` the
connect fails after five attempts (~8 s): "invalid URL: expected ws:// or wss:// scheme, was
http". So ``BybitDataClientConfig`` alone cannot point market data at another host.
``EmulatorBybitLiveDataClientFactory`` builds the stock ``BybitDataClient`` and replaces its
public websocket clients with ones on ``{base_url_ws_public}/{product}``.

The execution client needs no factory: ``BybitExecClientConfig`` has ``base_url_http``,
``base_url_ws_private`` and ``base_url_ws_trade``, and the stock
``BybitLiveExecClientFactory`` honours all three.
"""

from __future__ import annotations

import asyncio
from typing import Any

from nautilus_trader.adapters.bybit.config import BybitDataClientConfig
from nautilus_trader.adapters.bybit.config import BybitExecClientConfig
from nautilus_trader.adapters.bybit.config import _resolve_environment
from nautilus_trader.adapters.bybit.data import BybitDataClient
from nautilus_trader.adapters.bybit.factories import BybitLiveDataClientFactory
from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import LiveClock
from nautilus_trader.common.component import MessageBus
from nautilus_trader.config import InstrumentProviderConfig
from nautilus_trader.core import nautilus_pyo3


class EmulatorBybitDataClientConfig(BybitDataClientConfig, frozen=True):
    """``BybitDataClientConfig`` plus the public websocket base.

    Parameters
    ----------
    base_url_ws_public : str, optional
        Public stream prefix such as ``ws://127.0.0.1:PORT/v5/public``; ``/{product}``
        (``linear``, ``spot``, ``inverse``, ``option``) is appended per product type, as
        Bybit's own URLs are built. ``None`` keeps the stock behaviour.

    """

    base_url_ws_public: str | None = None


def public_ws_url(base: str, product_type: nautilus_pyo3.BybitProductType) -> str:
    """``{base}/{product}`` for a Bybit product type."""
    return f"{base.rstrip('/')}/{product_type.name.lower()}"


class EmulatorBybitLiveDataClientFactory(BybitLiveDataClientFactory):
    """Stock Bybit data client whose public websockets use ``config.base_url_ws_public``."""

    @staticmethod
    def create(  # type: ignore[override]
        loop: asyncio.AbstractEventLoop,
        name: str,
        config: BybitDataClientConfig,
        msgbus: MessageBus,
        cache: Cache,
        clock: LiveClock,
    ) -> BybitDataClient:
        client = BybitLiveDataClientFactory.create(loop, name, config, msgbus, cache, clock)
        base = getattr(config, "base_url_ws_public", None)
        if base:
            environment = _resolve_environment(config.environment)
            for product_type in list(client._ws_clients):
                ws_client = nautilus_pyo3.BybitWebSocketClient.new_public(
                    product_type=product_type,
                    environment=environment,
                    url=public_ws_url(base, product_type),
                    proxy_url=config.proxy_url,
                )
                ws_client.set_bars_timestamp_on_close(config.bars_timestamp_on_close)
                client._ws_clients[product_type] = ws_client
        return client


def emulator_data_config(server: Any, **kwargs: Any) -> EmulatorBybitDataClientConfig:
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
    return EmulatorBybitDataClientConfig(**defaults)


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
