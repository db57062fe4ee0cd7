"""Crash-safe, serialised writes to a local ``ParquetDataCatalog`` and damaged-file diagnosis.

Nautilus's ``ParquetDataCatalog.write_data`` writes each Parquet file in place under its final
name, so a process killed mid-write would leave a truncated file that every later read trips
over. Here data is written into a *staging catalog*, a hidden directory inside the catalog
(same filesystem); each finished file is fsynced and moved to its final name with
``os.replace``, so a file under its final name is always complete. Writers hold an exclusive
``flock`` on ``<catalog>/.catalogs.lock``: a second writer waits (saying so on stderr after a
second) until the first one is done; the lock is released when its holder exits or is killed.

Readers may also name a catalog by an fsspec URL (:func:`catalog_at`): ``file://`` is the local
path, another protocol (``s3://``, ``gs://``, ...) a read-only ``ParquetDataCatalog`` on that
filesystem, checked to be reachable first; ``memory://`` is refused.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO
from typing import Final

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from nautilus_trader.persistence.catalog import ParquetDataCatalog

from catalogs.errors import CatalogLocationError
from catalogs.errors import CatalogNotFoundError
from catalogs.errors import CatalogsError
from catalogs.errors import CatalogWriteError
from catalogs.errors import DamagedFileError
from output_paths import enclosing_store
from output_paths import is_catalog
from output_paths import is_model_directory

LOCK_FILE_NAME: Final[str] = ".catalogs.lock"
STAGING_PREFIX: Final[str] = ".catalogs-staging-"
WAIT_NOTICE_AFTER_S: Final[float] = 1.0
_POLL_S: Final[float] = 0.05
# What pyarrow / Nautilus raise when a Parquet file is truncated or not Parquet at all.
_READ_ERRORS: Final = (pa.ArrowException, OSError, RuntimeError)


def catalog_root(catalog: ParquetDataCatalog) -> Path:
    """Return the local directory of ``catalog`` (only local catalogs are supported)."""
    if catalog.fs_protocol != "file":
        raise ValueError(f"catalogs writes only local catalogs, not {catalog.fs_protocol!r} ones")
    return Path(catalog.path)


# -- Catalog URLs --------------------------------------------------------------------------------


def is_catalog_url(location: str | os.PathLike[str]) -> bool:
    """Whether ``location`` is an fsspec URL (``protocol://...``) rather than a path."""
    return "://" in str(location)


def catalog_at(location: str | os.PathLike[str]) -> Path | ParquetDataCatalog:
    """The catalog a user named: a local path (``file://`` URLs included) as a :class:`Path`,
    to be checked by the caller, or the read-only catalog at any other fsspec URL, checked to
    be reachable here (:class:`~catalogs.errors.CatalogNotFoundError`, one line, otherwise).

    ``memory://`` is refused: Nautilus's Rust reader cannot see fsspec's in-process memory,
    and Ray workers, other processes, would not see it either.
    """
    local = _local_path(location)
    if local is not None:
        return local
    url = str(location)
    protocol, path = fsspec.core.split_protocol(url)
    if protocol == "memory":
        raise CatalogNotFoundError(
            f"Cannot read the catalog {url}: Nautilus reads bars through its Rust backend, which "
            "does not see fsspec's in-process memory filesystem (nor would Ray workers); give a "
            "local path, a file:// URL or an object-store URL (s3://, gs://)"
        )
    try:
        filesystem = fsspec.filesystem(protocol)
        found = filesystem.isdir(path)
    except ImportError as exc:  # fsspec names the package to install
        raise CatalogNotFoundError(
            f"Cannot read the catalog {url}: {exc}; install it or give a local path"
        ) from exc
    except (OSError, ValueError) as exc:
        raise CatalogNotFoundError(
            f"Cannot reach the catalog {url}: {' '.join(str(exc).split()) or type(exc).__name__}"
            "; check the URL, the network and the credentials fsspec uses for it"
        ) from exc
    if not found:
        raise CatalogNotFoundError(
            f"No data catalog at {url}; check the URL (the catalog's root directory, the one "
            "holding data/)"
        )
    return ParquetDataCatalog(path, fs_protocol=protocol)


def local_catalog_path(location: str | os.PathLike[str], purpose: str) -> Path:
    """The local directory of a catalog named by a path or a ``file://`` URL; any other URL
    is refused in one line (:class:`~catalogs.errors.CatalogLocationError`) without touching
    the network: ``purpose`` (e.g. "python -m catalogs writes") says why it must be local."""
    local = _local_path(location)
    if local is None:
        raise CatalogLocationError(
            f"{purpose} a catalog on this machine's filesystem, not {location}; give a local "
            "path or a file:// URL (python -m evaluation reads object-store URLs such as s3://)"
        )
    return local


def _local_path(location: str | os.PathLike[str]) -> Path | None:
    """The local path a plain path or a ``file://`` URL names; None for any other URL."""
    if not is_catalog_url(location):
        return Path(location)
    protocol, path = fsspec.core.split_protocol(str(location))
    return Path(path) if protocol in ("file", "local") else None


def check_catalog_target(root: Path) -> None:
    """Refuse, before anything is read or written, a path that is not a catalog and must not
    become one: a file, a non-empty directory that is not a catalog (a model directory, a
    report directory, your home directory...), or a path inside a catalog or model directory.
    A missing path or an empty directory becomes a new catalog."""
    if root.exists() and not root.is_dir():
        raise CatalogWriteError(
            f"the catalog path {root} is a file, not a directory; give a catalog directory"
        )
    store = enclosing_store(root, include_self=False)
    if store is not None:
        raise CatalogWriteError(
            f"the catalog path {root} lies inside {store}; give a catalog directory elsewhere"
        )
    if root.is_dir() and not is_catalog(root) and any(True for _ in root.iterdir()):
        what = "a model directory" if is_model_directory(root) else "a directory of other files"
        raise CatalogWriteError(
            f"{root} is not a data catalog but {what}; writing bars there would mix them in: "
            "give a new or empty directory, or an existing catalog"
        )


# -- Writer lock ---------------------------------------------------------------------------------


@contextmanager
def write_lock(root: Path) -> Iterator[None]:
    """Hold the exclusive writer lock of the catalog at ``root`` for the ``with`` block.

    Waits as long as another process holds it, saying so on stderr after
    :data:`WAIT_NOTICE_AFTER_S`. Staging directories left by a killed writer are removed once
    the lock is held.
    """
    lock_path = root / LOCK_FILE_NAME
    try:
        handle = open(lock_path, "a+b")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise CatalogWriteError(
            f"Cannot write to the catalog at {root}: cannot open its lock file {lock_path} "
            f"({exc.strerror}). Check that the directory is writable"
        ) from exc
    with handle:  # closing the file releases the lock
        _acquire(handle, root)
        _remove_stale_staging(root)
        yield


def _acquire(handle: BinaryIO, root: Path) -> None:
    waited_since = time.monotonic()
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() - waited_since >= WAIT_NOTICE_AFTER_S:
                break
            time.sleep(_POLL_S)
    print(
        f"waiting for another process writing to the catalog at {root} to finish "
        "(Ctrl-C to stop waiting)",
        file=sys.stderr,
        flush=True,
    )
    fcntl.flock(handle, fcntl.LOCK_EX)


def _remove_stale_staging(root: Path) -> None:
    for stale in root.glob(STAGING_PREFIX + "*"):
        shutil.rmtree(stale, ignore_errors=True)


# -- Atomic writes -------------------------------------------------------------------------------


def write_data_atomically(catalog: ParquetDataCatalog, data: list) -> None:
    """Write ``data`` (not empty) like ``catalog.write_data``.

    Each file appears under its final name only once complete (staged, fsynced, renamed).
    Call it while holding :func:`write_lock`.
    """
    root = catalog_root(catalog)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=root))
    try:
        staged = ParquetDataCatalog(str(staging), max_rows_per_group=catalog.max_rows_per_group)
        staged.write_data(data)
        for file in sorted(staging.rglob("*.parquet")):
            _publish(file, root / file.relative_to(staging))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _publish(staged: Path, target: Path) -> None:
    if target.exists():
        raise FileExistsError(f"refusing to replace the stored catalog file {target}")
    _fsync(staged)
    _make_directories(target.parent)
    os.replace(staged, target)
    _fsync(target.parent)


