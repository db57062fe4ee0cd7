"""tearsheet.html agrees with summary.json: finite statistics, 365-day annualisation, clean charts.

The figure data Plotly embeds in the page is parsed directly; another test renders the page in
headless Chromium (skipped where Chromium is not installed) and reads the text a user sees. The
backtest's and the evaluation's figures state their annualisation, fee and funding treatment.
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evaluation.plots import figure_captions
from runtime.backtest import run_backtest
from runtime.report_figures import equity_caption
from runtime.reports import DAYS_PER_YEAR
from runtime.reports import tearsheet_html
from runtime.reports import write_report
from runtime.run_config import load_run_config

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def report(synthetic_catalog, trained_model, tmp_path_factory) -> Path:
    """A small backtest's report directory, tearsheet included (the test catalog, ~50 days)."""
    directory = tmp_path_factory.mktemp("tearsheet-report")
    run = load_run_config(
        model_path=str(trained_model), signal_mode="score", min_confidence=0.5, consistency_bars=2
    )
    settings = dataclasses.replace(
        run.backtest, catalog=str(synthetic_catalog), report_dir=str(directory), tearsheet=True
    )
    outcome = run_backtest(dataclasses.replace(run, backtest=settings))
    try:
        write_report(outcome, directory)
    finally:
        outcome.engine.dispose()
    return directory


def figure(html_path: Path) -> tuple[list[dict], dict]:
    """The traces and layout of the Plotly figure embedded in a tearsheet."""
    page = html_path.read_text()
    call = re.search(r'Plotly\.newPlot\(\s*"[^"]+",\s*', page)
    assert call is not None, "no Plotly figure in the page"
    decoder = json.JSONDecoder()
    data, end = decoder.raw_decode(page, call.end())
    layout, _ = decoder.raw_decode(page, page.index("{", end))
    return data, layout


def stats_rows(data: list[dict]) -> dict[str, str]:
    """Metric -> shown value of the 'Performance Statistics' table (section headers too)."""
    tables = [t for t in data if t["type"] == "table"]
    stats = [t for t in tables if any("Returns Statistics" in m for m in t["cells"]["values"][0])]
    assert len(stats) == 1, "no Performance Statistics table"
    metrics, values = stats[0]["cells"]["values"]
    return dict(zip(metrics, values, strict=True))


def test_every_statistic_shown_is_finite_and_sharpe_and_sortino_equal_the_summary(report):
    summary = json.loads((report / "summary.json").read_text())
    rows = stats_rows(figure(report / "tearsheet.html")[0])
    sections = [m for m in rows if m.startswith("<b>")]
    assert sections == [
        "<b>PnL Statistics (USDT)</b>",
        "<b>Returns Statistics</b>",
        "<b>General Statistics</b>",
    ]
    shown = {m: v for m, v in rows.items() if m not in sections}
    for metric, value in shown.items():
        assert math.isfinite(float(value)), f"{metric} shows {value!r}"
    for metric in (
        "PnL (total)", "Win Rate", f"Returns Volatility ({DAYS_PER_YEAR} days)",
        "Average (Return)", f"Sharpe Ratio ({DAYS_PER_YEAR} days)",
        f"Sortino Ratio ({DAYS_PER_YEAR} days)", "Profit Factor", "Risk Return Ratio",
        f"Alpha ({DAYS_PER_YEAR} days)", "Beta", f"Information Ratio ({DAYS_PER_YEAR} days)",
    ):  # fmt: skip
        assert metric in shown, metric
    assert not any("252" in metric for metric in shown)
    assert float(shown[f"Sharpe Ratio ({DAYS_PER_YEAR} days)"]) == round(summary["sharpe"], 4)
    assert float(shown[f"Sortino Ratio ({DAYS_PER_YEAR} days)"]) == round(summary["sortino"], 4)
    assert float(shown["Max Drawdown"]) == round(-summary["max_drawdown"], 4)
    pnl = summary["final_equity"] - summary["starting_equity"]
    assert float(shown["PnL (total)"]) == pytest.approx(pnl, abs=1e-3)


