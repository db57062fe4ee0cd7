"""Walk-forward folds: chronological, non-overlapping tests, purge and embargo respected."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from evaluation.folds import Fold
from evaluation.folds import default_purge
from evaluation.folds import leaking_pairs
from evaluation.folds import walk_forward_folds
from evaluation.walk_forward import EvaluationConfig
from scoremodel.features import DEFAULT_SPEC

PURGE, EMBARGO = 61, 12


@pytest.mark.parametrize("scheme", ["expanding", "rolling"])
def test_no_training_bar_within_the_purge_or_embargo_of_any_test_bar(scheme):
    folds = walk_forward_folds(
        10_000, 5, purge=PURGE, embargo=EMBARGO, min_train_bars=4_000, scheme=scheme
    )
    assert len(folds) == 5
    for fold in folds:
        train, test = np.asarray(fold.train), np.asarray(fold.test)
        gaps = np.abs(test[None, :] - train[:, None])  # every (train, test) pair
        assert gaps.min() > PURGE  # nearest pair: train.stop - 1 vs test.start
        assert train.max() < test.min()  # walk-forward: training strictly before testing
        assert not ((train >= test.min() - PURGE) & (train <= test.max() + EMBARGO)).any()
    assert leaking_pairs(folds) == []


def test_tests_are_chronological_equal_and_separated_by_the_embargo():
    folds = walk_forward_folds(10_000, 5, purge=PURGE, embargo=EMBARGO, min_train_bars=4_000)
    lengths = {len(f.test) for f in folds}
    assert len(lengths) == 1
    for before, after in itertools.pairwise(folds):
        assert before.test.stop + EMBARGO == after.test.start  # no overlap, embargo between
    assert folds[0].test.start == 4_000 + PURGE
    assert folds[-1].test.stop + EMBARGO <= 10_000  # the last labels are in the data


def test_expanding_grows_from_the_start_and_rolling_keeps_its_length():
    expanding = walk_forward_folds(9_000, 4, purge=PURGE, embargo=EMBARGO, min_train_bars=3_000)
    assert all(f.train.start == 0 for f in expanding)
    assert [len(f.train) for f in expanding] == sorted(len(f.train) for f in expanding)
    assert len(expanding[-1].train) > len(expanding[0].train)
    rolling = walk_forward_folds(
        9_000, 4, purge=PURGE, embargo=EMBARGO, min_train_bars=3_000, scheme="rolling",
        train_bars=2_500,
    )  # fmt: skip
    assert {len(f.train) for f in rolling} == {2_500}
    assert [f.test for f in rolling] == [f.test for f in expanding]


def test_the_guard_finds_a_hand_made_leak():
    leaky = Fold(0, range(0, 1_000), range(1_030, 1_500), purge=PURGE, embargo=EMBARGO)
    assert leaking_pairs([leaky])  # the last 31 training bars sit inside the purge
    clean = dataclasses.replace(leaky, train=range(0, 1_030 - PURGE))
    assert leaking_pairs([clean]) == []


def test_default_gaps_cover_the_warm_up_and_the_horizon():
    assert default_purge(DEFAULT_SPEC, 12) >= max(12, DEFAULT_SPEC.warmup_bars)
    assert default_purge(DEFAULT_SPEC, 200) == 200
    cfg = EvaluationConfig().resolved()
    assert cfg.purge >= DEFAULT_SPEC.warmup_bars and cfg.embargo >= cfg.horizon
    with pytest.raises(ValueError, match="leak"):
        EvaluationConfig(purge=5).resolved()
    with pytest.raises(ValueError, match="leak"):
        EvaluationConfig(embargo=3).resolved()


def test_too_few_bars_is_an_error_that_says_what_to_do():
    with pytest.raises(ValueError, match="use more bars"):
        walk_forward_folds(500, 5, purge=PURGE, embargo=EMBARGO, min_train_bars=400)
