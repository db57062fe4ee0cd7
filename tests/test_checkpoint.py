"""Checkpoints: round trip, reproducible validation loss, and refusal of unsafe or wrong files
or of an edited, damaged or non-finite manifest."""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil

import numpy as np
import pytest
import torch

from catalogs.catalog import read_bars_frame
from scoremodel.checkpoint import CheckpointError
from scoremodel.checkpoint import load_checkpoint
from scoremodel.cond_checkpoint import load_conditional
from scoremodel.features import FeatureSpec
from scoremodel.features import compute_features
from scoremodel.inference import ScoreModel
from scoremodel.pipeline import save_model
from scoremodel.pipeline import validation_loss
from tests.conftest import BAR_TYPE
from tests.helpers import edit_manifest

EDITED = r"manifest\.json was edited or damaged after it was written \(its checksum differs\); "
AGAIN = "copy the whole model directory again or retrain"


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
    assert manifest["format_version"] == 3
    content = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    assert manifest["manifest_sha256"] == hashlib.sha256(canonical.encode()).hexdigest()


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
    checksum = hashlib.sha256(path.read_bytes()).hexdigest()
    edit_manifest(model_copy, lambda m: m["models"]["signal"].update(sha256=checksum))
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        ScoreModel.load(model_copy)


def test_weights_named_as_a_pickle_are_refused(model_copy):
    edit_manifest(model_copy, lambda m: m["models"]["signal"].update(weights="signal.pt"))
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


def set_item(path: str, value):
    """An edit that sets the manifest entry at ``path`` (keys and list indices, dotted)."""

    def edit(manifest: dict) -> None:
        *parents, last = [int(key) if key.isdigit() else key for key in path.split(".")]
        tree = manifest
        for key in parents:
            tree = tree[key]
        tree[last] = value

    return edit


# what changes a model's behaviour (horizons: 780 orders became 2,701) or its fit to the bars
HAND_EDITS = {
    "horizons": set_item("conditional.horizons", [1, 3, 600]),
    "normaliser": set_item("models.signal.normaliser.std.3", 0.5),
    "calibration": set_item("calibration.log_density.values.20", -1.0),
    "bar type": set_item("data.bar_type", "BTCUSDT-LINEAR.BYBIT-1-MINUTE-LAST-EXTERNAL"),
    "weights checksum": set_item("models.forecast.sha256", "0" * 64),
    "version string": set_item("versions.torch", "9.9.9"),
}


@pytest.mark.parametrize("edit", HAND_EDITS.values(), ids=HAND_EDITS.keys())
def test_any_edit_to_the_manifest_is_refused(model_copy, edit):
    edit_manifest(model_copy, edit, reseal=False)
    with pytest.raises(CheckpointError, match=EDITED + AGAIN):
        load_checkpoint(model_copy)
    with pytest.raises(CheckpointError, match=EDITED + AGAIN):
        load_conditional(model_copy)  # the conditional loader makes the same check


def test_a_manifest_without_its_checksum_is_refused(model_copy):
    edit_manifest(model_copy, lambda m: m.pop("manifest_sha256"), reseal=False)
    with pytest.raises(CheckpointError, match=r"has no checksum \(manifest_sha256\)"):
        load_checkpoint(model_copy)


def test_a_version_2_manifest_is_refused_with_the_retrain_message(model_copy):
    def version_2(manifest: dict) -> None:  # as version 2 wrote it: no manifest checksum
        manifest.update(format_version=2)
        manifest.pop("manifest_sha256")

    edit_manifest(model_copy, version_2, reseal=False)
    message = r"has format version 2, this code reads version 3; retrain the model with this"
    for load in (load_checkpoint, load_conditional):
        with pytest.raises(CheckpointError, match=message):
            load(model_copy)


# the statistics and settings the model computes with; the checksum is recomputed, so only the
# finiteness rule can refuse them
NON_FINITE = {
    "models.signal.normaliser.std.3": math.nan,
    "models.signal.normaliser.mean.0": math.inf,
    "models.forecast.normaliser.clip": math.nan,
    "models.signal.sigmas.2": -math.inf,
    "models.signal.sigma_max": math.nan,
    "calibration.abs_score.values.7": math.nan,
    "calibration.log_density.percentiles.3": math.nan,
    "inference.signal_sigma": math.nan,
    "models.conditional.mean_shrinkage.1": math.nan,
    "conditional.scaling.targets.std.2": math.inf,
    "conditional.scaling.vol_floor": math.nan,
    "conditional.predictive.sigma": math.nan,
}


def dotted(path: str) -> str:
    """``a.b.3`` -> ``a.b[3]``: how a message names a field."""
    return re.sub(r"\.(\d+)", r"[\1]", path)


@pytest.mark.parametrize(("path", "value"), NON_FINITE.items(), ids=NON_FINITE.keys())
def test_non_finite_statistics_are_refused_naming_the_field(model_copy, path, value):
    edit_manifest(model_copy, set_item(path, value))
    message = re.escape(f"{dotted(path)} is {value}, but a model's statistics") + ".*" + AGAIN
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(model_copy)
    if path.startswith("conditional."):
        with pytest.raises(CheckpointError, match=message):
            load_conditional(model_copy)


def test_reporting_only_numbers_may_be_non_finite(model_copy, tmp_path):
    """A diverged epoch's loss is reported, never used: loading and re-saving keep it."""

    def diverged(manifest: dict) -> None:
        manifest["models"]["signal"]["history"][0]["val_loss"] = math.nan
        manifest["models"]["forecast"]["best_val_loss"] = math.inf

    edit_manifest(model_copy, diverged)
    model = ScoreModel.load(model_copy)
    save_model(model, tmp_path / "again")
    manifest, _ = load_checkpoint(tmp_path / "again")
    assert math.isnan(manifest["models"]["signal"]["history"][0]["val_loss"])
    assert manifest["models"]["forecast"]["best_val_loss"] == math.inf


def test_save_refuses_non_finite_statistics(trained_model, tmp_path):
    model = ScoreModel.load(trained_model)
    save_model(model, tmp_path / "resaved")  # a loaded model saves again (a new checksum)
    assert load_checkpoint(tmp_path / "resaved")[0]["models"] == model.manifest["models"]
    model.manifest["models"]["signal"]["normaliser"]["std"][3] = math.nan
    with pytest.raises(ValueError, match=re.escape("models.signal.normaliser.std[3] is nan")):
        save_model(model, tmp_path / "bad")
    model.manifest["models"]["signal"]["normaliser"]["std"][3] = 1.0
    model.manifest["conditional"]["scaling"]["targets"]["mean"][0] = -math.inf
    with pytest.raises(ValueError, match=re.escape("conditional.scaling.targets.mean[0] is -inf")):
        save_model(model, tmp_path / "bad")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["resaved"]  # nothing else written


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
