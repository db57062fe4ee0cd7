"""Checkpoints: round trip, reproducible validation loss, and refusal of unsafe or wrong files."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from catalogs.catalog import read_bars_frame
from scoremodel.checkpoint import CheckpointError
from scoremodel.checkpoint import load_checkpoint
from scoremodel.features import FeatureSpec
from scoremodel.features import compute_features
from scoremodel.inference import ScoreModel
from scoremodel.pipeline import validation_loss
from tests.conftest import BAR_TYPE


@pytest.fixture
def model_copy(trained_model, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(trained_model, copy)
    return copy


def test_checkpoint_loads_back_and_reproduces_its_validation_loss(trained_model, synthetic_catalog):
    model = ScoreModel.load(trained_model)
    bars = read_bars_frame(synthetic_catalog, BAR_TYPE)
    for name in ("signal", "forecast"):
        assert validation_loss(model, bars, name) == model.manifest["models"][name]["best_val_loss"]


def test_manifest_describes_the_model(trained_model):
    manifest = json.loads((trained_model / "manifest.json").read_text())
    assert manifest["data"]["bar_type"] == BAR_TYPE
    assert manifest["feature_spec"]["names"] == list(FeatureSpec().names)
    assert set(manifest["models"]) == {"signal", "forecast", "conditional"}
    for name, entry in manifest["models"].items():
        assert len(entry["sha256"]) == 64
        if name == "conditional":  # its own network (scoremodel.cond_*)
            section = manifest["conditional"]
            assert section["context_len"] == 8 and section["horizons"] == [1, 3, 6]
            assert 0 <= entry["best_epoch"] < entry["epochs_run"]
            continue
        assert len(entry["normaliser"]["mean"]) == len(entry["normaliser"]["std"])
        assert entry["sigmas"][0] > entry["sigmas"][-1] == entry["sigma_min"]
    assert {"abs_score", "log_density", "forecast_edge"} <= set(manifest["calibration"])
    assert {"torch", "numpy", "python"} <= set(manifest["versions"])
    blocks = manifest["data"]["blocks"]
    assert blocks["train"]["last"] < blocks["val"]["first"] < blocks["test"]["first"]


def test_truncated_weights_are_refused(model_copy):
    weights = model_copy / "signal.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="truncated or was replaced"):
        ScoreModel.load(model_copy)


def test_pickled_payload_is_refused_without_being_unpickled(model_copy):
    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('pickled code ran')",))

    path = model_copy / "signal.safetensors"
    torch.save({"w": Boom()}, path)  # what a malicious or legacy torch checkpoint looks like
    manifest = json.loads((model_copy / "manifest.json").read_text())
    import hashlib

    manifest["models"]["signal"]["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (model_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        ScoreModel.load(model_copy)


def test_weights_named_as_a_pickle_are_refused(model_copy):
    manifest = json.loads((model_copy / "manifest.json").read_text())
    manifest["models"]["signal"]["weights"] = "signal.pt"
    (model_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=r"only \.safetensors weights are loaded"):
        ScoreModel.load(model_copy)


def test_feature_spec_mismatch_is_caught_at_load(trained_model):
    with pytest.raises(CheckpointError, match="retrain the model"):
        ScoreModel.load(trained_model, expected_spec=FeatureSpec(momentum_lookback=30))


def test_corrupt_or_foreign_manifest(model_copy):
    (model_copy / "manifest.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(model_copy)
    (model_copy / "manifest.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(CheckpointError, match=r"is not a scoremodel\.checkpoint manifest"):
        load_checkpoint(model_copy)


def test_missing_weights_file(model_copy):
    (model_copy / "forecast.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"forecast\.safetensors is missing"):
        ScoreModel.load(model_copy)


def test_batch_forward_equals_the_torch_reference(trained_model, synthetic_catalog):
    """The fused float64 numpy forward reproduces the torch network (float64 and float32)."""
    model = ScoreModel.load(trained_model)
    states = compute_features(read_bars_frame(synthetic_catalog, BAR_TYPE)).to_numpy()[:500]
    z = model.normaliser.transform(states)
    sigmas = np.full(len(z), model.settings.signal_sigma)
    fused = model.signal_net.unit_score(z, model.signal_net.conditioning(sigmas[:1]))
    for dtype, tolerance in ((torch.float64, 1e-10), (torch.float32, 1e-5)):
        net = model.torch_network("signal", dtype)
        with torch.no_grad():
            reference = net.unit_score(
                torch.as_tensor(z, dtype=dtype), torch.as_tensor(sigmas, dtype=dtype)
            )
        assert np.abs(fused - reference.double().numpy()).max() < tolerance


def test_compiled_per_bar_path_equals_the_batch_forward(trained_model, synthetic_catalog):
    model = ScoreModel.load(trained_model)
    states = compute_features(read_bars_frame(synthetic_catalog, BAR_TYPE)).to_numpy()[:300]
    for mode in ("score", "forecast"):
        batch = model.assess_batch(states, mode=mode)
        single = [model.assess(s, mode) for s in states]
        for column in ("signal", "confidence", "log_density"):
            values = np.array([getattr(a, column) for a in single])
            assert np.abs(values - batch[column].to_numpy()).max() <= 1e-9, (mode, column)
        assert [a.direction for a in single] == batch["direction"].tolist()
