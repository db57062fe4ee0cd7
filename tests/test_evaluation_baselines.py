"""Baselines: the EM mixture, the Mahalanobis filter, random sign flips, calibrated signals."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.baselines import GaussianMixtureFilter
from evaluation.baselines import MahalanobisFilter
from evaluation.baselines import momentum_signal
from evaluation.baselines import random_sign_flips
from evaluation.baselines import reversal_signal
from scoremodel.toy import GaussianMixture


def test_em_recovers_a_two_component_mixture_and_flags_its_tail():
    truth = GaussianMixture(
        weights=np.array([0.3, 0.7]),
        means=np.array([[-3.0, 0.0], [3.0, 1.0]]),
        covariances=np.array([np.eye(2) * 0.5, [[1.0, 0.5], [0.5, 1.0]]]),
    )
    z = truth.sample(6_000, seed=1)
    fitted = GaussianMixtureFilter.fit(z, n_components=2, flag_share=0.05, seed=0)
    order = np.argsort(fitted.means[:, 0])
    np.testing.assert_allclose(fitted.means[order], truth.means, atol=0.1)
    np.testing.assert_allclose(fitted.weights[order], truth.weights, atol=0.02)
    error = np.abs(fitted.log_density(z) - truth.log_prob(z))
    assert np.median(error) < 0.05  # finite-sample fit: larger only in the thin tails
    assert (~fitted.in_distribution(z)).mean() == pytest.approx(0.05, abs=0.005)
    assert not fitted.in_distribution(np.array([[0.0, -6.0]]))[0]  # between and below: rare


def test_mahalanobis_flags_the_requested_share_and_far_points():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(5_000, 4)) @ rng.normal(size=(4, 4))
    fitted = MahalanobisFilter.fit(z, flag_share=0.05)
    assert (~fitted.in_distribution(z)).mean() == pytest.approx(0.05, abs=0.002)
    assert not fitted.in_distribution(z.mean(0, keepdims=True) + 10 * z.std(0))[0]
    assert fitted.in_distribution(z.mean(0, keepdims=True))[0]


def test_random_sign_flips_keep_sizes_and_holding_periods():
    target = np.array([0.0, 0.5, 0.6, 0.6, 0.0, -1.0, -1.0, 0.8, 0.0])
    flips = random_sign_flips(target, 400, seed=0)
    np.testing.assert_allclose(np.abs(flips), np.abs(target)[None].repeat(400, 0))
    for run in ([1, 2, 3], [5, 6], [7]):  # each holding period keeps one sign
        signs = np.sign(flips[:, run])
        assert (signs == signs[:, :1]).all()
    assert abs(np.sign(flips[:, 1]).mean()) < 0.15  # a fair coin


def test_momentum_and_reversal_directions_and_calibrated_confidence():
    train = np.random.default_rng(0).normal(size=1_000)
    momentum = momentum_signal(np.array([0.5, -2.0, 0.0]), train)
    assert momentum.direction.tolist() == [1, -1, 0]
    assert 0 < momentum.confidence[0] < momentum.confidence[1] <= 1.0
    reversal = reversal_signal(np.array([0.5, -2.0]), train)
    assert reversal.direction.tolist() == [-1, 1]
    assert reversal.confidence.tolist() == momentum.confidence[:2].tolist()
