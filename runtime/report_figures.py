"""What every backtest report shows, on either engine: the statistics of the equity the strategy
recorded at every bar, the definitions behind them, and the equity plot.

Performance statistics are Nautilus's own (SharpeRatio, SortinoRatio, MaxDrawdown; the same API
on NautilusTrader 1.231 and 2.0) applied to the mark-to-market equity the strategy recorded at
every bar. Nautilus compounds the per-bar returns within each UTC day and annualises with
sqrt(period); crypto trades every day, so period = 365.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from nautilus_trader.analysis import MaxDrawdown
from nautilus_trader.analysis import SharpeRatio
from nautilus_trader.analysis import SortinoRatio

DAYS_PER_YEAR = 365  # 24/7 markets

# What every backtest report (summary.json, equity.png, tearsheet.html) means by its figures.
DEFINITIONS = {
    "returns": "per-bar returns of the mark-to-market equity (balance + unrealised PnL)",
    "annualisation": (
        "Sharpe, Sortino, volatility, alpha and information ratio on daily returns (bars "
        f"compounded per UTC day), annualised with {DAYS_PER_YEAR} days (24/7 market)"
    ),
    "max_drawdown": "largest peak-to-trough fall of the per-bar equity",
    "fees": "included: every fill pays the instrument's maker/taker fee out of equity",
    "funding": "included when the catalog holds funding rates for the window: at each funding "
    "time the open position pays position x last bar close x rate (received when negative); "
    "otherwise not charged (summary.json funding says which)",
    "benchmark": "buy and hold on the same bars: 1x long from the first decided bar, taker "
    "fee paid once",
}


def bar_returns(equity: pd.Series, starting_balance: float) -> pd.Series:
    """Per-bar returns of an equity curve, the first one against the starting balance.

    Bars with non-positive equity (a wiped-out account) are dropped.
    """
    equity = equity[equity > 0]
    return (equity / equity.shift(1, fill_value=starting_balance) - 1.0).astype(float)


def daily_returns(returns: pd.Series) -> pd.Series:
    """Per-bar returns compounded within each UTC day: what Nautilus's ratio statistics use."""
    days = returns.index.normalize()
    return returns.groupby(days).apply(lambda day: float((1.0 + day).prod() - 1.0))


def returns_statistics(equity: pd.Series, starting_balance: float) -> dict[str, float]:
    """Sharpe, Sortino (annualised, 365 days), max drawdown and total return of an equity curve."""
    returns = bar_returns(equity, starting_balance)
    if len(returns) < 2:
        return {"total_return": 0.0, "sharpe": 0.0, "sortino": 0.0, "max_drawdown": 0.0}
    daily = by_nanoseconds(daily_returns(returns))
    return {
        "total_return": float((1.0 + returns).prod() - 1.0),
        "sharpe": finite(SharpeRatio(period=DAYS_PER_YEAR).calculate_from_returns(daily)),
        "sortino": finite(SortinoRatio(period=DAYS_PER_YEAR).calculate_from_returns(daily)),
        "max_drawdown": abs(finite(MaxDrawdown().calculate_from_returns(by_nanoseconds(returns)))),
    }


def buy_and_hold_equity(close: pd.Series, starting_balance: float, taker_fee: float) -> pd.Series:
    """1x long from the first decided bar, paying the taker fee once."""
    return starting_balance * (1.0 - taker_fee) * close / close.iloc[0]


REPORT_DIR_OPTION = "--report-dir"  # how errors name the report directory (backtest.report_dir)


def equity_png(diagnostics: pd.DataFrame, summary: dict) -> bytes:
    """equity.png: equity vs buy-and-hold, drawdown, and position (with price) in three
    panels."""
    fig, (ax_eq, ax_dd, ax_pos) = plt.subplots(3, 1, figsize=(11, 8), sharex=True)
    starting = summary["starting_equity"]
    ax_eq.plot(diagnostics.index, diagnostics["equity"], label="strategy", lw=1.2)
    hold = buy_and_hold_equity(diagnostics["close"], starting, summary["taker_fee"])
    ax_eq.plot(diagnostics.index, hold, label="buy and hold", lw=0.8, alpha=0.7)
    ax_eq.set_ylabel("equity")
    ax_eq.legend(loc="upper left")
    ax_eq.text(
        0.99,
        0.03,
        f"{cost_line(summary)}\nfills: {summary['fills_maker']} maker / "
        f"{summary['fills_taker']} taker ({summary['execution']} execution)",
        transform=ax_eq.transAxes,
        ha="right",
        va="bottom",
        fontsize=8,
        bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8},
    )
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
    fig.text(0.01, 0.005, equity_caption(), fontsize=7, va="bottom", wrap=True)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    image = io.BytesIO()
    fig.savefig(image, format="png", dpi=110)
    plt.close(fig)
    return image.getvalue()


