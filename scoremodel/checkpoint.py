"""Checkpoint directory: safetensors weights + a JSON manifest that describes them.

Layout::

    MODEL_DIR/
      manifest.json          feature spec, normalisers, sigmas, architecture, calibration,
                             training data range and bar type, library versions, checksums
      signal.safetensors     state model s(x, sigma)
      forecast.safetensors   joint [state, forward return] model (forecast mode)

Weights are read with safetensors only: no pickle, so loading a checkpoint never runs code.
Every file's SHA-256 is in the manifest, so a truncated or swapped file is caught at load.
A model directory is written whole: built as a hidden sibling directory, synced, then renamed
into place, so a crash never leaves half a model under the final name.

:func:`load_verified_checkpoint` is the one gate every user of a model passes (the strategy's
loader and ``python -m scoremodel info``): the checkpoint itself (files, checksums, a complete
manifest, this code's feature spec) and, when given, its fit to the bars and signal mode.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import secrets
import shutil
from pathlib import Path

import numpy as np
import safetensors
import safetensors.torch
import torch

from cli_errors import UserError
from scoremodel.features import DEFAULT_SPEC
from scoremodel.features import FeatureSpec

FORMAT = "scoremodel.checkpoint"
FORMAT_VERSION = 2  # 2: Simpson density on (z, z/2) at sigma_min
MANIFEST = "manifest.json"
BLOCK_KEYS = ("first", "last", "rows")
# What loading, trading and `info` read from a manifest: a manifest without any of these
# (dotted paths) is incomplete and refused at load, never half-used.
REQUIRED_ENTRIES = (
    "feature_spec.version",
    "feature_spec.names",
    "inference.signal_sigma",
    "calibration.abs_score",
    "calibration.log_density",
    "data.bar_type",
    "data.first_bar",
    "data.last_bar",
    "data.n_bars",
    *(f"data.blocks.{block}.{key}" for block in ("train", "val", "test") for key in BLOCK_KEYS),
    "models.signal",
)
REQUIRED_MODEL_ENTRIES = (
    "network.dim",
    "network.hidden",
    "network.n_blocks",
    "normaliser.mean",
    "normaliser.std",
    "normaliser.clip",
    "sigma_min",
    "sigma_max",
    "sigmas",
    "weights",
    "sha256",
    "best_val_loss",
    "best_epoch",
    "test_loss",
    "train_seconds",
    "states_per_second",
)


CONDITIONAL = "conditional"  # the conditional forecaster's entry (scoremodel.cond_checkpoint)


class CheckpointError(UserError, RuntimeError):
    """A model directory that cannot be used: missing, corrupt, or made for other features."""


class ModelMismatchError(CheckpointError):
    """The checkpoint is valid but was made for other bars or lacks the requested mode."""


class ModelOutputError(UserError):
    """A path where a new model directory cannot be written (or must not replace what is there)."""


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
    directory: str | Path,
    manifest: dict,
    weights: dict[str, dict[str, torch.Tensor]],
    *,
    overwrite: bool = False,
) -> Path:
    """Write ``weights[name]`` to ``name.safetensors`` and the manifest with their checksums.

    The model directory appears complete or not at all: it is built as a hidden sibling
    directory, synced, and renamed into place. An existing model directory is replaced only
    with ``overwrite``, and only after the new one is complete (see :func:`check_model_output`).
    """
    directory = Path(directory)
    check_model_output(directory, overwrite)
    manifest = json.loads(json.dumps(manifest))  # a deep copy that is surely JSON
    manifest.update(format=FORMAT, format_version=FORMAT_VERSION, versions=library_versions())
    for name in weights:
        if name not in manifest["models"]:
            raise ValueError(f"weights for {name!r} have no entry in manifest['models']")
    target = directory.absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = _new_sibling(target, "new")
    try:
        for name, state_dict in weights.items():
            file_name = f"{name}.safetensors"
            tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
            data = safetensors.torch.save(tensors)
            _write_synced(staging / file_name, data)
            manifest["models"][name]["weights"] = file_name
            manifest["models"][name]["sha256"] = hashlib.sha256(data).hexdigest()
        text = json.dumps(manifest, indent=2, sort_keys=True)
        _write_synced(staging / MANIFEST, text.encode())
        _fsync_directory(staging)
        _move_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def check_model_output(directory: str | Path, overwrite: bool = False) -> Path:
    """Refuse a path where a new model directory cannot or must not be written; run it first.

    Refused: a file or a symbolic link; an existing non-empty directory without ``overwrite``;
    with ``overwrite``, a non-empty directory that is not a model directory (no manifest), so a
    mistyped path never wipes other data; a path whose nearest existing parent is not a
    writable directory.
    """
    directory = Path(directory)
    if directory.is_symlink():
        raise ModelOutputError(f"{directory} is a symbolic link; give the model directory itself")
    if directory.exists() and not directory.is_dir():
        raise ModelOutputError(
            f"{directory} is a file, not a model directory; choose another path for the model"
        )
    if directory.is_dir() and any(directory.iterdir()):
        if not overwrite:
            raise ModelOutputError(
                f"model directory {directory} already exists; pass --overwrite to replace it, "
                "or choose another path"
            )
        if not (directory / MANIFEST).is_file():
            raise ModelOutputError(
                f"{directory} is not a model directory (no {MANIFEST}) and is not empty; "
                "--overwrite only replaces a model directory, choose another path"
            )
    parent = directory.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ModelOutputError(f"cannot create {directory}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ModelOutputError(f"cannot create {directory}: no permission to write in {parent}")
    return directory


def load_checkpoint(
    directory: str | Path, expected_spec: FeatureSpec | None = None
) -> tuple[dict, dict[str, dict[str, torch.Tensor]]]:
    """Read and verify a checkpoint; returns (manifest, weights by model name).

    Raises :class:`CheckpointError` with what is wrong and what to do, if the directory or a
    file is missing, the manifest is incomplete, a checksum differs (truncated/replaced file), a
    weights file is not safetensors (e.g. a pickled torch file), or the feature spec differs
    from ``expected_spec``.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    if expected_spec is not None:
        check_feature_spec(manifest, expected_spec, directory)
    weights = {
        name: _load_weights(directory, name, entry) for name, entry in manifest["models"].items()
    }
    return manifest, weights


