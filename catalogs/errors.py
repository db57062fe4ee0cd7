"""Exceptions raised by the ``catalogs`` package.

Every error a user can cause (bad input data, a wrong path, an unknown bar type) derives from
:class:`CatalogsError`, so callers and the CLI can tell user errors from bugs. Each class also
derives from the builtin exception that best describes it (``ValueError``, ``LookupError``,
``FileNotFoundError``...), so ``except ValueError`` keeps working.
"""

from __future__ import annotations

from cli_errors import UserError


class CatalogsError(UserError):
    """Base class of all user-facing errors raised by ``catalogs``."""


class IntervalError(CatalogsError, ValueError):
    """A bar interval or bar type string could not be understood."""


class UnknownInstrumentError(CatalogsError, LookupError):
    """No built-in instrument spec exists for the requested symbol."""


class CsvFormatError(CatalogsError, ValueError):
    """A CSV file does not have the expected columns or values."""


class CatalogNotFoundError(CatalogsError, FileNotFoundError):
    """The data catalog directory does not exist."""


class CatalogLocationError(CatalogsError, ValueError):
    """A catalog named in a way this command cannot use (e.g. an object-store URL to write)."""


class BarTypeNotFoundError(CatalogsError, LookupError):
    """The requested bar type is not stored in the catalog."""


class InstrumentNotFoundError(CatalogsError, LookupError):
    """The requested instrument is not stored in the catalog."""


class EmptyRangeError(CatalogsError, ValueError):
    """A time range selects no bars."""


class OverlapConflictError(CatalogsError, ValueError):
    """New bars overlap stored bars but carry different values."""


class PrecisionError(CatalogsError, ValueError):
    """Prices off the instrument's tick grid (more decimals, or not a multiple of the tick)."""


class DownloadError(CatalogsError, RuntimeError):
    """Downloading bars from the exchange failed."""


class CsvFileNotFoundError(CatalogsError, FileNotFoundError):
    """A CSV file does not exist or is not a file."""


class CsvReadError(CatalogsError, OSError):
    """A CSV file exists but cannot be read (e.g. no permission)."""


class IntervalMismatchError(CatalogsError, ValueError):
    """The spacing of a file's bars differs from the interval they are imported as."""


class DamagedFileError(CatalogsError, ValueError):
    """A file in the catalog is not a complete Parquet file (e.g. left by an interrupted write)."""


class CatalogWriteError(CatalogsError, OSError):
    """The catalog directory cannot be written to."""
