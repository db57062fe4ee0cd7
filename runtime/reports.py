"""Backtest reports: summary.json, fills/positions CSV, diagnostics Parquet, plots, tearsheet.

Performance statistics are Nautilus's own (SharpeRatio, SortinoRatio, MaxDrawdown, WinRate)
applied to the mark-to-market equity the strategy recorded at every bar. Nautilus compounds the
per-bar returns within each UTC day and annualises with sqrt(period); crypto trades every day,
so period = 365. summary.json, equity.png and tearsheet.html all use these same returns and
state the same definitions (``DEFINITIONS``, :mod:`runtime.report_figures`: what the reports of
both engines share). The tearsheet is drawn by :mod:`runtime.tearsheet`, for both engines
(``tearsheet_html`` and ``DAYS_PER_YEAR`` are re-exported here).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from nautilus_trader.analysis import PortfolioAnalyzer
from nautilus_trader.analysis import WinRate

from output_paths import claim_output_dir
from output_paths import write_atomically
from runtime.backtest import BacktestOutcome
from runtime.backtest import overlaps_training
from runtime.report_figures import DAYS_PER_YEAR as DAYS_PER_YEAR
from runtime.report_figures import DEFINITIONS
from runtime.report_figures import REPORT_DIR_OPTION
from runtime.report_figures import buy_and_hold_equity
from runtime.report_figures import column_mean
from runtime.report_figures import cost_line
from runtime.report_figures import equity_png
from runtime.report_figures import fill_liquidity
from runtime.report_figures import finite
from runtime.report_figures import lifecycle_figures
from runtime.report_figures import returns_statistics
from runtime.report_figures import versions_line
from runtime.tearsheet import GENERAL_STATISTICS
from runtime.tearsheet import PNL_STATISTICS
from runtime.tearsheet import TearsheetRun
from runtime.tearsheet import backtest_tearsheet_html
from runtime.tearsheet import tearsheet_html as tearsheet_html


def summarise(outcome: BacktestOutcome) -> dict:
    """The figures of summary.json."""
    engine, strategy, run = outcome.engine, outcome.strategy, outcome.run
    diagnostics = strategy.recorder.frame() if strategy.recorder else pd.DataFrame()
    instrument = strategy.instrument
    venue = run.strategy.instrument_id.venue
    account = engine.portfolio.account(venue)
    currency = instrument.settlement_currency
    fills = engine.trader.generate_order_fills_report()
    positions = engine.trader.generate_positions_report()
    starting = run.backtest.starting_balance
    final_equity = account.balance_total(currency).as_double()
    equity = diagnostics["equity"] if len(diagnostics) else pd.Series(dtype=float)
    fees = sum(m.as_double() for m in account.commissions().values())
    blocked = diagnostics["blocked_by"].value_counts() if len(diagnostics) else pd.Series()
    realised = _realised_pnls(positions)
    summary = {
        "bar_type": str(run.strategy.bar_type),
        "signal_mode": run.strategy.signal_mode,
        "model_path": run.strategy.model_path,
        "first_bar": str(outcome.bars.index[0]),
        "last_bar": str(outcome.bars.index[-1]),
        "bars": len(outcome.bars),
        "decided_bars": len(diagnostics),
        "orders": len(engine.cache.orders()),
        "fills": len(fills),
        "starting_equity": starting,
        "final_equity": final_equity,
        **returns_statistics(equity, starting),
        "win_rate": finite(WinRate().calculate_from_realized_pnls(realised)) if realised else 0.0,
        "closed_trades": len(realised),
        "fees": fees,
        **fill_liquidity(engine.cache.orders()),
        **maker_orders(run.backtest.execution, strategy),
        **funding_figures(outcome),
        "taker_fee": float(instrument.taker_fee),
        "in_distribution_ratio": column_mean(diagnostics, "in_distribution"),
        "avg_confidence": column_mean(diagnostics, "confidence"),
        "filtered_by_density": int(blocked.get("DENSITY", 0)),
        "filtered_by_confidence": int(blocked.get("CONFIDENCE", 0)),
        "filtered_by_consistency": int(blocked.get("CONSISTENCY", 0)),
        "filtered_by_risk": int(blocked.get("RISK", 0)),
        "filtered_by_edge": int(blocked.get("EDGE", 0)),  # edge mode: edge below the cost band
        "traded_bars": int(blocked.get("NONE", 0)),
        "halted": bool(strategy.policy.risk.halted),
        "halt_reason": strategy.policy.risk.halt_reason,
        "gaps": strategy.gaps_seen,
        "overlaps_training_data": overlaps_training(outcome.model, outcome.bars.index[0]),
        "wall_seconds": round(outcome.wall_seconds, 3),
        **lifecycle_figures(strategy.lifecycle),
        "definitions": DEFINITIONS,
    }
    if len(diagnostics):
        hold = buy_and_hold_equity(diagnostics["close"], starting, summary["taker_fee"])
        summary["buy_and_hold"] = returns_statistics(hold, starting) | {
            "final_equity": float(hold.iloc[-1])
        }
    return summary


def write_report(outcome: BacktestOutcome, directory: str | Path) -> dict:
    """Write every report file into ``directory`` (checked and marked as this program's by
    :func:`output_paths.claim_output_dir`; each file replaced atomically); returns the summary."""
    directory = claim_output_dir(directory, REPORT_DIR_OPTION)
    summary = summarise(outcome)
    engine, strategy = outcome.engine, outcome.strategy
    write_atomically(directory / "fills.csv", engine.trader.generate_order_fills_report().to_csv())
    write_atomically(
        directory / "positions.csv", engine.trader.generate_positions_report().to_csv()
    )
    diagnostics = strategy.recorder.frame() if strategy.recorder else pd.DataFrame()
    write_atomically(directory / "diagnostics.parquet", diagnostics.to_parquet())
    if len(diagnostics):
        write_atomically(directory / "equity.png", equity_png(diagnostics, summary))
    if outcome.run.backtest.tearsheet and len(diagnostics) >= 2:
        summary["tearsheet"] = str(write_tearsheet(outcome, directory / "tearsheet.html"))
    elif outcome.run.backtest.tearsheet:
        summary["tearsheet"] = "not written: the backtest decided fewer than 2 bars"
    write_atomically(directory / "summary.json", json.dumps(summary, indent=2, default=str))
    return summary


def maker_line(summary: dict) -> str:
    """Maker fill share and what became of the post-only orders."""
    return (
        f"{summary['maker_orders']:,} post-only orders, {summary['unfilled_orders']:,} "
        f"cancelled unfilled, {summary['post_only_rejected']:,} rejected as crossing; "
        f"fills {summary['maker_fill_share']:.0%} maker ({summary['fills_maker']}) / "
        f"{1 - summary['maker_fill_share'] if summary['fills'] else 0:.0%} taker "
        f"({summary['fills_taker']})"
    )


def format_summary(summary: dict, report_dir: str | Path | None = None) -> str:
    """A readable block for the terminal."""
    s, hold = summary, summary.get("buy_and_hold", {})
    halted = f"yes ({s['halt_reason']})" if s["halted"] else "no"
    rows = [
        ("bars", f"{s['bars']:,} ({s['first_bar'][:16]} .. {s['last_bar'][:16]})"),
        ("orders / fills", f"{s['orders']:,} / {s['fills']:,} ({s['execution']} execution)"),
        ("costs", cost_line(s)),
        ("final equity", f"{s['final_equity']:,.2f} (start {s['starting_equity']:,.0f})"),
        (
            "total return",
            f"{s['total_return']:+.2%}  (buy & hold {hold.get('total_return', 0):+.2%})",
        ),
        ("Sharpe", f"{s['sharpe']:.2f}  (buy & hold {hold.get('sharpe', 0):.2f})"),
        ("Sortino", f"{s['sortino']:.2f}"),
        (
            "max drawdown",
            f"{s['max_drawdown']:.2%}  (buy & hold {hold.get('max_drawdown', 0):.2%})",
        ),
        ("win rate", f"{s['win_rate']:.1%} of {s['closed_trades']} closed trades"),
        ("in-distribution", f"{s['in_distribution_ratio']:.1%} of bars"),
        ("avg confidence", f"{s['avg_confidence']:.2f}"),
        (
            "blocked bars",
            f"density {s['filtered_by_density']}, confidence {s['filtered_by_confidence']}, "
            f"consistency {s['filtered_by_consistency']}, edge below cost "
            f"{s['filtered_by_edge']}, risk {s['filtered_by_risk']}",
        ),
        ("in the market", f"{s['traded_bars']} bars (entered, resized or held)"),
        ("halted", halted),
        ("funding", s["funding"]),
        *([("maker orders", maker_line(s))] if s["execution"] == "maker" else []),
        ("model", versions_line(s)),
        ("engine time", f"{s['wall_seconds']:.1f} s"),
    ]
    if s["overlaps_training_data"]:
        rows.append(("WARNING", "the window overlaps the model's training/validation data"))
    if report_dir is not None:
        rows.append(("report", str(Path(report_dir).resolve())))
    title = f"Backtest {s['bar_type']} ({s['signal_mode']} mode)"
    return "\n".join([title, *(f"  {label:<16}{text}" for label, text in rows)])


def maker_orders(execution: str, strategy: Any) -> dict[str, Any]:
    """The execution style and, for maker, what became of its post-only orders."""
    stats = strategy.maker_stats if execution == "maker" else {}
    return {
        "execution": execution,
        "maker_orders": stats.get("submitted", 0),
        "unfilled_orders": stats.get("unfilled", 0),
        "post_only_rejected": stats.get("post_only_rejected", 0),
    }


def funding_figures(outcome: BacktestOutcome) -> dict[str, Any]:
    """funding_paid (signed: positive paid, negative received, None when not charged), the
    number of charges and a one-line note saying where the rates came from."""
    module = outcome.funding
    instrument_id = outcome.run.strategy.instrument_id
    if module is None:
        symbol = instrument_id.symbol.value.split("-")[0]
        return {
            "funding_paid": None,
            "funding_charges": 0,
            "funding": (
                f"not charged: {outcome.run.backtest.catalog} holds no funding rates for "
                f"{instrument_id} in this window (fetch them with `python -m catalogs "
                f"fetch-funding --symbol {symbol} --catalog {outcome.run.backtest.catalog}`)"
            ),
        }
    paid = module.funding_paid
    return {
        "funding_paid": paid,
        "funding_charges": len(module.payments),
        "funding": (
            f"charged from the catalog's funding rates: {module.funding_times} funding times in "
            f"the window, {len(module.payments)} with an open position; "
            f"{'paid' if paid >= 0 else 'received'} {abs(paid):,.2f}"
        ),
    }


def _realised_pnls(positions: pd.DataFrame) -> list[float]:
    if positions.empty or "realized_pnl" not in positions:
        return []
    return [float(str(v).split()[0]) for v in positions["realized_pnl"]]


def write_tearsheet(outcome: BacktestOutcome, path: str | Path) -> Path:
    """Nautilus's HTML tearsheet (runtime.tearsheet) from the same equity and returns as
    summary.json.

    The engine runs with ``run_analysis=False``, so its PortfolioAnalyzer never computed
    anything: ``create_tearsheet(engine)`` shows nan returns statistics (an empty returns
    series), no PnL section (no analysed currencies) and annualises with 252 days. Here a
    PortfolioAnalyzer analyses the account and positions for the PnL statistics (in the
    settlement currency); runtime.tearsheet adds the rest.
    """
    path = Path(path)
    strategy, engine = outcome.strategy, outcome.engine
    currency = strategy.instrument.settlement_currency
    account = engine.portfolio.account(outcome.run.strategy.instrument_id.venue)
    positions = engine.cache.positions() + engine.cache.position_snapshots()
    analyzer = PortfolioAnalyzer()
    for statistic in (*PNL_STATISTICS, *GENERAL_STATISTICS):
        analyzer.register_statistic(statistic)
    analyzer.calculate_statistics(account, positions)
    html = backtest_tearsheet_html(
        TearsheetRun(
            recorded=strategy.recorder.frame() if strategy.recorder else pd.DataFrame(),
            bars=outcome.bars.index,
            bar_type=str(outcome.run.strategy.bar_type),
            signal_mode=outcome.run.strategy.signal_mode,
            execution=outcome.run.backtest.execution,
            currency=currency.code,
            starting_balance=outcome.run.backtest.starting_balance,
            ending_balance=account.balance_total(currency).as_double(),
            taker_fee=float(strategy.instrument.taker_fee),
            run_id=str(engine.run_id),
            orders=engine.cache.orders_total_count(),
            positions=len(positions),
            costs=fill_liquidity(engine.cache.orders()),
            funding_paid=funding_figures(outcome)["funding_paid"],
            stats_pnls=analyzer.get_performance_stats_pnls(currency),
            stats_general=analyzer.get_performance_stats_general(),
        )
    )
    write_atomically(path, html)
    return path
