"""Where commands write: output paths checked before any work, files replaced atomically.

The one owner of output paths (README, "Errors and your files"); every writer of the project
goes through it:

- **Output directories** (``run_backtest.py --report-dir``, ``python -m evaluation --out``,
  ``sweep --out``, ``instruments --out``, the embedded default's ``var/demo``) belong to this
  program when they hold the marker file :data:`MARKER`, written when a command creates the
  directory or first writes into an empty one. A command writes into a directory only if it
  does not exist yet, is empty, or holds the marker. Anything else is refused before the work
  starts, with one line: a directory holding files this program did not write, a catalog
  (its root, ``data/`` or anything below), a model directory or anything below one, a file or
  a path under a file, a symbolic link, a directory without write permission.
- **Files** are written to a temporary file in the same directory, flushed to disk and renamed
  over the final name (:func:`write_atomically`): a reader sees the old or the new file, never
  half of one, and a symbolic link standing at the final name is replaced, never followed, so
  nothing it points at changes. The file gets a plain write's permissions.
- **Output files** named by the user (``scoremodel sample --out``) are refused when they exist,
  unless ``--overwrite`` is given (:func:`check_output_file`).
- **Deleting**: only a file this program recognises as its own (the kill switch's content) is
  ever removed (:func:`remove_own_file`), and only a directory it marked as its own is emptied
  (:func:`fresh_subdirectory`).

Nautilus-free, so that :mod:`scoremodel` and :mod:`policy`'s callers may use it.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Final

from cli_errors import UserError

#: The file that marks a directory as this program's output directory.
MARKER: Final[str] = ".scorematching-output"
MANIFEST: Final[str] = "manifest.json"  # scoremodel.checkpoint.MANIFEST
MODEL_FORMAT: Final[str] = "scoremodel.checkpoint"  # scoremodel.checkpoint.FORMAT
CATALOG_LOCK: Final[str] = ".catalogs.lock"  # catalogs.storage.LOCK_FILE_NAME

Content = bytes | str | Callable[[Path], None]


class OutputPathError(UserError):
    """An output path this command must not or cannot write to (checked before any work)."""


# ----- what a directory is ----------


def is_model_directory(path: Path) -> bool:
    """Whether ``path`` holds a scoremodel checkpoint's manifest (readable or not)."""
    manifest = path / MANIFEST
    if not manifest.is_file():
        return False
    try:
        return json.loads(manifest.read_text()).get("format") == MODEL_FORMAT
    except (OSError, ValueError, AttributeError):
        return True  # a damaged manifest still marks a model directory: never write into it


def is_catalog(path: Path) -> bool:
    """Whether ``path`` is the root of a ParquetDataCatalog (its writer's lock file, or Parquet
    files under ``data/<type>/``)."""
    if (path / CATALOG_LOCK).exists():
        return True
    data = path / "data"
    if not data.is_dir():
        return False
    return any(True for _ in data.glob("*/*.parquet")) or any(
        True for _ in data.glob("*/*/*.parquet")
    )


def is_owned(path: Path) -> bool:
    """Whether the directory ``path`` is one this program created (holds :data:`MARKER`)."""
    return (path / MARKER).is_file()


def enclosing_store(path: str | os.PathLike[str], include_self: bool = True) -> str | None:
    """``"the catalog X"`` or ``"the model directory X"`` when ``path`` is (with
    ``include_self``) or lies inside one; None otherwise."""
    path = Path(path).absolute()
    candidates = [path, *path.parents] if include_self else list(path.parents)
    for directory in candidates:
        if not directory.is_dir():
            continue
        if is_model_directory(directory):
            return f"the model directory {directory}"
        if is_catalog(directory):
            return f"the catalog {directory}"
    return None


# ----- checks before any work ----------


def check_output_dir(path: str | os.PathLike[str], option: str) -> Path:
    """Refuse, before any work, a directory ``option`` must not write into (see the module
    docstring); returns it as a :class:`Path`. Nothing is created."""
    path = Path(path)
    check_writable_directory(path, option)
    store = enclosing_store(path)
    if store is not None:
        raise OutputPathError(
            f"{option} {path} is {_inside(store, path)}; reports never go into a catalog or a "
            "model directory: give a new directory elsewhere"
        )
    if path.is_dir() and not is_owned(path) and _has_entries(path):
        raise OutputPathError(
            f"{option} {path} is a directory holding files this program did not write (it has "
            f"no {MARKER} marker); give a new or empty directory, or move those files away"
        )
    return path


def claim_output_dir(path: str | os.PathLike[str], option: str) -> Path:
    """:func:`check_output_dir`, then create the directory (and parents) and mark it as this
    program's; returns it."""
    path = check_output_dir(path, option)
    try:
        path.mkdir(parents=True, exist_ok=True)
        if not is_owned(path):
            write_atomically(path / MARKER, f"written by {option} of nautilus-scorematching\n")
    except OSError as error:
        raise OutputPathError(f"cannot create {option} {path}: {os_error_reason(error)}") from None
    return path


def claim_subdirectory(parent: Path, name: str, option: str) -> Path:
    """A subdirectory of the program's directory ``parent``, created and marked; a symbolic
    link or a file in its place is refused."""
    return claim_output_dir(parent / name, f"{option} (its {name}/)")


