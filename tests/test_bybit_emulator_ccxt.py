"""ccxt's real ``bybit`` class pointed at the emulator."""

from __future__ import annotations

import asyncio

import ccxt.async_support as ccxt_async
import pytest

from tests.bybit_emulator import EmulatorConfig
from tests.bybit_emulator import EmulatorServer

pytestmark = pytest.mark.timeout(60)

SYMBOL = "BTC/USDT:USDT"


@pytest.fixture
def emu():
    server = EmulatorServer(EmulatorConfig(history_bars=2500)).start()
    yield server
    server.stop()


def make_exchange(emu: EmulatorServer, **extra) -> ccxt_async.bybit:
    exchange = ccxt_async.bybit(
        {"options": {"fetchMarkets": {"types": ["linear"]}}, "enableRateLimit": False, **extra}
    )
    exchange.urls["api"] = {k: emu.base_url_http for k in exchange.urls["api"]}
    return exchange


def test_ccxt_load_markets_and_fetch_ohlcv_paging(emu):
    bars = emu.bars("BTCUSDT")
    first = bars[0].start

    async def scenario() -> None:
        exchange = make_exchange(emu)
        try:
            markets = await exchange.load_markets()
            assert sorted(markets) == ["BTC/USDT:USDT", "ETH/USDT:USDT"]
            market = markets[SYMBOL]
            assert market["linear"] and market["swap"] and market["settle"] == "USDT"
            assert market["precision"] == {"amount": 0.001, "price": 0.1}
            assert market["limits"]["amount"]["min"] == 0.001
            assert market["limits"]["cost"]["min"] == 5.0

            # forward paging with since/limit walks the whole history, the forming bar last
            candles: list[list] = []
            since = first
            while True:
                page = await exchange.fetch_ohlcv(SYMBOL, "1m", since=since, limit=1000)
                if not page:
                    break
                assert [c[0] for c in page] == sorted(c[0] for c in page)
                candles += page
                if len(page) < 1000:
                    break
                since = page[-1][0] + 60_000
            assert [c[0] for c in candles] == [b.start for b in bars]
            assert [c[4] for c in candles] == [float(b.close) for b in bars]

            # a mid-interval since is aligned up to the next bar; limit is respected
            page = await exchange.fetch_ohlcv(SYMBOL, "1m", since=first + 30_500, limit=3)
            assert [c[0] for c in page] == [first + 60_000, first + 120_000, first + 180_000]

            # an upper bound via params['until'] (Bybit's `end`)
            until = first + 99 * 60_000
            page = await exchange.fetch_ohlcv(
                SYMBOL, "1m", since=first, limit=1000, params={"until": until}
            )
            assert len(page) == 100 and page[-1][0] == until

            # ccxt's own deterministic pagination
            paged = await exchange.fetch_ohlcv(
                SYMBOL, "1m", since=first, limit=1500, params={"paginate": True}
            )
            assert [c[0] for c in paged] == [b.start for b in bars[:1500]]

            hourly = await exchange.fetch_ohlcv(SYMBOL, "1h", limit=5)
            assert all(c[0] % 3_600_000 == 0 for c in hourly) and len(hourly) == 5
        finally:
            await exchange.close()

    asyncio.run(scenario())
    assert emu.unknown_paths() == []


def test_ccxt_signed_calls(emu):
    async def scenario() -> None:
        exchange = make_exchange(
            emu, apiKey=emu.credentials.api_key, secret=emu.credentials.api_secret
        )
        try:
            await exchange.load_markets()
            balance = await exchange.fetch_balance()
            assert balance["USDT"]["total"] == 10000.0
            order = await exchange.create_order(SYMBOL, "market", "buy", 0.01)
            assert order["id"]
            positions = await exchange.fetch_positions([SYMBOL])
            assert positions[0]["contracts"] == 0.01 and positions[0]["side"] == "long"
        finally:
            await exchange.close()

        bad = make_exchange(emu, apiKey=emu.credentials.api_key, secret="wrong-secret")
        try:  # load_markets already signs a call (fetch_currencies) when keys are set
            with pytest.raises(ccxt_async.AuthenticationError, match="error sign"):
                await bad.fetch_balance()
        finally:
            await bad.close()

    asyncio.run(scenario())
    assert emu.unknown_paths() == []
    assert emu.order_submissions() == 1
