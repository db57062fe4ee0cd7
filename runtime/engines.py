"""Run one backtest job on the installed NautilusTrader (1.231 or 2.0) and summarise it, so that
the two engines' bindings can be compared (tests/test_engine_parity.py, benchmarks/engines.py).

A job is :class:`runtime.backtest_v2.BacktestJob` as JSON: every strategy and venue setting
explicit, so both engines run the same thing. :func:`job_from_run` makes one from a 1.231
RunConfig (the loader and its defaults are 1.231-only). The other engine runs in its own venv:
``OTHER_PYTHON -m runtime.engines JOB.json OUT.json``.

Importable on either engine: the engine-specific modules are imported inside the functions.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from cli_errors import UserError
from cli_errors import run_cli
from output_paths import write_atomically

if TYPE_CHECKING:
    import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
JOB_FIELDS = ("catalog", "start", "end")
VENVS = {1: ROOT / ".venv", 2: ROOT / ".venv-v2"}  # the default and NAUTILUS=2 venvs


class OtherEngineError(UserError):
    """The other engine's venv is missing, or refused the request (its message)."""


def engine_major() -> int:
    """The installed NautilusTrader's major version (1 or 2)."""
    import nautilus_trader

    return int(nautilus_trader.__version__.split(".")[0])


def other_python() -> Path | None:
    """The python of the other engine's venv, or None when that venv is not set up."""
    python = VENVS[3 - engine_major()] / "bin" / "python"
    return python if python.is_file() and os.access(python, os.X_OK) else None


def job_from_run(run: Any) -> dict[str, Any]:
    """A job (plain values) from a 1.231 RunConfig, its backtest window made explicit."""
    from runtime.backtest import backtest_retrain_fields
    from runtime.backtest import backtest_window
    from strategies.model_loading import load_model_for
    from strategies.score_matching import STRATEGY_RULES

    start, end = backtest_window(run, load_model_for(run.strategy))
    strategy = {name: _plain(getattr(run.strategy, name)) for name in STRATEGY_RULES}
    strategy.update(backtest_retrain_fields(run))  # the versions go into the report directory
    return {
        "catalog": str(run.backtest.catalog),
        "bar_type": str(run.strategy.bar_type),
        "strategy": strategy,
        "backtest": {
            k: _plain(v)
            for k, v in dataclasses.asdict(run.backtest).items()
            if k not in JOB_FIELDS  # the job's own catalog and window
        },
        "start": None if start is None else start.isoformat(),
        "end": None if end is None else end.isoformat(),
    }


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Run ``job`` on the installed engine; its orders, final equity and speed."""
    if engine_major() >= 2:
        return _run_v2(job)
    return _run_v1(job)


def _run_v1(job: dict[str, Any]) -> dict[str, Any]:
    from runtime.backtest import run_backtest
    from runtime.run_config import load_run_config

    run = load_run_config(**{k: v for k, v in job["strategy"].items() if v is not None})
    backtest = {**job["backtest"], **{name: job[name] for name in JOB_FIELDS}}
    run = dataclasses.replace(run, backtest=dataclasses.replace(run.backtest, **backtest))
    outcome = run_backtest(run)
    engine = outcome.engine
    try:
        instrument = outcome.strategy.instrument
        account = engine.portfolio.account(instrument.id.venue)
        return _summary(
            engine.cache.orders(),
            account.balance_total(instrument.settlement_currency).as_double(),
            outcome.strategy.recorder.frame()["equity"],
            float(job["backtest"]["starting_balance"]),
            outcome.bars,
            outcome.wall_seconds,
            outcome.strategy.maker_stats,
            None if outcome.funding is None else outcome.funding.funding_paid,
        )
    finally:
        engine.dispose()


def _run_v2(job: dict[str, Any]) -> dict[str, Any]:
    from runtime.backtest_v2 import BacktestJob
    from runtime.backtest_v2 import funding_settlements_v2
    from runtime.backtest_v2 import run_backtest_v2

    outcome = run_backtest_v2(BacktestJob(**job))
    engine = outcome.engine
    try:
        instrument = outcome.instrument
        account = engine.cache.account_for_venue(instrument.id.venue)
        return _summary(
            engine.cache.orders(),
            account.balance_total(instrument.settlement_currency).as_double(),
            outcome.strategy.recorder.frame()["equity"],
            float(job["backtest"]["starting_balance"]),
            outcome.bars,
            outcome.wall_seconds,
            outcome.strategy.maker_stats,
            sum(funding_settlements_v2(engine, instrument)) if outcome.funding_times else None,
        )
    finally:
        engine.dispose()


def _summary(
    orders: list,
    equity: float,
    equity_seen: pd.Series,
    starting_balance: float,
    bars: Any,
    seconds: float,
    maker_stats: dict[str, int],
    funding_paid: float | None,
) -> dict[str, Any]:
    """The orders by bar, the final equity, the equity each decision saw and the report's
    statistics of it (:func:`runtime.report_figures.returns_statistics`), the fills and fees
    by liquidity side, the strategy's maker order counts and the funding paid (None: not
    charged, the catalog holds no rates for the window)."""
    from runtime.report_figures import fill_liquidity
    from runtime.report_figures import returns_statistics

    rows = sorted(
        (
            {
                "ts": int(order.ts_init),
                "side": order.side.name,
                "quantity": float(order.quantity),
                "filled": float(order.filled_qty),
                "avg_px": None if float(order.filled_qty) == 0.0 else float(order.avg_px),
                "status": order.status.name,
            }
            for order in orders
        ),
        key=lambda row: row["ts"],
    )
    import nautilus_trader

    return {
        "engine": nautilus_trader.__version__,
        "orders": rows,
        "final_equity": equity,
        "bars_decided": len(equity_seen),
        "equity_seen": equity_seen.tolist(),
        "statistics": returns_statistics(equity_seen, starting_balance),
        "bars": len(bars),
        "last_bar_ts": int(bars.index[-1].value),
        "wall_seconds": seconds,
        **fill_liquidity(orders),
        "maker_stats": dict(maker_stats),
        "funding_paid": funding_paid,
    }


def _plain(value: Any) -> Any:
    """A config value as JSON: plain values and mappings (``retrain``) as they are, others
    (instrument ids, bar types) as text."""
    plain = value is None or isinstance(value, bool | int | float | str | dict)
    return value if plain else str(value)


def resolve(args: dict[str, Any]) -> dict[str, Any]:
    """On 1.231: run_backtest.py's arguments (``vars(args)``) as a job plus its report
    directory, inputs checked and the embedded default made as run_backtest.py does."""
    import argparse

    from run_backtest import prepared_run

    run = prepared_run(argparse.Namespace(**args))
    return {"job": job_from_run(run), "report_dir": str(run.backtest.report_dir)}


def resolve_live(args: dict[str, Any]) -> dict[str, Any]:
    """On 1.231: run_live.py's arguments (``vars(args)``) as a live job for the 2.0 node
    (runtime.live_v2): the run configuration loaded, and the mode, the key variables, the
    model and the risk state file checked as 1.231's run_live.py checks them."""
    from runtime import live
    from runtime.run_config import load_run_config
    from runtime.run_config import with_retrain_overrides
    from strategies.score_matching import STRATEGY_RULES

    run = load_run_config(args["config"])
    run = with_retrain_overrides(
        run, every=args.get("retrain_every"), window=args.get("retrain_window")
    )
    mode = args["mode"] or run.live.mode
    live.check_mode(mode, allow_mainnet=args["allow_mainnet"])
    live.check_keys(mode)
    live.check_inputs(run, mode)
    strategy = live.live_strategy_config(run, mode)
    fields = {name: _plain(getattr(strategy, name)) for name in STRATEGY_RULES}
    fields["strategy_id"] = live.strategy_id(run.strategy)
    fields["external_order_claims"] = [str(claim) for claim in strategy.external_order_claims]
    return {
        "mode": mode,
        "strategy": fields,
        "live": dataclasses.asdict(run.live),
        "key_env_vars": list(live.KEY_ENV_VARS.get(mode, ())),
    }


