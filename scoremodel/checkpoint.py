"""Checkpoint directory: safetensors weights + a JSON manifest that describes them.

Layout::

    MODEL_DIR/
      manifest.json          feature spec, normalisers, sigmas, architecture, calibration,
                             training data range and bar type, library versions, checksums
      signal.safetensors     state model s(x, sigma)
      forecast.safetensors   joint [state, forward return] model (forecast mode)

Weights are read with safetensors only: no pickle, so loading a checkpoint never runs code.
Every file's SHA-256 is in the manifest, so a truncated or swapped file is caught at load.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from pathlib import Path

import numpy as np
import safetensors
import safetensors.torch
import torch

from scoremodel.features import FeatureSpec

FORMAT = "scoremodel.checkpoint"
FORMAT_VERSION = 2  # 2: Simpson density on (z, z/2) at sigma_min
MANIFEST = "manifest.json"


class CheckpointError(RuntimeError):
    """A model directory that cannot be used: missing, corrupt, or made for other features."""


def library_versions() -> dict[str, str]:
    from scoremodel import __version__

    return {
        "scoremodel": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "safetensors": safetensors.__version__,
    }


def save_checkpoint(
    directory: str | Path, manifest: dict, weights: dict[str, dict[str, torch.Tensor]]
) -> Path:
    """Write ``weights[name]`` to ``name.safetensors`` and the manifest with their checksums."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    manifest = json.loads(json.dumps(manifest))  # a deep copy that is surely JSON
    manifest.update(format=FORMAT, format_version=FORMAT_VERSION, versions=library_versions())
    for name, state_dict in weights.items():
        if name not in manifest["models"]:
            raise ValueError(f"weights for {name!r} have no entry in manifest['models']")
        file_name = f"{name}.safetensors"
        tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
        _atomic_write(directory / file_name, safetensors.torch.save(tensors))
        manifest["models"][name]["weights"] = file_name
        manifest["models"][name]["sha256"] = _sha256(directory / file_name)
    text = json.dumps(manifest, indent=2, sort_keys=True)
    _atomic_write(directory / MANIFEST, text.encode())
    return directory


def load_checkpoint(
    directory: str | Path, expected_spec: FeatureSpec | None = None
) -> tuple[dict, dict[str, dict[str, torch.Tensor]]]:
    """Read and verify a checkpoint; returns (manifest, weights by model name).

    Raises :class:`CheckpointError` with what is wrong and what to do, if the directory or a
    file is missing, a checksum differs (truncated/replaced file), a weights file is not
    safetensors (e.g. a pickled torch file), or the feature spec differs from ``expected_spec``.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    if expected_spec is not None:
        check_feature_spec(manifest, expected_spec, directory)
    weights = {
        name: _load_weights(directory, name, entry) for name, entry in manifest["models"].items()
    }
    return manifest, weights


def usable_checkpoint(directory: str | Path, expected_spec: FeatureSpec) -> str | None:
    """None if this code can load the checkpoint, else the reason it cannot."""
    try:
        load_checkpoint(directory, expected_spec)
    except CheckpointError as error:
        return str(error)
    return None


def read_manifest(directory: Path) -> dict:
    path = directory / MANIFEST
    if not directory.is_dir():
        raise CheckpointError(
            f"model directory {directory} does not exist; train one with "
            "`python -m scoremodel train --catalog DIR --bar-type BAR_TYPE --out MODEL_DIR`"
        )
    if not path.is_file():
        raise CheckpointError(f"{directory} has no {MANIFEST}; it is not a scoremodel checkpoint")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path} is not valid JSON ({error}); the file is corrupt") from error
    if manifest.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a {FORMAT} manifest (format={manifest.get('format')!r})"
        )
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format version {manifest.get('format_version')}, this code reads "
            f"version {FORMAT_VERSION}; retrain the model with this version"
        )
    for key in ("feature_spec", "models", "calibration", "data", "inference"):
        if key not in manifest:
            raise CheckpointError(f"{path} lacks the '{key}' section; the manifest is incomplete")
    return manifest


def check_feature_spec(manifest: dict, expected: FeatureSpec, directory: Path) -> None:
    """The model's features must be exactly the ones this code computes."""
    try:
        stored = FeatureSpec.from_dict(manifest["feature_spec"])
    except (TypeError, ValueError, KeyError) as error:
        raise CheckpointError(
            f"{directory}: unreadable feature spec in the manifest ({error})"
        ) from error
    if stored != expected:
        raise CheckpointError(
            f"{directory} was trained on feature spec v{stored.version} {stored.names} "
            f"(fingerprint {stored.fingerprint()}), but this code computes v{expected.version} "
            f"{expected.names} (fingerprint {expected.fingerprint()}); retrain the model"
        )


def _load_weights(directory: Path, name: str, entry: dict) -> dict[str, torch.Tensor]:
    path = directory / entry.get("weights", "")
    if path.suffix != ".safetensors":
        raise CheckpointError(
            f"model {name!r} points at {path.name}; only .safetensors weights are loaded "
            "(pickled torch files can run code and are refused)"
        )
    if not path.is_file():
        raise CheckpointError(f"weights file {path} is missing; copy the whole model directory")
    if _sha256(path) != entry.get("sha256"):
        raise CheckpointError(
            f"{path} does not match the checksum in the manifest: the file is truncated or was "
            "replaced; copy the model directory again or retrain"
        )
    try:
        return safetensors.torch.load_file(str(path))
    except Exception as error:  # safetensors raises its own SafetensorError
        raise CheckpointError(
            f"{path} is not a valid safetensors file ({error}); pickled checkpoints are refused"
        ) from error


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so a crash never leaves half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