def _make_directories(directory: Path) -> None:
    """Create ``directory`` and missing parents, fsyncing each parent that gained an entry."""
    if directory.is_dir():
        return
    _make_directories(directory.parent)
    directory.mkdir(exist_ok=True)
    _fsync(directory.parent)


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# -- Damaged files -------------------------------------------------------------------------------


def damaged_file_error(path: str | Path, cause: BaseException) -> DamagedFileError:
    """Return the error that names a damaged catalog file and says what to do about it."""
    reason = str(cause).split(". ")[0].rstrip(".")  # pyarrow adds "Either the file is ..."
    return DamagedFileError(
        f"Damaged catalog file {path} (not a complete Parquet file: {reason}); it was probably "
        "left by an interrupted write. Move it away or delete it, then write that data again "
        "(the file name gives its time range)"
    )


def check_readable(files: Iterable[str | Path]) -> None:
    """Raise :class:`DamagedFileError` for the first file whose Parquet footer cannot be read."""
    for file in files:
        try:
            pq.read_metadata(file)
        except _READ_ERRORS as exc:
            raise damaged_file_error(file, exc) from exc


@contextmanager
def naming_damaged_files(directory: str | Path) -> Iterator[None]:
    """Turn a read failure caused by a damaged Parquet file under ``directory`` into one naming it.

    Nautilus and pyarrow report a truncated file without its name; on such a failure every
    Parquet file under ``directory`` is checked. Failures with no damaged file are re-raised.
    """
    try:
        yield
    except CatalogsError:
        raise
    except _READ_ERRORS:
        check_readable(sorted(Path(directory).rglob("*.parquet")))
        raise
