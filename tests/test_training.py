"""Training: reproducible by seed, best weights kept, progress and failure modes."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from scoremodel.calibration import QuantileTable
from scoremodel.datasets import chronological_split
from scoremodel.ema import EMA
from scoremodel.network import NetworkConfig
from scoremodel.network import ScoreNetwork
from scoremodel.normalise import Normaliser
from scoremodel.sigmas import geometric_sigmas
from scoremodel.sigmas import max_pairwise_distance
from scoremodel.training import TrainConfig
from scoremodel.training import ValidationSet
from scoremodel.training import train_score_network

TINY = TrainConfig(hidden=16, n_blocks=1, max_epochs=3, batch_size=128, seed=5)


def data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(3_000, 4)) @ rng.normal(size=(4, 4))
    return x[:2_400], x[2_400:]


def test_same_seed_gives_bit_identical_weights():
    train, val = data()
    first = train_score_network(train, val, TINY, progress=False)
    second = train_score_network(train, val, TINY, progress=False)
    for name, tensor in first.state_dict.items():
        assert torch.equal(tensor, second.state_dict[name]), name
    third = train_score_network(
        train, val, TrainConfig(**{**TINY.to_dict(), "seed": 6}), progress=False
    )
    assert not torch.equal(first.state_dict["output.weight"], third.state_dict["output.weight"])


def test_early_stopping_keeps_a_copy_of_the_best_weights():
    train, val = data(1)
    config = TrainConfig(
        **{**TINY.to_dict(), "max_epochs": 12, "patience": 2, "learning_rate": 0.05}
    )
    result = train_score_network(train, val, config, progress=False)
    losses = [h["val_loss"] for h in result.history]
    assert result.best_val_loss == min(losses)
    assert result.best_epoch == int(np.argmin(losses))
    net = ScoreNetwork(result.network)
    net.load_state_dict(result.state_dict)
    validation = ValidationSet(torch.as_tensor(val, dtype=torch.float32), config, result.sigma_max)
    assert validation.loss(net.eval()) == result.best_val_loss  # not the last epoch's weights


def test_ema_state_dict_is_a_deep_copy():
    model = ScoreNetwork(NetworkConfig(dim=3, hidden=8, n_blocks=1))
    ema = EMA(model)
    snapshot = ema.state_dict()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update(model)
    assert not torch.equal(snapshot["output.bias"], ema.shadow["output.bias"])


def test_sigma_max_is_the_largest_pairwise_distance():
    points = np.array([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0]])
    assert max_pairwise_distance(points) == pytest.approx(5.0)
    sigmas = geometric_sigmas(5.0, 0.1, dim=10)
    assert sigmas[0] == 5.0 and sigmas[-1] == pytest.approx(0.1)
    assert np.all(sigmas[:-1] / sigmas[1:] <= 2.0 + 1e-9)


def test_normaliser_uses_training_statistics_and_clips():
    train = np.array([[0.0, 1.0], [2.0, 1.0], [4.0, 1.0]])
    normaliser = Normaliser.fit(train)
    assert normaliser.mean.tolist() == [2.0, 1.0] and normaliser.std.tolist() == [2.0, 1.0]
    assert normaliser.transform(np.array([[100.0, 1.0]])).tolist() == [[5.0, 0.0]]
    with pytest.raises(ValueError, match="NaN or inf"):
        Normaliser.fit(np.array([[np.nan, 1.0], [1.0, 2.0]]))


def test_split_is_chronological_with_a_purge():
    split = chronological_split(1_000, purge=12)
    assert split.train == slice(0, 700)
    assert split.val == slice(712, 862) and split.test.start == 874
    with pytest.raises(ValueError, match="too few"):
        chronological_split(50)


def test_confidence_is_a_training_percentile_not_a_batch_ratio():
    table = QuantileTable.fit(np.abs(np.random.default_rng(0).normal(size=10_000)))
    # the chapter's |s| / max|s| over a batch of one is always 1; a percentile is not
    assert table.rank(0.1) < 0.15 and table.rank(3.0) > 0.99
    assert table.rank(table.value_at(60.0)) == pytest.approx(0.60)


def test_scoremodel_imports_no_nautilus():
    code = (
        "import sys, scoremodel.pipeline, scoremodel.inference, scoremodel.sampling, "
        "scoremodel.cli; print('nautilus_trader' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_train_command_line(synthetic_catalog, tmp_path):
    out = tmp_path / "cli-model"
    result = subprocess.run(
        [sys.executable, "-m", "scoremodel", "train", "--catalog", str(synthetic_catalog),
         "--out", str(out), "--epochs", "1", "--hidden", "16", "--blocks", "1", "--modes", "score",
         "--quiet"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (out / "manifest.json").is_file() and (out / "signal.safetensors").is_file()
    assert "states/s" in result.stdout
    info = subprocess.run(
        [sys.executable, "-m", "scoremodel", "info", str(out)], capture_output=True, text=True
    )
    assert info.returncode == 0 and "BTCUSDT-LINEAR.BYBIT-1-HOUR" in info.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "scoremodel", "info", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error: model directory")
