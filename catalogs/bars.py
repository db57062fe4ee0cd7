"""Canonical OHLCV bar frames: intervals, Nautilus bar types and validation.

The *canonical bar frame* is what every loader in this package returns and every writer accepts:

- a ``DatetimeIndex`` named ``ts_close``, tz-aware UTC, nanosecond unit, holding each bar's
  **close** time (Nautilus stamps bars at their close: ``ts_event`` = close time);
- float64 columns ``open, high, low, close, volume`` in that order (:data:`BAR_COLUMNS`).

Intervals are written ``"1min"``, ``"5min"``, ``"1h"``, ``"4h"``, ``"1d"``, ccxt style
(``"1m"``, ``"15m"``), as Nautilus step/aggregation pairs (``"1-MINUTE"``, ``"4-HOUR"``) or as
``pd.Timedelta``. Only intervals Nautilus can express as a time bar are accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from datetime import timedelta
from typing import Final
from typing import Literal
from typing import NamedTuple

import numpy as np
import pandas as pd
from nautilus_trader.model.data import BarType

from catalogs.errors import CatalogsError
from catalogs.errors import IntervalError

BAR_COLUMNS: Final[list[str]] = ["open", "high", "low", "close", "volume"]
PRICE_COLUMNS: Final[list[str]] = ["open", "high", "low", "close"]
INDEX_NAME: Final[str] = "ts_close"

GapPolicy = Literal["error", "report", "fill"]
DuplicatePolicy = Literal["error", "drop"]
Interval = str | pd.Timedelta | timedelta | tuple[int, str]

_SHOW: Final[int] = 5  # offending timestamps/rows quoted in error messages

_UNIT_SECONDS: Final[dict[str, int]] = {"SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86400}
# Nautilus accepts a time-bar step only if it divides the next larger unit evenly.
_VALID_STEPS: Final[dict[str, tuple[int, ...]]] = {
    "SECOND": (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30),
    "MINUTE": (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30),
    "HOUR": (1, 2, 3, 4, 6, 8, 12),
    "DAY": (1,),
}
_UNIT_ALIASES: Final[dict[str, str]] = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), "SECOND"),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), "MINUTE"),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), "HOUR"),
    **dict.fromkeys(("d", "day", "days"), "DAY"),
}
_INTERVAL_PATTERN: Final = re.compile(r"^\s*(\d+)\s*[-_ ]?\s*([A-Za-z]+)\s*$")
_INTERVAL_HELP: Final[str] = (
    "use e.g. '1min', '5min', '15min', '1h', '4h', '1d', ccxt style '1m'/'1h', "
    "or a Nautilus pair such as '1-MINUTE' or '4-HOUR'"
)


class BarValidationError(CatalogsError, ValueError):
    """Bars failed validation. ``problems`` holds one line per failed check."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("Bar validation failed: " + "; ".join(self.problems))


class BarGap(NamedTuple):
    """A run of missing bars: ``start``/``end`` are the close times of the bars around it."""

    start: pd.Timestamp
    end: pd.Timestamp
    missing_bars: int


@dataclass
class BarValidationReport:
    """What :func:`validate_bars` found and what it repaired."""

    interval: pd.Timedelta
    n_input_rows: int
    n_bars: int
    first_ts: pd.Timestamp | None
    last_ts: pd.Timestamp | None
    gap_policy: GapPolicy
    gaps: list[BarGap] = field(default_factory=list)
    filled_bars: int = 0
    dropped_duplicates: int = 0
    conflicting_duplicates: int = 0
    ignored_columns: tuple[str, ...] = ()

    @property
    def missing_bars(self) -> int:
        """Total number of bars missing inside the gaps."""
        return sum(gap.missing_bars for gap in self.gaps)

    @property
    def is_clean(self) -> bool:
        """True when nothing was missing, dropped, filled or ignored."""
        return not (
            self.gaps or self.filled_bars or self.dropped_duplicates or self.ignored_columns
        )

    def summary(self) -> str:
        """Return a short human-readable multi-line summary."""
        lines = [
            f"{self.n_bars:,} bars of {format_interval(self.interval)}, close times "
            f"{self.first_ts} .. {self.last_ts} ({self.n_input_rows:,} input rows)"
        ]
        if self.gaps:
            largest = max(self.gaps, key=lambda gap: gap.missing_bars)
            lines.append(
                f"gaps: {len(self.gaps):,} ({self.missing_bars:,} missing bars), largest "
                f"{largest.start} .. {largest.end} ({largest.missing_bars:,} bars)"
            )
        if self.filled_bars:
            lines.append(f"filled: {self.filled_bars:,} flat bars (o=h=l=c=previous close, v=0)")
        if self.dropped_duplicates:
            lines.append(
                f"dropped: {self.dropped_duplicates:,} duplicate timestamps "
                f"({self.conflicting_duplicates:,} with values differing from the kept row)"
            )
        if self.ignored_columns:
            lines.append(f"ignored columns: {', '.join(self.ignored_columns)}")
        if self.is_clean:
            lines.append("no issues")
        return "\n".join(lines)