COMMANDS = {"run": run_job, "resolve": resolve, "resolve_live": resolve_live}


def main(argv: list[str] | None = None) -> int:
    """``python -m runtime.engines run|resolve|resolve_live IN.json OUT.json``; a UserError is
    one line ``error: ...`` on stderr and exit status 2 (cli_errors.run_cli)."""
    command, in_path, out_path = argv if argv is not None else sys.argv[1:]

    def execute() -> int:
        result = COMMANDS[command](json.loads(Path(in_path).read_text()))
        write_atomically(out_path, json.dumps(result))
        return 0

    return run_cli(execute, debug=False)


def in_other_engine(command: str, payload: dict[str, Any], work: Path) -> dict[str, Any]:
    """``command`` run on ``payload`` by the other engine's python; its one-line user error
    comes back as an :class:`OtherEngineError`."""
    python = other_python()
    if python is None:
        raise OtherEngineError(
            f"the other NautilusTrader venv {VENVS[3 - engine_major()]} is not set up; run "
            "`NAUTILUS=2 make setup` (it makes both)"
        )
    in_path, out_path = work / f"{command}-in.json", work / f"{command}-out.json"
    in_path.write_text(json.dumps(payload))
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    done = subprocess.run(
        [str(python), "-m", "runtime.engines", command, str(in_path), str(out_path)],
        cwd=Path.cwd(),  # the user's relative paths (config, catalog, report) mean the same
        env={**os.environ, "PYTHONPATH": path},
        stderr=subprocess.PIPE,  # its stdout (progress) is the user's
        text=True,
    )
    last = done.stderr.strip().splitlines()[-1:]
    if done.returncode == 2 and last and last[0].startswith("error: "):
        raise OtherEngineError(last[0].removeprefix("error: "))
    if done.returncode != 0:
        raise RuntimeError(f"{python} -m runtime.engines {command} failed:\n{done.stderr[-4000:]}")
    return json.loads(out_path.read_text())


if __name__ == "__main__":
    sys.exit(main())
