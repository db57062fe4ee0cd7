"""Point NautilusTrader's Bybit data client at any Bybit-compatible endpoint (proxy, emulator).

Why a factory is needed (nautilus_trader 1.231): ``BybitDataClient.__init__`` creates its public
websocket clients with ``BybitWebSocketClient.new_public(..., url=config.base_url_http)`` and the
Rust client uses that ``url`` verbatim as the websocket address. With ``base_url_http=None`` it
connects to Bybit's own stream for the environment; with ``base_url_http="http://host:port"``
the connect fails ("invalid URL: expected ws:// or wss:// scheme, was http"). So
``BybitDataClientConfig`` alone cannot move market data to another host.
:class:`BybitEndpointsDataClientFactory` builds the stock ``BybitDataClient`` and, when
``base_url_ws_public`` is set, replaces its public websocket clients with ones on
``{base_url_ws_public}/{product}`` (Bybit's own layout: ``.../v5/public/linear``).

The execution client needs no factory: ``BybitExecClientConfig`` has ``base_url_http``,
``base_url_ws_private`` and ``base_url_ws_trade`` and the stock factory honours all three.
"""

from __future__ import annotations

import asyncio

from nautilus_trader.adapters.bybit.config import BybitDataClientConfig
from nautilus_trader.adapters.bybit.config import _resolve_environment
from nautilus_trader.adapters.bybit.data import BybitDataClient
from nautilus_trader.adapters.bybit.factories import BybitLiveDataClientFactory
from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import LiveClock
from nautilus_trader.common.component import MessageBus
from nautilus_trader.core import nautilus_pyo3


class BybitDataClientEndpointsConfig(BybitDataClientConfig, frozen=True):
    """
    ``BybitDataClientConfig`` plus the public websocket base.

    Parameters
    ----------
    base_url_ws_public : str, optional
        Public stream prefix such as ``wss://proxy.example/v5/public``; ``/{product}``
        (``linear``, ``spot``, ``inverse``, ``option``) is appended per product type, as in
        Bybit's own URLs. ``None`` keeps the stock behaviour.

    """

    base_url_ws_public: str | None = None


def public_ws_url(base: str, product_type: nautilus_pyo3.BybitProductType) -> str:
    """``{base}/{product}`` for a Bybit product type."""
    return f"{base.rstrip('/')}/{product_type.name.lower()}"


class BybitEndpointsDataClientFactory(BybitLiveDataClientFactory):
    """The stock Bybit data client, its public websockets on ``config.base_url_ws_public``."""

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
            _replace_public_websockets(client, config, base)
        return client


def _replace_public_websockets(
    client: BybitDataClient, config: BybitDataClientConfig, base: str
) -> None:
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
