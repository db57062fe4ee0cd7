"""Read OHLCV bars from CSV files into canonical bar frames.

Column names are matched case-insensitively against the usual spellings (``timestamp``,
``time``, ``date``, ``datetime``, ``open_time``; ``open``/``o``; ...; ``volume``/``vol``) unless
a mapping ``{csv_column: canonical_name}`` is given. Timestamps may be epoch numbers (unit
inferred from their magnitude or given explicitly) or ISO 8601 strings. Bars stamped at their
open time (most exchange exports) are re-stamped at their close time. The median spacing of
the timestamps must equal the interval the bars are read as, so hourly bars cannot be imported as
1-minute bars by mistake.

Funding-rate CSVs (``timestamp,rate``: the settlement time and the rate a long pays per funding
interval) are read by :func:`read_funding_csv`, with the same file checks and the same
timestamp parsing.

Error messages quote *file line numbers* (the header is line 1).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Final
from typing import Literal

import numpy as np
import pandas as pd

from catalogs.bars import BAR_COLUMNS
from catalogs.bars import Interval
from catalogs.bars import bar_frame
from catalogs.bars import format_interval
from catalogs.bars import parse_interval
from catalogs.errors import CatalogsError
from catalogs.errors import CsvFileNotFoundError
from catalogs.errors import CsvFormatError
from catalogs.errors import CsvReadError
from catalogs.errors import IntervalMismatchError

TimestampUnit = Literal["auto", "s", "ms", "us", "ns", "iso"]
Stamp = Literal["open", "close"]

TIMESTAMP: Final[str] = "timestamp"
CANONICAL_NAMES: Final[tuple[str, ...]] = (TIMESTAMP, *BAR_COLUMNS)
_TARGET_ALIASES: Final[dict[str, str]] = {"ts": TIMESTAMP}
_AUTO_NAMES: Final[dict[str, tuple[str, ...]]] = {
    TIMESTAMP: ("timestamp", "datetime", "date", "time", "open_time", "opentime", "ts"),
    "open": ("open", "o", "open_price"),
    "high": ("high", "h", "high_price"),
    "low": ("low", "l", "low_price"),
    "close": ("close", "c", "close_price"),
    "volume": ("volume", "vol", "v", "base_volume"),
}
_FUNDING_RATE_NAMES: Final[tuple[str, ...]] = ("rate", "funding_rate", "fundingrate")
# Largest magnitude of an epoch timestamp for each unit (seconds up to year ~5138).
_EPOCH_UNIT_LIMITS: Final[tuple[tuple[float, str], ...]] = (
    (1e11, "s"),
    (1e14, "ms"),
    (1e17, "us"),
)
_SHOW: Final[int] = 5
_HEADER_LINES: Final[int] = 1
_DURATION_UNITS: Final[tuple[tuple[str, pd.Timedelta], ...]] = (
    ("day", pd.Timedelta(days=1)),
    ("hour", pd.Timedelta(hours=1)),
    ("minute", pd.Timedelta(minutes=1)),
    ("second", pd.Timedelta(seconds=1)),
)


def read_ohlcv_csv(
    path: str | Path,
    *,
    interval: Interval,
    columns: Mapping[str, str] | None = None,
    timestamp_unit: TimestampUnit = "auto",
    stamp: Stamp = "open",
    tz: str = "UTC",
) -> pd.DataFrame:
    """Read an OHLCV CSV into a canonical bar frame (index ``ts_close``, UTC, float64 columns).

    ``columns`` maps CSV column names to ``timestamp`` (or ``ts``), ``open``, ``high``, ``low``,
    ``close``, ``volume``; unmapped fields are auto-detected. ``timestamp_unit="auto"`` treats
    numbers as epoch seconds/ms/us/ns by magnitude and strings as ISO 8601. ``stamp`` says whether
    the file's timestamps are bar open times (converted to close = open + interval) or close
    times. ``tz`` is the timezone of naive timestamp strings. Raises
    :class:`~catalogs.errors.IntervalMismatchError` when the median spacing of the timestamps
    differs from ``interval``. Rows keep file order; use :func:`catalogs.bars.validate_bars` to
    check them.
    """
    if stamp not in ("open", "close"):
        raise ValueError(f"stamp must be 'open' or 'close', got {stamp!r}")
    if timestamp_unit not in ("auto", "s", "ms", "us", "ns", "iso"):
        raise ValueError(
            f"timestamp_unit must be auto, s, ms, us, ns or iso, got {timestamp_unit!r}"
        )
    delta = parse_interval(interval)
    raw = _read_table(Path(path), "OHLCV rows")
    selected = resolve_columns(list(raw.columns), columns)
    index = parse_timestamps(raw[selected[TIMESTAMP]], timestamp_unit, tz)
    check_spacing(index, delta, source=str(path))
    if stamp == "open":
        index = index + delta
    values = [_numeric_column(raw[selected[name]], name) for name in BAR_COLUMNS]
    return bar_frame(index, *values)


def _read_table(path: Path, rows: str) -> pd.DataFrame:
    if not path.exists():
        raise CsvFileNotFoundError(f"CSV file not found: {path}; check the path")
    if not path.is_file():
        raise CsvFileNotFoundError(f"{path} is not a regular file; pass the path of a CSV file")
    try:
        # Only empty cells count as missing: 'n/a', 'null' etc. are reported as bad values.
        table = pd.read_csv(
            path, skip_blank_lines=False, low_memory=False, keep_default_na=False, na_values=[""]
        )
    except pd.errors.EmptyDataError as exc:
        raise CsvFormatError(f"{path} is empty; expected a header line and {rows}") from exc
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise CsvFormatError(f"{path} is not a readable CSV file: {exc}") from exc
    except OSError as exc:
        raise CsvReadError(
            f"cannot read {path}: {exc.strerror or exc}; check the file's permissions"
        ) from exc
    if table.empty:
        raise CsvFormatError(f"{path} has a header but no data rows")
    return table


def check_spacing(index: pd.DatetimeIndex, interval: Interval, *, source: str) -> None:
    """Raise unless the median spacing of the distinct timestamps in ``index`` equals ``interval``.

    The lower median is used, so it is always a spacing that occurs in the file. ``source``
    (e.g. the file name) starts the message. Fewer than two timestamps pass.
    """
    delta = parse_interval(interval)
    stamps = np.unique(index.asi8)
    if len(stamps) < 2:
        return
    spacings = np.sort(np.diff(stamps))
    spacing = pd.Timedelta(int(spacings[(len(spacings) - 1) // 2]), unit="ns")  # lower median
    if spacing == delta:
        return
    raise IntervalMismatchError(
        f"{source}: the file's bars are {_duration(spacing)} apart (median spacing) but "
        f"--interval is {format_interval(delta)}; {_spacing_advice(spacing)}"
    )


def _duration(delta: pd.Timedelta) -> str:
    for name, unit in _DURATION_UNITS:
        if delta >= unit and delta % unit == pd.Timedelta(0):
            count = delta // unit
            return f"{count} {name}{'s' if count != 1 else ''}"
    return str(delta)


def _spacing_advice(spacing: pd.Timedelta) -> str:
    try:
        return f"re-run with --interval {format_interval(spacing)}"
    except CatalogsError:
        return "that is not a bar interval Nautilus supports; check the file's timestamps"


def read_funding_csv(
    path: str | Path, *, timestamp_unit: TimestampUnit = "auto", tz: str = "UTC"
) -> pd.Series:
    """Read a funding-rate CSV into a float Series named ``rate`` indexed by UTC funding time.

    The columns are found by name (``timestamp``/``time``/``date``/...; ``rate``/
    ``funding_rate``/``fundingRate``), timestamps parsed as in :func:`read_ohlcv_csv`. Refused,
    naming the file lines: rates that are empty, not numbers or not finite, rows not sorted by
    time, and one time given twice with different rates. Rows keep file order (equal duplicates
    stay; :func:`catalogs.funding.validate_funding` drops them), so position ``i`` is file line
    ``i + 2``.
    """
    raw = _read_table(Path(path), "funding rows (timestamp,rate)")
    columns = list(raw.columns)
    time_column = _detect_funding_column(columns, TIMESTAMP, _AUTO_NAMES[TIMESTAMP])
    rate_column = _detect_funding_column(columns, "rate", _FUNDING_RATE_NAMES)
    index = parse_timestamps(raw[time_column], timestamp_unit, tz)
    rates = _numeric_column(raw[rate_column], "rate")
    infinite = ~np.isfinite(rates)
    if infinite.any():
        raise CsvFormatError(
            f"column {rate_column!r} (rate): {int(infinite.sum()):,} rate(s) are not finite: "
            f"{_lines(raw[rate_column], infinite)}. Fix or remove those rows"
        )
    stamps = index.asi8
    earlier = np.zeros(len(stamps), dtype=bool)
    earlier[1:] = stamps[1:] < np.maximum.accumulate(stamps)[:-1]
    if earlier.any():
        raise CsvFormatError(
            f"{int(earlier.sum()):,} funding time(s) come before a time above them; the rows must "
            f"be sorted by time: {_lines(raw[time_column], earlier)}. Sort the file"
        )
    series = pd.Series(rates, index=index, name="rate")
    repeated = index.duplicated(keep=False)
    clashing = repeated & (series.groupby(level=0).transform("nunique") > 1).to_numpy()
    if clashing.any():
        raise CsvFormatError(
            f"{int(index[clashing].nunique()):,} funding time(s) are given twice with different "
            f"rates: {_lines(_rows_text(raw, [time_column, rate_column]), clashing)}. Keep one "
            "row per time (one source per symbol)"
        )
    return series


def _rows_text(raw: pd.DataFrame, columns: list[str]) -> pd.Series:
    return raw[columns].astype(str).agg(",".join, axis=1)


def _detect_funding_column(available: list[str], name: str, names: tuple[str, ...]) -> str:
    matches = [column for column in available if str(column).strip().lower() in names]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise CsvFormatError(
            f"no {name!r} column found; columns in the file: {_quoted(available)}. A funding "
            f"CSV has a header line naming a time column ({', '.join(_AUTO_NAMES[TIMESTAMP])}) "
            f"and a rate column ({', '.join(_FUNDING_RATE_NAMES)}); rename the column"
        )
    raise CsvFormatError(
        f"several columns could be {name!r}: {_quoted(matches)}; keep one of them in the file"
    )


def resolve_columns(
    available: list[str], mapping: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Return ``{canonical_name: csv_column}`` from an explicit mapping plus auto-detection."""
    selected = _explicit_columns(available, mapping or {})
    for name in CANONICAL_NAMES:
        if name not in selected:
            selected[name] = _detect_column(available, name)
    return selected


