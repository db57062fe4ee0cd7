"""Run the emulator standalone: ``python -m tests.bybit_emulator --port 8765``.

Prints the URLs and test credentials, then serves until interrupted. With ``--advance-every S``
a bar is random-walked and pushed every ``S`` seconds.
"""

from __future__ import annotations

import argparse
import signal
import threading
from decimal import Decimal

from tests.bybit_emulator.server import EmulatorServer
from tests.bybit_emulator.state import EmulatorConfig


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bybit_emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--history-bars", type=int, default=1500)
    parser.add_argument("--interval", default="1", help="base kline interval (Bybit code)")
    parser.add_argument("--balance", default="10000", help="starting USDT wallet balance")
    parser.add_argument("--slippage-ticks", type=int, default=0)
    parser.add_argument("--advance-every", type=float, default=0.0, metavar="SECONDS")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    config = EmulatorConfig(
        base_interval=args.interval,
        history_bars=args.history_bars,
        seed=args.seed,
        starting_balance=Decimal(args.balance),
        slippage_ticks=args.slippage_ticks,
    )
    server = EmulatorServer(config, host=args.host, port=args.port).start()
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"http        {server.base_url_http}")
    print(f"ws public   {server.ws_public_url}")
    print(f"ws private  {server.ws_private_url}")
    print(f"ws trade    {server.ws_trade_url}")
    print(f"api key     {config.api_key}")
    print(f"api secret  {config.api_secret}", flush=True)
    try:
        while not stop.wait(args.advance_every or 3600.0):
            if args.advance_every:
                server.advance(1)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
