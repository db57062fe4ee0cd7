"""A Bybit v5 API emulator on loopback (HTTP + websockets on one port) for tests.

Quick start::

    from tests.bybit_emulator import EmulatorServer

    with EmulatorServer() as emu:
        emu.base_url_http      # http://127.0.0.1:PORT
        emu.ws_public_url      # ws://127.0.0.1:PORT/v5/public/linear
        emu.advance(3)         # push three 1-minute bars faster than real time
"""

from tests.bybit_emulator.books import BybitError
from tests.bybit_emulator.instruments import BTCUSDT
from tests.bybit_emulator.instruments import ETHUSDT
from tests.bybit_emulator.instruments import InstrumentSpec
from tests.bybit_emulator.market import Kline
from tests.bybit_emulator.server import EmulatorServer
from tests.bybit_emulator.signing import TEST_API_KEY
from tests.bybit_emulator.signing import TEST_API_SECRET
from tests.bybit_emulator.signing import Credentials
from tests.bybit_emulator.state import EmulatorConfig

__all__ = [
    "BTCUSDT",
    "ETHUSDT",
    "TEST_API_KEY",
    "TEST_API_SECRET",
    "BybitError",
    "Credentials",
    "EmulatorConfig",
    "EmulatorServer",
    "InstrumentSpec",
    "Kline",
]