def _explicit_columns(available: list[str], mapping: Mapping[str, str]) -> dict[str, str]:
    by_lower = {str(column).strip().lower(): column for column in available}
    selected: dict[str, str] = {}
    for source, target in mapping.items():
        canonical = _TARGET_ALIASES.get(target.strip().lower(), target.strip().lower())
        column = by_lower.get(source.strip().lower())
        if column is None or canonical not in CANONICAL_NAMES:
            _raise_bad_mapping(source, target, canonical, available)
        selected[canonical] = column
    return selected


def _raise_bad_mapping(source: str, target: str, canonical: str, available: list[str]) -> None:
    present = {str(column).strip().lower() for column in available}
    source_key = _TARGET_ALIASES.get(source.strip().lower(), source.strip().lower())
    if target.strip().lower() in present and source_key in CANONICAL_NAMES:
        raise CsvFormatError(
            f"column mapping {{{source!r}: {target!r}}} looks reversed: the mapping is "
            f"{{csv_column: target}}; did you mean {{{target!r}: {source!r}}}?"
        )
    if canonical not in CANONICAL_NAMES:
        raise CsvFormatError(
            f"column mapping {source!r} -> {target!r}: unknown target; targets are "
            f"{', '.join(CANONICAL_NAMES)} (the mapping is {{csv_column: target}})"
        )
    raise CsvFormatError(
        f"column mapping names CSV column {source!r}, which is not in the file; "
        f"columns found: {_quoted(available)}"
    )


