"""The strategy's risk state in a small JSON file, so a restart resumes where it stopped.

Nautilus's own ``save_state``/``load_state`` needs a cache database (Redis); this file needs
nothing. Writes are atomic (temporary file in the same directory, fsync, ``os.replace``), so a
crash leaves either the old or the new state, never half a file; and they happen only when the
state changed, so a bar that changes nothing costs one comparison of two frozen dataclasses.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from strategies.risk import RiskState


class StateFileError(ValueError):
    """The risk state file exists but cannot be read as a risk state."""


class RiskStateFile:
    """Load once, then :meth:`save_if_changed` whenever the strategy may have changed it."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.last_saved: RiskState | None = None

    def load(self) -> RiskState | None:
        """The saved state, or ``None`` when there is no file yet."""
        if not self.path.exists():
            return None
        try:
            state = RiskState.from_json(self.path.read_text())
        except (OSError, TypeError, ValueError) as error:
            raise StateFileError(
                f"cannot read the risk state file {self.path}: {error}; fix it, or delete it to "
                "start with a fresh high-water mark (the halt and daily-loss state are lost)"
            ) from error
        self.last_saved = state
        return state

    def save_if_changed(self, state: RiskState) -> bool:
        """Write ``state`` unless it equals the last state written; True when written."""
        if state == self.last_saved:
            return False
        write_atomically(self.path, state.to_json())
        self.last_saved = state
        return True


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that readers see the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
