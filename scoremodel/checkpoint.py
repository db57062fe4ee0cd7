"""Checkpoint directory: safetensors weights + a JSON manifest that describes them.

Layout::

    MODEL_DIR/
      manifest.json          feature spec, normalisers, sigmas, architecture, calibration,
                             training data range and bar type, library versions, checksums
                             (of each weights file and of the manifest itself)
      signal.safetensors     state model s(x, sigma)
      forecast.safetensors   joint [state, forward return] model (forecast mode)
      conditional.safetensors  the conditional forecaster (edge mode); its manifest section
                             ``conditional`` holds L, horizons, scaling, predictive settings
                             and the recalibration map ``cdf_map`` (scoremodel.calibration)

Weights are read with safetensors only: no pickle, so loading a checkpoint never runs code.
Every file's SHA-256 is in the manifest, so a truncated or swapped file is caught at load.
A model directory is written whole: built as a hidden sibling directory, synced, then renamed
into place, so a crash never leaves half a model under the final name.

The manifest checksums itself: ``manifest_sha256`` is the SHA-256 of the manifest's canonical
JSON without that key, ``json.dumps(m, sort_keys=True, separators=(",", ":"),
allow_nan=True)`` encoded as UTF-8 (ASCII, json's default escaping); Python's float repr round
trips, so re-serialising the loaded manifest gives the same text. Every reader recomputes it
(:func:`verified_manifest`), so an edit to any field (horizons, a normaliser value, a
calibration table, the bar type, a weights file's checksum) is refused at load.

Every number in the manifest must be finite, except what is only reported, never used to load,
trade or sample: a model record's ``history``, ``best_val_loss``, ``test_loss``,
``train_seconds`` and ``states_per_second`` (``models.NAME.KEY``; a diverged epoch's loss may be
NaN or inf). A NaN or inf anywhere else (normalisers, sigmas, calibration tables, the
conditional section's scaling and predictive settings, ``mean_shrinkage``, inference and
training settings, ...) is refused at load naming the field, and :func:`save_checkpoint`
refuses to write it (``ValueError``), so such a model never reaches disk. Non-finite reporting
values are written as json writes them (``NaN``, ``Infinity``), which json reads back.

:func:`load_verified_checkpoint` is the one gate every user of a model passes (the strategy's
loader and ``python -m scoremodel info``): the checkpoint itself (files, checksums, a complete
manifest, this code's feature spec) and, when given, its fit to the bars and signal mode.
"""

from __future__ import annotations

import hashlib
import json
import math
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
FORMAT_VERSION = 3  # 2: Simpson density on (z, z/2) at sigma_min; 3: manifest_sha256
MANIFEST = "manifest.json"
MANIFEST_DIGEST = "manifest_sha256"  # the manifest's own checksum (see the module docstring)
# What training measured and `info` shows, never used to load, trade or sample: these entries of
# a model record (models.NAME.KEY) may hold non-finite numbers; every other number must be finite.
REPORTING_ONLY = frozenset(
    {"history", "best_val_loss", "test_loss", "train_seconds", "states_per_second"}
)
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
    """Write ``weights[name]`` to ``name.safetensors`` and the manifest with their checksums
    and its own (``manifest_sha256``).

    The model directory appears complete or not at all: it is built as a hidden sibling
    directory, synced, and renamed into place. An existing model directory is replaced only
    with ``overwrite``, and only after the new one is complete (see :func:`check_model_output`).
    A manifest with a non-finite number outside the reporting-only entries raises ValueError
    naming the field, before anything is written.
    """
    directory = Path(directory)
    check_model_output(directory, overwrite)
    manifest = json.loads(json.dumps(manifest))  # a deep copy that is surely JSON
    manifest.pop(MANIFEST_DIGEST, None)  # a loaded model's: recomputed below
    non_finite = non_finite_numbers(manifest)
    if non_finite:
        raise ValueError(
            f"refusing to save a model whose {_describe_non_finite(non_finite)}: a model's "
            "statistics and settings must be finite numbers (check the bars and the training run)"
        )
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
        manifest[MANIFEST_DIGEST] = manifest_digest(manifest)
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
                if (directory / MANIFEST).is_file()  # else --overwrite is refused too (below)
                else f"{directory} is not a model directory (no {MANIFEST}) and is not empty; "
                "choose another path for the model"
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
    """The manifest of ``directory``, checked to be a complete manifest of this format, unedited
    (its checksum) and with finite numbers (:func:`verified_manifest`)."""
    path = directory / MANIFEST
    if not directory.is_dir():
        raise CheckpointError(
            f"model directory {directory} "
            f"{'is not a directory' if directory.exists() else 'does not exist'}; train one with "
            "`python -m scoremodel train --catalog DIR --bar-type BAR_TYPE --out MODEL_DIR`"
        )
    if not path.is_file():
        raise CheckpointError(f"{directory} has no {MANIFEST}; it is not a scoremodel checkpoint")
    manifest = verified_manifest(path)
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


def verified_manifest(path: Path) -> dict:
    """The manifest in the file ``path``, as every reader of a model directory gets it (this
    module's :func:`read_manifest`, ``scoremodel.cond_checkpoint``): valid JSON, this format and
    version, its ``manifest_sha256`` equal to its content's, every number outside the
    reporting-only entries finite. Anything else raises :class:`CheckpointError`."""
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
    stored = manifest.get(MANIFEST_DIGEST)
    if not isinstance(stored, str):
        raise CheckpointError(
            f"{path} has no checksum ({MANIFEST_DIGEST}): it was edited or damaged after it was "
            "written; copy the whole model directory again or retrain"
        )
    if stored != manifest_digest(manifest):
        raise CheckpointError(
            f"{path} was edited or damaged after it was written (its checksum differs); copy "
            "the whole model directory again or retrain"
        )
    non_finite = non_finite_numbers(manifest)
    if non_finite:
        raise CheckpointError(
            f"{path}: {_describe_non_finite(non_finite)}, but a model's statistics and settings "
            "must be finite numbers; copy the whole model directory again or retrain"
        )
    return manifest


def manifest_digest(manifest: dict) -> str:
    """SHA-256 (hex) of the canonical JSON of ``manifest`` without ``manifest_sha256``."""
    content = {key: value for key, value in manifest.items() if key != MANIFEST_DIGEST}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


def non_finite_numbers(manifest: dict) -> list[tuple[str, float]]:
    """(dotted field, value) of every NaN or inf in ``manifest`` outside the reporting-only
    entries of model records, e.g. ``("models.signal.normaliser.std[3]", nan)``."""
    checked = dict(manifest)
    if isinstance(manifest.get("models"), dict):
        checked["models"] = {
            name: {k: v for k, v in entry.items() if k not in REPORTING_ONLY}
            if isinstance(entry, dict)
            else entry
            for name, entry in manifest["models"].items()
        }
    found: list[tuple[str, float]] = []

    def walk(value: object, field: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{field}.{key}" if field else str(key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{field}[{index}]")
        elif isinstance(value, float) and not math.isfinite(value):
            found.append((field, value))

    walk(checked, "")
    return found


def _describe_non_finite(found: list[tuple[str, float]]) -> str:
    field, value = found[0]
    more = f" ({len(found)} non-finite numbers in all)" if len(found) > 1 else ""
    return f"{field} is {value}{more}"


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
