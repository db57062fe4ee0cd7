"""Funding: catalog storage and validation, the synthetic series, the engine's FundingModule
(against a hand computation), the report's figures, `fetch-funding` through the Bybit
emulator with real ccxt, and `import-funding` of timestamp,rate CSV files (the shared real
ones when ../shared/data/real is there)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from nautilus_trader.backtest.engine import BacktestEngine
from nautilus_trader.backtest.models import FillModel
from nautilus_trader.config import BacktestEngineConfig
from nautilus_trader.config import LoggingConfig
from nautilus_trader.config import StrategyConfig
from nautilus_trader.model.data import Bar
from nautilus_trader.model.data import BarType
from nautilus_trader.model.enums import AccountType
from nautilus_trader.model.enums import OmsType
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.identifiers import Venue
from nautilus_trader.model.objects import Money
from nautilus_trader.trading.strategy import Strategy

from catalogs import generate_bars
from catalogs import make_perpetual
from catalogs import open_catalog
from catalogs import write_bars
from catalogs.funding import FundingValidationError
from catalogs.funding import download_bybit_funding
from catalogs.funding import read_funding
from catalogs.funding import synthetic_funding
from catalogs.funding import validate_funding
from catalogs.funding import write_funding
from catalogs.instruments import BYBIT_LINEAR_SPECS
from runtime.funding import FundingModule
from tests.bybit_emulator import EmulatorConfig
from tests.bybit_emulator import EmulatorServer
from tests.helpers import snapshot

REPO_ROOT = Path(__file__).resolve().parents[1]
INSTRUMENT = "BTCUSDT-LINEAR.BYBIT"
BAR_TYPE = "BTCUSDT-LINEAR.BYBIT-1-HOUR-LAST-EXTERNAL"
EIGHT_HOURS = pd.Timedelta(hours=8)
FUNDING_PATH = "/v5/market/funding/history"
T0_MS = 1_704_067_200_000  # 2024-01-01 00:00 UTC


def rates_at(times: list[str], values: list[float]) -> pd.Series:
    return pd.Series(values, index=pd.DatetimeIndex(times, tz="UTC"), name="rate")


# -- storage and validation ----------------------------------------------------------------------


def test_funding_round_trips_through_the_catalog_and_appends_only_new_times(tmp_path):
    rates = rates_at(
        ["2024-01-01 00:00", "2024-01-01 08:00", "2024-01-01 16:00"], [0.0001, -0.00012345, 0.003]
    )
    assert write_funding(tmp_path, rates, INSTRUMENT, EIGHT_HOURS) == 3
    stored = read_funding(tmp_path, INSTRUMENT)
    pd.testing.assert_series_equal(stored, rates.astype(float), check_freq=False)
    assert stored.attrs["interval"] == EIGHT_HOURS
    assert (tmp_path / "data" / "funding_rate_update" / INSTRUMENT).is_dir()

    more = pd.concat([rates, rates_at(["2024-01-02 00:00"], [0.0002])])
    assert write_funding(tmp_path, more, INSTRUMENT, EIGHT_HOURS) == 1  # only the new time
    assert write_funding(tmp_path, more, INSTRUMENT, EIGHT_HOURS) == 0  # idempotent
    assert read_funding(tmp_path, INSTRUMENT).tolist() == [0.0001, -0.00012345, 0.003, 0.0002]
    window = read_funding(tmp_path, INSTRUMENT, "2024-01-01 08:00", "2024-01-01 16:00")
    assert window.tolist() == [-0.00012345, 0.003]


def test_validation_drops_equal_duplicates_refuses_clashes_and_off_grid_times_reports_gaps():
    clean = validate_funding(
        rates_at(
            ["2024-01-01 08:00", "2024-01-01 00:00", "2024-01-01 08:00", "2024-01-02 08:00"],
            [0.0002, 0.0001, 0.0002, 0.0003],
        ),
        EIGHT_HOURS,
    )
    assert clean.rates.tolist() == [0.0001, 0.0002, 0.0003]  # sorted, duplicate dropped
    assert clean.duplicates_dropped == 1
    assert clean.gaps == [
        (pd.Timestamp("2024-01-01 08:00", tz="UTC"), pd.Timestamp("2024-01-02 08:00", tz="UTC"), 2)
    ]
    with pytest.raises(FundingValidationError, match="different rates"):
        validate_funding(rates_at(["2024-01-01", "2024-01-01"], [0.0001, 0.0002]), EIGHT_HOURS)
    with pytest.raises(FundingValidationError, match="not on the 8 h grid"):
        validate_funding(rates_at(["2024-01-01 04:00"], [0.0001]), EIGHT_HOURS)
    with pytest.raises(FundingValidationError, match="not numbers"):
        validate_funding(rates_at(["2024-01-01"], [float("nan")]), EIGHT_HOURS)


def test_synthetic_funding_is_persistent_leans_with_the_trend_and_stays_within_caps():
    bars = generate_bars(6_000, interval="1h", seed=5)
    rates = synthetic_funding(bars, seed=5)
    assert len(rates) == pytest.approx(6_000 / 8, abs=1)
    assert (rates.index.asi8 % EIGHT_HOURS.value == 0).all()
    assert rates.abs().max() <= 0.00375
    values = rates.to_numpy()
    assert np.corrcoef(values[1:], values[:-1])[0, 1] > 0.5  # persistent
    close = bars["close"].reindex(rates.index, method="ffill")
    earlier = bars["close"].reindex(rates.index - pd.Timedelta(days=3), method="ffill")
    trend = np.nan_to_num(np.log(close.to_numpy() / earlier.to_numpy()))
    assert np.corrcoef(trend, values)[0, 1] > 0.3  # longs pay more in rallies
    assert 0 < (values > 0).mean() < 1  # both signs occur


# -- the engine's funding module -----------------------------------------------------------------


class ScheduleConfig(StrategyConfig, frozen=True):
    instrument_id: str
    bar_type: str
    schedule: dict[int, float]  # bar number -> target position from that bar on


class Schedule(Strategy):
    """Trades to a fixed target position at given bars (market orders)."""

    def __init__(self, config: ScheduleConfig) -> None:
        super().__init__(config)
        self.bar_number = 0

    def on_start(self) -> None:
        self.subscribe_bars(BarType.from_str(self.config.bar_type))

    def on_bar(self, bar: Bar) -> None:
        target = self.config.schedule.get(self.bar_number)
        self.bar_number += 1
        if target is None:
            return
        instrument = self.cache.instrument(bar.bar_type.instrument_id)
        position = sum(p.signed_qty for p in self.cache.positions_open())
        change = target - position
        if change:
            self.submit_order(
                self.order_factory.market(
                    instrument.id,
                    OrderSide.BUY if change > 0 else OrderSide.SELL,
                    instrument.make_qty(abs(change)),
                )
            )


def run_schedule(
    catalog: Path, schedule: dict[int, float], rates: pd.Series | None
) -> tuple[float, FundingModule | None, pd.DataFrame]:
    """Final balance and the funding module of a run trading ``schedule`` on the bars."""
    instrument = make_perpetual("BTCUSDT")
    bars = open_catalog(catalog).bars([BAR_TYPE])
    closes = pd.Series(
        [b.close.as_double() for b in bars],
        index=pd.DatetimeIndex([b.ts_event for b in bars], tz="UTC"),
    )
    module = FundingModule(instrument.id, rates, closes) if rates is not None else None
    engine = BacktestEngine(BacktestEngineConfig(logging=LoggingConfig(log_level="ERROR")))
    engine.add_venue(
        Venue("BYBIT"),
        OmsType.NETTING,
        AccountType.MARGIN,
        starting_balances=[Money(100_000, instrument.settlement_currency)],
        base_currency=None,
        default_leverage=Decimal(10),
        modules=[module] if module is not None else [],
        fill_model=FillModel(prob_slippage=0.0),
        bar_execution=True,
    )
    engine.add_instrument(instrument)
    engine.add_data(bars)
    engine.add_strategy(
        Schedule(ScheduleConfig(instrument_id=INSTRUMENT, bar_type=BAR_TYPE, schedule=schedule))
    )
    engine.run()
    account = engine.portfolio.account(Venue("BYBIT"))
    balance = account.balance_total(instrument.settlement_currency).as_double()
    engine.dispose()
    return balance, module, closes.to_frame("close")


@pytest.fixture(scope="module")
def hour_catalog(tmp_path_factory) -> Path:
    """72 one-hour bars closing 2024-01-01 01:00 .. 2024-01-04 00:00."""
    path = tmp_path_factory.mktemp("funding-catalog")
    bars = generate_bars(72, interval="1h", seed=2)
    bars.index = pd.date_range("2024-01-01 01:00", periods=72, freq="1h", tz="UTC")
    write_bars(path, bars, make_perpetual("BTCUSDT"), "1h")
    return path


def test_funding_module_matches_a_hand_computation_long_and_short(hour_catalog):
    # funding every 8 h; positive and negative rates on both a long and a short
    times = pd.date_range("2024-01-01 08:00", "2024-01-03 16:00", freq="8h", tz="UTC")
    rates = pd.Series(
        [0.0001, -0.0002, 0.0003, -0.0001, 0.0005, -0.0004, 0.0002, 0.0001], index=times
    )
    # bar n closes at 01:00 + n hours; market orders fill at the close of the bar that placed
    # them, off the funding times: long 2 from 02:00, short 1 from 20:00, flat from
    # 2024-01-02 20:00
    schedule = {1: 2.0, 19: -1.0, 43: 0.0}
    with_funding, module, closes = run_schedule(hour_catalog, schedule, rates)
    without, _, _ = run_schedule(hour_catalog, schedule, None)

    long_from, short_from, flat_from = pd.to_datetime(
        ["2024-01-01 02:00", "2024-01-01 20:00", "2024-01-02 20:00"], utc=True
    )

    def held(at: pd.Timestamp) -> float:
        if long_from < at < short_from:
            return 2.0
        return -1.0 if short_from < at < flat_from else 0.0

    expected = [(t, held(t) * closes["close"][t] * r) for t, r in rates.items() if held(t) != 0.0]
    # 08:00 long +rate pays, 16:00 long -rate receives, 00:00 short +rate receives,
    # 08:00 short -rate pays, 16:00 short +rate receives; flat afterwards: nothing
    assert len(expected) == 5
    assert [pd.Timestamp(p.ts_ns, tz="UTC") for p in module.payments] == [t for t, _ in expected]
    assert [p.paid for p in module.payments] == pytest.approx([paid for _, paid in expected])
    assert [np.sign(p.paid) for p in module.payments] == [1, -1, -1, 1, -1]
    assert module.funding_paid == pytest.approx(sum(paid for _, paid in expected))
    assert without - with_funding == pytest.approx(module.funding_paid, abs=0.01)


def test_nothing_is_charged_while_flat(hour_catalog):
    times = pd.date_range("2024-01-01 08:00", "2024-01-03 16:00", freq="8h", tz="UTC")
    rates = pd.Series(0.001, index=times)
    balance, module, _ = run_schedule(hour_catalog, {}, rates)
    assert module.payments == [] and module.funding_paid == 0.0
    assert balance == 100_000.0


# -- the backtest report -------------------------------------------------------------------------


def test_the_report_says_funding_was_not_charged_without_rates(run_config):
    from runtime.backtest import run_backtest
    from runtime.reports import summarise

    outcome = run_backtest(run_config())
    try:
        summary = summarise(outcome)
    finally:
        outcome.engine.dispose()
    assert summary["funding_paid"] is None and summary["funding_charges"] == 0
    assert summary["funding"].startswith("not charged:")
    assert "fetch-funding --symbol BTCUSDT" in summary["funding"]


def test_the_report_shows_funding_paid_and_fees_side_by_side(
    synthetic_catalog, run_config, tmp_path
):
    from runtime.backtest import run_backtest
    from runtime.reports import write_report

    catalog = tmp_path / "catalog"
    shutil.copytree(synthetic_catalog, catalog)
    bars = open_catalog(catalog).bars([BAR_TYPE])
    closes = pd.DataFrame(
        {"close": [b.close.as_double() for b in bars]},
        index=pd.DatetimeIndex([b.ts_event for b in bars], tz="UTC"),
    )
    write_funding(catalog, synthetic_funding(closes, seed=1), INSTRUMENT, EIGHT_HOURS)
    run = run_config(backtest={"catalog": str(catalog), "tearsheet": True})
    outcome = run_backtest(run)
    try:
        summary = write_report(outcome, run.backtest.report_dir)
        payments = outcome.funding.payments
    finally:
        outcome.engine.dispose()
    assert summary["funding_charges"] == len(payments) > 0
    assert summary["funding_paid"] == pytest.approx(sum(p.paid for p in payments))
    assert summary["funding"].startswith("charged from the catalog's funding rates")
    assert summary["fees"] == pytest.approx(summary["fees_maker"] + summary["fees_taker"])
    stored = json.loads((Path(run.backtest.report_dir) / "summary.json").read_text())
    assert stored["funding_paid"] == pytest.approx(summary["funding_paid"])
    tearsheet = (Path(run.backtest.report_dir) / "tearsheet.html").read_text()
    assert "Funding paid (USDT)" in tearsheet and "Fees (USDT)" in tearsheet


# -- fetch-funding through the Bybit emulator (real ccxt) ----------------------------------------


@pytest.fixture
def emu():
    # the market clock stands at 2024-01-04: no funding rows after it
    anchor = T0_MS + 3 * 86_400_000
    server = EmulatorServer(EmulatorConfig(history_bars=3_000, anchor_ms=anchor)).start()
    yield server
    server.stop()


def funding_windows(emu: EmulatorServer) -> list[tuple[int, int, int]]:
    return [
        (int(r.query["startTime"]), int(r.query["endTime"]), int(r.query["limit"]))
        for r in emu.requests()
        if r.path == FUNDING_PATH and r.ret_code == 0
    ]


def test_fetch_funding_pages_by_200_stores_every_rate_and_resumes(emu, tmp_path):
    catalog = tmp_path / "catalog"
    start, end = pd.Timestamp("2023-09-01", tz="UTC"), pd.Timestamp("2024-01-01", tz="UTC")
    report = download_bybit_funding(catalog, "BTCUSDT", start, end, base_url=emu.base_url_http)

    expected = pd.date_range(start, end, freq="8h", tz="UTC")  # 367 funding times
    stored = read_funding(catalog, INSTRUMENT)
    assert list(stored.index) == list(expected)
    assert (stored == 0.0001).all()  # the emulator's rate before it ran
    assert stored.attrs["interval"] == EIGHT_HOURS  # from the instrument's fundingInterval
    assert report.written == len(expected) and report.gaps == []
    windows = funding_windows(emu)
    assert len(windows) == 2 and all(limit == 200 for *_, limit in windows)
    assert windows[0][1] - windows[0][0] == 199 * 8 * 3_600_000  # 200 funding times a page

    again = download_bybit_funding(
        catalog, "BTCUSDT", start, end + pd.Timedelta(days=2), base_url=emu.base_url_http
    )
    assert again.resumed_from == end and again.written == 6  # only the new times
    assert read_funding(catalog, INSTRUMENT).index[-1] == end + pd.Timedelta(days=2)


def run_fetch_funding(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "catalogs", "fetch-funding", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_fetch_funding_command_writes_the_catalog(emu, tmp_path):
    catalog = tmp_path / "catalog"
    result = run_fetch_funding(
        "--catalog", str(catalog), "--base-url", emu.base_url_http,
        "--start", "2023-12-01", "--end", "2023-12-31",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "wrote 91 funding rate(s)" in result.stdout
    assert len(read_funding(catalog, INSTRUMENT)) == 91


def test_fetch_funding_errors_are_one_line_and_write_nothing(emu, tmp_path):
    catalog = tmp_path / "catalog"
    emu.fail_path(FUNDING_PATH, 10001, "params error: symbol invalid")
    result = run_fetch_funding(
        "--catalog", str(catalog), "--base-url", emu.base_url_http, "--start", "2023-12-01"
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert "Bybit rejected the request while fetching BTCUSDT funding rates" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (catalog / "data").exists()

    too_many = run_fetch_funding("--catalog", str(catalog), "--limit", "201")
    assert too_many.returncode == 2
    assert "error: --limit 201 is more than Bybit serves per request" in too_many.stderr
    assert "Traceback" not in too_many.stderr


# -- synthetic funding in synthetic catalogs -----------------------------------------------------


def test_synth_writes_a_funding_series_with_its_bars(tmp_path, capsys):
    from catalogs.cli import main

    assert main(["synth", "--catalog", str(tmp_path), "--interval", "1h", "--bars", "200"]) == 0
    assert "wrote 25 synthetic funding rates (every 8 h)" in capsys.readouterr().out
    rates = read_funding(tmp_path, INSTRUMENT)
    assert len(rates) == 25 and rates.attrs["interval"] == EIGHT_HOURS


def test_the_embedded_default_catalog_gets_its_funding_with_its_bars(tmp_path, monkeypatch):
    from catalogs.catalog import read_bars_frame
    from runtime.embedded_default import DEFAULT_BAR_TYPE
    from runtime.embedded_default import DEFAULT_CATALOG
    from runtime.embedded_default import prepare_default_catalog

    monkeypatch.chdir(tmp_path)
    prepare_default_catalog(bars=100, seed=7)
    bars = read_bars_frame(DEFAULT_CATALOG, DEFAULT_BAR_TYPE)
    rates = read_funding(DEFAULT_CATALOG, INSTRUMENT)
    assert len(bars) == 100 and len(rates) == 12  # every 8 h within the 100 bars
    pd.testing.assert_series_equal(rates, synthetic_funding(bars, seed=7), check_freq=False)


# -- import-funding: timestamp,rate CSV files ----------------------------------------------------

REAL_DATA = REPO_ROOT.parent / "shared" / "data" / "real"
HEADER = "timestamp,rate\n"
BASE_ROWS = (
    "2024-01-01T00:00:00Z,0.0001\n"
    "2024-01-01T08:00:00Z,-0.00012345\n"
    "2024-01-01T16:00:00Z,0.003\n"
    "2024-01-02T00:00:00Z,-8.207e-05\n"
)
BASE_RATES = [0.0001, -0.00012345, 0.003, -0.00008207]
XRP = "XRPUSDT-LINEAR.BYBIT"


def import_funding(capsys, *args: str) -> tuple[int, str, str]:
    from catalogs.cli import main

    status = main(["import-funding", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def funding_csv(tmp_path: Path, text: str, name: str = "funding.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_import_funding_writes_the_rates_and_a_rerun_writes_nothing(tmp_path, capsys):
    catalog = tmp_path / "catalog"
    csv = funding_csv(tmp_path, HEADER + BASE_ROWS + "2024-01-02T00:00:00Z,-8.207e-05\n")
    args = (str(csv), "--symbol", "XRPUSDT", "--catalog", str(catalog))

    status, out, err = import_funding(capsys, *args)
    assert status == 0, err
    assert "XRPUSDT-LINEAR.BYBIT funding every 8 h (the median spacing of the file's times)" in out
    assert "wrote 4 funding rate(s), 2024-01-01 00:00 UTC .. 2024-01-02 00:00 UTC" in out
    assert "dropped 1 duplicate row(s)" in out and "no gaps" in out
    assert "stored the instrument definition XRPUSDT-LINEAR.BYBIT" in out
    stored = read_funding(catalog, XRP)
    assert stored.tolist() == BASE_RATES
    assert list(stored.index) == list(pd.date_range("2024-01-01", periods=4, freq="8h", tz="UTC"))
    assert stored.attrs["interval"] == EIGHT_HOURS
    assert [u.next_funding_ns - u.ts_event for u in funding_updates_of(catalog)] == [
        EIGHT_HOURS.value
    ] * 4
    from catalogs.catalog import list_instrument_ids

    assert list_instrument_ids(catalog) == [XRP]

    before = snapshot(catalog)
    status, out, err = import_funding(capsys, *args)
    assert status == 0, err
    assert "wrote 0 funding rate(s): up to date (last stored 2024-01-02 00:00 UTC)" in out
    assert "skipped 4 already stored" in out
    assert snapshot(catalog) == before  # idempotent: not a byte written

    more = funding_csv(tmp_path, HEADER + BASE_ROWS + "2024-01-02T16:00:00Z,0.0002\n", "more.csv")
    status, out, err = import_funding(capsys, str(more), "--symbol", "XRPUSDT", "--catalog",
                                      str(catalog), "--interval", "8h")  # fmt: skip
    assert status == 0, err
    assert "funding every 8 h (--interval)" in out
    assert "wrote 1 funding rate(s), 2024-01-02 16:00 UTC .. 2024-01-02 16:00 UTC" in out
    assert "gaps: 1 (1 missing funding times)" in out
    assert read_funding(catalog, XRP).tolist() == [*BASE_RATES, 0.0002]


def funding_updates_of(catalog: Path) -> list:
    from catalogs.funding import funding_updates

    return funding_updates(catalog, XRP)


def test_import_funding_subprocess_prints_what_it_wrote(tmp_path):
    csv = funding_csv(tmp_path, HEADER + BASE_ROWS)
    result = subprocess.run(
        [sys.executable, "-m", "catalogs", "import-funding", str(csv), "--symbol", "XRPUSDT",
         "--catalog", str(tmp_path / "catalog")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "wrote 4 funding rate(s)" in result.stdout
    assert f"catalog: {(tmp_path / 'catalog').resolve()}" in result.stdout


# (name, CSV text or a special path, extra arguments, a phrase of the one error line, whether
# the refusal needs the stored rates of the populated catalog)
BAD_FUNDING = [
    ("missing file", None, [], "CSV file not found", False),
    ("a directory", "<dir>", [], "is not a regular file", False),
    ("empty file", "", [], "is empty; expected a header line and funding rows", False),
    ("header only", HEADER, [], "has a header but no data rows", False),
    (
        "no rate column",
        "timestamp,value\n2024-01-03T00:00:00Z,0.1\n",
        [],
        "no 'rate' column found; columns in the file: 'timestamp', 'value'",
        False,
    ),
    (
        "no time column",
        "when,rate\n2024-01-03T00:00:00Z,0.1\n",
        [],
        "no 'timestamp' column found",
        False,
    ),
    (
        "bad timestamp",
        HEADER + "2024-01-03T00:00:00Z,0.1\nyesterday,0.1\n",
        [],
        "could not be parsed as ISO 8601 date-times: line 3: 'yesterday'",
        False,
    ),
    (
        "non-numeric rate",
        HEADER + "2024-01-03T00:00:00Z,0.1\n2024-01-03T08:00:00Z,abc\n",
        [],
        "1 value(s) are empty or not numbers: line 3: 'abc'",
        False,
    ),
    (
        "empty rate",
        HEADER + "2024-01-03T00:00:00Z,\n2024-01-03T08:00:00Z,0.1\n",
        [],
        "line 2: <empty>",
        False,
    ),
    (
        "NaN rate",
        HEADER + "2024-01-03T00:00:00Z,NaN\n2024-01-03T08:00:00Z,0.1\n",
        [],
        "line 2: 'NaN'",
        False,
    ),
    (
        "infinite rate",
        HEADER + "2024-01-03T00:00:00Z,0.1\n2024-01-03T08:00:00Z,-inf\n",
        [],
        "1 rate(s) are not finite: line 3",
        False,
    ),
    (
        "unsorted",
        HEADER + "2024-01-03T08:00:00Z,0.1\n2024-01-03T00:00:00Z,0.1\n2024-01-03T16:00:00Z,0.1\n",
        [],
        "the rows must be sorted by time: line 3",
        False,
    ),
    (
        "duplicates that disagree",
        HEADER + "2024-01-03T00:00:00Z,0.1\n2024-01-03T00:00:00Z,0.2\n2024-01-03T08:00:00Z,0.1\n",
        [],
        "1 funding time(s) are given twice with different rates: line 2",
        False,
    ),
    (
        "off the grid",
        HEADER + "2024-01-03T00:00:00Z,0.1\n2024-01-03T08:00:00Z,0.1\n"
        "2024-01-03T16:00:00Z,0.1\n2024-01-04T04:00:00Z,0.1\n",
        [],
        "1 funding time(s) are not on the 8 h grid (the interval inferred from the file's median "
        "spacing): line 5",
        False,
    ),
    (
        "off the given grid",
        HEADER + "2024-01-03T00:00:00Z,0.1\n2024-01-03T08:00:00Z,0.1\n2024-01-03T12:00:00Z,0.1\n",
        ["--interval", "8h"],
        "not on the 8 h grid (the interval given): line 4",
        False,
    ),
    (
        "an interval the file never has",
        HEADER + "2024-01-03T00:00:00Z,0.1\n2024-01-03T08:00:00Z,0.1\n",
        ["--interval", "4h"],
        "no two funding times in the file are 4 h apart",
        False,
    ),
    (
        "one row, no interval",
        HEADER + "2024-01-03T00:00:00Z,0.1\n",
        [],
        "cannot infer the funding interval from a single funding time",
        False,
    ),
    (
        "unknown symbol",
        HEADER + BASE_ROWS,
        ["--symbol", "PEPEUSDT"],
        "No built-in Bybit linear spec for 'PEPEUSDT'",
        False,
    ),
    (
        "a stored rate differs",
        HEADER + BASE_ROWS.replace("0.003", "0.0031") + "2024-01-02T08:00:00Z,0.1\n",
        [],
        "1 funding rate(s) differ from the ones stored for XRPUSDT-LINEAR.BYBIT (2024-01-01 16:00 "
        "UTC: stored 0.003 vs new 0.0031)",
        True,
    ),
    (
        "before the stored rates",
        HEADER + "2023-12-31T16:00:00Z,0.1\n" + BASE_ROWS,
        [],
        "1 funding time(s) lie at or before the last stored one of XRPUSDT-LINEAR.BYBIT "
        "(2024-01-02 00:00 UTC) where nothing is stored (first: 2023-12-31 16:00 UTC); the catalog "
        "is append-only",
        True,
    ),
    (
        "another interval than the stored one",
        HEADER + "2024-01-02T04:00:00Z,0.1\n2024-01-02T08:00:00Z,0.1\n2024-01-02T12:00:00Z,0.1\n",
        [],
        "the catalog stores XRPUSDT-LINEAR.BYBIT funding every 8 h, not every 4 h",
        True,
    ),
]


@pytest.mark.parametrize(
    ("text", "extra", "phrase", "needs_stored"),
    [case[1:] for case in BAD_FUNDING],
    ids=[case[0] for case in BAD_FUNDING],
)
def test_import_funding_refuses_bad_input_in_one_line_and_writes_nothing(
    tmp_path, capsys, text, extra, phrase, needs_stored
):
    populated = tmp_path / "populated"
    status, _, err = import_funding(
        capsys, str(funding_csv(tmp_path, HEADER + BASE_ROWS, "base.csv")), "--symbol",
        "XRPUSDT", "--catalog", str(populated),
    )  # fmt: skip
    assert status == 0, err
    if text is None:
        csv = tmp_path / "absent.csv"
    elif text == "<dir>":
        csv = tmp_path / "a-directory"
        csv.mkdir()
    else:
        csv = funding_csv(tmp_path, text, "bad.csv")
    symbol = [] if "--symbol" in extra else ["--symbol", "XRPUSDT"]
    catalogs = [populated] if needs_stored else [populated, tmp_path / "new-catalog"]
    for catalog in catalogs:
        before = snapshot(catalog)
        status, out, err = import_funding(
            capsys, str(csv), *symbol, *extra, "--catalog", str(catalog)
        )
        assert status == 2, out
        assert err.count("\n") == 1 and err.startswith("error: "), err
        assert phrase in err
        assert "Traceback" not in err
        assert snapshot(catalog) == before  # nothing written (a new catalog not even created)
    assert read_funding(populated, XRP).tolist() == BASE_RATES


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files without read permission")
def test_import_funding_of_an_unreadable_file_gives_one_line(tmp_path, capsys):
    csv = funding_csv(tmp_path, HEADER + BASE_ROWS)
    csv.chmod(0)
    status, _, err = import_funding(capsys, str(csv), "--catalog", str(tmp_path / "catalog"))
    assert status == 2
    assert err.startswith("error: cannot read") and err.count("\n") == 1
    assert not (tmp_path / "catalog").exists()


def test_import_funding_checks_the_catalog_path_first(tmp_path, capsys):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("keep me")
    csv = funding_csv(tmp_path, HEADER + BASE_ROWS)
    before = snapshot(tmp_path / "notes")
    status, _, err = import_funding(capsys, str(csv), "--catalog", str(tmp_path / "notes"))
    assert status == 2 and "is not a data catalog but a directory of other files" in err
    status, _, err = import_funding(capsys, str(csv), "--catalog", "s3://bucket/catalog")
    assert status == 2 and "not s3://bucket/catalog" in err
    assert snapshot(tmp_path / "notes") == before


@pytest.mark.realdata
@pytest.mark.skipif(not REAL_DATA.is_dir(), reason=f"shared data not found at {REAL_DATA}")
@pytest.mark.parametrize("symbol", ["LTCUSDT", "XRPUSDT", "ADAUSDT"])
def test_import_funding_of_the_shared_binance_funding_files(tmp_path, capsys, symbol):
    path = REAL_DATA / f"{symbol}_funding_binance-usdm-perp.csv"
    expected = pd.read_csv(path)
    catalog = tmp_path / "catalog"
    status, out, err = import_funding(capsys, str(path), "--symbol", symbol, "--catalog",
                                      str(catalog))  # fmt: skip
    assert status == 0, err
    assert f"wrote {len(expected):,} funding rate(s)" in out and "no gaps" in out
    stored = read_funding(catalog, f"{symbol}-LINEAR.BYBIT")
    assert stored.attrs["interval"] == EIGHT_HOURS
    assert list(stored.index) == list(pd.to_datetime(expected["timestamp"], utc=True))
    assert stored.tolist() == expected["rate"].tolist()  # 8 decimals at most: stored exactly
    assert symbol in BYBIT_LINEAR_SPECS
    status, out, _ = import_funding(capsys, str(path), "--symbol", symbol, "--catalog",
                                    str(catalog))  # fmt: skip
    assert status == 0 and "wrote 0 funding rate(s): up to date" in out
