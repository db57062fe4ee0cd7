"""When a model is retrained, on which bars, and from which bar the new one trades.

One schedule for the Nautilus backtest, the live node and the walk-forward evaluation:

- **when**: at the close of the first bar of each period of length ``every`` counted from the
  UNIX epoch (a calendar grid: 7D retrains at the first bar after each 7-day boundary, whatever
  bar a run started on), so a backtest and a live node that started elsewhere retrain at the
  same bars;
- **on what**: the bars up to and including that bar (t), over the last ``window`` (a rolling
  window) or every bar held (``expanding``); at least ``min_bars`` of them, else it waits;
- **from when**: the new model decides from bar t + ``delay_bars`` (the time training takes,
  in bars; at least 1). A live node swaps it in at the first bar at or after that once its
  training process has finished; a backtest trains in the engine's thread and swaps at exactly
  that bar, which is what live does whenever training takes less than ``delay_bars`` bars.

Spans are durations (``"7D"``, ``"12h"``, ``"90min"``: pandas offsets) or whole numbers of bars.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

EXPANDING = "expanding"
_BARS = re.compile(r"^\s*(\d+)\s*(bars?)?\s*$")


class ScheduleError(ValueError):
    """A span that is neither a duration nor a number of bars."""


def span_ns(span: int | str, bar_ns: int) -> int:
    """A span in nanoseconds: a whole number of bars (``500``, ``"500 bars"``) or a duration
    (``"30D"``, ``"12h"``); refused when it is not positive or not a whole number of bars."""
    if isinstance(span, bool):
        raise ScheduleError(f"{span!r} is not a duration or a number of bars")
    if isinstance(span, int):
        bars = span
    elif isinstance(span, str) and _BARS.match(span):
        bars = int(_BARS.match(span).group(1))
    else:
        try:
            ns = pd.Timedelta(str(span)).value
        except ValueError:
            raise ScheduleError(
                f"{span!r} is not a duration (such as 7D, 12h, 90min) or a number of bars"
            ) from None
        if ns <= 0 or ns % bar_ns:
            raise ScheduleError(
                f"{span!r} must be a positive whole number of bars "
                f"({pd.Timedelta(bar_ns, unit='ns')} each)"
            )
        return ns
    if bars < 1:
        raise ScheduleError(f"{span!r} must be at least one bar")
    return bars * bar_ns


def check_span(span: int | str) -> None:
    """Whether ``span`` can be read as a span at all (the bar length is not known yet)."""
    span_ns(span, 1)


@dataclass(frozen=True)
class RetrainSchedule:
    """A retraining schedule in nanoseconds for bars of ``bar_ns`` (see the module docstring)."""

    bar_ns: int
    every_ns: int
    window_ns: int | None  # None: expanding
    min_bars: int
    delay_bars: int = 1

    @classmethod
    def of(
        cls,
        bar_ns: int,
        every: int | str,
        window: int | str = EXPANDING,
        min_bars: int = 1_000,
        delay_bars: int = 1,
    ) -> RetrainSchedule:
        """The schedule of user-facing spans (durations or bars) for bars of ``bar_ns``."""
        window_ns = None if window == EXPANDING else span_ns(window, bar_ns)
        if delay_bars < 1:
            raise ScheduleError(f"delay_bars must be at least 1, got {delay_bars}")
        return cls(bar_ns, span_ns(every, bar_ns), window_ns, int(min_bars), int(delay_bars))

    def due(self, previous_ns: int, ts_ns: int) -> bool:
        """Whether the bar closing at ``ts_ns`` is the first of a new period (the previous bar
        closed at ``previous_ns``; 0: none seen yet, never due)."""
        return previous_ns > 0 and ts_ns // self.every_ns != previous_ns // self.every_ns

    def first_bar_ns(self, ts_ns: int) -> int:
        """Close time of the first bar a model trained on bars up to ``ts_ns`` uses
        (the window's start is after it; expanding: 0, every bar)."""
        return 0 if self.window_ns is None else ts_ns - self.window_ns + self.bar_ns

    def activation_ns(self, ts_ns: int) -> int:
        """Close time of the first bar the model trained up to ``ts_ns`` decides."""
        return ts_ns + self.delay_bars * self.bar_ns

    def retrain_bars(self, index: pd.DatetimeIndex, start_ns: int | None = None) -> list[int]:
        """Positions in ``index`` (bar close times) of the bars a run over those bars retrains
        at, from the bar closing at ``start_ns`` on (default: the first): the evaluation's
        view of what the strategy does bar by bar."""
        stamps = index.asi8
        period = stamps // self.every_ns
        due = np.flatnonzero(period[1:] != period[:-1]) + 1
        if start_ns is not None:
            due = due[stamps[due] >= start_ns]
        return due.tolist()
