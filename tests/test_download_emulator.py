"""End-to-end: the ccxt Bybit downloader against the loopback Bybit emulator.

Real ``ccxt.bybit`` requests, a real ``ParquetDataCatalog`` under ``tmp_path``, and the CLI
(``python -m catalogs fetch --base-url ...``) in a subprocess. The emulator's history is
anchored in the past (2024-01-01), so every test but the forming-bar one is independent of the
wall clock; that one waits for headroom in the current hour first.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from catalogs import read_bars_frame
from catalogs.bars import BarGap
from catalogs.catalog import list_bar_types
from catalogs.download import DownloadReport
from catalogs.download import download_bybit_bars
from catalogs.errors import DownloadError
from catalogs.errors import UnknownInstrumentError
from tests.bybit_emulator import EmulatorConfig
from tests.bybit_emulator import EmulatorServer
from tests.bybit_emulator.harness import wait_for_bar_headroom
from tests.bybit_emulator.market import Kline

pytestmark = pytest.mark.timeout(60)

REPO_ROOT = Path(__file__).resolve().parents[1]
SYMBOL = "BTCUSDT"
BAR_TYPE = "BTCUSDT-LINEAR.BYBIT-1-MINUTE-LAST-EXTERNAL"
BAR_TYPE_1H = "BTCUSDT-LINEAR.BYBIT-1-HOUR-LAST-EXTERNAL"
KLINE_PATH = "/v5/market/kline"
MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
T0_MS = 1_704_067_200_000  # 2024-01-01 00:00 UTC: the first history bar opens here
HISTORY_BARS = 3_000  # the emulator's forming bar opens at T0 + 3,000 minutes
N_BARS = 2_500  # three pages of at most 1,000 klines


def minute(n: int) -> pd.Timestamp:
    """T0 + ``n`` minutes, as a UTC timestamp."""
    return pd.Timestamp(T0_MS + n * MINUTE_MS, unit="ms", tz="UTC")


def as_utc(milliseconds: int) -> pd.Timestamp:
    return pd.Timestamp(milliseconds, unit="ms", tz="UTC")


@pytest.fixture
def emu():
    config = EmulatorConfig(history_bars=HISTORY_BARS, anchor_ms=T0_MS + HISTORY_BARS * MINUTE_MS)
    server = EmulatorServer(config).start()
    yield server
    server.stop()


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    return tmp_path / "catalog"


def fetch(
    emu: EmulatorServer, catalog: Path, start: object, end: object, **kwargs: object
) -> DownloadReport:
    return download_bybit_bars(
        catalog, SYMBOL, "1m", start, end, base_url=emu.base_url_http, progress=False, **kwargs
    )


def expected_frame(klines: list[Kline], interval_ms: int = MINUTE_MS) -> pd.DataFrame:
    """The emulator's klines as a canonical bar frame: stamped at close, float columns."""
    index = pd.DatetimeIndex([as_utc(k.start + interval_ms) for k in klines], name="ts_close")
    columns = ("open", "high", "low", "close", "volume")
    data = {name: [float(getattr(k, name)) for k in klines] for name in columns}
    return pd.DataFrame(data, index=index.as_unit("ns"))


def assert_stored(catalog: Path, bar_type: str, expected: pd.DataFrame) -> None:
    stored = read_bars_frame(catalog, bar_type)
    assert stored.index.is_monotonic_increasing and stored.index.is_unique
    pd.testing.assert_frame_equal(
        stored, expected, check_exact=True, check_freq=False, check_index_type=False
    )


def closed_history(emu: EmulatorServer) -> list[Kline]:
    return emu.bars(SYMBOL)[:-1]  # the last one is the forming bar


def closing_by(klines: list[Kline], end: pd.Timestamp) -> list[Kline]:
    """The klines that close at or before ``end``."""
    return [k for k in klines if as_utc(k.start + MINUTE_MS) <= end]


def kline_windows(emu: EmulatorServer) -> list[tuple[int, int]]:
    """``(start, end)`` of every kline request the emulator answered successfully."""
    return [
        (int(r.query["start"]), int(r.query["end"]))
        for r in emu.requests()
        if r.path == KLINE_PATH and r.ret_code == 0
    ]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "catalogs", "fetch", "--no-progress", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=45,
        check=False,
    )


