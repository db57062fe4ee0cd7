"""Backtest reports: summary.json, fills/positions CSV, diagnostics Parquet, plots, tearsheet.

Performance statistics are Nautilus's own (SharpeRatio, SortinoRatio, MaxDrawdown, WinRate)
applied to the mark-to-market equity the strategy recorded at every bar. Nautilus compounds the
per-bar returns within each UTC day and annualises with sqrt(period); crypto trades every day,
so period = 365. summary.json, equity.png and tearsheet.html all use these same returns and
state the same definitions (``DEFINITIONS``, :mod:`runtime.report_figures`: what the reports of
both engines share).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from nautilus_trader.analysis import Alpha
from nautilus_trader.analysis import AvgLoser
from nautilus_trader.analysis import AvgWinner
from nautilus_trader.analysis import BetaRatio
from nautilus_trader.analysis import Expectancy
from nautilus_trader.analysis import GridLayout
from nautilus_trader.analysis import InformationRatio
from nautilus_trader.analysis import LongRatio
from nautilus_trader.analysis import MaxDrawdown
from nautilus_trader.analysis import MaxLoser
from nautilus_trader.analysis import MaxWinner
from nautilus_trader.analysis import MinLoser
from nautilus_trader.analysis import MinWinner
from nautilus_trader.analysis import PortfolioAnalyzer
from nautilus_trader.analysis import ProfitFactor
from nautilus_trader.analysis import ReturnsAverage
from nautilus_trader.analysis import ReturnsAverageLoss
from nautilus_trader.analysis import ReturnsAverageWin
from nautilus_trader.analysis import ReturnsVolatility
from nautilus_trader.analysis import RiskReturnRatio
from nautilus_trader.analysis import SharpeRatio
from nautilus_trader.analysis import SortinoRatio
from nautilus_trader.analysis import TearsheetConfig
from nautilus_trader.analysis import TearsheetCustomChart
from nautilus_trader.analysis import TearsheetDistributionChart
from nautilus_trader.analysis import TearsheetDrawdownChart
from nautilus_trader.analysis import TearsheetEquityChart
from nautilus_trader.analysis import TearsheetRunInfoChart
from nautilus_trader.analysis import TearsheetStatsTableChart
from nautilus_trader.analysis import TrackingError
from nautilus_trader.analysis import WinRate
from nautilus_trader.analysis import create_tearsheet_from_stats
from nautilus_trader.analysis.tearsheet import _register_tearsheet_chart
from plotly import graph_objects as go

from runtime.backtest import BacktestOutcome
from runtime.backtest import overlaps_training
from runtime.report_figures import DAYS_PER_YEAR
from runtime.report_figures import DEFINITIONS
from runtime.report_figures import bar_returns
from runtime.report_figures import buy_and_hold_equity
from runtime.report_figures import by_nanoseconds
from runtime.report_figures import column_mean
from runtime.report_figures import cost_line
from runtime.report_figures import daily_returns
from runtime.report_figures import fill_liquidity
from runtime.report_figures import finite
from runtime.report_figures import plot_equity
from runtime.report_figures import returns_statistics

ROLLING_SHARPE_DAYS = 60
BENCHMARK_NAME = "Buy and hold (same bars)"


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
        "definitions": DEFINITIONS,
    }
    if len(diagnostics):
        hold = buy_and_hold_equity(diagnostics["close"], starting, summary["taker_fee"])
        summary["buy_and_hold"] = returns_statistics(hold, starting) | {
            "final_equity": float(hold.iloc[-1])
        }
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
    if outcome.run.backtest.tearsheet and len(diagnostics) >= 2:
        summary["tearsheet"] = str(write_tearsheet(outcome, directory / "tearsheet.html"))
    elif outcome.run.backtest.tearsheet:
        summary["tearsheet"] = "not written: the backtest decided fewer than 2 bars"
    _write_atomically(directory / "summary.json", json.dumps(summary, indent=2, default=str))
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
    """Nautilus's HTML tearsheet from the same equity and returns as summary.json.

    The engine runs with ``run_analysis=False``, so its PortfolioAnalyzer never computed
    anything: ``create_tearsheet(engine)`` shows nan returns statistics (an empty returns
    series), no PnL section (no analysed currencies) and annualises with 252 days. Here a
    PortfolioAnalyzer analyses the account and positions for the PnL statistics (in the
    settlement currency), the returns statistics come from the recorded mark-to-market equity
    at 365 days, buy-and-hold on the same bars is the benchmark, and
    ``create_tearsheet_from_stats`` draws the page.
    """
    path = Path(path)
    strategy, engine = outcome.strategy, outcome.engine
    diagnostics = strategy.recorder.frame() if strategy.recorder else pd.DataFrame()
    if len(diagnostics) < 2:
        raise ValueError("the backtest decided fewer than 2 bars: nothing to draw a tearsheet of")
    starting = outcome.run.backtest.starting_balance
    currency = strategy.instrument.settlement_currency
    account = engine.portfolio.account(outcome.run.strategy.instrument_id.venue)
    ending = account.balance_total(currency).as_double()
    returns = bar_returns(diagnostics["equity"], starting)
    hold = buy_and_hold_equity(diagnostics["close"], starting, float(strategy.instrument.taker_fee))
    benchmark = bar_returns(hold, starting)

    analyzer = PortfolioAnalyzer()
    for statistic in (*_PNL_STATISTICS, *_BENCHMARK_STATISTICS):
        analyzer.register_statistic(statistic)
    positions = engine.cache.positions() + engine.cache.position_snapshots()
    analyzer.calculate_statistics(account, positions)
    versus_benchmark = analyzer.get_performance_stats_returns_vs_benchmark(
        daily_returns(benchmark), returns=daily_returns(returns)
    )
    html = tearsheet_html(
        returns,
        benchmark,
        stats_pnls={currency.code: analyzer.get_performance_stats_pnls(currency)},
        stats_returns=tearsheet_returns_statistics(returns) | versus_benchmark,
        stats_general=analyzer.get_performance_stats_general(),
        title=_tearsheet_title(outcome),
        run_info=_run_info(outcome, len(diagnostics)),
        account_info={
            f"Starting balance ({currency.code})": f"{starting:,.2f}",
            f"Ending balance ({currency.code})": f"{ending:,.2f}",
            **_cost_info(outcome, currency.code),
        },
    )
    _write_atomically(path, html)
    return path


def _cost_info(outcome: BacktestOutcome, code: str) -> dict[str, str]:
    """Fees by liquidity side, funding and the fill shares, for the tearsheet's account table."""
    liquidity = fill_liquidity(outcome.engine.cache.orders())
    funding = funding_figures(outcome)
    paid = funding["funding_paid"]
    fills = liquidity["fills_maker"] + liquidity["fills_taker"]
    return {
        f"Fees ({code})": f"{liquidity['fees_maker'] + liquidity['fees_taker']:,.2f} (maker "
        f"{liquidity['fees_maker']:,.2f}, taker {liquidity['fees_taker']:,.2f})",
        f"Funding paid ({code})": "not charged (no funding rates)"
        if paid is None
        else f"{paid:,.2f}",
        "Fills maker / taker": f"{liquidity['fills_maker']} / {liquidity['fills_taker']}"
        + (f" ({liquidity['maker_fill_share']:.0%} maker)" if fills else ""),
        "Execution": outcome.run.backtest.execution,
    }


