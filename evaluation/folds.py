"""Chronological walk-forward folds with a purge and an embargo, over bar positions.

One fold on the bar axis (positions in the bar frame, half-open ranges)::

    [ train ............ ) [ purge P ) [ test ........ ) [ embargo E )
                                                          next fold's test starts here

- *purge* P: bars between the last training bar and the first test bar. With
  P >= the feature warm-up, the first test state's feature window holds no training bar;
  with P >= the label horizon h, no training label (an h-bar forward return) reaches a test bar.
- *embargo* E: bars after a test window that belong to no test window and to no training window
  of the same fold (Lopez de Prado's embargo: no training bar in [test_start - P, test_end + E)).
  With E >= h, the h-bar labels of a test window's last states end inside the embargo, so
  consecutive test windows share no return and per-fold statistics are independent.

``expanding`` trains on every bar before the purge; ``rolling`` on the last ``train_bars``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from cli_errors import UserError
from scoremodel.features import FeatureSpec


class EvaluationInputError(UserError, ValueError):
    """The bars or settings leave the evaluation nothing sound to do."""


Scheme = Literal["expanding", "rolling"]


@dataclass(frozen=True)
class Fold:
    """Bar positions [start, stop) of one fold's training and test windows."""

    index: int
    train: range
    test: range
    purge: int
    embargo: int

    def to_dict(self) -> dict:
        return {
            "fold": self.index,
            "train": [self.train.start, self.train.stop],
            "test": [self.test.start, self.test.stop],
            "purge": self.purge,
            "embargo": self.embargo,
        }


def default_purge(spec: FeatureSpec, horizon: int) -> int:
    """P = max(h, warm-up): neither a feature window nor a label crosses the gap."""
    return max(horizon, spec.warmup_bars)


def walk_forward_folds(
    n_bars: int,
    n_folds: int = 5,
    *,
    purge: int,
    embargo: int,
    min_train_bars: int,
    scheme: Scheme = "expanding",
    train_bars: int | None = None,
) -> list[Fold]:
    """``n_folds`` equal, consecutive test windows after ``min_train_bars + purge`` bars.

    Test window k is [s_k, s_k + L) with s_k = min_train + P + k (L + E) and
    L = floor((n - min_train - P) / K) - E. ``rolling`` trains on the ``train_bars``
    (default ``min_train_bars``) bars before the purge.
    """
    if scheme not in ("expanding", "rolling"):
        raise ValueError(f"scheme must be 'expanding' or 'rolling', got {scheme!r}")
    if n_folds < 1 or purge < 0 or embargo < 0 or min_train_bars < 1:
        raise ValueError("need n_folds >= 1, purge >= 0, embargo >= 0 and min_train_bars >= 1")
    first_test = min_train_bars + purge
    length = (n_bars - first_test) // n_folds - embargo
    if length < 2:
        raise EvaluationInputError(
            f"{n_bars} bars leave no room for {n_folds} test windows after {min_train_bars} "
            f"training bars, a purge of {purge} and an embargo of {embargo}; use more bars, "
            "fewer folds or a shorter first training window"
        )
    window = train_bars or min_train_bars
    folds = []
    for k in range(n_folds):
        start = first_test + k * (length + embargo)
        train_stop = start - purge
        train_start = 0 if scheme == "expanding" else max(0, train_stop - window)
        folds.append(
            Fold(k, range(train_start, train_stop), range(start, start + length), purge, embargo)
        )
    return folds


def leaking_pairs(folds: list[Fold]) -> list[tuple[int, int, int]]:
    """(fold, train bar, test bar) with the train bar inside [test - P, test + E] of a test bar.

    Empty for folds built by :func:`walk_forward_folds`; kept as a guard for hand-made folds.
    """
    found = []
    for fold in folds:
        train = np.asarray(fold.train)
        low = fold.test.start - fold.purge
        high = fold.test.stop - 1 + fold.embargo
        bad = train[(train >= low) & (train <= high)]
        found += [(fold.index, int(i), fold.test.start) for i in bad[:5]]
    return found
