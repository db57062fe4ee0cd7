"""Backtest reports: summary.json, fills/positions CSV, diagnostics Parquet, plots, tearsheet.

Performance statistics are Nautilus's own (SharpeRatio, SortinoRatio, MaxDrawdown, WinRate)
applied to the mark-to-market equity the strategy recorded at every bar. Nautilus resamples
returns to days and annualises with sqrt(period); crypto trades every day, so period = 365.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from nautilus_trader.analysis import MaxDrawdown
from nautilus_trader.analysis import SharpeRatio
from nautilus_trader.analysis import SortinoRatio
from nautilus_trader.analysis import WinRate

from strategies.backtest import BacktestOutcome
from strategies.backtest import overlaps_training

DAYS_PER_YEAR = 365  # 24/7 markets
FUNDING_RATE_PER_8H = 0.0001  # Bybit's baseline funding rate (0.01% per 8 hours)


def returns_statistics(equity: pd.Series) -> dict[str, float]:
    """Sharpe, Sortino (annualised, 365 days), max drawdown and total return of an equity curve."""
    equity = equity[equity > 0]
    if len(equity) < 2:
        return {"total_return": 0.0, "sharpe": 0.0, "sortino": 0.0, "max_drawdown": 0.0}
    returns = equity.pct_change().dropna()
    by_ns = {int(ts.value): float(r) for ts, r in returns.items()}
    return {
        "total_return": float(equity.iloc[-1] / equity.iloc[0] - 1.0),
        "sharpe": _finite(SharpeRatio(period=DAYS_PER_YEAR).calculate_from_returns(by_ns)),
        "sortino": _finite(SortinoRatio(period=DAYS_PER_YEAR).calculate_from_returns(by_ns)),
        "max_drawdown": abs(_finite(MaxDrawdown().calculate_from_returns(by_ns))),
    }


def buy_and_hold_equity(close: pd.Series, starting_balance: float, taker_fee: float) -> pd.Series:
    """1x long from the first decided bar, paying the taker fee once."""
    return starting_balance * (1.0 - taker_fee) * close / close.iloc[0]


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
        **returns_statistics(equity),
        "win_rate": _finite(WinRate().calculate_from_realized_pnls(realised)) if realised else 0.0,
        "closed_trades": len(realised),
        "fees": fees,
        "in_distribution_ratio": _mean(diagnostics, "in_distribution"),
        "avg_confidence": _mean(diagnostics, "confidence"),
        "filtered_by_density": int(blocked.get("DENSITY", 0)),
        "filtered_by_confidence": int(blocked.get("CONFIDENCE", 0)),
        "filtered_by_consistency": int(blocked.get("CONSISTENCY", 0)),
        "filtered_by_risk": int(blocked.get("RISK", 0)),
        "traded_bars": int(blocked.get("NONE", 0)),
        "halted": bool(strategy.risk.halted),
        "halt_reason": strategy.risk.halt_reason,
        "gaps": strategy.gaps_seen,
        "overlaps_training_data": overlaps_training(outcome.model, outcome.bars.index[0]),
        "funding": _funding_note(diagnostics, outcome.bars),
        "wall_seconds": round(outcome.wall_seconds, 3),
    }
    taker_fee = float(instrument.taker_fee)
    if len(diagnostics):
        hold = buy_and_hold_equity(diagnostics["close"], starting, taker_fee)
        summary["buy_and_hold"] = returns_statistics(hold) | {"final_equity": float(hold.iloc[-1])}
    return summary


def write_report(outcome: BacktestOutcome, directory: str | Path) -> dict:
    """Write every report file into ``directory``; returns the summary."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    summary = summarise(outcome)
    engine, strategy = outcome.engine, outcome.strategy
    engine.trader.generate_order_fills_report().to_csv(directory / "fills.csv")
    engine.trader.generate_positions_report().to_csv(directory / "positions.csv")
    diagnostics = strategy.recorder.frame() if strategy.recorder else pd.DataFrame()
    diagnostics.to_parquet(directory / "diagnostics.parquet")
    if len(diagnostics):
        plot_equity(diagnostics, summary, directory / "equity.png")
    if outcome.run.backtest.tearsheet:
        summary["tearsheet"] = _tearsheet(outcome, directory / "tearsheet.html")
    (directory / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def plot_equity(diagnostics: pd.DataFrame, summary: dict, path: Path) -> None:
    """Equity vs buy-and-hold, drawdown, and position (with price) in three panels."""
    fig, (ax_eq, ax_dd, ax_pos) = plt.subplots(3, 1, figsize=(11, 8), sharex=True)
    starting = summary["starting_equity"]
    ax_eq.plot(diagnostics.index, diagnostics["equity"], label="strategy", lw=1.2)
    hold = starting * diagnostics["close"] / diagnostics["close"].iloc[0]
    ax_eq.plot(diagnostics.index, hold, label="buy and hold", lw=0.8, alpha=0.7)
    ax_eq.set_ylabel("equity")
    ax_eq.legend(loc="upper left")
    ax_eq.set_title(
        f"{summary['bar_type']} ({summary['signal_mode']} mode): return "
        f"{summary['total_return']:+.2%}, Sharpe {summary['sharpe']:.2f}, "
        f"max DD {summary['max_drawdown']:.2%}"
    )
    ax_dd.fill_between(
        diagnostics.index, -100 * diagnostics["drawdown"], 0, color="tab:red", alpha=0.4
    )
    ax_dd.set_ylabel("drawdown %")
    ax_pos.step(diagnostics.index, diagnostics["position_qty"], where="post", lw=0.8)
    ax_pos.set_ylabel("position")
    price = ax_pos.twinx()
    price.plot(diagnostics.index, diagnostics["close"], color="grey", lw=0.5, alpha=0.6)
    price.set_ylabel("price")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def format_summary(summary: dict, report_dir: str | Path | None = None) -> str:
    """A readable block for the terminal."""
    s, hold = summary, summary.get("buy_and_hold", {})
    halted = f"yes ({s['halt_reason']})" if s["halted"] else "no"
    rows = [
        ("bars", f"{s['bars']:,} ({s['first_bar'][:16]} .. {s['last_bar'][:16]})"),
        ("orders / fills", f"{s['orders']:,} / {s['fills']:,}; fees {s['fees']:,.2f}"),
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
            f"consistency {s['filtered_by_consistency']}, risk {s['filtered_by_risk']}",
        ),
        ("traded bars", f"{s['traded_bars']}"),
        ("halted", halted),
        ("funding", s["funding"]),
        ("engine time", f"{s['wall_seconds']:.1f} s"),
    ]
    if s["overlaps_training_data"]:
        rows.append(("WARNING", "the window overlaps the model's training/validation data"))
    if report_dir is not None:
        rows.append(("report", str(Path(report_dir).resolve())))
    title = f"Backtest {s['bar_type']} ({s['signal_mode']} mode)"
    return "\n".join([title, *(f"  {label:<16}{text}" for label, text in rows)])