def test_months_outside_the_backtest_are_blank_and_years_are_labels(tmp_path):
    index = pd.date_range("2026-11-15", "2027-02-10", freq="1h", tz="UTC")
    returns = pd.Series(np.random.default_rng(0).normal(0.0, 0.003, len(index)), index=index)
    path = tmp_path / "tearsheet.html"
    path.write_text(tearsheet_html(returns, returns * 0.5, {}, {}, {}, "t", {"Run": "x"}, {}))
    data, layout = figure(path)
    (heatmap,) = [t for t in data if t["type"] == "heatmap"]
    assert heatmap["y"] == ["2026", "2027"]
    assert heatmap["x"] == ["Jan", "Feb", "Nov", "Dec"]
    expected = returns.groupby([returns.index.year, returns.index.month]).apply(
        lambda month: f"{100 * ((1 + month).prod() - 1):.1f}%"
    )
    assert heatmap["text"] == [
        ["", "", expected[(2026, 11)], expected[(2026, 12)]],
        [expected[(2027, 1)], expected[(2027, 2)], "", ""],
    ]
    (yearly,) = [t for t in data if t["type"] == "bar"]
    assert yearly["x"] == ["2026", "2027"]
    axis = "xaxis" + yearly.get("xaxis", "x")[1:]
    assert layout[axis]["type"] == "category"
    assert "NaN" not in json.dumps([heatmap["text"], yearly["x"], yearly["text"]])


def test_backtest_png_and_summary_state_the_same_definitions(report):
    summary = json.loads((report / "summary.json").read_text())
    definitions = summary["definitions"]
    assert f"annualised with {DAYS_PER_YEAR} days" in definitions["annualisation"]
    assert (
        "fee" in definitions["fees"]
        and "position x last bar close x rate" in definitions["funding"]
    )
    data, layout = figure(report / "tearsheet.html")
    run_info = next(t for t in data if t["type"] == "table")["cells"]["values"]
    shown = dict(zip(*run_info, strict=True))
    assert shown["Fees"] == definitions["fees"]
    assert shown["Funding"] == definitions["funding"]
    assert shown["Annualisation"] == definitions["annualisation"]
    assert f"annualised with {DAYS_PER_YEAR} days" in layout["title"]["text"]
    assert equity_caption().count(definitions["annualisation"]) == 1
    for key in ("fees", "funding", "benchmark"):
        assert definitions[key] in equity_caption()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_the_page_rendered_in_chromium_shows_no_nan(report, tmp_path):
    page = (report / "tearsheet.html").resolve().as_uri()
    result = subprocess.run(
        [
            CHROMIUM,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=15000",
            "--dump-dom",
            page,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    page_elements = re.sub(r"<(script|style)\b.*?</\1>", " ", result.stdout, flags=re.DOTALL)
    text = re.sub(r"<[^>]+>", " ", page_elements)  # the text Plotly drew (SVG and HTML)
    rendered = " ".join(html.unescape(text).split())  # Plotly lays words out with &nbsp;
    assert f"Sharpe Ratio ({DAYS_PER_YEAR} days)" in rendered
    assert "PnL Statistics (USDT)" in rendered
    assert re.search(r"\bnan\b", rendered, flags=re.IGNORECASE) is None


def test_evaluation_figure_captions_state_annualisation_fees_and_funding():
    results = {
        "config": {"execution": {"taker_fee": 0.00055}},
        "annualisation": "per-bar returns x sqrt(bars per year), 365.25 days (24/7)",
        "bars_per_year": 8766.0,
    }
    captions = figure_captions(results)
    for name in ("equity_folds.png", "density_filter.png"):
        assert "0.055% taker fee on every position change" in captions[name]
        assert "funding not charged (no rates)" in captions[name]
    assert results["annualisation"] in captions["equity_folds.png"]
    assert "N = 8,766 bars per year" in captions["equity_folds.png"]
    for name in ("ic_folds.png", "pit.png", "calibration.png", "ks_features.png"):
        assert "no fees, funding or annualisation apply" in captions[name]
    # the costs the evaluation charged: the execution style's fee and funding from the catalog
    results["costs"] = {"execution": "maker", "fee": 0.0002, "funding_charged": True}
    caption = figure_captions(results)["equity_folds.png"]
    assert "0.020% maker fee on every position change (post-only limits" in caption
    assert "funding charged from the catalog's rates" in caption
