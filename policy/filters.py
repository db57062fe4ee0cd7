"""Which bars the model's view may be traded on: density, direction, confidence, consistency.

:func:`signal_blocker` decides one bar; the strategy and the evaluation's simulator both call it
through :class:`policy.decision.Policy`, bar by bar (the simulator's scalar loop runs the
walk-forward evaluation's ~1 M decisions in seconds, so no vectorised twin is needed).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum

from policy.settings import PolicySettings


class Blocker(IntEnum):
    """Why the strategy did not take (or keep) the model's position on a bar."""

    NONE = 0
    DENSITY = 1  # unfamiliar market state
    CONFIDENCE = 2  # |signal| too small relative to training (edge: P(clears cost) too low)
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