# -- Paging ----------------------------------------------------------------------------------------


def test_multi_page_download_stores_every_bar_at_its_close(emu, catalog):
    history = closed_history(emu)

    report = fetch(emu, catalog, minute(0), minute(N_BARS), limit=1_000)

    assert (report.pages, report.bars_received, report.bars_written) == (3, N_BARS, N_BARS)
    assert (report.first_open, report.last_close) == (minute(0), minute(N_BARS))
    assert (report.first_written, report.last_written) == (minute(1), minute(N_BARS))
    assert report.gaps == [] and report.resumed_from is None
    assert report.duplicates_dropped == report.forming_dropped == 0
    # forward paging through explicit [start, end] windows of <= 1,000 bar opens
    assert kline_windows(emu) == [
        (T0_MS, T0_MS + 999 * MINUTE_MS),
        (T0_MS + 1_000 * MINUTE_MS, T0_MS + 1_999 * MINUTE_MS),
        (T0_MS + 2_000 * MINUTE_MS, T0_MS + 2_499 * MINUTE_MS),
    ]
    assert_stored(catalog, BAR_TYPE, expected_frame(history[:N_BARS]))
    first = read_bars_frame(catalog, BAR_TYPE).iloc[0]
    assert first.name == minute(1)  # the kline opening at T0 is stamped at its close
    assert first["open"] == float(history[0].open) and first["close"] == float(history[0].close)
    assert list_bar_types(catalog) == [BAR_TYPE]
    assert emu.unknown_paths() == []


# -- Resume ----------------------------------------------------------------------------------------


def test_resume_appends_only_new_bars_and_an_unchanged_range_is_a_noop(emu, catalog):
    history = closed_history(emu)
    first = fetch(emu, catalog, minute(0), minute(1_500))
    assert first.bars_written == 1_500
    requests_after_first = len(emu.requests())

    # same start, later end: the stored range overlaps the request and is skipped
    second = fetch(emu, catalog, minute(0), minute(N_BARS))

    assert second.resumed_from == minute(1_500)
    assert second.first_open == minute(1_500)  # resumes at the last stored close
    assert (second.bars_received, second.bars_written) == (1_000, 1_000)
    assert (second.first_written, second.last_written) == (minute(1_501), minute(N_BARS))
    assert second.gaps == [] and second.duplicates_dropped == 0
    assert "resumed after stored close 2024-01-02 01:00:00+00:00" in second.summary()
    assert kline_windows(emu)[-1] == (T0_MS + 1_500 * MINUTE_MS, T0_MS + 2_499 * MINUTE_MS)
    assert_stored(catalog, BAR_TYPE, expected_frame(history[:N_BARS]))

    requests_before_third = len(emu.requests())
    assert requests_before_third > requests_after_first
    third = fetch(emu, catalog, minute(0), minute(N_BARS))

    assert third.first_open is None and third.bars_written == 0 and third.pages == 0
    assert third.resumed_from == minute(N_BARS)
    assert "up to date" in third.summary()
    assert len(emu.requests()) == requests_before_third  # not even the markets were loaded
    assert_stored(catalog, BAR_TYPE, expected_frame(history[:N_BARS]))


# -- Forming bar -----------------------------------------------------------------------------------


def test_the_still_forming_bar_is_never_stored(tmp_path):
    # the emulator's forming bar is the wall-clock hour; keep the hour from rolling mid-test
    wait_for_bar_headroom(seconds=10, interval_ms=HOUR_MS)
    config = EmulatorConfig(history_bars=48, base_interval="60")
    with EmulatorServer(config) as server:
        forming_ms = server.forming_bar_start(SYMBOL)
        server.set_price(SYMBOL, 61_234.5)  # the forming hour has traded
        history = server.bars(SYMBOL)
        assert history[-1].start == forming_ms and history[-1].close == 61_234.5
        start = as_utc(forming_ms - 48 * HOUR_MS)

        for end in (None, as_utc(forming_ms + 5 * HOUR_MS)):  # now / a future end
            catalog = tmp_path / f"catalog-{end is None}"
            report = download_bybit_bars(
                catalog, SYMBOL, "1h", start, end, base_url=server.base_url_http, progress=False
            )

            assert report.last_close == as_utc(forming_ms)
            assert report.bars_written == 48 and report.last_written == as_utc(forming_ms)
            # the last closed bar, stamped at its close (where the forming bar opens)
            assert read_bars_frame(catalog, BAR_TYPE_1H).index[-1] == as_utc(forming_ms)
            assert_stored(catalog, BAR_TYPE_1H, expected_frame(history[:-1], HOUR_MS))