# -- Intervals and bar types ---------------------------------------------------------------------


def parse_interval(interval: Interval) -> pd.Timedelta:
    """Parse a bar interval into a ``pd.Timedelta`` that Nautilus can express as a time bar."""
    if isinstance(interval, pd.Timedelta | timedelta):
        delta = pd.Timedelta(interval)
    elif isinstance(interval, tuple):
        delta = _delta_from_step_unit(str(interval[0]), str(interval[1]), interval)
    elif isinstance(interval, str):
        delta = _parse_interval_string(interval)
    else:
        raise IntervalError(f"Interval must be a string or Timedelta, got {type(interval)!r}")
    _spec_parts(delta)  # raises if Nautilus cannot represent it
    return delta


def format_interval(interval: Interval) -> str:
    """Return the short form of an interval, e.g. ``'1min'``, ``'4h'``, ``'1d'``."""
    step, aggregation = _spec_parts(parse_interval(interval))
    suffix = {"SECOND": "s", "MINUTE": "min", "HOUR": "h", "DAY": "d"}[aggregation]
    return f"{step}{suffix}"


def bar_spec_parts(interval: Interval) -> tuple[int, str]:
    """Return the Nautilus ``(step, aggregation)`` pair, e.g. ``(4, "HOUR")``."""
    return _spec_parts(parse_interval(interval))


def bar_type_string(instrument_id: object, interval: Interval) -> str:
    """Return the Nautilus bar type string for external LAST-price time bars.

    ``bar_type_string("BTCUSDT-LINEAR.BYBIT", "1h")`` gives
    ``"BTCUSDT-LINEAR.BYBIT-1-HOUR-LAST-EXTERNAL"``.
    """
    step, aggregation = bar_spec_parts(interval)
    candidate = f"{instrument_id}-{step}-{aggregation}-LAST-EXTERNAL"
    try:
        return str(BarType.from_str(candidate))
    except ValueError as exc:
        raise IntervalError(
            f"Cannot build a bar type from instrument id {str(instrument_id)!r}: {exc}. "
            "Instrument ids look like 'BTCUSDT-LINEAR.BYBIT'."
        ) from exc


def interval_of_bar_type(bar_type: str | BarType) -> pd.Timedelta:
    """Return the interval of a time-aggregated Nautilus bar type."""
    parsed = parse_bar_type(bar_type)
    if not parsed.spec.is_time_aggregated():
        raise IntervalError(
            f"Bar type {parsed} is not time-aggregated; only time bars "
            "(SECOND/MINUTE/HOUR/DAY) have an interval."
        )
    return parse_interval(pd.Timedelta(parsed.spec.timedelta))


def parse_bar_type(bar_type: str | BarType) -> BarType:
    """Parse a bar type string with a clear error message."""
    if isinstance(bar_type, BarType):
        return bar_type
    try:
        return BarType.from_str(str(bar_type).strip())
    except ValueError as exc:
        raise IntervalError(
            f"Not a Nautilus bar type: {bar_type!r} ({exc}). Expected e.g. "
            "'BTCUSDT-LINEAR.BYBIT-1-MINUTE-LAST-EXTERNAL'."
        ) from exc


def _parse_interval_string(text: str) -> pd.Timedelta:
    match = _INTERVAL_PATTERN.match(text)
    if match is None:
        raise IntervalError(f"Cannot parse interval {text!r}: {_INTERVAL_HELP}.")
    return _delta_from_step_unit(match.group(1), match.group(2), text)


