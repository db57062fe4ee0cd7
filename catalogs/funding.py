"""Perpetual funding rates in a ``ParquetDataCatalog``: Bybit history, validation, synthetic.

Funding is stored as Nautilus ``FundingRateUpdate`` data (``data/funding_rate_update/<id>/``;
the 1.231 catalog writes and reads the type natively): one update per funding time, stamped
``ts_event == ts_init ==`` the funding time, with the funding interval in minutes
(``interval``) and the rate a position pays per interval (a long pays a positive rate, a short
receives it). Writes are append-only, crash-safe and take the catalog's writer lock
(:mod:`catalogs.storage`), like bars.

Sources: :func:`download_bybit_funding` (ccxt ``fetchFundingRateHistory``, Bybit
``/v5/market/funding/history``: at most 200 rows a request, so the range is requested in
explicit ``[startTime, endTime]`` windows of at most 200 funding times, resumable after the
last stored time), :func:`import_funding_csv` (a ``timestamp,rate`` CSV file, e.g. another
venue's history; the interval is the median spacing of its times unless given; rows that
overlap stored ones must agree with them) and :func:`synthetic_funding` (a persistent series
leaning with the trend, within Bybit's caps) for synthetic catalogs. Readers:
:func:`read_funding` (a rate series for a window) and :func:`funding_updates` (the Nautilus
objects).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from decimal import Decimal
from pathlib import Path
from typing import Any
from typing import Final

import numpy as np
import pandas as pd
from nautilus_trader.model.data import FundingRateUpdate
from nautilus_trader.model.identifiers import InstrumentId

from catalogs.bars import to_utc_timestamp
from catalogs.catalog import CatalogLike
from catalogs.catalog import TimeLike
from catalogs.catalog import list_instrument_ids
from catalogs.catalog import open_catalog
from catalogs.csv_import import TimestampUnit
from catalogs.csv_import import read_funding_csv
from catalogs.errors import CatalogNotFoundError
from catalogs.errors import CatalogsError
from catalogs.errors import DownloadError
from catalogs.errors import EmptyRangeError
from catalogs.errors import IntervalError
from catalogs.errors import OverlapConflictError
from catalogs.instruments import bybit_linear_instrument_id
from catalogs.instruments import make_perpetual
from catalogs.storage import catalog_root
from catalogs.storage import naming_damaged_files
from catalogs.storage import write_data_atomically
from catalogs.storage import write_lock

BYBIT_MAX_FUNDING_ROWS: Final[int] = 200  # rows per /v5/market/funding/history request
DEFAULT_FUNDING_INTERVAL: Final = pd.Timedelta(hours=8)  # BTCUSDT's, and most symbols'
SYNTHETIC_RATE_CAP: Final[float] = 0.00375  # +-0.375 % per 8 h: BTCUSDT's cap in practice
BASELINE_RATE: Final[float] = 0.0001  # Bybit's 0.01 % per 8 h interest component
RATE_STEP: Final[float] = 1e-8  # Bybit quotes funding rates with up to 8 decimals
FUNDING_DIRECTORY: Final[str] = "funding_rate_update"
_MS: Final[int] = 1_000_000


class FundingValidationError(CatalogsError, ValueError):
    """Funding rows that cannot be stored (duplicates that disagree, off-grid times, NaN)."""


@dataclass
class FundingValidation:
    """What :func:`validate_funding` found: the clean series and the gaps in it."""

    rates: pd.Series
    duplicates_dropped: int = 0
    gaps: list[tuple[pd.Timestamp, pd.Timestamp, int]] = field(default_factory=list)

    @property
    def missing(self) -> int:
        """Funding times missing inside the gaps."""
        return sum(gap[2] for gap in self.gaps)


# -- validation ----------------------------------------------------------------------------------


def validate_funding(rates: pd.Series, interval: pd.Timedelta) -> FundingValidation:
    """Sort ``rates`` (indexed by UTC funding time) and check them against ``interval``.

    Equal duplicates are dropped; duplicates with different rates, non-finite rates and
    times off the interval's grid are refused with the offending rows named; gaps (missing
    funding times) are reported, not refused.
    """
    rates = pd.Series(rates, dtype=float).sort_index()
    rates.index = pd.DatetimeIndex(rates.index).tz_convert("UTC").as_unit("ns")
    bad = rates[~np.isfinite(rates.to_numpy())]
    if len(bad):
        raise FundingValidationError(
            f"{len(bad)} funding rate(s) are not numbers, e.g. at {bad.index[0]}; fix the source"
        )
    duplicated = rates.index.duplicated(keep=False)
    clashing = rates[duplicated].groupby(level=0).nunique()
    clashing = clashing[clashing > 1]
    if len(clashing):
        raise FundingValidationError(
            f"{len(clashing)} funding time(s) have different rates, e.g. {clashing.index[0]}: "
            f"{sorted(rates.loc[clashing.index[0]].tolist())}; keep one source per symbol"
        )
    dropped = int(rates.index.duplicated().sum())
    rates = rates[~rates.index.duplicated()]
    off_grid = rates.index[(rates.index.asi8 % interval.value) != 0]
    if len(off_grid):
        raise FundingValidationError(
            f"{len(off_grid)} funding time(s) are not on the {_hours(interval)} grid, e.g. "
            f"{off_grid[0]}; is the funding interval right?"
        )
    steps = np.diff(rates.index.asi8)
    gaps = [
        (rates.index[i], rates.index[i + 1], int(step // interval.value) - 1)
        for i, step in enumerate(steps)
        if step > interval.value
    ]
    return FundingValidation(rates.rename("rate"), dropped, gaps)


# -- storage -------------------------------------------------------------------------------------


def funding_directory(catalog_path: CatalogLike, instrument_id: str) -> Path:
    """Where the catalog keeps the instrument's ``FundingRateUpdate`` files."""
    root = catalog_root(open_catalog(catalog_path))
    return root / "data" / FUNDING_DIRECTORY / instrument_id