# -- Gaps ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first_missing", "flush_bars"),
    [
        pytest.param(1_500, 50_000, id="inside-a-page"),
        pytest.param(995, 50_000, id="across-a-page-boundary"),
        pytest.param(1_000, 1_000, id="between-two-flushed-batches"),
    ],
)
def test_a_kline_gap_is_reported_and_both_sides_are_stored(emu, catalog, first_missing, flush_bars):
    removed = emu.remove_bars(
        SYMBOL, T0_MS + first_missing * MINUTE_MS, T0_MS + (first_missing + 9) * MINUTE_MS
    )
    assert removed == 10

    report = fetch(emu, catalog, minute(0), minute(N_BARS), flush_bars=flush_bars)

    # the gap lies between the closes of the bars opening just before and just after it
    gap = BarGap(minute(first_missing), minute(first_missing + 11), 10)
    assert report.gaps == [gap]
    assert report.missing_bars == 10
    assert report.bars_written == N_BARS - 10
    assert f"gaps: 1 (10 missing bars), largest {gap.start} .. {gap.end}" in report.summary()
    stored = read_bars_frame(catalog, BAR_TYPE)
    assert minute(first_missing) in stored.index and minute(first_missing + 11) in stored.index
    assert_stored(
        catalog, BAR_TYPE, expected_frame(closing_by(closed_history(emu), minute(N_BARS)))
    )


def test_a_gap_right_after_the_stored_bars_is_reported_on_resume(emu, catalog):
    fetch(emu, catalog, minute(0), minute(1_000))
    emu.remove_bars(SYMBOL, T0_MS + 1_000 * MINUTE_MS, T0_MS + 1_009 * MINUTE_MS)

    report = fetch(emu, catalog, None, minute(N_BARS))

    assert report.resumed_from == minute(1_000)
    assert report.gaps == [BarGap(minute(1_000), minute(1_011), 10)]
    assert report.bars_written == N_BARS - 1_000 - 10
    assert_stored(
        catalog, BAR_TYPE, expected_frame(closing_by(closed_history(emu), minute(N_BARS)))
    )


# -- Exchange errors -------------------------------------------------------------------------------


def test_a_kline_error_is_explained_and_nothing_is_half_written(emu, catalog):
    # the first page succeeds, the second is rejected; with the default batch size the whole
    # download is one batch, so nothing of it may be stored
    emu.fail_path(KLINE_PATH, 10001, "params error: end invalid", after=1)

    with pytest.raises(DownloadError) as raised:
        fetch(emu, catalog, minute(0), minute(N_BARS))

    message = str(raised.value)
    assert "Bybit rejected the request while fetching BTCUSDT 1m klines opening from " in message
    assert "2024-01-01 16:40:00+00:00" in message  # the second page (T0 + 1,000 minutes)
    assert "BadRequest" in message and "params error: end invalid" in message
    assert "re-run" in message  # ... and what to do about it
    assert [r.ret_code for r in emu.requests() if r.path == KLINE_PATH] == [0, 10001]
    assert not catalog.exists()  # the fetched first page was not written either


def test_an_interrupted_download_keeps_whole_batches_and_resumes(emu, catalog):
    history = closed_history(emu)
    emu.fail_path(KLINE_PATH, 10001, "params error", after=2)  # the third page fails

    with pytest.raises(DownloadError, match="params error"):
        fetch(emu, catalog, minute(0), minute(N_BARS), flush_bars=1_000)

    assert_stored(catalog, BAR_TYPE, expected_frame(history[:2_000]))  # two whole batches

    emu.clear_faults()
    report = fetch(emu, catalog, minute(0), minute(N_BARS), flush_bars=1_000)

    assert report.resumed_from == minute(2_000)
    assert report.bars_written == 500 and report.gaps == []
    assert_stored(catalog, BAR_TYPE, expected_frame(history[:N_BARS]))