def _delta_from_step_unit(step_text: str, unit_text: str, original: object) -> pd.Timedelta:
    if unit_text == "M":
        raise IntervalError(
            f"Interval {original!r} looks like monthly bars ('M'); months have no fixed length. "
            "For minutes write 'm' or 'min'."
        )
    aggregation = _UNIT_ALIASES.get(unit_text.lower(), unit_text.upper())
    if aggregation not in _UNIT_SECONDS or not step_text.isdigit():
        raise IntervalError(f"Cannot parse interval {original!r}: {_INTERVAL_HELP}.")
    return pd.Timedelta(seconds=int(step_text) * _UNIT_SECONDS[aggregation])


def _spec_parts(delta: pd.Timedelta) -> tuple[int, str]:
    if delta <= pd.Timedelta(0) or delta % pd.Timedelta(seconds=1) != pd.Timedelta(0):
        raise IntervalError(f"Interval {delta} must be a positive whole number of seconds.")
    if delta > pd.Timedelta(days=1):
        raise IntervalError(
            f"Interval {delta} is longer than one day; multi-day and weekly bars align to "
            "venue-specific calendars and are not supported here."
        )
    seconds = int(delta.total_seconds())
    for aggregation in ("DAY", "HOUR", "MINUTE", "SECOND"):
        unit = _UNIT_SECONDS[aggregation]
        if seconds % unit == 0:
            step = seconds // unit
            if step in _VALID_STEPS[aggregation]:
                return step, aggregation
            break
    raise IntervalError(
        f"Interval {delta} is not a Nautilus time bar: the step must divide the next unit "
        "(1,2,3,4,5,6,10,12,15,20,30 seconds or minutes; 1,2,3,4,6,8,12 hours; or 1 day)."
    )


# -- Canonical frames ----------------------------------------------------------------------------


def bar_frame(
    ts_close: pd.DatetimeIndex | np.ndarray,
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
) -> pd.DataFrame:
    """Build a canonical bar frame (``ts_close`` may be ns int64 or a DatetimeIndex)."""
    if isinstance(ts_close, pd.DatetimeIndex):
        index = _utc_ns_index(ts_close)
    else:
        index = pd.DatetimeIndex(pd.to_datetime(np.asarray(ts_close, dtype=np.int64), utc=True))
        index = index.as_unit("ns")
    columns = (open_, high, low, close, volume)
    data = {
        name: np.asarray(values, dtype=np.float64)
        for name, values in zip(BAR_COLUMNS, columns, strict=True)
    }
    return pd.DataFrame(data, index=index.rename(INDEX_NAME))


def empty_bar_frame() -> pd.DataFrame:
    """Return a canonical bar frame with no rows."""
    empty = np.empty(0, dtype=np.float64)
    return bar_frame(np.empty(0, dtype=np.int64), empty, empty, empty, empty, empty)


def to_utc_timestamp(value: str | pd.Timestamp | datetime | int | None) -> pd.Timestamp | None:
    """Return ``value`` as a UTC ``pd.Timestamp``; naive values are taken as UTC."""
    if value is None:
        return None
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tz is None else stamp.tz_convert("UTC")


