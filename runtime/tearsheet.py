"""The backtest's HTML tearsheet, on either engine (NautilusTrader 1.231 and 2.0).

One builder, :func:`backtest_tearsheet_html`, draws the page for both engines' reports: each
binding reads its finished engine into a :class:`TearsheetRun` (runtime.reports on 1.231,
runtime.backtest_v2 on 2.0) and this module does the rest with Nautilus's own statistics and
``create_tearsheet_from_stats``, whose API both engines share.

What the page shows: the PnL statistics (in the settlement currency) that the engine's
portfolio analysis computes from the account and its positions; returns statistics on the
equity the strategy recorded at every bar, compounded per UTC day and annualised with 365 days
(as summary.json's Sharpe and Sortino), max drawdown on the per-bar equity; alpha, beta,
information ratio and tracking error against buy-and-hold on the same bars; the account's
balances, fees by liquidity side and funding; and this module's monthly, yearly and rolling
Sharpe charts beside Nautilus's equity, drawdown and distribution charts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
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
from plotly import graph_objects as go

from runtime.report_figures import DAYS_PER_YEAR
from runtime.report_figures import DEFINITIONS
from runtime.report_figures import bar_returns
from runtime.report_figures import buy_and_hold_equity
from runtime.report_figures import by_nanoseconds
from runtime.report_figures import daily_returns

try:  # NautilusTrader 2.0
    from nautilus_trader.analysis import register_tearsheet_chart
except ImportError:  # 1.231 registers tearsheet renderers only through this private hook
    from nautilus_trader.analysis.tearsheet import (
        _register_tearsheet_chart as register_tearsheet_chart,
    )

ROLLING_SHARPE_DAYS = 60
BENCHMARK_NAME = "Buy and hold (same bars)"
MIN_DECIDED_BARS = 2

# The statistics the portfolio analysis computes from the account and positions: the same
# names on both engines, shown in this order.
PNL_STATISTICS = (
    MaxWinner(),
    AvgWinner(),
    MinWinner(),
    MinLoser(),
    AvgLoser(),
    MaxLoser(),
    Expectancy(),
    WinRate(),
)
GENERAL_STATISTICS = (LongRatio(),)
PNL_TOTALS = ("PnL (total)", "PnL% (total)")
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
_BENCHMARK_STATISTICS = (
    Alpha(period=DAYS_PER_YEAR),
    BetaRatio(),
    InformationRatio(period=DAYS_PER_YEAR),
    TrackingError(period=DAYS_PER_YEAR),
)


@dataclass(frozen=True)
class TearsheetRun:
    """One finished backtest, as each engine's binding reads it for the tearsheet."""

    recorded: pd.DataFrame  # the strategy's record of every decided bar: equity, close, ...
    bars: pd.DatetimeIndex  # close times of every bar in the window
    bar_type: str
    signal_mode: str
    execution: str  # taker or maker
    currency: str  # the settlement currency's code
    starting_balance: float
    ending_balance: float
    taker_fee: float  # what buy-and-hold pays once
    run_id: str
    orders: int
    positions: int  # positions and position snapshots (NETTING: one per round trip)
    costs: dict[str, Any]  # fills_maker, fills_taker, maker_fill_share, fees_maker, fees_taker
    funding_paid: float | None  # positive paid, negative received; None: not charged
    stats_pnls: dict[str, Any]  # the portfolio analysis' PnL statistics in ``currency``
    stats_general: dict[str, Any]  # its general statistics (long ratio)


