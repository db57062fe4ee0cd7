"""Write canonical bar frames to a Nautilus ``ParquetDataCatalog`` and read them back.

Writes are **append-only and idempotent** per bar type: bars at or before the last stored close
time are never rewritten (rewriting an overlapping range would make Nautilus raise "Intervals
are not disjoint"). Overlapping bars equal to the stored ones are skipped silently; overlapping
bars that differ, or that fall inside the stored range where nothing is stored, are reported
(an error by default, a warning with ``on_conflict="warn"``) and never overwrite stored data.

Bars are stored with ``ts_event == ts_init ==`` the bar's close time in nanoseconds, which is
how Nautilus expects bars to be stamped.

Writes are **crash-safe and serialised** (:mod:`catalogs.storage`): a file appears under its
final name only once complete, and one writer at a time holds the catalog's lock file
``.catalogs.lock``. A damaged Parquet file met while reading is named in a
:class:`~catalogs.errors.DamagedFileError`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from pathlib import Path
from typing import Final
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from nautilus_trader.model.data import Bar
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.persistence.catalog import ParquetDataCatalog
from nautilus_trader.persistence.funcs import class_to_filename
from nautilus_trader.persistence.funcs import urisafe_identifier
from nautilus_trader.persistence.wranglers import BarDataWrangler
from tqdm import tqdm

from catalogs.bars import BAR_COLUMNS
from catalogs.bars import PRICE_COLUMNS
from catalogs.bars import BarGap
from catalogs.bars import BarValidationReport
from catalogs.bars import DuplicatePolicy
from catalogs.bars import GapPolicy
from catalogs.bars import Interval
from catalogs.bars import bar_frame
from catalogs.bars import bar_type_string
from catalogs.bars import empty_bar_frame
from catalogs.bars import parse_bar_type
from catalogs.bars import parse_interval
from catalogs.bars import to_utc_timestamp
from catalogs.bars import validate_bars
from catalogs.errors import BarTypeNotFoundError
from catalogs.errors import CatalogNotFoundError
from catalogs.errors import CatalogWriteError
from catalogs.errors import EmptyRangeError
from catalogs.errors import InstrumentNotFoundError
from catalogs.errors import OverlapConflictError
from catalogs.errors import PrecisionError
from catalogs.storage import catalog_root
from catalogs.storage import check_catalog_target
from catalogs.storage import check_readable
from catalogs.storage import damaged_file_error
from catalogs.storage import naming_damaged_files
from catalogs.storage import write_data_atomically
from catalogs.storage import write_lock

DEFAULT_CATALOG_PATH: Final[Path] = Path("var/catalog")
CatalogLike = str | Path | ParquetDataCatalog
TimeLike = str | pd.Timestamp | datetime | int
ConflictPolicy = Literal["error", "warn"]

_SHOW: Final[int] = 5
_DECIMAL_TOLERANCE: Final[float] = 1e-6  # in units of the tick or lot step


@dataclass(frozen=True)
class BarTypeSummary:
    """What the catalog holds for one bar type."""

    bar_type: str
    count: int
    first: pd.Timestamp
    last: pd.Timestamp
    files: int


@dataclass
class WriteResult:
    """Outcome of :func:`write_bars_detailed`."""

    bar_type: str
    written: int
    skipped_existing: int
    first_written: pd.Timestamp | None
    last_written: pd.Timestamp | None
    report: BarValidationReport
    rounded_volumes: int = 0
    rounded_prices: int = 0
    conflicts: list[str] = field(default_factory=list)
    gap_before: BarGap | None = None  # gap between stored data and the first written bar

    def summary(self) -> str:
        """Return a short human-readable multi-line summary."""
        lines = [f"{self.bar_type}: wrote {self.written:,} bars"]
        if self.written:
            lines[0] += f" ({self.first_written} .. {self.last_written})"
        if self.skipped_existing:
            lines.append(f"skipped {self.skipped_existing:,} bars already covered by the catalog")
        if self.gap_before is not None:
            gap = self.gap_before
            lines.append(
                f"gap to stored data: {gap.start} .. {gap.end} ({gap.missing_bars:,} bars)"
            )
        if self.rounded_prices:
            lines.append(f"rounded {self.rounded_prices:,} bars' prices to the instrument's tick")
        if self.rounded_volumes:
            lines.append(
                f"rounded {self.rounded_volumes:,} volumes to the instrument's size precision"
            )
        lines.extend(f"conflict: {conflict}" for conflict in self.conflicts)
        lines.append("validation: " + self.report.summary().replace("\n", "; "))
        return "\n".join(lines)


# -- Opening and listing -------------------------------------------------------------------------


def open_catalog(path: CatalogLike, *, create: bool = False) -> ParquetDataCatalog:
    """Open the catalog at ``path``. With ``create`` (every writer), a missing catalog is
    created, and a path that must not become a catalog is refused first
    (:func:`~catalogs.storage.check_catalog_target`)."""
    if isinstance(path, ParquetDataCatalog):
        return path
    root = Path(path).expanduser().resolve()
    if create:
        check_catalog_target(root)
    if root.exists() and not root.is_dir():
        raise CatalogNotFoundError(f"Catalog path {root} exists but is not a directory")
    if not root.exists():
        if not create:
            raise CatalogNotFoundError(
                f"No data catalog at {root}. Create one with `python -m catalogs synth`, "
                "`python -m catalogs import-csv` or `python -m catalogs fetch`, "
                "or check the path"
            )
        try:
            root.mkdir(parents=True)
        except OSError as exc:
            raise CatalogWriteError(
                f"Cannot create the catalog directory {root}: {exc.strerror}. Check the path "
                "and that its parent directory is writable"
            ) from exc
    return ParquetDataCatalog(str(root))


def list_bar_types(catalog_path: CatalogLike) -> list[str]:
    """Return the bar type strings stored in the catalog, sorted."""
    return sorted(_bar_files(open_catalog(catalog_path)))


def describe_bar_types(catalog_path: CatalogLike) -> list[BarTypeSummary]:
    """Return count and first/last close time of every stored bar type."""
    catalog = open_catalog(catalog_path)
    summaries = []
    for bar_type, files in sorted(_bar_files(catalog).items()):
        intervals = catalog.get_intervals(Bar, bar_type)
        count = sum(_parquet_metadata(catalog, file).num_rows for file in files)
        summaries.append(
            BarTypeSummary(
                bar_type=bar_type,
                count=count,
                first=pd.Timestamp(intervals[0][0], tz="UTC"),
                last=pd.Timestamp(intervals[-1][1], tz="UTC"),
                files=len(files),
            )
        )
    return summaries


def list_instrument_ids(catalog_path: CatalogLike) -> list[str]:
    """Return the ids of the instruments stored in the catalog, sorted."""
    catalog = open_catalog(catalog_path)
    return sorted({str(instrument.id) for instrument in _stored_instruments(catalog)})


def load_instrument(catalog_path: CatalogLike, instrument_id: str) -> Instrument:
    """Return the stored instrument with ``instrument_id`` (the latest version if several)."""
    catalog = open_catalog(catalog_path)
    found = _stored_instruments(catalog, str(instrument_id))
    if not found:
        stored = list_instrument_ids(catalog)
        raise InstrumentNotFoundError(
            f"Instrument {instrument_id!r} is not in the catalog at {catalog.path}; stored "
            f"instruments: {', '.join(stored) or 'none'}. Import its bars with `python -m "
            f"catalogs import-csv FILE.csv --symbol SYMBOL --interval INTERVAL --catalog "
            f"{catalog.path}` (or `python -m catalogs fetch`)"
        )
    return max(found, key=lambda instrument: instrument.ts_init)


def last_bar_close(catalog_path: CatalogLike, bar_type: str) -> pd.Timestamp | None:
    """Return the close time of the last stored bar of ``bar_type`` (None when there is none)."""
    catalog = open_catalog(catalog_path)
    intervals = catalog.get_intervals(Bar, str(parse_bar_type(bar_type)))
    return pd.Timestamp(intervals[-1][1], tz="UTC") if intervals else None


def _bar_files(catalog: ParquetDataCatalog) -> dict[str, list[str]]:
    files_by_type: dict[str, list[str]] = {}
    for file in sorted(catalog.get_file_list_from_data_cls(Bar)):
        bar_type = _stored_bar_type(catalog, file)
        files_by_type.setdefault(bar_type, []).append(file)
    return files_by_type


def _stored_bar_type(catalog: ParquetDataCatalog, file: str) -> str:
    metadata = _parquet_metadata(catalog, file).schema.to_arrow_schema().metadata or {}
    stored = metadata.get(b"bar_type")
    return stored.decode() if stored else Path(file).parent.name


def _bar_type_directory(catalog: ParquetDataCatalog, bar_type: str) -> Path:
    return Path(catalog.path) / "data" / class_to_filename(Bar) / urisafe_identifier(bar_type)


def _parquet_metadata(catalog: ParquetDataCatalog, file: str) -> pq.FileMetaData:
    try:
        return pq.read_metadata(file, filesystem=catalog.fs)
    except (pa.ArrowException, OSError) as exc:
        raise damaged_file_error(file, exc) from exc


def _stored_instruments(
    catalog: ParquetDataCatalog, instrument_id: str | None = None
) -> list[Instrument]:
    with naming_damaged_files(Path(catalog.path) / "data"):
        ids = None if instrument_id is None else [instrument_id]
        return catalog.instruments(instrument_ids=ids)


# -- Reading -------------------------------------------------------------------------------------


def read_bars_frame(
    catalog_path: CatalogLike,
    bar_type: str,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
) -> pd.DataFrame:
    """Return stored bars as a canonical bar frame; ``start``/``end`` bound close times (inclusive).

    Naive ``start``/``end`` are taken as UTC. Raises if the catalog or bar type does not exist or
    the range selects nothing.
    """
    catalog = open_catalog(catalog_path)
    bar_type = _require_bar_type(catalog, bar_type)
    start_ts, end_ts = to_utc_timestamp(start), to_utc_timestamp(end)
    if start_ts is not None and end_ts is not None and start_ts > end_ts:
        raise EmptyRangeError(f"start {start_ts} is after end {end_ts}")
    frame = _query_frame(catalog, bar_type, start_ts, end_ts)
    if frame.empty:
        first, last = _stored_range(catalog, bar_type)
        raise EmptyRangeError(
            f"No {bar_type} bars with close time in [{start_ts or '-inf'}, {end_ts or '+inf'}]; "
            f"the catalog holds {first} .. {last}"
        )
    return frame


def bars_to_frame(bars: list[Bar]) -> pd.DataFrame:
    """Convert Nautilus bars to a canonical bar frame indexed by ``ts_event`` (close time).

    Values are rounded to the bars' precisions, so ``40000.1`` reads back as the float nearest
    to 40000.1 rather than the fixed-point conversion ``40000.100000000006``.
    """
    if not bars:
        return empty_bar_frame()
    count = len(bars)

    def column(getter: Callable[[Bar], float]) -> np.ndarray:
        return np.fromiter(map(getter, bars), dtype=np.float64, count=count)

    price_precision = bars[0].open.precision
    size_precision = bars[0].volume.precision
    ts_event = np.fromiter((bar.ts_event for bar in bars), dtype=np.int64, count=count)
    return bar_frame(
        ts_event,
        column(lambda bar: bar.open.as_double()).round(price_precision),
        column(lambda bar: bar.high.as_double()).round(price_precision),
        column(lambda bar: bar.low.as_double()).round(price_precision),
        column(lambda bar: bar.close.as_double()).round(price_precision),
        column(lambda bar: bar.volume.as_double()).round(size_precision),
    )


def _query_frame(
    catalog: ParquetDataCatalog,
    bar_type: str,
    start: pd.Timestamp | None,
    end: pd.Timestamp | None,
) -> pd.DataFrame:
    bars = catalog.query(Bar, identifiers=[bar_type], start=start, end=end)
    return bars_to_frame(bars)


def _require_bar_type(catalog: ParquetDataCatalog, bar_type: str) -> str:
    canonical = str(parse_bar_type(bar_type))
    stored = sorted(_bar_files(catalog))
    if canonical not in stored:
        raise BarTypeNotFoundError(
            f"Bar type {canonical} is not in the catalog at {catalog.path}; stored bar types: "
            f"{', '.join(stored) or 'none'}"
        )
    return canonical


def _stored_range(catalog: ParquetDataCatalog, bar_type: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    intervals = catalog.get_intervals(Bar, bar_type)
    return pd.Timestamp(intervals[0][0], tz="UTC"), pd.Timestamp(intervals[-1][1], tz="UTC")


# -- Writing -------------------------------------------------------------------------------------


def write_bars(
    catalog_path: CatalogLike,
    bars: pd.DataFrame,
    instrument: Instrument,
    interval: Interval,
    *,
    gap_policy: GapPolicy = "report",
    duplicate_policy: DuplicatePolicy = "error",
    on_conflict: ConflictPolicy = "error",
    round_prices: bool = False,
) -> tuple[str, int]:
    """Validate and append bars; return ``(bar_type, number_of_bars_written)``.

    See :func:`write_bars_detailed` for the full result and the write semantics.
    """
    result = write_bars_detailed(
        catalog_path,
        bars,
        instrument,
        interval,
        gap_policy=gap_policy,
        duplicate_policy=duplicate_policy,
        on_conflict=on_conflict,
        round_prices=round_prices,
    )
    return result.bar_type, result.written


def write_bars_detailed(
    catalog_path: CatalogLike,
    bars: pd.DataFrame,
    instrument: Instrument,
    interval: Interval,
    *,
    gap_policy: GapPolicy = "report",
    duplicate_policy: DuplicatePolicy = "error",
    on_conflict: ConflictPolicy = "error",
    round_prices: bool = False,
    chunk_bars: int | None = None,
    progress: bool = False,
) -> WriteResult:
    """Validate ``bars`` (a canonical frame) and append them to the catalog.

    The catalog is created if missing; the instrument is stored if absent. Bars at or before the
    last stored close time of the bar type are skipped; those that differ from stored bars (or
    fall where nothing is stored) raise :class:`OverlapConflictError`, or only warn with
    ``on_conflict="warn"``. Prices must fit the instrument's price precision unless
    ``round_prices`` is true (then they are rounded and counted); volumes are rounded to its size
    precision and counted. ``chunk_bars`` splits the write into several files, each of which
    appears under its final name only once complete. Writers of one catalog take turns: a second
    one waits for the catalog's lock file. Raises :class:`~catalogs.errors.DamagedFileError` if a
    stored file of the bar type is damaged.
    """
    if on_conflict not in ("error", "warn"):
        raise ValueError(f"on_conflict must be 'error' or 'warn', got {on_conflict!r}")
    bar_type = bar_type_string(instrument.id, interval)
    frame, report = validate_bars(
        bars, interval, gap_policy=gap_policy, duplicate_policy=duplicate_policy
    )
    frame, rounded_prices, rounded_volumes = _round_to_instrument(frame, instrument, round_prices)
    catalog = open_catalog(catalog_path, create=True)
    with write_lock(catalog_root(catalog)):
        check_readable(sorted(_bar_type_directory(catalog, bar_type).glob("*.parquet")))
        _ensure_instrument(catalog, instrument)
        last_stored = last_bar_close(catalog, bar_type)
        new = frame if last_stored is None else frame[frame.index > last_stored]
        overlap = frame.iloc[: len(frame) - len(new)]
        conflicts = (
            _overlap_conflicts(catalog, bar_type, overlap, instrument) if len(overlap) else []
        )
        _report_conflicts(conflicts, on_conflict)
        _write_frame(catalog, bar_type, new, instrument, chunk_bars, progress)
    return WriteResult(
        bar_type=bar_type,
        written=len(new),
        skipped_existing=len(overlap),
        first_written=new.index[0] if len(new) else None,
        last_written=new.index[-1] if len(new) else None,
        report=report,
        rounded_volumes=rounded_volumes,
        rounded_prices=rounded_prices,
        conflicts=conflicts,
        gap_before=_gap_before(last_stored, new, parse_interval(interval)),
    )


def _round_to_instrument(
    frame: pd.DataFrame, instrument: Instrument, round_prices: bool
) -> tuple[pd.DataFrame, int, int]:
    """Prices onto the instrument's tick grid and volumes onto its lot step (what the catalog
    will store): a price off the tick (0.07 where the tick is 0.05, or more decimals than the
    tick has) is refused unless ``round_prices``, a volume is rounded to the lot step.

    Rounding here, with numpy, rather than leaving it to Nautilus's ``Price``/``Quantity``
    keeps the values compared against stored bars identical to the values written.
    """
    tick = float(instrument.price_increment)
    step = float(instrument.size_increment)
    prices = frame[PRICE_COLUMNS].to_numpy()
    bad_rows = _off_grid(prices, tick).any(axis=1)
    if bad_rows.any() and not round_prices:
        _raise_precision_error(frame, bad_rows, instrument)
    volumes = frame["volume"].to_numpy()
    rounded_volumes = _off_grid(volumes, step)
    stored = frame.copy()
    stored[PRICE_COLUMNS] = _to_grid(prices, tick, instrument.price_precision)
    stored["volume"] = _to_grid(volumes, step, instrument.size_precision)
    return stored, int(bad_rows.sum()), int(rounded_volumes.sum())


def _raise_precision_error(
    frame: pd.DataFrame, bad_rows: np.ndarray, instrument: Instrument
) -> None:
    shown = ", ".join(
        f"{ts} {frame.loc[ts, PRICE_COLUMNS].tolist()}" for ts in frame.index[bad_rows][:_SHOW]
    )
    raise PrecisionError(
        f"{int(bad_rows.sum()):,} bar(s) have prices off the tick of {instrument.id} "
        f"({instrument.price_increment}): {shown}. Pass --round-prices to round them to the "
        "tick, or use an instrument whose tick matches the data"
    )


def _off_grid(values: np.ndarray, step: float) -> np.ndarray:
    """Values that are not whole multiples of ``step`` (within float noise)."""
    scaled = values / step
    return np.abs(scaled - np.round(scaled)) > _DECIMAL_TOLERANCE + 1e-12 * np.abs(scaled)


def _to_grid(values: np.ndarray, step: float, precision: int) -> np.ndarray:
    """The nearest multiples of ``step``, written with ``precision`` decimals."""
    return np.round(np.round(values / step) * step, precision)


def _ensure_instrument(catalog: ParquetDataCatalog, instrument: Instrument) -> None:
    stored = _stored_instruments(catalog, str(instrument.id))
    if not stored:
        write_data_atomically(catalog, [instrument])
        return
    if _instrument_fields(stored[-1]) != _instrument_fields(instrument):
        message = (
            f"The catalog already stores a different definition of {instrument.id}; it keeps the "
            "stored one. Use a new catalog to change instrument specs"
        )
        warnings.warn(message, stacklevel=3)


def _instrument_fields(instrument: Instrument) -> dict:
    fields = type(instrument).to_dict(instrument)
    return {key: value for key, value in fields.items() if key not in ("ts_event", "ts_init")}


def _overlap_conflicts(
    catalog: ParquetDataCatalog, bar_type: str, overlap: pd.DataFrame, instrument: Instrument
) -> list[str]:
    stored = _query_frame(catalog, bar_type, overlap.index[0], overlap.index[-1])
    common = overlap.index.intersection(stored.index)
    candidate = overlap.loc[common]
    tolerance = np.array(
        [0.5 * 10.0**-instrument.price_precision] * 4 + [0.5 * 10.0**-instrument.size_precision]
    )
    differs = (np.abs(candidate.to_numpy() - stored.loc[common].to_numpy()) > tolerance).any(axis=1)
    conflicts = []
    if differs.any():
        shown = "; ".join(
            f"{ts}: stored {_fmt_bar(stored.loc[ts])} vs new {_fmt_bar(candidate.loc[ts])}"
            for ts in common[differs][:_SHOW]
        )
        conflicts.append(
            f"{int(differs.sum()):,} bar(s) differ from the stored {bar_type} bars ({shown})"
        )
    absent = overlap.index.difference(stored.index)
    if len(absent):
        conflicts.append(
            f"{len(absent):,} bar(s) lie at or before the last stored bar of {bar_type} where "
            f"nothing is stored (first: {', '.join(map(str, absent[:_SHOW]))}); the catalog is "
            "append-only, write them to a new catalog instead"
        )
    return conflicts


def _fmt_bar(row: pd.Series) -> str:
    return " ".join(f"{name[0]}={value:g}" for name, value in row.items())


def _report_conflicts(conflicts: list[str], on_conflict: ConflictPolicy) -> None:
    if not conflicts:
        return
    message = "Stored bars were kept, new overlapping bars ignored: " + " | ".join(conflicts)
    if on_conflict == "error":
        raise OverlapConflictError(
            message + ". To append only the bars after the stored range pass --on-conflict "
            "warn (python -m catalogs import-csv), or write them to a new --catalog"
        )
    warnings.warn(message, stacklevel=4)


def _gap_before(
    last_stored: pd.Timestamp | None, new: pd.DataFrame, delta: pd.Timedelta
) -> BarGap | None:
    if last_stored is None or new.empty or new.index[0] - last_stored <= delta:
        return None
    missing = int((new.index[0] - last_stored) // delta) - 1
    return BarGap(last_stored, new.index[0], missing)


def _write_frame(
    catalog: ParquetDataCatalog,
    bar_type: str,
    frame: pd.DataFrame,
    instrument: Instrument,
    chunk_bars: int | None,
    progress: bool,
) -> None:
    if frame.empty:
        return
    wrangler = BarDataWrangler(parse_bar_type(bar_type), instrument)
    chunks = list(_chunks(frame, chunk_bars or len(frame)))
    for chunk in tqdm(chunks, desc=f"writing {bar_type}", unit="chunk", disable=not progress):
        write_data_atomically(catalog, wrangler.process(_wrangler_input(chunk)))


def _chunks(frame: pd.DataFrame, size: int) -> Iterator[pd.DataFrame]:
    for start in range(0, len(frame), size):
        yield frame.iloc[start : start + size]


def _wrangler_input(frame: pd.DataFrame) -> pd.DataFrame:
    """Return a frame whose ``.values`` is a fresh, writable array.

    Nautilus 1.231's ``BarDataWrangler`` takes typed memoryviews of ``data.values``; under pandas
    3 copy-on-write that is a read-only view for single-block frames and the wrangler fails with
    "buffer source array is read-only". Building the frame column by column keeps one block per
    column, so ``.values`` has to interleave them into a new writable array (pandas 2 and 3).
    """
    index = frame.index.as_unit("ns").rename("timestamp")
    wrangler_input = pd.DataFrame(index=index)
    for name in BAR_COLUMNS:
        wrangler_input[name] = frame[name].to_numpy(dtype=np.float64, copy=True)
    return wrangler_input