@dataclass
class FundingWrite:
    """What :func:`write_funding_detailed` wrote: the new rows' count and range, the rows
    skipped because a stored funding time at or after them exists, and whether the instrument
    definition was stored too."""

    written: int = 0
    skipped: int = 0
    first: pd.Timestamp | None = None
    last: pd.Timestamp | None = None
    last_stored: pd.Timestamp | None = None  # the last funding time stored before this write
    instrument_stored: bool = False


def write_funding(
    catalog_path: CatalogLike, rates: pd.Series, instrument_id: str, interval: pd.Timedelta
) -> int:
    """Append validated funding ``rates`` to the catalog; returns how many rows were written.

    Rows at or before the last stored funding time are skipped (append-only, idempotent), so
    a re-run writes nothing twice. Holds the catalog's writer lock; each file appears whole.
    """
    return write_funding_detailed(catalog_path, rates, instrument_id, interval).written


def write_funding_detailed(
    catalog_path: CatalogLike,
    rates: pd.Series,
    instrument_id: str,
    interval: pd.Timedelta,
    *,
    refuse_conflicts: bool = False,
    instrument: object | None = None,
) -> FundingWrite:
    """:func:`write_funding` with the details of what was written.

    With ``refuse_conflicts``, rows at or before the last stored funding time must equal the
    stored rates (to 8 decimals) and the stored interval must be ``interval``, else
    :class:`~catalogs.errors.OverlapConflictError` and nothing is written. ``instrument`` (a
    Nautilus instrument of ``instrument_id``) is stored too when the catalog has none of that
    id, so the catalog names the instrument its funding belongs to.
    """
    checked = validate_funding(rates, interval).rates
    catalog = open_catalog(catalog_path, create=True)
    result = FundingWrite()
    with write_lock(catalog_root(catalog)):
        result.last_stored = last = last_funding_time(catalog, instrument_id)
        if last is not None:
            overlap = checked[checked.index <= last]
            if refuse_conflicts:
                _check_overlap(catalog, instrument_id, overlap, interval)
            checked = checked[checked.index > last]
            result.skipped = len(overlap)
        if checked.empty:
            return result
        if instrument is not None and instrument_id not in list_instrument_ids(catalog):
            write_data_atomically(catalog, [instrument])
            result.instrument_stored = True
        write_data_atomically(catalog, _updates(checked, instrument_id, interval))
    result.written, result.first, result.last = len(checked), checked.index[0], checked.index[-1]
    return result


