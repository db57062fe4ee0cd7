"""Download Bybit linear-perpetual klines with ccxt into a Nautilus catalog.

The download pages **forward** through explicit ``[since, until]`` windows of at most ``limit``
bars (Bybit serves at most 1000 klines per request), so every page is deterministic whichever
end of the window Bybit fills from. Each page is sorted, de-duplicated, clipped to its window
and stripped of the still-forming bar; kline *open* times are converted to *close* stamps.
Pages are appended to the catalog in batches, so an interrupted download keeps what it wrote
and a re-run resumes after the last stored bar (see :func:`resume_start`).

Only public endpoints are used: no API keys are needed. ``base_url`` redirects every ccxt
endpoint (e.g. to a local Bybit emulator).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Final

import ccxt
import numpy as np
import pandas as pd
from nautilus_trader.model.instruments import Instrument
from tqdm import tqdm

from catalogs.bars import BarGap
from catalogs.bars import Interval
from catalogs.bars import bar_frame
from catalogs.bars import bar_type_string
from catalogs.bars import empty_bar_frame
from catalogs.bars import format_interval
from catalogs.bars import parse_interval
from catalogs.bars import to_utc_timestamp
from catalogs.catalog import CatalogLike
from catalogs.catalog import TimeLike
from catalogs.catalog import WriteResult
from catalogs.catalog import last_bar_close
from catalogs.catalog import open_catalog
from catalogs.catalog import write_bars_detailed
from catalogs.errors import CatalogNotFoundError
from catalogs.errors import DownloadError
from catalogs.errors import EmptyRangeError
from catalogs.instruments import make_perpetual

BYBIT_MAX_KLINES: Final[int] = 1000
DEFAULT_LOOKBACK: Final = pd.Timedelta(days=30)
DEFAULT_FLUSH_BARS: Final[int] = 50_000
_MS: Final[int] = 1_000_000  # nanoseconds per millisecond


@dataclass(frozen=True)
class PageWindow:
    """One kline request: bars whose open time lies in ``[since_ms, until_ms]`` (inclusive)."""

    since_ms: int
    until_ms: int


@dataclass
class PageStats:
    """What :func:`normalize_ohlcv_page` removed from a page."""

    received: int = 0
    duplicates: int = 0
    outside_window: int = 0
    forming: int = 0


@dataclass
class DownloadReport:
    """Outcome of :func:`download_bybit_bars`."""

    symbol: str
    bar_type: str
    interval: pd.Timedelta
    first_open: pd.Timestamp | None  # open time of the first requested bar
    last_close: pd.Timestamp  # close time of the last requested bar
    resumed_from: pd.Timestamp | None  # last stored close before the download
    pages: int = 0
    bars_received: int = 0
    bars_written: int = 0
    first_written: pd.Timestamp | None = None
    last_written: pd.Timestamp | None = None
    duplicates_dropped: int = 0
    forming_dropped: int = 0
    gaps: list[BarGap] = field(default_factory=list)

    @property
    def missing_bars(self) -> int:
        """Total number of bars missing inside the reported gaps."""
        return sum(gap.missing_bars for gap in self.gaps)

    def summary(self) -> str:
        """Return a short human-readable multi-line summary."""
        if self.first_open is None:
            return f"{self.bar_type}: up to date (last stored close {self.resumed_from})"
        lines = [
            f"{self.bar_type}: requested bars opening {self.first_open} .. closing "
            f"{self.last_close} in {self.pages:,} page(s)",
            f"received {self.bars_received:,}, wrote {self.bars_written:,} bars"
            + (f" ({self.first_written} .. {self.last_written})" if self.bars_written else ""),
        ]
        if self.resumed_from is not None:
            lines.append(f"resumed after stored close {self.resumed_from}")
        if self.duplicates_dropped or self.forming_dropped:
            lines.append(
                f"dropped {self.duplicates_dropped:,} duplicate and "
                f"{self.forming_dropped:,} still-forming bar(s)"
            )
        if self.last_written is not None and self.last_written < self.last_close:
            lines.append(f"no bars received after {self.last_written}")
        if self.gaps:
            largest = max(self.gaps, key=lambda gap: gap.missing_bars)
            lines.append(
                f"gaps: {len(self.gaps):,} ({self.missing_bars:,} missing bars), largest "
                f"{largest.start} .. {largest.end} ({largest.missing_bars:,} bars)"
            )
        return "\n".join(lines)


# -- Pure helpers --------------------------------------------------------------------------------


def ccxt_timeframe(interval: Interval) -> str:
    """Return the ccxt timeframe string for an interval, e.g. ``'1m'``, ``'4h'``, ``'1d'``."""
    seconds = int(parse_interval(interval).total_seconds())
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    raise AssertionError("unreachable: intervals are whole seconds")


def resume_start(
    last_stored_close: pd.Timestamp | None,
    requested_start: pd.Timestamp | None,
    last_close: pd.Timestamp,
    interval: Interval,
) -> pd.Timestamp:
    """Return the open time of the first bar to fetch.

    A bar's close time equals the next bar's open time, so the download resumes at the last
    stored close. Without stored bars it starts at ``requested_start`` (rounded up to the grid),
    or :data:`DEFAULT_LOOKBACK` before ``last_close``.
    """
    delta = parse_interval(interval)
    start = requested_start.ceil(delta) if requested_start is not None else None
    if last_stored_close is not None:
        return last_stored_close if start is None else max(start, last_stored_close)
    return start if start is not None else (last_close - DEFAULT_LOOKBACK).floor(delta)


def plan_pages(
    first_open_ms: int, last_open_ms: int, interval_ms: int, limit: int
) -> list[PageWindow]:
    """Split bar open times ``first_open_ms .. last_open_ms`` into windows of ``limit`` bars."""
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    if first_open_ms % interval_ms or last_open_ms % interval_ms:
        raise ValueError("page bounds must be on the interval grid")
    starts = range(first_open_ms, last_open_ms + 1, interval_ms * limit)
    span = interval_ms * (limit - 1)
    return [PageWindow(since, min(since + span, last_open_ms)) for since in starts]


def normalize_ohlcv_page(
    rows: Sequence[Sequence[float]],
    interval: Interval,
    window: PageWindow,
    now: pd.Timestamp,
) -> tuple[pd.DataFrame, PageStats]:
    """Turn ccxt OHLCV rows ``[open_ms, o, h, l, c, v]`` into a canonical close-stamped frame.

    Sorts by open time, keeps the first row of each duplicated open time, drops rows outside
    ``window`` and bars still forming at ``now`` (open + interval > now).
    """
    stats = PageStats(received=len(rows))
    if not rows:
        return empty_bar_frame(), stats
    delta_ns = parse_interval(interval).value
    table = np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)
    open_ms = table[:, 0].astype(np.int64)
    order = np.argsort(open_ms, kind="stable")
    table, open_ms = table[order], open_ms[order]

    unique = np.concatenate(([True], np.diff(open_ms) != 0))
    inside = (open_ms >= window.since_ms) & (open_ms <= window.until_ms)
    complete = open_ms * _MS + delta_ns <= now.value
    stats.duplicates = int((~unique).sum())
    stats.outside_window = int((unique & ~inside).sum())
    stats.forming = int((unique & inside & ~complete).sum())

    keep = unique & inside & complete
    close_ns = open_ms[keep] * _MS + delta_ns
    return bar_frame(close_ns, *(table[keep, column] for column in range(1, 6))), stats


def call_with_retry[T](
    call: Callable[[], T],
    *,
    what: str,
    retries: int = 5,
    backoff_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``call``; retry ccxt network/rate-limit errors with exponential backoff.

    Authentication and other exchange errors are not retried. Every failure becomes a
    :class:`DownloadError` with a message saying what to do.
    """
    for attempt in range(retries + 1):
        try:
            return call()
        except ccxt.AuthenticationError as exc:
            raise DownloadError(
                f"Bybit rejected the credentials while {what}: {exc}. Public kline downloads "
                "need no API key; remove apiKey/secret from the exchange or fix them"
            ) from exc
        except ccxt.NetworkError as exc:  # includes RateLimitExceeded, RequestTimeout
            if attempt == retries:
                raise DownloadError(
                    f"{what} failed after {retries + 1} attempts: {type(exc).__name__}: {exc}. "
                    "Check connectivity or base_url; re-running resumes after the stored bars"
                ) from exc
            sleep(backoff_s * 2**attempt)
        except ccxt.BaseError as exc:
            raise DownloadError(
                f"Bybit rejected the request while {what}: {type(exc).__name__}: {exc}. "
                "Check the symbol, interval and time range; if Bybit reports a temporary "
                "problem, re-run later (re-running resumes after the stored bars)"
            ) from exc
    raise AssertionError("unreachable")


