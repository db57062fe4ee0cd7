"""The same backtest on NautilusTrader 1.231 and 2.0 gives the same orders and final equity.

Runs on either engine: the installed one in this process, the other one in its own venv
(``.venv`` for 1.231, ``.venv-v2`` for 2.0; skipped when that venv is not set up). On 2.0,
run it with ``--noconftest`` (``NAUTILUS=2 make test`` does): tests/conftest.py imports
1.231's API. The market is the test market of tests/conftest.py (8,000 synthetic hourly bars,
the quickly trained model, score mode so that it trades); on 2.0 the 1.231 venv makes it.

Pinned differences: with the default ``slippage_probability`` (0.5) the engines draw the
one-tick slippage from different random generators with the same seed, so the same orders fill
one tick apart on some bars (and a later size may differ by one lot); without slippage every
fill price and the equity each decision saw agree. At the end of the data, an order submitted
on the last bar fills on 2.0 and not on 1.231 (:func:`check_end_of_data`). Maker execution
(post-only limits, the timeout's cancels, maker fills) gives the same orders, fills and equity,
and so does funding (a copy of the catalog with funding rates). run_backtest.py on 2.0 writes
1.231's report, tearsheet.html included (one builder, runtime.tearsheet): both engines'
tearsheets of the same run show the same rows and returns figures.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from runtime.engines import ROOT
from runtime.engines import VENVS
from runtime.engines import engine_major
from runtime.engines import in_other_engine
from runtime.engines import other_python
from runtime.engines import run_job

TICK = 0.1  # the test instrument's price increment (BTCUSDT-LINEAR)
LOT = 0.001  # its size increment
TAKER_FEE = 0.00055  # its taker fee
EQUITY_TOLERANCE = 1e-4  # USDT: fees are rounded to 8 decimals on each fill
EQUITY_DRIFT = 1e-4  # of the starting balance: one-tick fill differences, with slippage
ENGINE_FREE = (
    "strategies.bar_decider",
    "strategies.decision_record",
    "runtime.catalog_files",
    "runtime.engines",
)


def test_the_code_both_bindings_share_imports_no_engine():
    """The per-bar decision, the catalog file reader and the engine plumbing load without
    NautilusTrader, so either engine's binding can use them."""
    code = (
        "import importlib, sys\n"
        f"for name in {ENGINE_FREE!r}: importlib.import_module(name)\n"
        "print('nautilus_trader' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False"


def make_inputs(directory: str) -> None:
    """On 1.231: the conftest market's catalog and model in ``directory``, and job.json
    (score mode, the model's test block), for a 2.0 process that cannot make them."""
    import dataclasses

    from catalogs.catalog import read_bars_frame
    from catalogs.catalog import write_bars
    from catalogs.instruments import make_perpetual
    from catalogs.synthetic import generate_bars
    from runtime.engines import job_from_run
    from runtime.run_config import load_run_config
    from scoremodel.pipeline import fit_model
    from scoremodel.pipeline import save_model
    from tests.conftest import BAR_TYPE
    from tests.conftest import FAST_FIT
    from tests.conftest import TEST_BARS

    root = Path(directory)
    catalog = root / "catalog"
    write_bars(catalog, generate_bars(TEST_BARS, interval="1h", seed=3), make_perpetual(), "1h")
    bars = read_bars_frame(catalog, BAR_TYPE)
    model = save_model(fit_model(bars, BAR_TYPE, FAST_FIT, progress=False), root / "model")
    run = load_run_config(model_path=str(model), signal_mode="score")
    run = dataclasses.replace(run, backtest=dataclasses.replace(run.backtest, catalog=str(catalog)))
    (root / "job.json").write_text(json.dumps(job_from_run(run)))


@pytest.fixture(scope="module")
def job(request, tmp_path_factory) -> dict:
    """The parity backtest's job, made on 1.231 (in this process or in the 1.231 venv)."""
    if other_python() is None:
        pytest.skip(
            f"the other engine's venv {VENVS[3 - engine_major()].name} is not set up; "
            "`NAUTILUS=2 make setup` makes both"
        )
    if engine_major() == 1:
        import dataclasses

        from runtime.engines import job_from_run
        from runtime.run_config import load_run_config

        catalog = request.getfixturevalue("synthetic_catalog")
        model = request.getfixturevalue("trained_model")
        run = load_run_config(model_path=str(model), signal_mode="score")
        run = dataclasses.replace(
            run, backtest=dataclasses.replace(run.backtest, catalog=str(catalog))
        )
        return job_from_run(run)
    directory = tmp_path_factory.mktemp("parity")
    _in_other_engine(
        f"from tests.test_engine_parity import make_inputs; make_inputs({str(directory)!r})"
    )
    return json.loads((directory / "job.json").read_text())


def _in_other_engine(code: str) -> None:
    done = subprocess.run(
        [str(other_python()), "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]


def both_engines(job: dict, tmp_path: Path) -> dict[int, dict]:
    """The job's summary on each engine, keyed by major version."""
    here = run_job(job)
    other = in_other_engine("run", job, tmp_path)
    major = engine_major()
    return {major: here, 3 - major: other}


def without_slippage(job: dict) -> dict:
    job = copy.deepcopy(job)
    job["backtest"]["slippage_probability"] = 0.0
    return job


def orders(summary: dict) -> list[tuple]:
    return [(o["ts"], o["side"], o["quantity"]) for o in summary["orders"]]


def check_end_of_data(v1: dict, v2: dict) -> float:
    """The pinned difference at the end of the data: an order submitted on the last bar stays
    SUBMITTED on 1.231 (its latency runs past the data) and fills on 2.0, which then holds the
    position; every earlier order has the same status. Returns 2.0's taker fees of those
    fills, which is what separates the final balances."""
    last = v1["last_bar_ts"]
    assert v2["last_bar_ts"] == last
    fees = 0.0
    for a, b in zip(v1["orders"], v2["orders"], strict=True):
        if a["ts"] < last:
            assert a["status"] == b["status"], (a, b)
        else:
            assert (a["status"], b["status"]) == ("SUBMITTED", "FILLED"), (a, b)
            fees += b["filled"] * b["avg_px"] * TAKER_FEE
    return fees


def filled_in_both(v1: dict, v2: dict) -> list[tuple[dict, dict]]:
    return [
        (a, b)
        for a, b in zip(v1["orders"], v2["orders"], strict=True)
        if a["filled"] and b["filled"]
    ]


def test_same_orders_fills_and_equity_without_slippage(job, tmp_path):
    runs = both_engines(without_slippage(job), tmp_path)
    v1, v2 = runs[1], runs[2]
    assert v1["engine"].startswith("1.") and v2["engine"].startswith("2.")
    assert len(v1["orders"]) >= 10, "the parity market must trade"
    assert orders(v2) == orders(v1)
    end_fees = check_end_of_data(v1, v2)
    pairs = filled_in_both(v1, v2)
    assert [b["avg_px"] for _, b in pairs] == pytest.approx([a["avg_px"] for a, _ in pairs])
    assert v2["bars_decided"] == v1["bars_decided"] > 0
    assert v2["equity_seen"] == pytest.approx(v1["equity_seen"], abs=EQUITY_TOLERANCE)
    assert v2["final_equity"] == pytest.approx(v1["final_equity"] - end_fees, abs=EQUITY_TOLERANCE)
    # the report's statistics: one function on both engines, over the same recorded equity
    assert v2["statistics"] == pytest.approx(v1["statistics"], rel=1e-6, abs=1e-9)


def test_default_slippage_moves_fills_by_one_tick_only(job, tmp_path):
    runs = both_engines(job, tmp_path)
    v1, v2 = runs[1], runs[2]
    assert job["backtest"]["slippage_probability"] > 0
    assert len(v1["orders"]) >= 10
    # the same decisions on the same bars; a size may differ by one lot, as equity does
    assert [o[:2] for o in orders(v2)] == [o[:2] for o in orders(v1)]
    end_fees = check_end_of_data(v1, v2)
    assert all(
        abs(a["quantity"] - b["quantity"]) <= LOT + 1e-9
        for a, b in zip(v1["orders"], v2["orders"], strict=True)
    )
    shifts = [abs(a["avg_px"] - b["avg_px"]) for a, b in filled_in_both(v1, v2)]
    assert all(shift < 1e-6 or abs(shift - TICK) < 1e-6 for shift in shifts)
    assert any(shift > 1e-6 for shift in shifts), "the generators are expected to differ"
    drift = EQUITY_DRIFT * job["backtest"]["starting_balance"]
    assert v2["equity_seen"] == pytest.approx(v1["equity_seen"], abs=drift)
    assert abs(v2["final_equity"] + end_fees - v1["final_equity"]) <= drift


def maker(job: dict, timeout_bars: int = 2) -> dict:
    """The job with ``execution: maker`` (post-only limits one tick inside the decision bar's
    close, cancelled unfilled after ``timeout_bars`` bars)."""
    job = copy.deepcopy(job)
    job["backtest"]["execution"] = "maker"
    job["backtest"]["maker_timeout_bars"] = timeout_bars
    return job


@pytest.fixture(scope="module")
def maker_runs(job, tmp_path_factory) -> dict[int, dict]:
    """The maker backtest's summary on each engine."""
    return both_engines(maker(job), tmp_path_factory.mktemp("maker"))


def test_maker_execution_gives_the_same_orders_fills_and_equity(maker_runs):
    """No difference to pin: the same post-only orders, the same ones cancelled unfilled by the
    timeout, the same maker fills at the same prices and the same equity on both engines."""
    v1, v2 = maker_runs[1], maker_runs[2]
    assert v1["engine"].startswith("1.") and v2["engine"].startswith("2.")
    statuses = [(o["ts"], o["side"], o["quantity"], o["status"]) for o in v1["orders"]]
    assert len(statuses) >= 20, "the parity market must trade"
    assert [(o["ts"], o["side"], o["quantity"], o["status"]) for o in v2["orders"]] == statuses
    assert {status for *_, status in statuses} == {"FILLED", "CANCELED"}
    pairs = filled_in_both(v1, v2)
    assert [b["avg_px"] for _, b in pairs] == pytest.approx([a["avg_px"] for a, _ in pairs])
    assert v2["maker_stats"] == v1["maker_stats"]
    stats = v1["maker_stats"]
    assert stats["submitted"] == len(statuses)
    assert stats["unfilled"] == sum(status == "CANCELED" for *_, status in statuses) > 0
    assert (v2["fills_maker"], v2["fills_taker"]) == (v1["fills_maker"], 0) == (len(pairs), 0)
    assert v2["fees_maker"] == pytest.approx(v1["fees_maker"], abs=EQUITY_TOLERANCE)
    assert v2["equity_seen"] == pytest.approx(v1["equity_seen"], abs=EQUITY_TOLERANCE)
    assert v2["final_equity"] == pytest.approx(v1["final_equity"], abs=EQUITY_TOLERANCE)
    assert v2["statistics"] == pytest.approx(v1["statistics"], rel=1e-6, abs=1e-9)


def funded_copy(catalog: str, directory: str, instrument_id: str, bar_type: str) -> None:
    """On 1.231: a copy of ``catalog`` in ``directory`` with synthetic funding rates every 8 h
    over its bars (:mod:`catalogs.funding` writes them; 2.0 cannot)."""
    import shutil

    from catalogs.catalog import read_bars_frame
    from catalogs.funding import DEFAULT_FUNDING_INTERVAL
    from catalogs.funding import synthetic_funding
    from catalogs.funding import write_funding

    shutil.copytree(catalog, directory)
    rates = synthetic_funding(read_bars_frame(directory, bar_type))
    write_funding(directory, rates, instrument_id, DEFAULT_FUNDING_INTERVAL)


@pytest.fixture(scope="module")
def funded_job(job, tmp_path_factory) -> dict:
    """The parity job on a copy of its catalog that holds funding rates."""
    directory = str(tmp_path_factory.mktemp("funded") / "catalog")
    arguments = (job["catalog"], directory, job["strategy"]["instrument_id"], job["bar_type"])
    if engine_major() == 1:
        funded_copy(*arguments)
    else:
        _in_other_engine(
            f"from tests.test_engine_parity import funded_copy; funded_copy(*{arguments!r})"
        )
    return {**copy.deepcopy(job), "catalog": directory}


def check_funding_reader(catalog: str, instrument_id: str) -> None:
    """On 1.231: runtime.catalog_files reads the rates catalogs.funding reads (whole and in a
    window)."""
    import pandas as pd

    from catalogs.funding import read_funding
    from runtime.catalog_files import read_catalog_funding

    whole = read_catalog_funding(catalog, instrument_id)
    assert len(whole) > 100 and whole.equals(read_funding(catalog, instrument_id))
    assert whole.attrs["interval"] == pd.Timedelta(hours=8)
    start, end = whole.index[10], whole.index[20]
    window = read_catalog_funding(catalog, instrument_id, start, end)
    assert window.equals(read_funding(catalog, instrument_id, start, end)) and len(window) == 11
    assert [float(rate) for rate in window.attrs["decimals"]] == window.tolist()


def test_the_funding_reader_reads_what_catalogs_funding_reads(funded_job):
    arguments = (funded_job["catalog"], funded_job["strategy"]["instrument_id"])
    if engine_major() == 1:
        check_funding_reader(*arguments)
    else:
        _in_other_engine(
            "from tests.test_engine_parity import check_funding_reader; "
            f"check_funding_reader(*{arguments!r})"
        )


def test_funding_is_charged_the_same_on_both_engines(funded_job, tmp_path):
    """2.0's exchange settles the catalog's rates (FundingRateUpdate due at the funding time,
    the mark price the last close) as 1.231's runtime.funding module charges them."""
    runs = both_engines(without_slippage(funded_job), tmp_path)
    v1, v2 = runs[1], runs[2]
    assert v1["funding_paid"] is not None and abs(v1["funding_paid"]) > 1.0
    assert v2["funding_paid"] == pytest.approx(v1["funding_paid"], abs=EQUITY_TOLERANCE)
    assert orders(v2) == orders(v1)
    end_fees = check_end_of_data(v1, v2)
    assert v2["equity_seen"] == pytest.approx(v1["equity_seen"], abs=EQUITY_TOLERANCE)
    assert v2["final_equity"] == pytest.approx(v1["final_equity"] - end_fees, abs=EQUITY_TOLERANCE)


def run_backtest_on_v2(*args: str) -> subprocess.CompletedProcess:
    """``run_backtest.py`` in the 2.0 venv."""
    return run_backtest_on(2, *args)


def run_backtest_on(major: int, *args: str) -> subprocess.CompletedProcess:
    """``run_backtest.py`` in the venv of NautilusTrader ``major`` (1: 1.231, 2: 2.0)."""
    python = VENVS[major] / "bin" / "python"
    return subprocess.run(
        [str(python), "run_backtest.py", *args], cwd=ROOT, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip


def tearsheet_tables(path: Path) -> list[dict[str, str]]:
    """Metric -> shown text of each table (Run Information, Performance Statistics) of the
    Plotly figure a tearsheet embeds."""
    page = path.read_text()
    call = re.search(r'Plotly\.newPlot\(\s*"[^"]+",\s*', page)
    assert call is not None, "no Plotly figure in the page"
    data, _ = json.JSONDecoder().raw_decode(page, call.end())
    return [
        dict(zip(*trace["cells"]["values"], strict=True))
        for trace in data
        if trace["type"] == "table"
    ]


def run_config(job: dict, path: Path, **backtest: object) -> Path:
    """A run configuration file for ``job``'s strategy on its catalog (YAML is a superset of
    JSON), with the given ``backtest`` settings."""
    strategy = {k: v for k, v in job["strategy"].items() if v is not None}
    path.write_text(
        json.dumps({"strategy": strategy, "backtest": {"catalog": job["catalog"], **backtest}})
    )
    return path


def test_run_backtest_on_v2_writes_the_report_of_the_same_run(job, tmp_path):
    config = run_config(job, tmp_path / "run.yaml")
    report = tmp_path / "report"
    done = run_backtest_on_v2("--config", str(config), "--report-dir", str(report))
    assert done.returncode == 0, done.stderr[-4000:]
    assert "NautilusTrader 2." in done.stdout
    summary = json.loads((report / "summary.json").read_text())
    assert summary["engine"].startswith("NautilusTrader 2.")
    assert summary["orders"] >= 10 and summary["fills"] >= summary["orders"]
    assert {p.name for p in report.iterdir()} == {
        ".scorematching-output",  # output_paths.MARKER: the program's own directory
        "fills.csv",
        "positions.csv",
        "account.csv",
        "diagnostics.parquet",
        "equity.png",
        "summary.json",
        "tearsheet.html",
    }
    assert (report / "equity.png").stat().st_size > 5_000
    assert "Sharpe" in done.stdout and "buy & hold" in done.stdout
    v2 = run_job(job) if engine_major() == 2 else in_other_engine("run", job, tmp_path)
    assert summary["final_equity"] == pytest.approx(v2["final_equity"], abs=EQUITY_TOLERANCE)
    for name in ("sharpe", "sortino", "max_drawdown"):
        assert summary[name] == pytest.approx(v2["statistics"][name], rel=1e-9), name
    assert summary["fills_taker"] == summary["fills"] and summary["fees"] > 0
    assert summary["funding_paid"] is None and summary["funding"].startswith("not charged")
    # the tearsheet (backtest.tearsheet defaults to true): self-contained, the same figures
    assert summary["tearsheet"] == str(report / "tearsheet.html")
    assert (report / "tearsheet.html").stat().st_size > 1_000_000  # plotly.js embedded
    run_info, stats = tearsheet_tables(report / "tearsheet.html")
    assert float(stats["Sharpe Ratio (365 days)"]) == round(v2["statistics"]["sharpe"], 4)
    assert float(stats["Sortino Ratio (365 days)"]) == round(v2["statistics"]["sortino"], 4)
    assert float(stats["Max Drawdown"]) == round(-v2["statistics"]["max_drawdown"], 4)
    pnl = summary["final_equity"] - summary["starting_equity"]
    assert float(stats["PnL (total)"]) == pytest.approx(pnl, abs=1e-3)
    assert run_info["Total orders"] == f"{summary['orders']:_}"
    assert run_info["Funding paid (USDT)"] == "not charged (no funding rates)"


def test_run_backtest_on_v2_reports_the_tearsheet_figures_of_1231(job, tmp_path):
    """The same run (no slippage) through run_backtest.py on each engine: the two tearsheets
    show the same rows in the same order and the same returns figures (the recorded equity is
    the same); they differ where the engines do (run id, the fill at the end of the data)."""
    config = run_config(job, tmp_path / "run.yaml", slippage_probability=0.0)
    tables = {}
    for major in (1, 2):
        report = tmp_path / f"report-{major}"
        done = run_backtest_on(major, "--config", str(config), "--report-dir", str(report))
        assert done.returncode == 0, done.stderr[-4000:]
        tables[major] = tearsheet_tables(report / "tearsheet.html")
    (info1, stats1), (info2, stats2) = tables[1], tables[2]
    assert list(info2) == list(info1) and list(stats2) == list(stats1)
    for metric in (
        "Sharpe Ratio (365 days)", "Sortino Ratio (365 days)", "Returns Volatility (365 days)",
        "Average (Return)", "Max Drawdown", "Alpha (365 days)", "Beta",
    ):  # fmt: skip
        assert stats2[metric] == stats1[metric], metric
    for row in ("Backtest start", "Backtest end", "Bars (decided)", "Total orders", "Execution"):
        assert info2[row] == info1[row], row
    assert info2["Run ID"] != info1["Run ID"]


def test_run_backtest_on_v2_reports_maker_execution(job, maker_runs, tmp_path):
    """``backtest.execution: maker`` runs on 2.0 (it was refused) and the report counts the
    post-only orders, the unfilled ones and the maker fills of the same run."""
    config = run_config(job, tmp_path / "run.yaml", execution="maker", maker_timeout_bars=2)
    report = tmp_path / "report"
    done = run_backtest_on_v2("--config", str(config), "--report-dir", str(report))
    assert done.returncode == 0, done.stderr[-4000:]
    assert "(maker execution)" in done.stdout and "post-only" in done.stdout
    summary = json.loads((report / "summary.json").read_text())
    v2 = maker_runs[2]
    assert summary["execution"] == "maker"
    assert summary["maker_orders"] == v2["maker_stats"]["submitted"] == summary["orders"]
    assert summary["unfilled_orders"] == v2["maker_stats"]["unfilled"] > 0
    assert summary["post_only_rejected"] == summary["orders_left_open"] == 0
    assert (summary["fills_maker"], summary["fills_taker"]) == (v2["fills_maker"], 0)
    assert summary["fees_maker"] == pytest.approx(v2["fees_maker"], abs=EQUITY_TOLERANCE)
    assert summary["final_equity"] == pytest.approx(v2["final_equity"], abs=EQUITY_TOLERANCE)


def test_run_backtest_on_v2_refuses_a_missing_catalog_in_one_line(job, tmp_path):
    before = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in tmp_path.iterdir())
    report = tmp_path / "report"
    done = run_backtest_on_v2(
        "--catalog", str(tmp_path / "missing"), "--model", job["strategy"]["model_path"],
        "--report-dir", str(report),
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: catalog ")
    assert "does not exist" in lines[0] and "Traceback" not in done.stderr
    after = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in tmp_path.iterdir())
    assert after == before and not report.exists()


def test_retraining_gives_the_same_versions_and_decisions_on_both_engines(job, tmp_path):
    """The same retraining schedule through run_backtest.py on each engine: the same model
    versions (content ids: the same bars and recipe give the same weights), swapped in at the
    same bars, and the same decision on every bar."""
    config = run_config(job, tmp_path / "run.yaml", slippage_probability=0.0)
    text = json.loads(config.read_text())
    text["retrain"] = {
        "every": 300,
        "window": 3000,
        "min_bars": 1000,
        "delay_bars": 2,
        "epochs": 2,
    }
    config.write_text(json.dumps(text))
    runs = {}
    for major in (1, 2):
        report = tmp_path / f"report-{major}"
        done = run_backtest_on(major, "--config", str(config), "--report-dir", str(report))
        assert done.returncode == 0, done.stderr[-4000:]
        summary = json.loads((report / "summary.json").read_text())
        runs[major] = (summary, pd.read_parquet(report / "diagnostics.parquet"))
    (s1, d1), (s2, d2) = runs[1], runs[2]
    assert [v["id"] for v in s1["model_versions"]] == [v["id"] for v in s2["model_versions"]]
    assert len([v for v in s1["model_versions"] if v["bars_decided"]]) >= 2
    assert d1.index.equals(d2.index)
    assert d1["model_version"].tolist() == d2["model_version"].tolist()
    assert d1["blocked_by"].tolist() == d2["blocked_by"].tolist()
    np.testing.assert_allclose(d1["target_qty"], d2["target_qty"], rtol=0, atol=1e-9)