def load_verified_checkpoint(
    directory: str | Path,
    expected_spec: FeatureSpec = DEFAULT_SPEC,
    bar_type: str | None = None,
    signal_mode: str = "score",
    allow_bar_type_mismatch: bool = False,
) -> tuple[dict, dict[str, dict[str, torch.Tensor]]]:
    """The checks every user of a model passes (the strategy's loader, ``scoremodel info``).

    :func:`load_checkpoint` against this code's feature spec, then :func:`check_model_fits`.
    Returns (manifest, weights by model name).
    """
    manifest, weights = load_checkpoint(directory, expected_spec)
    check_model_fits(manifest, directory, bar_type, signal_mode, allow_bar_type_mismatch)
    return manifest, weights


def check_model_fits(
    manifest: dict,
    directory: str | Path,
    bar_type: str | None = None,
    signal_mode: str = "score",
    allow_bar_type_mismatch: bool = False,
) -> None:
    """Raise :class:`ModelMismatchError` if the model was trained on other bars than
    ``bar_type`` (instrument or bar spec; the aggregation source may differ) or lacks the
    model ``signal_mode`` needs. ``bar_type`` None: any bars."""
    trained_on = manifest["data"]["bar_type"]
    checked = None not in (trained_on, bar_type) and not allow_bar_type_mismatch
    if checked and _bar_type_key(trained_on) != _bar_type_key(bar_type):
        raise ModelMismatchError(
            f"{directory} was trained on {trained_on} but the strategy trades {bar_type}; "
            "train a model on these bars (or set allow_bar_type_mismatch: true to override)"
        )
    needed = {"forecast": "forecast", "edge": "conditional"}.get(signal_mode)
    if needed is not None and needed not in manifest["models"]:
        raise ModelMismatchError(
            f"signal_mode is '{signal_mode}' but {directory} has no {needed} model; "
            f"retrain with `--modes score,{signal_mode}` or set signal_mode: score"
        )


def usable_checkpoint(directory: str | Path, expected_spec: FeatureSpec) -> str | None:
    """None if this code can load the checkpoint, else the reason it cannot."""
    try:
        load_checkpoint(directory, expected_spec)
    except CheckpointError as error:
        return str(error)
    return None