def fresh_subdirectory(parent: Path, name: str, option: str) -> Path:
    """:func:`claim_subdirectory`, emptied first when it is this program's (what an earlier run
    left there, e.g. a backtest's model versions, is replaced whole, never reused)."""
    path = parent / name
    if path.is_dir() and not path.is_symlink() and is_owned(path):
        shutil.rmtree(path)
    return claim_subdirectory(parent, name, option)


def check_output_file(path: str | os.PathLike[str], option: str, overwrite: bool = False) -> Path:
    """Refuse, before any work, a file path ``option`` cannot write or must not replace: an
    existing file unless ``overwrite`` (never a non-regular file), a directory, a symbolic
    link, a missing or unwritable directory, a path in a catalog or model directory."""
    path = Path(path)
    if path.is_symlink():
        raise OutputPathError(
            f"{option} {path} is a symbolic link; give the path of a new file (links are never "
            "followed when writing)"
        )
    if path.is_dir():
        raise OutputPathError(
            f"{option} {path} is a directory; give a file name such as {path / 'out.csv'}"
        )
    if path.exists() and not path.is_file():
        raise OutputPathError(f"{option} {path} is not a regular file; give the path of a file")
    if path.exists() and not overwrite:
        raise OutputPathError(
            f"{option} {path} already exists; pass --overwrite to replace it, or give a new file"
        )
    directory = path.absolute().parent
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "does not exist"
        raise OutputPathError(
            f"cannot write {option} {path}: the directory {directory} {what}"
            + ("; create it first" if not directory.exists() else "")
        )
    if not os.access(directory, os.W_OK | os.X_OK):
        raise OutputPathError(
            f"cannot write {option} {path}: no permission to write in {directory}"
        )
    store = enclosing_store(directory)
    if store is not None:
        raise OutputPathError(
            f"{option} {path} is {_inside(store, directory)}; give a file elsewhere"
        )
    return path


def check_writable_directory(path: str | os.PathLike[str], option: str) -> None:
    """Refuse a directory path that is a symbolic link, a file or a path under a file, or
    that cannot be created or written (no permission); nothing is created."""
    path = Path(path)
    if path.is_symlink():
        raise OutputPathError(
            f"{option} {path} is a symbolic link; give the directory itself (links are never "
            "followed when writing)"
        )
    if path.exists() and not path.is_dir():
        raise OutputPathError(
            f"{option} {path} is a file, not a directory; give a directory (new or empty)"
        )
    existing = path.absolute()
    while not existing.exists() and not existing.is_symlink():
        existing = existing.parent
    if not existing.is_dir():
        raise OutputPathError(f"cannot create {option} {path}: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputPathError(f"cannot write {option} {path}: no permission to write in {existing}")


def _inside(store: str, path: Path) -> str:
    """``store`` itself, or a path inside it, in words."""
    return store if store.endswith(f" {path.absolute()}") else f"inside {store}"


def _has_entries(directory: Path) -> bool:
    try:
        return any(True for _ in directory.iterdir())
    except OSError:
        return True


# ----- writing and removing ----------


def write_atomically(path: str | os.PathLike[str], content: Content) -> Path:
    """Replace ``path`` so that readers see the old or the new file, never half of one.

    ``content``: bytes (written as they are), text (UTF-8), or a function that writes the file
    at the temporary path it is given (``frame.to_parquet``, ``figure.savefig``). The
    temporary file lives in the same directory and is renamed over ``path``: a symbolic link
    at ``path`` is replaced, not followed. The file gets a plain write's permissions (0666
    less the umask; a temporary file starts at 0600). Creates missing parent directories.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if callable(content):
            os.close(handle)
            content(Path(temporary))
            handle = os.open(temporary, os.O_RDONLY)
        else:
            _write_all(handle, content.encode() if isinstance(content, str) else content)
        os.fsync(handle)
        os.close(handle)
        handle = -1
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        if handle >= 0:
            os.close(handle)
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _write_all(handle: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(handle, view) :]


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def remove_own_file(path: Path, is_own: Callable[[bytes], bool], what: str) -> None:
    """Delete ``path`` only if it is a regular file (not a link) whose bytes ``is_own``
    recognises as this program's; otherwise :class:`OutputPathError`, and nothing changes."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISREG(info.st_mode):
        kind = "a symbolic link" if stat.S_ISLNK(info.st_mode) else "not a regular file"
        raise OutputPathError(
            f"{what} {path} is {kind}, which this program never creates; it was left alone: "
            "remove it yourself if it is not needed"
        )
    with path.open("rb") as handle:
        head = handle.read(4096)
    if not is_own(head):
        raise OutputPathError(
            f"{what} {path} is a file this program did not write (its content is not "
            f"what {what} holds); it was left alone: remove it yourself or point the setting "
            "at another path"
        )
    path.unlink()


def os_error_reason(error: OSError) -> str:
    """``error`` in a few words, with the path it concerns (not always the one asked for)."""
    reason = error.strerror or str(error)
    return f"{reason}: {error.filename}" if error.filename else reason
