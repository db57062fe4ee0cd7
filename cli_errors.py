"""One way for every command to fail: a one-line ``error:`` message and exit status 2.

Errors a user can cause and fix (a wrong path, a damaged file, an invalid setting) derive from
:class:`UserError`; its message says what was wrong and what to do. :func:`run_cli` prints such
an error as one line on stderr and returns 2, without a traceback unless ``--debug`` is given.
Every other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import math
import sys
import traceback
from collections.abc import Callable

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """An error the user can fix; the message names what was wrong and what to do."""


def one_line(message: object) -> str:
    """``message`` as a single line (newlines and runs of spaces collapsed)."""
    return " ".join(str(message).split())


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    """Add ``--debug``: show the traceback of a user error too."""
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")


def run_cli(command: Callable[[], int | None], debug: bool = False) -> int:
    """Run ``command`` and return its exit status; a :class:`UserError` becomes one line and 2
    (with ``debug``, after its traceback); any other exception propagates."""
    try:
        status = command()
    except UserError as error:
        if debug:  # the traceback as well; still a user error, still exit status 2
            traceback.print_exc()
        print(f"error: {one_line(error)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0 if status is None else int(status)


def add_retrain_flags(parser: argparse.ArgumentParser) -> None:
    """``--retrain-every`` and ``--retrain-window``: the run configuration's ``retrain.every``
    and ``retrain.window`` (run_backtest.py and run_live.py alike)."""
    parser.add_argument(
        "--retrain-every",
        metavar="SPAN",
        help="retrain on this calendar grid: a duration (7D, 12h) or a number of bars "
        "(overrides retrain.every; README, 'Keeping the model current')",
    )
    parser.add_argument(
        "--retrain-window",
        metavar="SPAN",
        help="train on the last SPAN of bars, or 'expanding' (overrides retrain.window)",
    )


# ----- argparse types: a bad option value is argparse's one-line usage error ---------------


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = _parse(int, text, "an integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    value = _parse(int, text, "an integer")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    value = _parse(float, text, "a number")
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def open_fraction(text: str) -> float:
    """argparse type: a number strictly between 0 and 1."""
    value = _parse(float, text, "a number")
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {text}")
    return value


def _parse(kind: type, text: str, what: str) -> int | float:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
