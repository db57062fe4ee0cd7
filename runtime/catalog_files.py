"""Read a NautilusTrader 1.231 ParquetDataCatalog's bar and instrument files without Nautilus.

NautilusTrader 2.0's ``ParquetDataCatalog`` refuses these files ("Legacy catalog schema is not
supported by runtime queries; run `nautilus catalog migrate-parquet`"), and :mod:`catalogs`
reads them through 1.231's API; the 2.0 binding (:mod:`runtime.backtest_v2`) reads them here,
with pyarrow. Layout: ``data/bar/<bar type>/*.parquet`` with ``open``..``volume`` as 128-bit
little-endian fixed-point integers (16 decimals) and ``ts_event``/``ts_init`` in ns;
``data/<instrument class>/<instrument id>/*.parquet`` with one row of string fields;
``data/funding_rate_update/<instrument id>/*.parquet`` with ``rate`` as a JSON decimal string,
``interval`` in minutes and ``ts_event`` (the funding time) in ns. Reads only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cli_errors import UserError

FIXED_SCALAR = 10.0**16  # 1.231's high-precision fixed point (FIXED_PRECISION = 16)
VALUE_COLUMNS = ("open", "high", "low", "close", "volume")


class CatalogFilesError(UserError, ValueError):
    """The catalog has no files for the bars or the instrument asked for."""


def read_catalog_bars(
    catalog: str | Path,
    bar_type: str,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """The stored bars with close time in [start, end] (inclusive) as a float frame
    (open, high, low, close, volume) indexed by close time (UTC), rounded to their precisions."""
    files = sorted((Path(catalog) / "data" / "bar" / bar_type).glob("*.parquet"))
    if not files:
        raise CatalogFilesError(
            f"catalog {catalog} holds no {bar_type} bars; import them with "
            "`python -m catalogs import-csv` (on the 1.231 venv)"
        )
    table = pa.concat_tables([pq.read_table(file) for file in files])
    metadata = pq.read_schema(files[0]).metadata or {}
    ts = table.column("ts_event")
    mask = None
    if start is not None:
        mask = pc.greater_equal(ts, pa.scalar(start.value, pa.uint64()))
    if end is not None:
        upper = pc.less_equal(ts, pa.scalar(end.value, pa.uint64()))
        mask = upper if mask is None else pc.and_(mask, upper)
    if mask is not None:
        table = table.filter(mask)
    table = table.sort_by("ts_event")
    price_precision = int(metadata.get(b"price_precision", b"8"))
    size_precision = int(metadata.get(b"size_precision", b"8"))
    columns = {
        name: _fixed_to_float(table.column(name)).round(
            size_precision if name == "volume" else price_precision
        )
        for name in VALUE_COLUMNS
    }
    index = pd.DatetimeIndex(
        pd.to_datetime(table.column("ts_event").to_numpy().astype(np.int64), utc=True),
        name="ts_close",
    )
    return pd.DataFrame(columns, index=index)


def read_catalog_instrument(catalog: str | Path, instrument_id: str) -> dict[str, Any]:
    """The stored instrument's fields (strings as 1.231 wrote them, e.g. ``taker_fee``)."""
    files = sorted((Path(catalog) / "data").glob(f"*/{instrument_id}/*.parquet"))
    files = [file for file in files if file.parent.parent.name != "bar"]
    for file in files:
        if (pq.read_schema(file).metadata or {}).get(b"class") is not None:
            rows = pq.read_table(file).to_pylist()
            if rows:
                return rows[-1]
    raise CatalogFilesError(
        f"catalog {catalog} holds no instrument {instrument_id}; write it with the catalog "
        "commands (`python -m catalogs`, on the 1.231 venv)"
    )


def read_catalog_funding(
    catalog: str | Path,
    instrument_id: str,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
) -> pd.Series:
    """The stored funding rates of ``instrument_id`` with funding times in [start, end]
    (inclusive), as :func:`catalogs.funding.read_funding` reads them: a float Series named
    ``rate`` indexed by UTC funding time (empty when none are stored); ``attrs["interval"]``
    is the funding interval (a Timedelta, None when empty) and ``attrs["decimals"]`` the
    rates as stored (decimal strings, e.g. "0.00010000")."""
    files = sorted(_funding_directory(catalog, instrument_id).glob("*.parquet"))
    if not files:
        series = pd.Series(
            dtype=float, index=pd.DatetimeIndex([], tz="UTC").as_unit("ns"), name="rate"
        )
        series.attrs.update(interval=None, decimals=[])
        return series
    table = pa.concat_tables([pq.read_table(file) for file in files]).sort_by("ts_event")
    times = table.column("ts_event").to_numpy().astype(np.int64)
    keep = np.ones(len(times), dtype=bool)
    if start is not None:
        keep &= times >= start.value
    if end is not None:
        keep &= times <= end.value
    stored = table.column("rate").to_pylist()
    decimals = [json.loads(raw) for raw, kept in zip(stored, keep, strict=True) if kept]
    index = pd.DatetimeIndex(pd.to_datetime(times[keep], utc=True)).as_unit("ns")
    series = pd.Series([float(rate) for rate in decimals], index=index, name="rate", dtype=float)
    minutes = table.column("interval").to_pylist()
    series.attrs.update(
        interval=pd.Timedelta(minutes=minutes[0]) if minutes and minutes[0] else None,
        decimals=decimals,
    )
    return series


def catalog_has_funding(catalog: str | Path, instrument_id: str) -> bool:
    """True when the catalog stores funding rates for the instrument (catalogs.funding)."""
    return any(_funding_directory(catalog, instrument_id).glob("*.parquet"))


def _funding_directory(catalog: str | Path, instrument_id: str) -> Path:
    return Path(catalog) / "data" / "funding_rate_update" / instrument_id


def _fixed_to_float(column: pa.ChunkedArray) -> np.ndarray:
    """128-bit little-endian two's-complement fixed-point values as floats."""
    array = column.combine_chunks()
    data = array.buffers()[1]
    start = array.offset * 16
    raw = np.frombuffer(data, dtype="<u8", count=2 * len(array), offset=start)
    raw = raw.reshape(-1, 2)
    low = raw[:, 0].astype(np.float64)
    high = raw[:, 1].view(np.int64).astype(np.float64)
    return (high * 2.0**64 + low) / FIXED_SCALAR