def read_manifest(directory: Path) -> dict:
    """The manifest of ``directory``, checked to be a complete manifest of this format."""
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
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise CheckpointError(f"{path} is not a {FORMAT} manifest (format={found!r})")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format version {manifest.get('format_version')}, this code reads "
            f"version {FORMAT_VERSION}; retrain the model with this version"
        )
    missing = [entry for entry in REQUIRED_ENTRIES if not _has(manifest, entry)]
    if not missing:
        models = manifest["models"]
        if "forecast" in models and not _has(manifest, "calibration.forecast_edge"):
            missing.append("calibration.forecast_edge")
        missing += [
            f"models.{name}.{entry}"
            for name in models
            if name != CONDITIONAL  # a different network: scoremodel.cond_checkpoint checks it
            for entry in REQUIRED_MODEL_ENTRIES
            if not _has(models[name], entry)
        ]
        if CONDITIONAL in models and not isinstance(manifest.get(CONDITIONAL), dict):
            missing.append(CONDITIONAL)
        if CONDITIONAL in models and "mean_shrinkage" not in models[CONDITIONAL]:
            missing.append(f"models.{CONDITIONAL}.mean_shrinkage")
    if missing:
        raise CheckpointError(
            f"{path} lacks {', '.join(missing)}: the manifest is incomplete or was edited; "
            "copy the whole model directory again or retrain the model"
        )
    return manifest


def check_feature_spec(manifest: dict, expected: FeatureSpec, directory: Path) -> None:
    """The model's features must be exactly the ones this code computes."""
    try:
        stored = FeatureSpec.from_dict(manifest["feature_spec"])
    except (TypeError, ValueError, KeyError) as error:
        raise CheckpointError(
            f"{directory}: unreadable feature spec in the manifest ({error}); retrain the model"
        ) from error
    if stored != expected:
        raise CheckpointError(
            f"{directory} was trained on feature spec v{stored.version} {stored.names} "
            f"(fingerprint {stored.fingerprint()}), but this code computes v{expected.version} "
            f"{expected.names} (fingerprint {expected.fingerprint()}); retrain the model"
        )


def _has(tree: object, dotted: str) -> bool:
    """Whether nested dicts hold the dotted path ``a.b.c``."""
    for key in dotted.split("."):
        if not isinstance(tree, dict) or key not in tree:
            return False
        tree = tree[key]
    return True


def _bar_type_key(bar_type: str) -> tuple[str, str]:
    """(instrument id, step-aggregation-price) of a bar type string such as
    ``BTCUSDT-LINEAR.BYBIT-1-HOUR-LAST-EXTERNAL``; the aggregation source is left out."""
    parts = str(bar_type).split("@")[0].rsplit("-", 4)
    if len(parts) != 5:
        raise CheckpointError(
            f"{bar_type!r} is not a bar type such as BTCUSDT-LINEAR.BYBIT-1-HOUR-LAST-EXTERNAL"
        )
    return parts[0], "-".join(parts[1:4])


def _load_weights(directory: Path, name: str, entry: dict) -> dict[str, torch.Tensor]:
    file_name = str(entry.get("weights", ""))
    path = directory / file_name
    if Path(file_name).name != file_name:
        raise CheckpointError(
            f"model {name!r} points at {file_name}, outside {directory}; weights must be files "
            "of the model directory"
        )
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


def _new_sibling(directory: Path, role: str) -> Path:
    """Create (with the umask's permissions) a hidden directory next to ``directory``."""
    sibling = directory.with_name(f".{directory.name}.{role}-{secrets.token_hex(4)}")
    sibling.mkdir()
    return sibling


def _move_into_place(staging: Path, directory: Path) -> None:
    """Rename the complete ``staging`` to ``directory``; an old one is removed only after."""
    if not directory.exists():
        os.rename(staging, directory)
        _fsync_directory(directory.parent)
        return
    aside = _new_sibling(directory, "old")
    os.rename(directory, aside)  # onto the empty placeholder: atomic on POSIX
    try:
        os.rename(staging, directory)
    except BaseException:
        os.rename(aside, directory)
        raise
    _fsync_directory(directory.parent)
    shutil.rmtree(aside)


def _write_synced(path: Path, data: bytes) -> None:
    """Write a new file and flush it to disk."""
    with path.open("xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_directory(directory: Path) -> None:
    """Make renames and new entries in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