def _utc_ns_index(index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    return index.tz_convert("UTC").as_unit("ns").rename(INDEX_NAME)


# -- Validation ----------------------------------------------------------------------------------


def validate_bars(
    df: pd.DataFrame,
    interval: Interval,
    *,
    gap_policy: GapPolicy = "report",
    duplicate_policy: DuplicatePolicy = "error",
) -> tuple[pd.DataFrame, BarValidationReport]:
    """Validate bars and return a canonical copy plus a report; ``df`` is never mutated.

    Checks non-finite values, non-positive prices, negative volume, ``high < low``,
    ``open``/``close`` outside ``[low, high]``, duplicate, unsorted and off-grid timestamps, and
    gaps. ``gap_policy``: ``"error"`` raises, ``"report"`` lists gaps, ``"fill"`` inserts flat bars
    (o=h=l=c=previous close, volume 0). ``duplicate_policy="drop"`` keeps the first row of each
    duplicated timestamp. Raises :class:`BarValidationError` describing every failed check.
    """
    _check_policy("gap_policy", gap_policy, ("error", "report", "fill"))
    _check_policy("duplicate_policy", duplicate_policy, ("error", "drop"))
    delta = parse_interval(interval)
    frame, ignored = _canonical_copy(df)
    n_input = len(frame)

    problems = _value_problems(frame)
    frame, dropped, conflicting, duplicate_problem = _handle_duplicates(frame, duplicate_policy)
    problems += duplicate_problem
    if problems:
        raise BarValidationError(problems)
    _check_order_and_grid(frame.index, delta)

    gaps = find_gaps(frame.index, delta)
    if gaps and gap_policy == "error":
        raise BarValidationError([_gap_problem(gaps)])
    filled = 0
    if gaps and gap_policy == "fill":
        frame, filled = _fill_gaps(frame, delta)

    report = BarValidationReport(
        interval=delta,
        n_input_rows=n_input,
        n_bars=len(frame),
        first_ts=frame.index[0],
        last_ts=frame.index[-1],
        gap_policy=gap_policy,
        gaps=gaps,
        filled_bars=filled,
        dropped_duplicates=dropped,
        conflicting_duplicates=conflicting,
        ignored_columns=ignored,
    )
    return frame, report


def find_gaps(index: pd.DatetimeIndex, interval: Interval) -> list[BarGap]:
    """Return the gaps of a sorted, on-grid close-time index."""
    step_ns = parse_interval(interval).value
    stamps = index.as_unit("ns").asi8
    if len(stamps) < 2:
        return []
    diffs = np.diff(stamps)
    positions = np.flatnonzero(diffs > step_ns)
    return [BarGap(index[pos], index[pos + 1], int(diffs[pos] // step_ns) - 1) for pos in positions]


def _check_policy(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def _canonical_copy(df: pd.DataFrame) -> tuple[pd.DataFrame, tuple[str, ...]]:
    if not isinstance(df, pd.DataFrame):
        raise BarValidationError([f"expected a pandas DataFrame of bars, got {type(df)!r}"])
    if not isinstance(df.index, pd.DatetimeIndex):
        raise BarValidationError(
            [
                f"the index must be a DatetimeIndex of bar close times, got {type(df.index)!r}; "
                "set it with df.set_index('ts_close') or load bars with read_ohlcv_csv()"
            ]
        )
    if df.index.tz is None:
        raise BarValidationError(
            ["the index is timezone-naive; localize it first, e.g. df.tz_localize('UTC')"]
        )
    missing = [name for name in BAR_COLUMNS if name not in df.columns]
    if missing:
        raise BarValidationError(
            [
                f"missing column(s) {missing}; found {list(map(str, df.columns))}. "
                "Rename them to open, high, low, close, volume"
            ]
        )
    not_numeric = [
        f"{name} ({df[name].dtype})"
        for name in BAR_COLUMNS
        if not pd.api.types.is_numeric_dtype(df[name])
    ]
    if not_numeric:
        raise BarValidationError(
            [f"non-numeric column(s): {', '.join(not_numeric)}; convert with pd.to_numeric"]
        )
    if df.empty:
        raise BarValidationError(["the frame has no rows"])
    columns = [df[name].to_numpy(dtype=np.float64, copy=True) for name in BAR_COLUMNS]
    frame = bar_frame(df.index, *columns)
    ignored = tuple(str(name) for name in df.columns if name not in BAR_COLUMNS)
    return frame, ignored


def _value_problems(frame: pd.DataFrame) -> list[str]:
    values = {name: frame[name].to_numpy() for name in BAR_COLUMNS}
    o, h, lo, c, v = (values[name] for name in BAR_COLUMNS)
    finite = np.isfinite(frame.to_numpy())
    bad_columns = [name for name, ok in zip(BAR_COLUMNS, finite.all(axis=0), strict=True) if not ok]
    checks = [
        (
            ~finite.all(axis=1),
            f"NaN or infinite values (columns: {', '.join(bad_columns)})",
            "drop or repair those rows at the source",
        ),
        (
            (o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0),
            "non-positive prices",
            "prices must be > 0; remove placeholder rows (zeros) from the source",
        ),
        (v < 0, "negative volume", "volume must be >= 0"),
        (h < lo, "high < low", "check for swapped high/low columns in the mapping"),
        (
            (o < lo) | (o > h) | (c < lo) | (c > h),
            "open or close outside [low, high]",
            "check the column mapping (open/high/low/close order) and the source data",
        ),
    ]
    return [_row_problem(frame, mask, what, fix) for mask, what, fix in checks if bool(mask.any())]


def _row_problem(frame: pd.DataFrame, mask: np.ndarray, what: str, fix: str) -> str:
    rows = frame[mask]
    shown = "; ".join(
        f"{ts} o={row.open:g} h={row.high:g} l={row.low:g} c={row.close:g} v={row.volume:g}"
        for ts, row in zip(rows.index[:_SHOW], rows.itertuples(index=False), strict=False)
    )
    more = ", ..." if len(rows) > _SHOW else ""
    return f"{len(rows):,} bar(s) with {what}: {shown}{more}. Fix: {fix}"


def _handle_duplicates(
    frame: pd.DataFrame, policy: DuplicatePolicy
) -> tuple[pd.DataFrame, int, int, list[str]]:
    duplicated = frame.index.duplicated(keep="first")
    count = int(duplicated.sum())
    if count == 0:
        return frame, 0, 0, []
    if policy == "error":
        stamps = _sample(frame.index[duplicated].unique())
        problem = (
            f"{count:,} duplicate timestamp row(s) (first: {stamps}). Remove them, or import "
            "with `python -m catalogs import-csv ... --duplicate-policy drop` to keep the first "
            "row of each timestamp"
        )
        return frame, 0, 0, [problem]
    involved = frame[frame.index.duplicated(keep=False)]
    conflicting = int((involved.groupby(level=0).nunique(dropna=False) > 1).any(axis=1).sum())
    return frame[~duplicated], count, conflicting, []


def _check_order_and_grid(index: pd.DatetimeIndex, delta: pd.Timedelta) -> None:
    stamps = index.asi8
    backwards = np.flatnonzero(np.diff(stamps) < 0)
    if len(backwards):
        pairs = ", ".join(f"{index[i]} followed by {index[i + 1]}" for i in backwards[:_SHOW])
        raise BarValidationError(
            [
                f"timestamps are not sorted: {len(backwards):,} place(s) go backwards ({pairs}). "
                "Sort the rows by time (in pandas: df.sort_index()) after checking why the "
                "source is out of order"
            ]
        )
    off_grid = stamps % delta.value != 0
    if off_grid.any():
        raise BarValidationError(
            [
                f"{int(off_grid.sum()):,} timestamp(s) are not on the {format_interval(delta)} "
                f"grid (first: {_sample(index[off_grid])}). Bars must be stamped at their close "
                "time, a multiple of the interval since 1970-01-01 UTC; check the interval and "
                "that the timestamp unit/timezone were parsed correctly"
            ]
        )


def _gap_problem(gaps: list[BarGap]) -> str:
    shown = ", ".join(f"{g.start} .. {g.end} ({g.missing_bars} bars)" for g in gaps[:_SHOW])
    more = ", ..." if len(gaps) > _SHOW else ""
    missing = sum(gap.missing_bars for gap in gaps)
    return (
        f"{len(gaps):,} gap(s) with {missing:,} missing bar(s): {shown}{more}. "
        "Pass --gap-policy report to keep the gaps or --gap-policy fill to insert flat bars"
    )


def _fill_gaps(frame: pd.DataFrame, delta: pd.Timedelta) -> tuple[pd.DataFrame, int]:
    stamps = np.arange(frame.index[0].value, frame.index[-1].value + 1, delta.value)
    full_index = pd.DatetimeIndex(pd.to_datetime(stamps, utc=True)).as_unit("ns")
    filled = frame.reindex(full_index.rename(INDEX_NAME))
    new_rows = filled["close"].isna().to_numpy()
    previous_close = filled["close"].ffill()
    for name in PRICE_COLUMNS:
        filled[name] = filled[name].where(~new_rows, previous_close)
    filled["volume"] = filled["volume"].fillna(0.0)
    return filled, int(new_rows.sum())


def _sample(index: pd.Index) -> str:
    shown = ", ".join(str(ts) for ts in index[:_SHOW])
    return shown + (", ..." if len(index) > _SHOW else "")