def _check_overlap(
    catalog: CatalogLike, instrument_id: str, overlap: pd.Series, interval: pd.Timedelta
) -> None:
    """Refuse rows at or before the last stored funding time unless the catalog holds them."""
    stored = read_funding(catalog, instrument_id)
    stored_interval = stored.attrs.get("interval")
    if stored_interval is not None and stored_interval != interval:
        raise OverlapConflictError(
            f"the catalog stores {instrument_id} funding every {_hours(stored_interval)}, not "
            f"every {_hours(interval)}; keep one source per symbol, or write to a new catalog"
        )
    if overlap.empty:
        return
    common = overlap.index.intersection(stored.index)
    new, old = overlap.loc[common], stored.loc[common]
    differs = np.abs(new.round(8).to_numpy() - old.to_numpy()) > RATE_STEP / 2
    if differs.any():
        shown = "; ".join(
            f"{_stamp(t)}: stored {old[t]:.8g} vs new {new[t]:.8g}" for t in common[differs][:5]
        )
        raise OverlapConflictError(
            f"{int(differs.sum()):,} funding rate(s) differ from the ones stored for "
            f"{instrument_id} ({shown}); keep one source per symbol, or write to a new catalog"
        )
    absent = overlap.index.difference(stored.index)
    if len(absent):
        raise OverlapConflictError(
            f"{len(absent):,} funding time(s) lie at or before the last stored one of "
            f"{instrument_id} ({_stamp(stored.index[-1])}) where nothing is stored (first: "
            f"{_stamp(absent[0])}); the catalog is append-only: write them to a new catalog"
        )


def _updates(rates: pd.Series, instrument_id: str, interval: pd.Timedelta) -> list:
    iid = InstrumentId.from_str(instrument_id)
    minutes = int(interval / pd.Timedelta(minutes=1))
    return [
        FundingRateUpdate(
            iid,
            Decimal(f"{rate:.8f}"),
            ts_event=int(ts.value),
            ts_init=int(ts.value),
            interval=minutes,
            next_funding_ns=int(ts.value + interval.value),
        )
        for ts, rate in rates.items()
    ]


def funding_updates(
    catalog_path: CatalogLike,
    instrument_id: str,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
) -> list[FundingRateUpdate]:
    """The stored ``FundingRateUpdate`` objects of ``instrument_id`` in ``[start, end]``."""
    catalog = open_catalog(catalog_path)
    directory = funding_directory(catalog, instrument_id)
    if not directory.is_dir():
        return []
    with naming_damaged_files(directory):
        return catalog.query(
            FundingRateUpdate,
            identifiers=[instrument_id],
            start=to_utc_timestamp(start),
            end=to_utc_timestamp(end),
        )


def read_funding(
    catalog_path: CatalogLike,
    instrument_id: str,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
) -> pd.Series:
    """Funding rates per interval of ``instrument_id`` with times in ``[start, end]``.

    A float Series named ``rate`` indexed by UTC funding time (empty when the catalog holds
    none); its ``attrs["interval"]`` is the funding interval (a Timedelta, None when empty).
    """
    updates = funding_updates(catalog_path, instrument_id, start, end)
    index = pd.DatetimeIndex([u.ts_event for u in updates], tz="UTC").as_unit("ns")
    series = pd.Series([float(u.rate) for u in updates], index=index, name="rate", dtype=float)
    series.attrs["interval"] = (
        pd.Timedelta(minutes=updates[0].interval) if updates and updates[0].interval else None
    )
    return series


