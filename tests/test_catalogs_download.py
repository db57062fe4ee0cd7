"""Pure helpers of the Bybit downloader (no network: end-to-end runs use the Bybit emulator)."""

from __future__ import annotations

from pathlib import Path

import ccxt
import pandas as pd
import pytest

from catalogs.catalog import write_bars
from catalogs.download import DEFAULT_LOOKBACK
from catalogs.download import PageWindow
from catalogs.download import call_with_retry
from catalogs.download import ccxt_timeframe
from catalogs.download import download_bybit_bars
from catalogs.download import make_bybit_exchange
from catalogs.download import normalize_ohlcv_page
from catalogs.download import plan_pages
from catalogs.download import resume_start
from catalogs.errors import DownloadError
from catalogs.instruments import make_perpetual
from catalogs.synthetic import generate_bars

MINUTE_MS = 60_000
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC in ms
UNREACHABLE = "http://127.0.0.1:9"  # discard port: nothing listens, so any request fails fast


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


@pytest.mark.parametrize(
    ("interval", "timeframe"),
    [("1min", "1m"), ("15min", "15m"), ("1h", "1h"), ("4-HOUR", "4h"), ("1d", "1d")],
)
def test_ccxt_timeframe(interval: str, timeframe: str) -> None:
    assert ccxt_timeframe(interval) == timeframe


def test_plan_pages_covers_the_range_contiguously_in_limit_sized_windows() -> None:
    last_open = T0 + 2_499 * MINUTE_MS

    pages = plan_pages(T0, last_open, MINUTE_MS, limit=1_000)

    assert pages == [
        PageWindow(T0, T0 + 999 * MINUTE_MS),
        PageWindow(T0 + 1_000 * MINUTE_MS, T0 + 1_999 * MINUTE_MS),
        PageWindow(T0 + 2_000 * MINUTE_MS, last_open),
    ]


def test_plan_pages_edge_cases() -> None:
    assert plan_pages(T0, T0, MINUTE_MS, limit=1_000) == [PageWindow(T0, T0)]
    assert len(plan_pages(T0, T0 + 4 * MINUTE_MS, MINUTE_MS, limit=1)) == 5
    assert plan_pages(T0 + MINUTE_MS, T0, MINUTE_MS, limit=10) == []
    with pytest.raises(ValueError, match="limit must be >= 1"):
        plan_pages(T0, T0, MINUTE_MS, limit=0)
    with pytest.raises(ValueError, match="on the interval grid"):
        plan_pages(T0 + 1, T0 + MINUTE_MS, MINUTE_MS, limit=10)


def test_resume_starts_at_the_last_stored_close() -> None:
    stored = utc("2024-01-05 12:00")
    end = utc("2024-02-01")

    assert resume_start(stored, None, end, "1min") == stored
    assert resume_start(stored, utc("2024-01-01"), end, "1min") == stored
    assert resume_start(stored, utc("2024-01-10"), end, "1min") == utc("2024-01-10")


def test_resume_without_stored_bars_uses_request_or_lookback() -> None:
    end = utc("2024-02-01 00:00")

    assert resume_start(None, utc("2024-01-01 00:00:30"), end, "1min") == utc("2024-01-01 00:01")
    assert resume_start(None, None, end, "1h") == end - DEFAULT_LOOKBACK


def test_normalize_page_sorts_dedupes_clips_and_stamps_at_close() -> None:
    window = PageWindow(T0, T0 + 3 * MINUTE_MS)
    now = utc("2024-01-01 00:03:30")  # the bar opening 00:03 is still forming
    rows = [
        [T0 + 2 * MINUTE_MS, 3, 4, 2, 3.5, 30],
        [T0, 1, 2, 0.5, 1.5, 10],
        [T0 + 3 * MINUTE_MS, 4, 5, 3, 4.5, 40],  # forming
        [T0 + MINUTE_MS, 2, 3, 1, 2.5, 20],
        [T0 + MINUTE_MS, 2, 3, 1, 2.5, 20],  # duplicate
        [T0 - MINUTE_MS, 9, 9, 9, 9, 9],  # before the window
    ]

    frame, stats = normalize_ohlcv_page(rows, "1min", window, now)

    assert list(frame.index) == [
        utc("2024-01-01 00:01"),
        utc("2024-01-01 00:02"),
        utc("2024-01-01 00:03"),
    ]
    assert frame["close"].tolist() == [1.5, 2.5, 3.5]
    assert frame["volume"].tolist() == [10.0, 20.0, 30.0]
    assert (stats.received, stats.duplicates, stats.outside_window, stats.forming) == (6, 1, 1, 1)


def test_normalize_empty_page() -> None:
    frame, stats = normalize_ohlcv_page([], "1h", PageWindow(T0, T0), utc("2025-01-01"))

    assert frame.empty
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert stats.received == 0


def test_retry_backs_off_on_network_errors_then_succeeds() -> None:
    outcomes: list[object] = [ccxt.RequestTimeout("slow"), ccxt.RateLimitExceeded("429"), [1]]
    sleeps: list[float] = []

    def flaky() -> object:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert call_with_retry(flaky, what="testing", backoff_s=0.5, sleep=sleeps.append) == [1]
    assert sleeps == [0.5, 1.0]


def test_retry_gives_up_with_a_clear_error() -> None:
    def down() -> None:
        raise ccxt.ExchangeNotAvailable("maintenance")

    with pytest.raises(DownloadError, match="fetching klines failed after 3 attempts"):
        call_with_retry(down, what="fetching klines", retries=2, sleep=lambda _: None)


@pytest.mark.parametrize(
    ("error", "fragment"),
    [
        (ccxt.AuthenticationError("bad key"), "need no API key"),
        (ccxt.BadSymbol("no such symbol"), "Bybit rejected the request"),
    ],
)
def test_exchange_errors_are_not_retried(error: Exception, fragment: str) -> None:
    calls: list[int] = []

    def rejected() -> None:
        calls.append(1)
        raise error

    with pytest.raises(DownloadError, match=fragment):
        call_with_retry(rejected, what="loading markets", sleep=lambda _: None)
    assert len(calls) == 1


def test_base_url_redirects_every_endpoint_and_auth_needs_are_disabled() -> None:
    exchange = make_bybit_exchange("http://127.0.0.1:8123/")

    assert isinstance(exchange.urls["api"], dict)
    assert set(exchange.urls["api"].values()) == {"http://127.0.0.1:8123"}
    assert exchange.has["fetchCurrencies"] is False
    assert exchange.options["fetchMarkets"]["types"] == ["linear"]
    assert exchange.enableRateLimit is True


def test_up_to_date_catalog_needs_no_request(tmp_path: Path) -> None:
    bars = generate_bars(120, "1min", seed=1)
    write_bars(tmp_path / "catalog", bars, make_perpetual(), "1min")

    report = download_bybit_bars(
        tmp_path / "catalog",
        end=bars.index[-1],
        base_url=UNREACHABLE,
        progress=False,
        retries=0,
    )

    assert report.first_open is None
    assert report.resumed_from == bars.index[-1]
    assert "up to date" in report.summary()


def test_conflicting_arguments_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="either exchange or base_url"):
        download_bybit_bars(tmp_path, exchange=ccxt.bybit(), base_url=UNREACHABLE)
    with pytest.raises(ValueError, match=r"limit must be within 1\.\.1000"):
        download_bybit_bars(tmp_path, limit=5_000)