def _detect_column(available: list[str], name: str) -> str:
    matches = [column for column in available if str(column).strip().lower() in _AUTO_NAMES[name]]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise CsvFormatError(
            f"no {name!r} column found; columns in the file: {_quoted(available)}. "
            f"Name it with --{name}-col COLUMN (from Python: columns={{'<csv column>': "
            f"{name!r}}}), or rename it to one of {', '.join(_AUTO_NAMES[name])}"
        )
    raise CsvFormatError(
        f"several columns could be {name!r}: {_quoted(matches)}; choose one with "
        f"--{name}-col COLUMN (from Python: columns={{'<csv column>': {name!r}}})"
    )


def parse_timestamps(
    raw: pd.Series, unit: TimestampUnit = "auto", tz: str = "UTC"
) -> pd.DatetimeIndex:
    """Parse a column of epoch numbers or ISO 8601 strings into a UTC nanosecond index."""
    if unit == "iso":
        return _parse_iso(raw, tz)
    numeric = _to_numeric(raw)
    if unit == "auto":
        if not _mostly_numbers(raw, numeric):
            return _parse_iso(raw, tz)
        unit = _infer_epoch_unit(numeric)
    bad = numeric.isna().to_numpy()
    if bad.any():
        raise CsvFormatError(
            f"{int(bad.sum()):,} timestamp(s) are not epoch numbers ({unit}): {_lines(raw, bad)}"
        )
    if pd.api.types.is_float_dtype(numeric) and unit in ("us", "ns"):
        numeric = numeric.round().astype(np.int64)
    index = pd.DatetimeIndex(pd.to_datetime(numeric.to_numpy(), unit=unit, utc=True))
    return index.as_unit("ns")