def last_funding_time(catalog_path: CatalogLike, instrument_id: str) -> pd.Timestamp | None:
    """The last stored funding time of ``instrument_id`` (None when nothing is stored)."""
    try:
        stored = funding_updates(catalog_path, instrument_id)
    except CatalogNotFoundError:
        return None
    return pd.Timestamp(stored[-1].ts_event, tz="UTC") if stored else None


# -- CSV import ----------------------------------------------------------------------------------


@dataclass
class FundingImportReport:
    """Outcome of :func:`import_funding_csv`."""

    path: str
    instrument_id: str
    interval: pd.Timedelta
    interval_given: bool
    rows: int
    first: pd.Timestamp
    last: pd.Timestamp
    write: FundingWrite
    duplicates_dropped: int = 0
    rounded: int = 0
    gaps: list[tuple[pd.Timestamp, pd.Timestamp, int]] = field(default_factory=list)

    def summary(self) -> str:
        """A short human-readable multi-line summary."""
        source = "--interval" if self.interval_given else "the median spacing of the file's times"
        lines = [
            f"{self.instrument_id} funding every {_hours(self.interval)} ({source}): read "
            f"{self.rows:,} row(s) from {self.path}, {_stamp(self.first)} .. {_stamp(self.last)}"
        ]
        write = self.write
        if write.written:
            lines.append(
                f"wrote {write.written:,} funding rate(s), {_stamp(write.first)} .. "
                f"{_stamp(write.last)}"
            )
        else:
            last = _stamp(write.last_stored)
            lines.append(f"wrote 0 funding rate(s): up to date (last stored {last})")
        if write.skipped:
            lines.append(f"skipped {write.skipped:,} already stored (identical)")
        if write.instrument_stored:
            lines.append(f"stored the instrument definition {self.instrument_id}")
        if self.duplicates_dropped:
            dropped = self.duplicates_dropped
            lines.append(f"dropped {dropped:,} duplicate row(s) (same time and rate)")
        if self.rounded:
            lines.append(f"rounded {self.rounded:,} rate(s) to 8 decimals (Bybit's precision)")
        lines.append(gaps_line(self.gaps, _stamp) if self.gaps else "no gaps")
        return "\n".join(lines)


def import_funding_csv(
    catalog_path: CatalogLike,
    path: str | Path,
    symbol: str = "BTCUSDT",
    interval: str | pd.Timedelta | None = None,
    *,
    timestamp_unit: TimestampUnit = "auto",
    tz: str = "UTC",
) -> FundingImportReport:
    """Append the funding rates of a ``timestamp,rate`` CSV file to the catalog.

    ``timestamp`` is the settlement time, ``rate`` what a long pays per interval (a short
    receives it). The funding interval is the (lower) median spacing of the file's times unless
    ``interval`` is given; every time must lie on its grid. Everything is checked before
    anything is written (one :class:`~catalogs.errors.CatalogsError` naming file lines):
    unreadable files, missing columns, non-numeric or non-finite rates, unsorted rows, one time
    with two rates, off-grid times, and rows overlapping stored funding with other rates.
    Rows already stored are skipped (a re-run writes nothing); the instrument definition is
    stored with the first rates.
    """
    instrument = make_perpetual(symbol)
    instrument_id = instrument.id.value
    rates = read_funding_csv(path, timestamp_unit=timestamp_unit, tz=tz)
    given = interval is not None
    delta = _given_interval(rates.index, interval) if given else infer_funding_interval(rates)
    _check_grid(rates.index, delta, given)
    checked = validate_funding(rates, delta)
    scaled = checked.rates.to_numpy() / RATE_STEP
    rounded = int((np.abs(scaled - np.round(scaled)) > 1e-6).sum())
    write = write_funding_detailed(
        catalog_path,
        checked.rates,
        instrument_id,
        delta,
        refuse_conflicts=True,
        instrument=instrument,
    )
    return FundingImportReport(
        path=str(path),
        instrument_id=instrument_id,
        interval=delta,
        interval_given=given,
        rows=len(rates),
        first=checked.rates.index[0],
        last=checked.rates.index[-1],
        write=write,
        duplicates_dropped=checked.duplicates_dropped,
        rounded=rounded,
        gaps=checked.gaps,
    )