def tearsheet_html(
    returns: pd.Series,
    benchmark_returns: pd.Series,
    stats_pnls: dict[str, dict[str, Any]],
    stats_returns: dict[str, Any],
    stats_general: dict[str, Any],
    title: str,
    run_info: dict[str, str],
    account_info: dict[str, str],
) -> str:
    """The tearsheet page (self-contained HTML) for per-bar strategy and benchmark returns.

    Statistics that are undefined for the run (nan, e.g. an average loss without a losing
    day) are left out; monthly and yearly returns and the rolling Sharpe are this module's
    charts (blank months outside the backtest, years as labels, 365-day annualisation).
    """
    return create_tearsheet_from_stats(
        stats_pnls={code: _finite_only(stats) for code, stats in stats_pnls.items()},
        stats_returns=_finite_only(stats_returns),
        stats_general=_finite_only(stats_general),
        returns=returns,
        output_path=None,
        title=title,
        config=_TEARSHEET_CONFIG,
        benchmark_returns=benchmark_returns,
        benchmark_name=BENCHMARK_NAME,
        run_info=run_info,
        account_info=account_info,
    )


def tearsheet_returns_statistics(returns: pd.Series) -> dict[str, float]:
    """The tearsheet's returns statistics: Nautilus's defaults at 365 days on daily returns,
    plus the max drawdown of the per-bar equity (as summary.json)."""
    daily = by_nanoseconds(daily_returns(returns))
    stats = {s.name: s.calculate_from_returns(daily) for s in _RETURNS_STATISTICS}
    stats["Max Drawdown"] = MaxDrawdown().calculate_from_returns(by_nanoseconds(returns))
    return stats