def backtest_tearsheet_html(run: TearsheetRun) -> str:
    """Nautilus's HTML tearsheet of ``run`` from the same equity and returns as summary.json.

    The returns statistics come from the recorded mark-to-market equity at 365 days (an engine
    run with ``run_analysis=False`` analyses nothing, and its defaults are 252 days on position
    returns), buy-and-hold on the same bars is the benchmark, and ``create_tearsheet_from_stats``
    draws the page.
    """
    if len(run.recorded) < MIN_DECIDED_BARS:
        raise ValueError("the backtest decided fewer than 2 bars: nothing to draw a tearsheet of")
    starting = run.starting_balance
    returns = bar_returns(run.recorded["equity"], starting)
    hold = buy_and_hold_equity(run.recorded["close"], starting, run.taker_fee)
    benchmark = bar_returns(hold, starting)
    pnl_names = (*PNL_TOTALS, *(statistic.name for statistic in PNL_STATISTICS))
    return tearsheet_html(
        returns,
        benchmark,
        stats_pnls={run.currency: _in_order(run.stats_pnls, pnl_names)},
        stats_returns=tearsheet_returns_statistics(returns)
        | benchmark_statistics(returns, benchmark),
        stats_general=_in_order(run.stats_general, [s.name for s in GENERAL_STATISTICS]),
        title=tearsheet_title(run.bar_type, run.signal_mode),
        run_info=_run_info(run),
        account_info={
            f"Starting balance ({run.currency})": f"{starting:,.2f}",
            f"Ending balance ({run.currency})": f"{run.ending_balance:,.2f}",
            **_cost_info(run),
        },
    )


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


def benchmark_statistics(returns: pd.Series, benchmark_returns: pd.Series) -> dict[str, float]:
    """Alpha, beta, information ratio and tracking error (365 days) of the daily returns
    against the benchmark's (what a PortfolioAnalyzer's returns-vs-benchmark statistics give)."""
    strategy = by_nanoseconds(daily_returns(returns))
    benchmark = by_nanoseconds(daily_returns(benchmark_returns))
    stats = {
        s.name: s.calculate_from_returns_with_benchmark(strategy, benchmark)
        for s in _BENCHMARK_STATISTICS
    }
    return {name: value for name, value in stats.items() if value is not None}


def tearsheet_title(bar_type: str, signal_mode: str) -> str:
    """The page's title: the bars, the signal mode and how returns are annualised."""
    return (
        f"<b>ScoreMatchingStrategy backtest</b>: {bar_type} ({signal_mode} mode)"
        f"<br><sub>Daily returns annualised with {DAYS_PER_YEAR} days (24/7); fees and funding "
        "included (see Run Information); definitions under Run Information</sub>"
    )


def _run_info(run: TearsheetRun) -> dict[str, str]:
    """Run metadata (as Nautilus's create_tearsheet shows it) and the report's definitions."""
    return {
        "Run ID": run.run_id,
        "Backtest start": str(run.bars[0]),
        "Backtest end": str(run.bars[-1]),
        "Bars (decided)": f"{len(run.bars):_} ({len(run.recorded):_})",
        "Total orders": f"{run.orders:_}",
        "Total positions": f"{run.positions:_}",
        "Returns": DEFINITIONS["returns"],
        "Annualisation": DEFINITIONS["annualisation"],
        "Fees": DEFINITIONS["fees"],
        "Funding": DEFINITIONS["funding"],
        "Benchmark": DEFINITIONS["benchmark"],
    }


def _cost_info(run: TearsheetRun) -> dict[str, str]:
    """Fees by liquidity side, funding and the fill shares, for the tearsheet's account table."""
    costs, code = run.costs, run.currency
    fills = costs["fills_maker"] + costs["fills_taker"]
    return {
        f"Fees ({code})": f"{costs['fees_maker'] + costs['fees_taker']:,.2f} (maker "
        f"{costs['fees_maker']:,.2f}, taker {costs['fees_taker']:,.2f})",
        f"Funding paid ({code})": "not charged (no funding rates)"
        if run.funding_paid is None
        else f"{run.funding_paid:,.2f}",
        "Fills maker / taker": f"{costs['fills_maker']} / {costs['fills_taker']}"
        + (f" ({costs['maker_fill_share']:.0%} maker)" if fills else ""),
        "Execution": run.execution,
    }


def _in_order(stats: dict[str, Any], names: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """The statistics called ``names``, in that order (2.0 returns them unordered)."""
    return {name: stats[name] for name in names if name in stats}


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
    register_tearsheet_chart(_name, _kind, _title, _renderer)
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
