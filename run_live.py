"""Trade ScoreMatchingStrategy live on Bybit with the run configuration run_backtest.py reads.

    python run_live.py --mode sandbox --config configs/default.yaml   # paper fills, no keys
    python run_live.py --mode demo --config configs/default.yaml      # BYBIT_DEMO_API_KEY/SECRET
    python run_live.py --mode testnet --config configs/default.yaml   # BYBIT_TESTNET_API_KEY/SECRET
    python run_live.py kill --config configs/default.yaml     # flatten and halt the running bot
    python run_live.py resume --mode demo --config configs/default.yaml   # clear kill and halt

Modes: sandbox trades on paper against Bybit's live market data; demo and testnet trade on
Bybit's demo / testnet accounts. Mainnet (real money) is refused unless you add
--i-understand-this-trades-real-money (keys BYBIT_API_KEY/SECRET). Keys are read from the
environment only. --mode overrides live.mode of the config. The config's backtest.execution
applies here too: `maker` sends post-only limit orders (cancelled after
backtest.maker_timeout_bars bars if unfilled; Bybit rejects one that would cross).

Ctrl-C (SIGINT) or SIGTERM stops cleanly: orders are cancelled, positions closed (unless the
strategy sets close_positions_on_stop: false), and the exit status is 0. `kill` (or SIGUSR1 to
the running process) creates live.kill_switch_path: the strategy cancels its orders, closes its
position and halts within live.kill_switch_poll_secs, and stays halted across restarts until
`resume`.
"""

from __future__ import annotations

import argparse

from cli_errors import add_debug_flag
from cli_errors import add_retrain_flags
from cli_errors import run_cli

MAINNET_FLAG = "--i-understand-this-trades-real-money"  # the same as runtime.live's


def main(argv: list[str] | None = None) -> int:
    """Run the command line; 0 on success, 2 with one ``error:`` line when it cannot."""
    args = _parser().parse_args(argv)
    return run_cli(lambda: _run(args), debug=args.debug)


def _run(args: argparse.Namespace) -> int | None:
    import nautilus_trader

    if int(nautilus_trader.__version__.split(".")[0]) >= 2:  # the NautilusTrader 2.0 binding
        from runtime.live_v2 import live_command

        return live_command(vars(args))
    from runtime import live
    from runtime.run_config import load_run_config
    from runtime.run_config import with_retrain_overrides
    from strategies.kill_switch import arm_kill_switch

    run = load_run_config(args.config)
    run = with_retrain_overrides(run, every=args.retrain_every, window=args.retrain_window)
    mode = args.mode or run.live.mode
    if args.command == "kill":
        path = arm_kill_switch(live.kill_switch_path(run))
        print(f"kill switch armed: {path}")
        print("the running strategy cancels, flattens and halts; `resume` to trade again")
    elif args.command == "resume":
        live.check_mode(mode, allow_mainnet=True)
        changes = live.resume_trading(run, mode)
        print("\n".join(changes) or "nothing to resume: no kill switch file, not halted")
    else:
        live.run_live(run, mode, allow_mainnet=args.allow_mainnet)


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
    add_retrain_flags(parser)
    parser.add_argument(
        MAINNET_FLAG,
        dest="allow_mainnet",
        action="store_true",
        help="allow --mode mainnet: trades REAL MONEY with BYBIT_API_KEY/BYBIT_API_SECRET",
    )
    add_debug_flag(parser)
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