_RETURNS_STATISTICS = (
    ReturnsVolatility(period=DAYS_PER_YEAR),
    ReturnsAverage(),
    ReturnsAverageLoss(),
    ReturnsAverageWin(),
    SharpeRatio(period=DAYS_PER_YEAR),
    SortinoRatio(period=DAYS_PER_YEAR),
    ProfitFactor(),
    RiskReturnRatio(),
)
_PNL_STATISTICS = (
    MaxWinner(),
    AvgWinner(),
    MinWinner(),
    MinLoser(),
    AvgLoser(),
    MaxLoser(),
    Expectancy(),
    WinRate(),
    LongRatio(),
)
_BENCHMARK_STATISTICS = (
    Alpha(period=DAYS_PER_YEAR),
    BetaRatio(),
    InformationRatio(period=DAYS_PER_YEAR),
    TrackingError(period=DAYS_PER_YEAR),
)


def _tearsheet_title(outcome: BacktestOutcome) -> str:
    config = outcome.run.strategy
    return (
        f"<b>ScoreMatchingStrategy backtest</b>: {config.bar_type} ({config.signal_mode} mode)"
        f"<br><sub>Daily returns annualised with {DAYS_PER_YEAR} days (24/7); fees and funding "
        "included (see Run Information); definitions under Run Information</sub>"
    )


def _run_info(outcome: BacktestOutcome, decided_bars: int) -> dict[str, str]:
    """Run metadata (as Nautilus's create_tearsheet shows it) and the report's definitions."""
    engine = outcome.engine
    positions = engine.cache.positions() + engine.cache.position_snapshots()
    return {
        "Run ID": str(engine.run_id),
        "Backtest start": str(outcome.bars.index[0]),
        "Backtest end": str(outcome.bars.index[-1]),
        "Bars (decided)": f"{len(outcome.bars):_} ({decided_bars:_})",
        "Total orders": f"{engine.cache.orders_total_count():_}",
        "Total positions": f"{len(positions):_}",
        "Returns": DEFINITIONS["returns"],
        "Annualisation": DEFINITIONS["annualisation"],
        "Fees": DEFINITIONS["fees"],
        "Funding": DEFINITIONS["funding"],
        "Benchmark": DEFINITIONS["benchmark"],
    }


def _render_monthly_returns(fig: Any, row: int, col: int, returns: pd.Series, **_: Any) -> None:
    """Monthly compounded returns (%); months outside the backtest stay blank."""
    monthly = returns.groupby([returns.index.year, returns.index.month]).apply(
        lambda month: 100.0 * float((1.0 + month).prod() - 1.0)
    )
    table = monthly.unstack()
    text = [[f"{v:.1f}%" if np.isfinite(v) else "" for v in row_] for row_ in table.to_numpy()]
    fig.add_trace(
        go.Heatmap(
            z=table.to_numpy(),
            x=[_MONTHS[int(m) - 1] for m in table.columns],
            y=[str(year) for year in table.index],
            text=text,
            texttemplate="%{text}",
            colorscale="RdYlGn",
            zmid=0,
            showscale=False,
            hoverongaps=False,
        ),
        row=row,
        col=col,
    )
    fig.update_xaxes(title_text="Month", type="category", row=row, col=col)
    fig.update_yaxes(title_text="Year", type="category", autorange="reversed", row=row, col=col)


