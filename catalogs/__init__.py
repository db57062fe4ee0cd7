"""Get OHLCV bars into a NautilusTrader ``ParquetDataCatalog``.

Canonical bar frames (:mod:`catalogs.bars`) come from synthetic generation
(:mod:`catalogs.synthetic`), CSV files (:mod:`catalogs.csv_import`) or Bybit downloads
(:mod:`catalogs.download`, whose names load lazily because importing ccxt takes ~0.7 s) and
are written to and read from a catalog with :mod:`catalogs.catalog`, crash-safe and one writer
at a time (:mod:`catalogs.storage`). Instruments are Bybit linear perpetuals
(:mod:`catalogs.instruments`). Command line: ``python -m catalogs --help``.
"""

from catalogs.bars import BAR_COLUMNS
from catalogs.bars import BarGap
from catalogs.bars import BarValidationError
from catalogs.bars import BarValidationReport
from catalogs.bars import bar_type_string
from catalogs.bars import interval_of_bar_type
from catalogs.bars import parse_interval
from catalogs.bars import validate_bars
from catalogs.catalog import DEFAULT_CATALOG_PATH
from catalogs.catalog import WriteResult
from catalogs.catalog import describe_bar_types
from catalogs.catalog import list_bar_types
from catalogs.catalog import load_instrument
from catalogs.catalog import open_catalog
from catalogs.catalog import read_bars_frame
from catalogs.catalog import write_bars
from catalogs.catalog import write_bars_detailed
from catalogs.csv_import import read_ohlcv_csv
from catalogs.errors import CatalogsError
from catalogs.instruments import BYBIT_LINEAR_SPECS
from catalogs.instruments import InstrumentSpec
from catalogs.instruments import make_perpetual
from catalogs.synthetic import SyntheticMarket
from catalogs.synthetic import SyntheticMarketConfig
from catalogs.synthetic import generate_bars
from catalogs.synthetic import simulate_market

_LAZY_DOWNLOAD_NAMES = ("DownloadReport", "download_bybit_bars")

__all__ = [
    "BAR_COLUMNS",
    "BYBIT_LINEAR_SPECS",
    "DEFAULT_CATALOG_PATH",
    "BarGap",
    "BarValidationError",
    "BarValidationReport",
    "CatalogsError",
    "DownloadReport",
    "InstrumentSpec",
    "SyntheticMarket",
    "SyntheticMarketConfig",
    "WriteResult",
    "bar_type_string",
    "describe_bar_types",
    "download_bybit_bars",
    "generate_bars",
    "interval_of_bar_type",
    "list_bar_types",
    "load_instrument",
    "make_perpetual",
    "open_catalog",
    "parse_interval",
    "read_bars_frame",
    "read_ohlcv_csv",
    "simulate_market",
    "validate_bars",
    "write_bars",
    "write_bars_detailed",
]


def __getattr__(name: str) -> object:
    if name in _LAZY_DOWNLOAD_NAMES:
        from catalogs import download

        return getattr(download, name)
    raise AttributeError(f"module 'catalogs' has no attribute {name!r}")