def _mostly_numbers(raw: pd.Series, numeric: pd.Series) -> bool:
    """True for numeric columns and text columns whose values are mostly numbers."""
    if pd.api.types.is_numeric_dtype(raw):
        return True
    present = raw.notna()
    return bool(present.any()) and numeric[present].notna().mean() > 0.5


def _infer_epoch_unit(numeric: pd.Series) -> Literal["s", "ms", "us", "ns"]:
    magnitude = float(numeric.abs().max())
    for limit, unit in _EPOCH_UNIT_LIMITS:
        if magnitude < limit:
            return unit  # type: ignore[return-value]
    return "ns"


def _parse_iso(raw: pd.Series, tz: str) -> pd.DatetimeIndex:
    text = raw.astype("string").str.strip()
    first = text.dropna()
    aware = len(first) > 0 and _is_tz_aware(first.iloc[0])
    parsed = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=aware)
    bad = parsed.isna().to_numpy()
    if bad.any():
        raise CsvFormatError(
            f"{int(bad.sum()):,} timestamp(s) could not be parsed as ISO 8601 date-times: "
            f"{_lines(raw, bad)}. Use ISO 8601 (e.g. 2024-01-01 00:00:00) or epoch numbers, and "
            "set the unit explicitly if needed (timestamp_unit / --timestamp-unit)"
        )
    index = pd.DatetimeIndex(parsed)
    if not aware:
        index = _localize(index, tz)
    return index.tz_convert("UTC").as_unit("ns")


def _is_tz_aware(text: str) -> bool:
    try:
        return pd.Timestamp(text).tz is not None
    except ValueError:
        return False


def _localize(index: pd.DatetimeIndex, tz: str) -> pd.DatetimeIndex:
    try:
        return index.tz_localize(tz, ambiguous="raise", nonexistent="raise")
    except (KeyError, ValueError) as exc:  # unknown tz, or DST-ambiguous/nonexistent times
        raise CsvFormatError(
            f"cannot interpret naive timestamps in timezone {tz!r}: {exc}. Use a valid IANA "
            "timezone, or export timestamps in UTC / with an explicit offset"
        ) from exc


def _numeric_column(raw: pd.Series, name: str) -> np.ndarray:
    numeric = _to_numeric(raw)
    bad = numeric.isna().to_numpy()
    if bad.any():
        raise CsvFormatError(
            f"column {raw.name!r} ({name}): {int(bad.sum()):,} value(s) are empty or not numbers: "
            f"{_lines(raw, bad)}. Fix or remove those rows"
        )
    return numeric.to_numpy(dtype=np.float64)


def _to_numeric(raw: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        return raw
    return pd.to_numeric(raw.astype("string").str.strip(), errors="coerce")


def _lines(raw: pd.Series, bad: np.ndarray) -> str:
    positions = np.flatnonzero(bad)
    shown = ", ".join(
        f"line {pos + 1 + _HEADER_LINES}: {_show_value(raw.iloc[pos])}" for pos in positions[:_SHOW]
    )
    return shown + (", ..." if len(positions) > _SHOW else "")


def _show_value(value: object) -> str:
    return "<empty>" if pd.isna(value) else repr(str(value))


def _quoted(names: list[str]) -> str:
    return ", ".join(repr(str(name)) for name in names)