def test_a_rate_limited_kline_request_is_retried(emu, catalog):
    emu.fail_path(KLINE_PATH, 10006, "Too many visits!", count=1)

    report = fetch(emu, catalog, minute(0), minute(1_200), retries=1)  # backs off 1 s

    assert [r.ret_code for r in emu.requests() if r.path == KLINE_PATH] == [10006, 0, 0]
    assert report.bars_written == 1_200
    assert_stored(catalog, BAR_TYPE, expected_frame(closed_history(emu)[:1_200]))


def test_an_unknown_symbol_is_explained(emu, catalog):
    # known to catalogs (SOLUSDT spec) but not listed by the exchange
    with pytest.raises(DownloadError, match=r"'SOLUSDT' is not a Bybit linear perpetual") as raised:
        download_bybit_bars(
            catalog, "SOLUSDT", "1m", minute(0), minute(10), base_url=emu.base_url_http
        )
    assert "BTCUSDT, ETHUSDT" in str(raised.value)  # what the exchange does list

    # unknown to catalogs: refused before any request
    requests = len(emu.requests())
    with pytest.raises(UnknownInstrumentError, match=r"No built-in Bybit linear spec for 'FOO"):
        download_bybit_bars(
            catalog, "FOOUSDT", "1m", minute(0), minute(10), base_url=emu.base_url_http
        )
    assert len(emu.requests()) == requests
    assert [r.path for r in emu.requests() if r.path == KLINE_PATH] == []
    assert not catalog.exists()


# -- CLI -------------------------------------------------------------------------------------------


def test_cli_fetch_pages_resumes_and_reports_up_to_date(emu, catalog):
    common = ("--catalog", str(catalog), "--base-url", emu.base_url_http, "--limit", "1000")
    start = ("--start", "2024-01-01T00:00:00Z")

    first = run_cli(*common, *start, "--end", "2024-01-02T01:00:00Z")  # 1,500 bars
    second = run_cli(*common, *start, "--end", "2024-01-02T17:40:00Z")  # 2,500 bars
    third = run_cli(*common, *start, "--end", "2024-01-02T17:40:00Z")

    assert first.returncode == 0, first.stderr
    assert "in 2 page(s)" in first.stdout and "wrote 1,500 bars" in first.stdout
    assert second.returncode == 0, second.stderr
    assert "resumed after stored close 2024-01-02 01:00:00+00:00" in second.stdout
    assert "received 1,000, wrote 1,000 bars" in second.stdout
    assert third.returncode == 0, third.stderr
    assert f"{BAR_TYPE}: up to date" in third.stdout
    assert_stored(catalog, BAR_TYPE, expected_frame(closed_history(emu)[:N_BARS]))
    assert emu.unknown_paths() == []


def test_cli_reports_exchange_errors_and_unknown_symbols(emu, catalog):
    common = ("--catalog", str(catalog), "--base-url", emu.base_url_http)
    window = ("--start", "2024-01-01T00:00:00Z", "--end", "2024-01-01T02:00:00Z")
    emu.fail_path(KLINE_PATH, 10001, "params error: interval invalid")

    rejected = run_cli(*common, *window)
    unknown = run_cli(*common, *window, "--symbol", "solusdt")

    assert rejected.returncode == 2
    assert rejected.stderr.startswith(
        "error: Bybit rejected the request while fetching BTCUSDT 1m klines opening from "
        "2024-01-01 00:00:00+00:00: BadRequest:"
    ), rejected.stderr
    assert "params error: interval invalid" in rejected.stderr and "re-run" in rejected.stderr
    assert "Traceback" not in rejected.stderr
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("error: 'SOLUSDT' is not a Bybit linear perpetual")
    assert "Traceback" not in unknown.stderr
    assert not catalog.exists()