# -- Exchange ------------------------------------------------------------------------------------


def make_bybit_exchange(base_url: str | None = None, **config: object) -> ccxt.bybit:
    """Build a public-data ccxt Bybit client limited to linear markets.

    ``base_url`` replaces every API endpoint (keeps ``urls['api']`` a dict). Currency loading,
    which needs credentials, is disabled.
    """
    settings: dict = {
        "enableRateLimit": True,
        "has": {"fetchCurrencies": False},
        "options": {"defaultType": "swap", "fetchMarkets": {"types": ["linear"]}},
        **config,
    }
    exchange = ccxt.bybit(settings)
    if base_url is not None:
        base = base_url.rstrip("/")
        exchange.urls["api"] = {key: base for key in exchange.urls["api"]}
    return exchange


def linear_market_symbol(exchange: ccxt.Exchange, symbol: str) -> str:
    """Return the ccxt unified symbol (e.g. ``'BTC/USDT:USDT'``) of a Bybit linear perpetual.

    Loads the exchange's markets (raises ccxt errors as they come; wrap in
    :func:`call_with_retry` for retries).
    """
    markets = exchange.load_markets()
    for market in markets.values():
        if market.get("id") == symbol.upper() and market.get("linear") and market.get("swap"):
            return market["symbol"]
    linear = sorted(m["id"] for m in markets.values() if m.get("linear") and m.get("swap"))
    raise DownloadError(
        f"{symbol!r} is not a Bybit linear perpetual; {len(linear)} are listed"
        + (f" (e.g. {', '.join(linear[:5])})" if linear else "")
    )


