"""Read a NautilusTrader 1.231 ParquetDataCatalog's bar and instrument files without Nautilus.

NautilusTrader 2.0's ``ParquetDataCatalog`` refuses these files ("Legacy catalog schema is not
supported by runtime queries; run `nautilus catalog migrate-parquet`"), and :mod:`catalogs`
reads them through 1.231's API; the 2.0 binding (:mod:`runtime.backtest_v2`) reads them here,
with pyarrow. Layout: ``data/bar/<bar type>/*.parquet`` with ``open``..``volume`` as 128-bit
little-endian fixed-point integers (16 decimals) and ``ts_event``/``ts_init`` in ns;
``data/<instrument class>/<instrument id>/*.parquet`` with one row of string fields.
Reads only.
"""

from __future__ import annotations

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


def catalog_has_funding(catalog: str | Path, instrument_id: str) -> bool:
    """True when the catalog stores funding rates for the instrument (catalogs.funding)."""
    return any((Path(catalog) / "data").glob(f"funding_rate_update/{instrument_id}/*.parquet"))


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
