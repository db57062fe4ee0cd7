"""Which bars the model's view may be traded on: density, direction, confidence, consistency.

:func:`signal_blocker` decides one bar (the strategy, bar by bar); :func:`signal_blockers` is
its vectorised twin over whole arrays (the evaluation). Both apply the same rules in the same
order; ``tests/test_policy.py`` checks that they agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum

import numpy as np

from policy.settings import PolicySettings


class Blocker(IntEnum):
    """Why the strategy did not take (or keep) the model's position on a bar."""

    NONE = 0
    DENSITY = 1  # unfamiliar market state
    CONFIDENCE = 2  # |signal| too small relative to training
    CONSISTENCY = 3  # direction not stable for k bars
    RISK = 4  # drawdown ladder at zero, daily stop or halt
    NO_DIRECTION = 5  # the model has no view (signal exactly 0)
    EDGE = 6  # forecast mode: the predicted edge does not beat the round-trip cost


def direction_is_stable(recent: Sequence[int], bars: int) -> bool:
    """True when the last ``bars`` directions (the newest last) are equal and non-zero."""
    if len(recent) < bars or recent[-1] == 0:
        return False
    newest = recent[-1]
    return all(recent[-1 - lag] == newest for lag in range(1, bars))


def signal_blocker(
    in_distribution: bool,
    direction: int,
    confidence: float,
    stable: bool,
    settings: PolicySettings,
) -> Blocker:
    """The first filter that blocks this bar's view, or ``Blocker.NONE``."""
    if not in_distribution:
        return Blocker.DENSITY
    if direction == 0:
        return Blocker.NO_DIRECTION
    if confidence < settings.min_confidence:
        return Blocker.CONFIDENCE
    if not stable:
        return Blocker.CONSISTENCY
    return Blocker.NONE


def stable_directions(direction: np.ndarray, bars: int) -> np.ndarray:
    """Vectorised :func:`direction_is_stable` at every position of ``direction``."""
    d = np.asarray(direction, dtype=np.int64)
    stable = d != 0
    for lag in range(1, bars):
        same = np.zeros(len(d), dtype=bool)
        same[lag:] = d[lag:] == d[:-lag]
        stable &= same
    return stable


def signal_blockers(
    in_distribution: np.ndarray,
    direction: np.ndarray,
    confidence: np.ndarray,
    settings: PolicySettings,
) -> np.ndarray:
    """Vectorised :func:`signal_blocker` over a run of consecutive bars (int8 Blocker codes)."""
    direction = np.asarray(direction, dtype=np.int64)
    stable = stable_directions(direction, settings.consistency_bars)
    codes = np.full(len(direction), Blocker.NONE, dtype=np.int8)
    # the first blocking rule wins: assign in reverse order of precedence
    codes[~stable] = Blocker.CONSISTENCY
    codes[np.asarray(confidence, dtype=np.float64) < settings.min_confidence] = Blocker.CONFIDENCE
    codes[direction == 0] = Blocker.NO_DIRECTION
    codes[~np.asarray(in_distribution, dtype=bool)] = Blocker.DENSITY
    return codes