# -- Download ------------------------------------------------------------------------------------


def download_bybit_bars(
    catalog_path: CatalogLike = Path("var/catalog"),
    symbol: str = "BTCUSDT",
    interval: Interval = "1m",
    start: TimeLike | None = None,
    end: TimeLike | None = None,
    *,
    base_url: str | None = None,
    exchange: ccxt.Exchange | None = None,
    limit: int = BYBIT_MAX_KLINES,
    progress: bool = True,
    instrument: Instrument | None = None,
    flush_bars: int = DEFAULT_FLUSH_BARS,
    retries: int = 5,
) -> DownloadReport:
    """Download Bybit linear klines into the catalog and return a :class:`DownloadReport`.

    Fetches bars opening at or after ``start`` and closing at or before ``end`` (default: now;
    the still-forming bar is never stored). Resumes after the last stored bar of the bar type.
    Without stored bars and ``start``, fetches the last 30 days. ``instrument`` defaults to
    :func:`catalogs.instruments.make_perpetual` for ``symbol``. Network and rate-limit errors
    are retried ``retries`` times with exponential backoff (1 s, 2 s, 4 s, ...).
    """
    if exchange is not None and base_url is not None:
        raise ValueError("pass either exchange or base_url, not both")
    if not 1 <= limit <= BYBIT_MAX_KLINES:
        raise ValueError(f"limit must be within 1..{BYBIT_MAX_KLINES}, got {limit}")
    delta = parse_interval(interval)
    instrument = instrument or make_perpetual(symbol)
    bar_type = bar_type_string(instrument.id, delta)
    now = pd.Timestamp.now(tz="UTC")
    start_ts, end_ts = to_utc_timestamp(start), to_utc_timestamp(end)
    _check_range(start_ts, end_ts, now)
    last_close = min(end_ts or now, now).floor(delta)
    resumed_from = _stored_last_close(catalog_path, bar_type)
    first_open = resume_start(resumed_from, start_ts, last_close, delta)

    report = DownloadReport(symbol.upper(), bar_type, delta, first_open, last_close, resumed_from)
    if first_open + delta > last_close:
        report.first_open = None
        return report

    exchange = exchange or make_bybit_exchange(base_url)
    timeframe = _checked_timeframe(exchange, delta)
    market = call_with_retry(
        lambda: linear_market_symbol(exchange, symbol), what="loading markets", retries=retries
    )
    pages = plan_pages(
        first_open.value // _MS, (last_close - delta).value // _MS, delta.value // _MS, limit
    )
    pending: list[pd.DataFrame] = []
    for window in tqdm(pages, desc=f"{symbol} {timeframe}", unit="page", disable=not progress):
        rows = call_with_retry(
            lambda w=window: exchange.fetch_ohlcv(
                market, timeframe, since=w.since_ms, limit=limit, params={"until": w.until_ms}
            ),
            what=f"fetching {symbol} {timeframe} klines opening from {_ms_to_utc(window.since_ms)}",
            retries=retries,
        )
        frame, stats = normalize_ohlcv_page(rows, delta, window, now)
        _count_page(report, stats)
        pending.append(frame)
        if sum(map(len, pending)) >= flush_bars:
            _flush(catalog_path, pending, instrument, delta, report)
    _flush(catalog_path, pending, instrument, delta, report)
    return report