def _funding_note(diagnostics: pd.DataFrame, bars: pd.DataFrame) -> str:
    if not len(diagnostics):
        return "not simulated by Nautilus"
    notional = (diagnostics["position_qty"].abs() * diagnostics["close"]).mean()
    hours = (bars.index[-1] - bars.index[0]).total_seconds() / 3600
    estimate = notional * FUNDING_RATE_PER_8H * hours / 8
    return (
        f"not simulated by Nautilus; at 0.01%/8h on the average |notional| ({notional:,.0f}) "
        f"it would be about {estimate:,.2f} (paid or received depending on side and market)"
    )


def _realised_pnls(positions: pd.DataFrame) -> list[float]:
    if positions.empty or "realized_pnl" not in positions:
        return []
    return [float(str(v).split()[0]) for v in positions["realized_pnl"]]


def _tearsheet(outcome: BacktestOutcome, path: Path) -> str:
    """Nautilus's HTML tearsheet; needs plotly (installed with this package)."""
    from nautilus_trader.analysis import create_tearsheet

    try:
        create_tearsheet(
            outcome.engine, output_path=str(path), title="ScoreMatchingStrategy backtest"
        )
    except Exception as error:  # a report extra must not lose the run's other results
        return f"not written: {error}"
    return str(path)


def _mean(frame: pd.DataFrame, column: str) -> float:
    return float(frame[column].astype(float).mean()) if len(frame) else 0.0


def _finite(value: float | None) -> float:
    return float(value) if value is not None and math.isfinite(value) else 0.0
