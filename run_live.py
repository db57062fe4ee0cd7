"""Trade ScoreMatchingStrategy live on Bybit with the run configuration run_backtest.py reads.

    python run_live.py --mode sandbox --config configs/default.yaml   # paper fills, no keys
    python run_live.py --mode demo --config configs/default.yaml      # BYBIT_DEMO_API_KEY/SECRET
    python run_live.py --mode testnet --config configs/default.yaml   # BYBIT_TESTNET_API_KEY/SECRET
    python run_live.py kill --config configs/default.yaml     # flatten and halt the running bot
    python run_live.py resume --mode demo --config configs/default.yaml   # clear kill and halt

Modes: sandbox trades on paper against Bybit's live market data; demo and testnet trade on
Bybit's demo / testnet accounts. Mainnet (real money) is refused unless you add
--i-understand-this-trades-real-money (keys BYBIT_API_KEY/SECRET). Keys are read from the
environment only. --mode overrides live.mode of the config.

Ctrl-C (SIGINT) or SIGTERM stops cleanly: orders are cancelled, positions closed (unless the
strategy sets close_positions_on_stop: false), and the exit status is 0. `kill` (or SIGUSR1 to
the running process) creates live.kill_switch_path: the strategy cancels its orders, closes its
position and halts within live.kill_switch_poll_secs, and stays halted across restarts until
`resume`.
"""

from __future__ import annotations

import argparse
import sys

MAINNET_FLAG = "--i-understand-this-trades-real-money"  # the same as strategies.live's


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from strategies import live
    from strategies.run_config import load_run_config

    try:
        run = load_run_config(args.config)
        mode = args.mode or run.live.mode
        if args.command == "kill":
            path = live.trigger_kill_switch(live.kill_switch_path(run))
            print(f"kill switch armed: {path}")
            print("the running strategy cancels, flattens and halts; `resume` to trade again")
            return 0
        if args.command == "resume":
            live.check_mode(mode, allow_mainnet=True)
            changes = live.resume_trading(run, mode)
            print("\n".join(changes) or "nothing to resume: no kill switch file, not halted")
            return 0
        live.run_live(run, mode, allow_mainnet=args.allow_mainnet)
    except (live.LiveError, ValueError) as error:  # ValueError: ConfigError, StateFileError
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C before the node took over the signals
        return 130
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "command",
        nargs="?",
        default="run",
        choices=("run", "kill", "resume"),
        help="run (default): trade; kill: arm the kill switch; resume: clear kill switch and halt",
    )
    parser.add_argument("--config", help="run configuration YAML (the file run_backtest.py reads)")
    parser.add_argument("--mode", help="sandbox, demo or testnet (overrides live.mode)")
    parser.add_argument(
        MAINNET_FLAG,
        dest="allow_mainnet",
        action="store_true",
        help="allow --mode mainnet: trades REAL MONEY with BYBIT_API_KEY/BYBIT_API_SECRET",
    )
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