def equity_caption() -> str:
    """The definitions behind equity.png's title, printed under the figure."""
    d = DEFINITIONS
    return (
        f"Returns: {d['returns']}. {d['annualisation']}. Max DD: {d['max_drawdown']}.\n"
        f"Fees {d['fees']}. Funding {d['funding']}. Benchmark: {d['benchmark']}."
    )


def cost_line(summary: dict) -> str:
    """Fees (by liquidity side) and funding side by side, as one line."""
    paid = summary["funding_paid"]
    funding = "not charged" if paid is None else f"{paid:,.2f}"
    return (
        f"fees {summary['fees']:,.2f} (maker {summary['fees_maker']:,.2f}, taker "
        f"{summary['fees_taker']:,.2f}); funding {funding}"
    )


def by_nanoseconds(returns: pd.Series) -> dict[int, float]:
    return {int(ts.value): float(r) for ts, r in returns.items()}


def column_mean(frame: pd.DataFrame, column: str) -> float:
    return float(frame[column].astype(float).mean()) if len(frame) else 0.0


def finite(value: float | None) -> float:
    return float(value) if value is not None and math.isfinite(value) else 0.0


def fill_liquidity(orders: Iterable[Any]) -> dict[str, Any]:
    """Fills and fees by liquidity side (maker / taker), and the maker share of fills (the
    orders' fill events, which carry ``liquidity_side`` and ``commission`` on both engines)."""
    counts = {"MAKER": 0, "TAKER": 0}
    fees = {"MAKER": 0.0, "TAKER": 0.0}
    for order in orders:
        events = order.events() if callable(order.events) else order.events  # 2.0: a method
        for event in events:
            if type(event).__name__ == "OrderFilled":
                side = event.liquidity_side.name
                counts[side] = counts.get(side, 0) + 1
                fees[side] = fees.get(side, 0.0) + event.commission.as_double()
    total = counts["MAKER"] + counts["TAKER"]
    return {
        "fills_maker": counts["MAKER"],
        "fills_taker": counts["TAKER"],
        "maker_fill_share": counts["MAKER"] / total if total else 0.0,
        "fees_maker": fees["MAKER"],
        "fees_taker": fees["TAKER"],
    }


def lifecycle_figures(lifecycle: Any) -> dict[str, Any]:
    """summary.json's model provenance (both engines): ``model_versions``, every version of
    the run with its training window and the bars it decided
    (:meth:`strategies.retraining.ModelLifecycle.versions`), the ``retrain`` schedule (null
    when off; its ``registry``: where the versions are) and the drift monitors' alerts and last
    statistics."""
    if lifecycle is None:
        return {"model_versions": [], "retrain": None, "drift": None}
    return {
        "model_versions": lifecycle.versions(),
        "retrain": lifecycle.settings.to_dict() if lifecycle.settings.enabled else None,
        "drift": {"alerts": lifecycle.drift_alerts, "last": lifecycle.drift.last},
    }


def versions_line(summary: dict) -> str:
    """The models of a run in a few words: versions, promotions, drift alerts."""
    versions = summary.get("model_versions") or []
    if not versions:
        return "no version record"
    first = versions[0]["id"]
    if summary.get("retrain") is None:
        line = f"version {first}, not retrained (retrain.every is off)"
    else:
        retrained = versions[1:]
        promoted = sum(v["promoted"] for v in retrained)
        used = sum(v["bars_decided"] > 0 for v in versions)
        line = (
            f"{len(retrained)} retrainings, {promoted} promoted, {used} versions decided bars "
            f"(started with {first})"
        )
    alerts = (summary.get("drift") or {}).get("alerts") or []
    return line + (f"; {len(alerts)} drift alerts" if alerts else "")