def _check_range(start: pd.Timestamp | None, end: pd.Timestamp | None, now: pd.Timestamp) -> None:
    if start is None:
        return
    if end is not None and start >= end:
        raise EmptyRangeError(
            f"start {start} is not before end {end}; pass a start (CLI: --start) before the end"
        )
    if start >= now:
        raise EmptyRangeError(
            f"start {start} is in the future (now is {now.floor('s')}); pass a past start"
        )


def _ms_to_utc(milliseconds: int) -> pd.Timestamp:
    return pd.Timestamp(milliseconds, unit="ms", tz="UTC")


def _checked_timeframe(exchange: ccxt.Exchange, delta: pd.Timedelta) -> str:
    timeframe = ccxt_timeframe(delta)
    if timeframe not in exchange.timeframes:
        raise DownloadError(
            f"Bybit has no {format_interval(delta)} klines; available timeframes: "
            f"{', '.join(exchange.timeframes)}"
        )
    return timeframe


def _stored_last_close(catalog_path: CatalogLike, bar_type: str) -> pd.Timestamp | None:
    try:
        return last_bar_close(catalog_path, bar_type)
    except CatalogNotFoundError:
        return None


def _count_page(report: DownloadReport, stats: PageStats) -> None:
    report.pages += 1
    report.bars_received += stats.received
    report.duplicates_dropped += stats.duplicates
    report.forming_dropped += stats.forming


def _flush(
    catalog_path: CatalogLike,
    pending: list[pd.DataFrame],
    instrument: Instrument,
    delta: pd.Timedelta,
    report: DownloadReport,
) -> None:
    frames = [frame for frame in pending if not frame.empty]
    pending.clear()
    if not frames:
        return
    batch = pd.concat(frames)
    catalog = open_catalog(catalog_path, create=True)
    result = write_bars_detailed(
        catalog, batch, instrument, delta, gap_policy="report", duplicate_policy="drop"
    )
    _count_written(report, result)


def _count_written(report: DownloadReport, result: WriteResult) -> None:
    report.bars_written += result.written
    if result.written:
        report.first_written = report.first_written or result.first_written
        report.last_written = result.last_written
    if result.gap_before is not None:
        report.gaps.append(result.gap_before)
    report.gaps.extend(result.report.gaps)
