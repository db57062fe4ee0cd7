"""The kill switch file: what arms it, what it holds, and who may remove it (both engines).

``run_live.py kill``, SIGUSR1 and ``touch`` arm it by creating ``live.kill_switch_path``; while
it exists the strategy halts, cancels its orders and closes its position, across restarts too.
The file this program writes holds one line, ``kill switch armed <UTC time> (pid <n>)``; an
empty file (``touch``) is recognised as a kill switch too. ``resume`` removes only such a file:
anything else at that path (a user's file, a link, a directory) is left alone and named in one
line (:func:`output_paths.remove_own_file`).

A kill request that cannot be written (a read-only directory, a file where a directory should
be) still halts and flattens the running strategy: the signal handler also sets the strategy's
in-memory request (:func:`kill_switch_armed`), which its kill switch timer acts on.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

from cli_errors import UserError
from output_paths import OutputPathError
from output_paths import os_error_reason
from output_paths import remove_own_file
from output_paths import write_atomically

KILL_FILE_LINE = re.compile(rb"kill switch armed \S+ \(pid \d+\)\n?")
WHAT = "the kill switch file (live.kill_switch_path)"


class KillSwitchError(UserError):
    """The kill switch file cannot be created or must not be removed."""


def is_kill_file(content: bytes) -> bool:
    """Whether ``content`` is what a kill switch file holds (this program's line, or nothing)."""
    return content.strip() == b"" or KILL_FILE_LINE.fullmatch(content) is not None


def kill_switch_armed(path: str | None, requested: bool = False) -> bool:
    """Whether the strategy must halt: a kill was requested in memory, or the file exists."""
    return requested or bool(path and os.path.exists(path))


def arm_kill_switch(path: str | os.PathLike[str]) -> Path:
    """Create the kill switch file (idempotent); returns its absolute path.

    Raises :class:`KillSwitchError` when the file cannot be created: the switch is then NOT
    armed (the running strategy may still have been told in memory; see the module docstring).
    """
    path = Path(path).absolute()
    if path.exists():
        return path
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    try:
        write_atomically(path, f"kill switch armed {stamp} (pid {os.getpid()})\n")
    except OSError as error:
        raise KillSwitchError(
            f"the kill switch is NOT armed: cannot create {path} ({os_error_reason(error)}); "
            "fix live.kill_switch_path or its directory's permissions, or stop the bot with "
            "SIGTERM (it cancels its orders and closes its position)"
        ) from None
    return path


def check_kill_switch_path(path: str | os.PathLike[str]) -> None:
    """Before a live node connects: ``kill`` could create the kill switch file there (the path
    is not a directory, its directory is writable). Any file already there arms the switch:
    the strategy starts halted, as it should. Raises :class:`KillSwitchError` otherwise."""
    path = Path(path)
    if path.is_dir():
        raise KillSwitchError(
            f"{WHAT} {path} is a directory: `kill` could never create the file; point "
            "live.kill_switch_path at a file path"
        )
    directory = path.absolute().parent
    existing = directory
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise KillSwitchError(
            f"{WHAT} {path} could not be created: {existing} is not a writable directory; fix "
            "live.kill_switch_path or the directory's permissions"
        )


def check_removable(path: str | os.PathLike[str]) -> None:
    """Whether ``resume`` may remove what stands at the kill switch path: only a regular file
    holding what this program writes there (or nothing). Raises :class:`KillSwitchError`."""
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_file()):
        kind = "a symbolic link" if path.is_symlink() else "not a regular file"
        raise KillSwitchError(
            f"{WHAT} {path} is {kind}, which this program never creates; it was left alone: "
            "remove it yourself if it is not needed"
        )
    if path.is_file() and not is_kill_file(path.read_bytes()[:4096]):
        raise KillSwitchError(
            f"{WHAT} {path} is a file this program did not write; it was left alone (the "
            "switch stays armed): remove it yourself, or point live.kill_switch_path elsewhere"
        )


def disarm_kill_switch(path: str | os.PathLike[str]) -> bool:
    """Remove the kill switch file if it is one this program recognises; True when removed,
    False when there was none. Anything else at ``path`` raises :class:`KillSwitchError` and
    stays where it is."""
    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        return False
    try:
        remove_own_file(path, is_kill_file, WHAT)
    except OutputPathError as error:
        raise KillSwitchError(str(error)) from None
    return True
