"""The strategy's risk state in a small JSON file, so a restart resumes where it stopped.

Nautilus's own ``save_state``/``load_state`` needs a cache database (Redis); this file needs
nothing. Writes are atomic (:func:`output_paths.write_atomically`: temporary file in the same
directory, fsync, ``os.replace``), so a
crash leaves either the old or the new state, never half a file; and they happen only when the
state changed, so a bar that changes nothing costs one comparison of two frozen dataclasses.

Reading validates the file field by field before a :class:`RiskState` is built (see
:data:`RISK_STATE_FIELDS`): a file that would make the strategy fail later, on a live bar with a
position open, or be read as something it does not say (``"halted": "false"`` is a string, not
``false``), is refused at once with one line naming the file, the field and the value.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cli_errors import UserError
from output_paths import write_atomically
from policy.risk import RiskState

INT64_MAX = 2**63 - 1
WHAT_TO_DO = (
    "fix the file, or delete it to start with a fresh high-water mark (the halt and "
    "daily-loss state are lost)"
)


class StateFileError(UserError, ValueError):
    """The risk state file exists but cannot be read as a risk state."""


@dataclass(frozen=True)
class FieldRule:
    """What one field of the risk state file must hold."""

    expected: str  # for the message: "a finite JSON number >= 0"
    convert: Callable[[Any], Any | None]  # the Python value, or None when the JSON value is bad


def _number(minimum: float) -> FieldRule:
    def convert(value: Any) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        try:
            number = float(value)
        except OverflowError:  # an integer too large for a float
            return None
        return number if math.isfinite(number) and number >= minimum else None

    return FieldRule(f"a finite JSON number >= {minimum:g}", convert)


def _integer(minimum: int) -> FieldRule:
    def convert(value: Any) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return None
        return value if minimum <= value <= INT64_MAX else None

    return FieldRule(f"a 64-bit JSON integer >= {minimum}", convert)


def _of_type(kind: type, expected: str) -> FieldRule:
    return FieldRule(expected, lambda value: value if isinstance(value, kind) else None)


BOOLEAN = _of_type(bool, "true or false (a JSON boolean, not a string)")


#: Every field of :class:`RiskState`, each required: the file this program writes holds all of
#: them, so a missing one means the file was edited or truncated by something else.
RISK_STATE_FIELDS: dict[str, FieldRule] = {
    "high_water_mark": _number(0.0),  # equity in the account currency
    "day": _integer(-1),  # UTC day number; -1: no day seen yet
    "day_start_equity": _number(0.0),
    "day_stopped": BOOLEAN,
    "halted": BOOLEAN,
    "halted_at_ns": _integer(0),  # UNIX nanoseconds; 0: never halted
    "halt_reason": _of_type(str, "a JSON string"),
}


def parse_risk_state(text: str, source: str | os.PathLike[str]) -> RiskState:
    """The :class:`RiskState` that ``text`` (the JSON written by :meth:`RiskState.to_json`)
    holds, validated field by field; :class:`StateFileError` names ``source`` and the field."""

    def refuse(problem: str) -> StateFileError:
        return StateFileError(f"the risk state file {source} {problem}; {WHAT_TO_DO}")

    try:
        data = json.loads(text, object_pairs_hook=_refusing_duplicates)
    except ValueError as error:  # JSONDecodeError, or a duplicate key
        raise refuse(f"is not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise refuse(f"holds {_shown(data)}, not a JSON object of the risk state fields")
    unknown = sorted(set(data) - set(RISK_STATE_FIELDS))
    if unknown:
        raise refuse(
            f"has unknown field(s) {', '.join(map(repr, unknown))} "
            f"(the fields are {', '.join(RISK_STATE_FIELDS)})"
        )
    missing = [name for name in RISK_STATE_FIELDS if name not in data]
    if missing:
        raise refuse(f"lacks the field(s) {', '.join(map(repr, missing))} (all are required)")
    values = {}
    for name, rule in RISK_STATE_FIELDS.items():
        value = rule.convert(data[name])
        if value is None:
            raise refuse(f'has "{name}": {_shown(data[name])}, expected {rule.expected}')
        values[name] = value
    return RiskState(**values)


def _refusing_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise ValueError(f"field(s) given twice: {', '.join(map(repr, duplicates))}")
    return dict(pairs)


def _shown(value: Any, limit: int = 60) -> str:
    """``value`` as JSON, cut to ``limit`` characters (kept on one line)."""
    text = json.dumps(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


class RiskStateFile:
    """Load once, then :meth:`save_if_changed` whenever the strategy may have changed it."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.last_saved: RiskState | None = None

    def load(self) -> RiskState | None:
        """The saved state (validated, see :func:`parse_risk_state`), or ``None`` when there
        is no file yet."""
        if not self.path.exists():
            return None
        try:
            text = self.path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise StateFileError(
                f"cannot read the risk state file {self.path}: {error}; {WHAT_TO_DO}"
            ) from None
        state = parse_risk_state(text, self.path)
        self.last_saved = state
        return state

    def save_if_changed(self, state: RiskState) -> bool:
        """Write ``state`` unless it equals the last state written; True when written."""
        if state == self.last_saved:
            return False
        write_atomically(self.path, state.to_json())
        self.last_saved = state
        return True
