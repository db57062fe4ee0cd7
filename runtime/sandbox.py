"""Nautilus's sandbox (paper) execution client with maker/taker fees from the run config.

The stock ``SandboxExecutionClient`` charges the fees of the instrument the data client loaded.
Without API keys Nautilus's Bybit provider cannot read the account's fee rates and falls back
to a generic 0.1 %, so paper fills would cost about twice Bybit's base perpetual fee. This
client gives its simulated exchange copies of the venue's instruments with the configured
fees; the strategy and the portfolio keep seeing the venue's own definitions.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

from nautilus_trader.adapters.sandbox.config import SandboxExecutionClientConfig
from nautilus_trader.adapters.sandbox.execution import SandboxExecutionClient
from nautilus_trader.adapters.sandbox.factory import SandboxLiveExecClientFactory
from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import LiveClock
from nautilus_trader.common.component import MessageBus
from nautilus_trader.core.data import Data
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.portfolio import PortfolioFacade


class SandboxFeesConfig(SandboxExecutionClientConfig, frozen=True, kw_only=True):
    """
    ``SandboxExecutionClientConfig`` plus fee rates for paper fills.

    Parameters
    ----------
    maker_fee, taker_fee : Decimal, optional
        Fee rates (0.00055 = 0.055 %) charged on paper fills; ``None`` keeps the instrument's.

    """

    maker_fee: Decimal | None = None
    taker_fee: Decimal | None = None


def with_fees(
    instrument: Instrument, maker_fee: Decimal | None, taker_fee: Decimal | None
) -> Instrument:
    """A copy of ``instrument`` with the given fee rates (``None`` keeps a rate)."""
    if maker_fee is None and taker_fee is None:
        return instrument
    values = type(instrument).to_dict(instrument)
    if maker_fee is not None:
        values["maker_fee"] = str(maker_fee)
    if taker_fee is not None:
        values["taker_fee"] = str(taker_fee)
    return type(instrument).from_dict(values)


class SandboxFeesExecutionClient(SandboxExecutionClient):
    """A sandbox client whose simulated exchange charges the configured fees."""

    def __init__(self, *args: object, config: SandboxFeesConfig, **kwargs: object) -> None:
        super().__init__(*args, config=config, **kwargs)
        self._maker_fee = config.maker_fee
        self._taker_fee = config.taker_fee

    def connect(self) -> None:
        super().connect()
        for instrument in self.exchange.cache.instruments(venue=self.venue):
            self.exchange.update_instrument(self._priced(instrument))

    def on_data(self, data: Data) -> None:
        if isinstance(data, Instrument):
            data = self._priced(data)
        super().on_data(data)

    def _priced(self, instrument: Instrument) -> Instrument:
        return with_fees(instrument, self._maker_fee, self._taker_fee)


class SandboxFeesExecClientFactory(SandboxLiveExecClientFactory):
    """Builds :class:`SandboxFeesExecutionClient` from a :class:`SandboxFeesConfig`."""

    @staticmethod
    def create(  # type: ignore[override]
        loop: asyncio.AbstractEventLoop,
        name: str,
        config: SandboxFeesConfig,
        portfolio: PortfolioFacade,
        msgbus: MessageBus,
        cache: Cache,
        clock: LiveClock,
    ) -> SandboxFeesExecutionClient:
        return SandboxFeesExecutionClient(
            loop=loop,
            portfolio=portfolio,
            msgbus=msgbus,
            cache=cache,
            clock=clock,
            config=config,
        )


# TradingNodeBuilder (nautilus_trader 1.231) hands the portfolio only to a factory whose
# ``__name__`` is "SandboxLiveExecClientFactory"; answer to that name.
SandboxFeesExecClientFactory.__name__ = SandboxLiveExecClientFactory.__name__