def _render_yearly_returns(
    fig: Any, row: int, col: int, returns: pd.Series, theme_config: dict, **_: Any
) -> None:
    """Compounded return (%) of each calendar year the backtest touches; years as labels."""
    yearly = returns.groupby(returns.index.year).apply(
        lambda year: 100.0 * float((1.0 + year).prod() - 1.0)
    )
    colours = theme_config["colors"]
    fig.add_trace(
        go.Bar(
            x=[str(year) for year in yearly.index],
            y=yearly.to_numpy(),
            text=[f"{v:+.1f}%" for v in yearly.to_numpy()],
            textposition="outside",
            cliponaxis=False,
            marker={"color": [colours["positive" if v >= 0 else "negative"] for v in yearly]},
            showlegend=False,
        ),
        row=row,
        col=col,
    )
    fig.update_xaxes(title_text="Year", type="category", row=row, col=col)
    fig.update_yaxes(title_text="Return (%)", row=row, col=col)


def _render_rolling_sharpe(
    fig: Any, row: int, col: int, returns: pd.Series, theme_config: dict, **_: Any
) -> None:
    """Sharpe of the last 60 daily returns, annualised with 365 days (blank if fewer)."""
    daily = daily_returns(returns)
    rolling = daily.rolling(ROLLING_SHARPE_DAYS)
    sharpe = (rolling.mean() / rolling.std().replace(0.0, np.nan) * DAYS_PER_YEAR**0.5).dropna()
    if sharpe.empty:
        return
    fig.add_trace(
        go.Scatter(
            x=sharpe.index,
            y=sharpe.to_numpy(),
            mode="lines",
            line={"color": theme_config["colors"]["positive"], "width": 2},
            showlegend=False,
        ),
        row=row,
        col=col,
    )
    fig.update_xaxes(title_text="Date", row=row, col=col)
    fig.update_yaxes(title_text="Sharpe Ratio", row=row, col=col)


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Nautilus 1.231 registers tearsheet renderers only through this private hook.
_CHARTS = {
    "scorematching_monthly_returns": ("heatmap", "Monthly Returns (%)", _render_monthly_returns),
    "scorematching_rolling_sharpe": (
        "scatter",
        f"Rolling Sharpe Ratio ({ROLLING_SHARPE_DAYS} days, {DAYS_PER_YEAR}-day year)",
        _render_rolling_sharpe,
    ),
    "scorematching_yearly_returns": ("bar", "Yearly Returns (%)", _render_yearly_returns),
}
for _name, (_kind, _title, _renderer) in _CHARTS.items():
    _register_tearsheet_chart(_name, _kind, _title, _renderer)
_TEARSHEET_CONFIG = TearsheetConfig(
    charts=[
        TearsheetRunInfoChart(),
        TearsheetStatsTableChart(),
        TearsheetEquityChart(title="Equity (start = 1)"),
        TearsheetDrawdownChart(),
        TearsheetCustomChart(chart="scorematching_monthly_returns"),
        TearsheetDistributionChart(title="Distribution of per-bar returns"),
        TearsheetCustomChart(chart="scorematching_rolling_sharpe"),
        TearsheetCustomChart(chart="scorematching_yearly_returns"),
    ],
    benchmark_name=BENCHMARK_NAME,
    height=2000,
    # the first row is tall enough for every row of the statistics table
    layout=GridLayout(heights=[0.42, 0.2, 0.19, 0.19], vertical_spacing=0.07),
)


def _finite_only(stats: dict[str, Any]) -> dict[str, Any]:
    """Drop statistics that are undefined for this run (e.g. an average loss without losses)."""
    return {
        name: value
        for name, value in stats.items()
        if not isinstance(value, float) or math.isfinite(value)
    }


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, fsync, then replace ``path``.

    The file gets the permissions a plain write would give it (0666 less the umask).
    """
    umask = os.umask(0)
    os.umask(umask)
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    ) as handle:
        try:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
            os.chmod(handle.name, 0o666 & ~umask)
        except BaseException:
            os.unlink(handle.name)
            raise
    os.replace(handle.name, path)