def infer_funding_interval(rates: pd.Series) -> pd.Timedelta:
    """The (lower) median spacing of the distinct funding times of ``rates``: always a spacing
    that occurs. Raises when there are fewer than two times or it is not whole minutes."""
    stamps = np.unique(pd.DatetimeIndex(rates.index).asi8)
    if len(stamps) < 2:
        raise IntervalError(
            "cannot infer the funding interval from a single funding time; give it with "
            "interval=... (CLI: --interval 8h)"
        )
    spacings = np.sort(np.diff(stamps))
    spacing = pd.Timedelta(int(spacings[(len(spacings) - 1) // 2]), unit="ns")
    return _whole_minutes(
        spacing,
        "the median spacing of the file's funding times",
        "check the file's timestamps or give the interval (CLI: --interval 8h)",
    )


def parse_funding_interval(interval: str | pd.Timedelta) -> pd.Timedelta:
    """A funding interval such as ``"8h"``, ``"480min"`` or ``"1d"``: whole minutes, > 0."""
    if isinstance(interval, str):
        text = interval.strip().lower()
        try:
            delta = pd.Timedelta(text) if text[-1:].isalpha() else None
        except ValueError:
            delta = None
        if delta is None:
            raise IntervalError(
                f"cannot read the funding interval {interval!r}; write it with a unit, e.g. 8h, "
                "480min or 1d"
            )
    else:
        delta = pd.Timedelta(interval)
    return _whole_minutes(delta, f"the funding interval {interval!r}", "e.g. 8h")


def _given_interval(index: pd.DatetimeIndex, interval: str | pd.Timedelta) -> pd.Timedelta:
    delta = parse_funding_interval(interval)
    spacings = np.diff(np.unique(index.asi8))
    if len(spacings) and not (spacings == delta.value).any():
        closest = pd.Timedelta(int(spacings.min()), unit="ns")
        raise IntervalError(
            f"no two funding times in the file are {_hours(delta)} apart (the closest are "
            f"{_hours(closest)} apart), so {_hours(delta)} is not its funding interval; give "
            "the right one (CLI: --interval), or leave it out to use the file's median spacing"
        )
    return delta


def _whole_minutes(delta: pd.Timedelta, what: str, hint: str) -> pd.Timedelta:
    if delta <= pd.Timedelta(0) or delta % pd.Timedelta(minutes=1):
        raise IntervalError(
            f"{what} is {delta}, not a positive whole number of minutes as funding intervals "
            f"are; {hint}"
        )
    return delta


def _check_grid(index: pd.DatetimeIndex, interval: pd.Timedelta, given: bool) -> None:
    off = (index.asi8 % interval.value) != 0
    if not off.any():
        return
    shown = ", ".join(f"line {pos + 2}: {index[pos]}" for pos in np.flatnonzero(off)[:5])
    source = "given" if given else "inferred from the file's median spacing"
    hint = "give the right interval" if given else "give the interval"
    raise FundingValidationError(
        f"{int(off.sum()):,} funding time(s) are not on the {_hours(interval)} grid (the "
        f"interval {source}): {shown}{', ...' if off.sum() > 5 else ''}. Fix those rows, or "
        f"{hint} (CLI: --interval)"
    )


# -- synthetic -----------------------------------------------------------------------------------


def synthetic_funding(
    bars: pd.DataFrame,
    interval: pd.Timedelta = DEFAULT_FUNDING_INTERVAL,
    seed: int = 7,
    cap: float = SYNTHETIC_RATE_CAP,
) -> pd.Series:
    """A plausible funding series for synthetic ``bars`` (canonical frame, stamped at close).

    One rate per funding time inside the bars' range: the 0.01 % baseline, plus a premium
    that leans with the trend (the last 3 days' return, longs crowd in rallies), plus a
    persistent AR(1) term (funding regimes last days), clipped to ``+-cap`` and rounded to
    Bybit's 8 decimals.
    """
    close = bars["close"].astype(float)
    first = close.index[0].ceil(interval)
    times = pd.date_range(first, close.index[-1], freq=interval)
    if times.empty:  # fewer bars than one funding interval
        return pd.Series(dtype=float, name="rate", index=pd.DatetimeIndex([], tz="UTC"))
    price = close.reindex(times, method="ffill").to_numpy()
    earlier = close.reindex(times - pd.Timedelta(days=3), method="ffill").to_numpy()
    trend = np.nan_to_num(np.log(price / earlier))  # 0 before the first 3 days
    rng = np.random.default_rng(seed)
    persistence = 0.9
    noise = rng.normal(0.0, 0.00006, len(times))
    ar = np.zeros(len(times))
    for i in range(1, len(times)):
        ar[i] = persistence * ar[i - 1] + noise[i]
    rate = BASELINE_RATE + 0.004 * trend + ar
    rate = np.round(np.clip(rate, -cap, cap) / RATE_STEP) * RATE_STEP
    return pd.Series(rate, index=times.as_unit("ns"), name="rate")


# -- Bybit download ------------------------------------------------------------------------------


@dataclass
class FundingDownloadReport:
    """Outcome of :func:`download_bybit_funding`."""

    symbol: str
    instrument_id: str
    interval: pd.Timedelta
    first: pd.Timestamp | None  # first requested funding time (None: up to date)
    last: pd.Timestamp
    resumed_from: pd.Timestamp | None
    pages: int = 0
    received: int = 0
    written: int = 0
    duplicates_dropped: int = 0
    gaps: list[tuple[pd.Timestamp, pd.Timestamp, int]] = field(default_factory=list)

    def summary(self) -> str:
        """A short human-readable multi-line summary."""
        if self.first is None:
            return f"{self.instrument_id} funding: up to date (last stored {self.resumed_from})"
        lines = [
            f"{self.instrument_id} funding every {_hours(self.interval)}: requested "
            f"{self.first} .. {self.last} in {self.pages:,} page(s)",
            f"received {self.received:,}, wrote {self.written:,} funding rate(s)",
        ]
        if self.resumed_from is not None:
            lines.append(f"resumed after stored funding time {self.resumed_from}")
        if self.duplicates_dropped:
            lines.append(f"dropped {self.duplicates_dropped:,} duplicate row(s)")
        if self.gaps:
            lines.append(gaps_line(self.gaps, str))
        return "\n".join(lines)


def download_bybit_funding(
    catalog_path: CatalogLike,
    symbol: str = "BTCUSDT",
    start: TimeLike | None = None,
    end: TimeLike | None = None,
    *,
    base_url: str | None = None,
    exchange: object | None = None,
    limit: int = BYBIT_MAX_FUNDING_ROWS,
    retries: int = 5,
) -> FundingDownloadReport:
    """Download Bybit funding history into the catalog (resumes after the last stored time).

    The funding interval comes from the instrument (``fundingInterval``, minutes). Without
    stored rows and ``start``, fetches the last 30 days.
    """
    from catalogs.download import call_with_retry  # ccxt import only when needed
    from catalogs.download import linear_market_symbol
    from catalogs.download import make_bybit_exchange

    if not 1 <= limit <= BYBIT_MAX_FUNDING_ROWS:
        raise ValueError(f"limit must be within 1..{BYBIT_MAX_FUNDING_ROWS}, got {limit}")
    instrument_id = bybit_linear_instrument_id(symbol)
    now = pd.Timestamp.now(tz="UTC")
    start_ts, end_ts = to_utc_timestamp(start), to_utc_timestamp(end)
    if start_ts is not None and end_ts is not None and start_ts >= end_ts:
        raise EmptyRangeError(f"start {start_ts} is not before end {end_ts}; pass an earlier start")
    if start_ts is not None and start_ts >= now:
        raise EmptyRangeError(f"start {start_ts} is in the future; pass a past start")
    exchange = exchange or make_bybit_exchange(base_url)
    market = call_with_retry(
        lambda: linear_market_symbol(exchange, symbol), what="loading markets", retries=retries
    )
    interval = _market_funding_interval(exchange, market)
    last = min(end_ts or now, now).floor(interval)
    resumed = last_funding_time(catalog_path, instrument_id)
    first = (start_ts or last - pd.Timedelta(days=30)).ceil(interval)
    if resumed is not None:
        first = max(first, resumed + interval)
    report = FundingDownloadReport(symbol.upper(), instrument_id, interval, first, last, resumed)
    if first > last:
        report.first = None
        return report
    rows: list[tuple[pd.Timestamp, float]] = []
    span = interval * (limit - 1)
    since = first
    while since <= last:
        until = min(since + span, last)
        page = call_with_retry(
            lambda s=since, u=until: exchange.fetch_funding_rate_history(
                market, since=s.value // _MS, limit=limit, params={"until": u.value // _MS}
            ),
            what=f"fetching {symbol} funding rates {since} .. {until}",
            retries=retries,
        )
        report.pages += 1
        report.received += len(page)
        rows.extend(
            (pd.Timestamp(int(r["timestamp"]), unit="ms", tz="UTC"), float(r["fundingRate"]))
            for r in page
            if since.value // _MS <= int(r["timestamp"]) <= until.value // _MS
        )
        since = until + interval
    if not rows:
        return report
    rates = pd.Series([r for _, r in rows], index=pd.DatetimeIndex([t for t, _ in rows]))
    checked = validate_funding(rates, interval)
    report.duplicates_dropped = checked.duplicates_dropped
    report.gaps = checked.gaps
    if resumed is not None and checked.rates.index[0] > resumed + interval:
        missing = int((checked.rates.index[0] - resumed) / interval) - 1
        report.gaps.insert(0, (resumed, checked.rates.index[0], missing))
    report.written = write_funding(catalog_path, checked.rates, instrument_id, interval)
    return report


def _market_funding_interval(exchange: object, market: str) -> pd.Timedelta:
    info = exchange.market(market).get("info") or {}
    minutes = info.get("fundingInterval")
    try:
        minutes = int(minutes)
    except (TypeError, ValueError):
        raise DownloadError(
            f"Bybit gave no usable fundingInterval for {market} ({minutes!r}); cannot check "
            "the funding history against its interval"
        ) from None
    if minutes <= 0:
        raise DownloadError(f"Bybit gave fundingInterval {minutes} for {market}")
    return pd.Timedelta(minutes=minutes)


def _hours(interval: pd.Timedelta) -> str:
    hours = interval / pd.Timedelta(hours=1)
    return f"{hours:g} h" if math.isfinite(hours) else str(interval)


def gaps_line(gaps: list, stamp: Callable[[Any], str]) -> str:
    """One summary line of missing funding times: (first, last, missing) per gap."""
    missing = sum(gap[2] for gap in gaps)
    return (
        f"gaps: {len(gaps):,} ({missing:,} missing funding times), first "
        f"{stamp(gaps[0][0])} .. {stamp(gaps[0][1])}"
    )


def _stamp(stamp: pd.Timestamp | None) -> str:
    return "none" if stamp is None else pd.Timestamp(stamp).strftime("%Y-%m-%d %H:%M UTC")
