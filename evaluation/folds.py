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

**Folds of a retraining schedule** (:func:`retrain_folds`, the run configuration's ``retrain:``
section, :mod:`scoremodel.schedule`): one fold per retraining the strategy would make. Fold k
trains on the window ending at its retrain bar t_k (``retrain.window`` bars or duration, or
every bar from the first: ``expanding``) and is tested from t_k + ``delay_bars`` (the bar its
model first decides) up to the next retraining's first decision; the last fold to the last
bar. Test windows are adjacent (embargo 0: the strategy decides every bar, with one version or
the next); the purge is the ``delay_bars - 1`` bars between t_k and the first test bar. No
training label crosses it because a retrained model's labels are computed from its window's
bars only (the last h states of the window have none), as the strategy's retraining does.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from dataclasses import fields
from typing import Any
from typing import Literal

import numpy as np
import pandas as pd

from cli_errors import UserError
from scoremodel.features import FeatureSpec
from scoremodel.schedule import EXPANDING
from scoremodel.schedule import RetrainSchedule


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


@dataclass(frozen=True)
class RetrainPlan:
    """What the evaluation reads of the run configuration's ``retrain:`` section
    (:class:`strategies.retraining.RetrainSettings`, the same names and defaults): the schedule
    that makes the folds, the training budget of each retraining and the promotion rule. The
    live-only settings (``keep``, ``timeout_secs``, ``registry``, the drift thresholds) do not
    change what is evaluated; ``on_drift`` retrainings are not modelled (the report says so)."""

    every: int | str
    window: int | str = EXPANDING
    min_bars: int = 2_000
    delay_bars: int = 1
    epochs: int | None = None  # None: the evaluation's own budget (--epochs)
    threads: int = 1
    validate: bool = True
    on_drift: bool = False

    @classmethod
    def of(cls, settings: Any) -> RetrainPlan:
        """The plan of a :class:`strategies.retraining.RetrainSettings` (``every`` set)."""
        if getattr(settings, "every", None) is None:
            raise ValueError("a retrain plan needs retrain.every")
        return cls(**{f.name: getattr(settings, f.name) for f in fields(cls)})

    def schedule(self, bar_ns: int) -> RetrainSchedule:
        return RetrainSchedule.of(bar_ns, self.every, self.window, self.min_bars, self.delay_bars)


@dataclass(frozen=True)
class RetrainFold(Fold):
    """A fold of a retraining schedule (:func:`retrain_folds`): trained on the window ending at
    bar ``due`` (``train.stop - 1``), tested from the bar its model first decides.

    ``model`` and ``version`` are set once the fold's candidate is trained and compared
    (:func:`evaluation.walk_forward.schedule_models`): the model that decides the test window
    (the candidate when promoted, else the model in use before) and the record of both."""

    due: int = -1  # position of the retrain bar t: the training window's last bar
    model: Any = field(default=None, compare=False, repr=False)
    version: dict = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "due": self.due, **self.version}


def span_words(span: int | str) -> str:
    """A span as the report writes it: ``600 bars``, ``30D``, ``expanding``."""
    return f"{span:,} bars" if isinstance(span, int) else str(span)


MIN_TEST_BARS = 2  # a test window the simulator can trade (a decision and its fill)


def retrain_folds(
    index: pd.DatetimeIndex, schedule: RetrainSchedule, *, start: int = 0
) -> list[RetrainFold]:
    """One fold per retraining of a run over the bars of ``index`` that trades from position
    ``start`` on (the evaluation: 0), as :class:`strategies.retraining.ModelLifecycle` makes
    them bar by bar.

    The retrain bars are :meth:`RetrainSchedule.retrain_bars` after ``start`` (a run's first
    bar has no previous bar, so it is never due). At retrain bar t the window is the bars
    closing in (t - window, t] (rolling) or every bar from the first of ``index`` (expanding:
    the strategy's starts at its base model's first training bar, the same bars when ``index``
    starts there); one holding fewer than ``min_bars`` bars is skipped, as the strategy waits
    for the next retrain bar. The
    test window runs from the first bar at or after t + ``delay_bars`` bars up to the next
    retraining's first decision (the last: to the last bar). A retraining due before the
    previous one decides is refused (the strategy would skip it when that one was promoted);
    so is a test window of fewer than 2 bars, except the last, which is left out.
    """
    stamps = index.asi8
    n = len(stamps)
    plans = []  # (due, train start, activation position)
    for due in schedule.retrain_bars(index):
        if due <= start:
            continue
        t = int(stamps[due])
        train_start = int(np.searchsorted(stamps, schedule.first_bar_ns(t), side="left"))
        if due + 1 - train_start < schedule.min_bars:
            continue  # the strategy waits for the next retrain bar
        activation = int(np.searchsorted(stamps, schedule.activation_ns(t), side="left"))
        if plans and stamps[due] < schedule.activation_ns(int(stamps[plans[-1][0]])):
            raise EvaluationInputError(
                f"the retraining at {index[due]} is due before the one at {index[plans[-1][0]]} "
                f"decides (retrain.delay_bars = {schedule.delay_bars}); the strategy skips such "
                "a retraining when the previous one was promoted, which these folds do not "
                "model: lower retrain.delay_bars or lengthen retrain.every"
            )
        plans.append((due, train_start, activation))
    plans = [plan for plan in plans if plan[2] < n]  # retrained after the last bar decides none
    folds = []
    for k, (due, train_start, activation) in enumerate(plans):
        stop = plans[k + 1][2] if k + 1 < len(plans) else n
        if stop - activation < MIN_TEST_BARS:
            if k + 1 == len(plans):
                break  # the last retraining decides fewer than 2 bars: left out
            raise EvaluationInputError(
                f"the model retrained at {index[due]} decides only {stop - activation} bar(s) "
                f"before the next one; the evaluation needs at least {MIN_TEST_BARS} per model: "
                "lengthen retrain.every"
            )
        folds.append(
            RetrainFold(
                k,
                range(train_start, due + 1),
                range(activation, stop),
                purge=activation - due - 1,
                embargo=0,
                due=due,
            )
        )
    if not folds:
        raise EvaluationInputError(
            f"{n} bars ({index[0]} .. {index[-1]}) leave no retraining with a test window: "
            f"no retrain bar has retrain.min_bars = {schedule.min_bars} bars in its window "
            f"and at least {MIN_TEST_BARS} bars after its first decision; use more bars, a "
            "lower retrain.min_bars or a shorter retrain.every"
        )
    return folds


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
