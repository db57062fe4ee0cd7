"""Model versions: every retrained model kept as a checkpoint with a content id, and a pointer.

Layout of a registry (for a live node: the model directory itself)::

    ROOT/
      manifest.json ...        the model the user trained (the base; a plain checkpoint)
      versions/<id>/           one checkpoint per retrained model (scoremodel.checkpoint)
      versions/index.json      every version's record: window, metrics, promoted, reason
      current                  the id of the version in use (one line, replaced atomically)

A version's **id** is the first 12 hex digits of the SHA-256 of its weights' checksums and its
training window (:func:`version_id`): the same bars, settings and seed give the same weights,
so a backtest and a live node that trained the same model name it alike. A model directory
without ``current`` is its own model, as before versions existed; with one, every loader uses
the version it names (:func:`resolve_model_dir`). ``keep`` bounds the versions kept: the oldest
beyond it are deleted, never the current one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import safetensors.torch

from cli_errors import UserError
from output_paths import write_atomically
from scoremodel.checkpoint import CheckpointError
from scoremodel.checkpoint import load_checkpoint
from scoremodel.checkpoint import read_manifest
from scoremodel.checkpoint import save_checkpoint
from scoremodel.features import DEFAULT_SPEC

VERSIONS = "versions"
CURRENT = "current"
INDEX = "index.json"


class RegistryError(UserError):
    """A registry whose pointer or index cannot be used."""


def version_id(manifest: dict, weights: dict | None = None) -> str:
    """The content id of a model: SHA-256 of each network's weights checksum (from the manifest
    of a saved model, or of ``weights`` serialised as safetensors) and the training window."""
    digest = hashlib.sha256()
    for name in sorted(manifest["models"]):
        stored = manifest["models"][name].get("sha256")
        if weights is not None and name in weights:
            tensors = {k: v.detach().contiguous().cpu() for k, v in weights[name].items()}
            stored = hashlib.sha256(safetensors.torch.save(tensors)).hexdigest()
        digest.update(f"{name}:{stored};".encode())
    data = manifest["data"]
    digest.update(f"{data['bar_type']}|{data['first_bar']}|{data['last_bar']}".encode())
    return digest.hexdigest()[:12]


def resolve_model_dir(directory: str | Path) -> Path:
    """The checkpoint a model directory stands for: its current version, or itself."""
    directory = Path(directory)
    pointer = directory / CURRENT
    if not pointer.is_file():
        return directory
    name = pointer.read_text().strip()
    target = directory / VERSIONS / name
    if not name or Path(name).name != name or not target.is_dir():
        raise RegistryError(
            f"{pointer} names version {name!r}, which is not in {directory / VERSIONS}; list the "
            f"versions with `python -m scoremodel versions {directory}`, or delete {pointer} to "
            "use the model the directory itself holds"
        )
    return target


def check_registry(root: str | Path) -> None:
    """Refuse a registry whose current version cannot be loaded (before a node connects: a
    restart resumes with it). A registry without ``current`` passes."""
    registry = Registry(Path(root))
    current = registry.current_id()
    if current is None:
        return
    try:
        registry.load(current)
    except (CheckpointError, OSError) as error:
        raise RegistryError(
            f"the current model version {current} of {root} cannot be loaded ({error}); delete "
            f"{Path(root) / CURRENT} to resume with the model directory's own model"
        ) from None


@dataclass(frozen=True)
class Registry:
    """The versions of one model, under ``root``: for a live node ``{model}/live/{mode}`` (or
    ``retrain.registry``), for a backtest its report directory's ``models/``."""

    root: Path

    @property
    def versions_dir(self) -> Path:
        return self.root / VERSIONS

    def current_id(self) -> str | None:
        pointer = self.root / CURRENT
        return pointer.read_text().strip() if pointer.is_file() else None

    def records(self) -> list[dict]:
        """Every version's record, oldest first (an empty list before the first)."""
        path = self.versions_dir / INDEX
        if not path.is_file():
            return []
        try:
            records = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise RegistryError(
                f"{path} cannot be read ({error}); restore it or delete it (the version "
                "directories stay usable)"
            ) from None
        if not isinstance(records, list):
            raise RegistryError(f"{path} does not hold a list of version records")
        return records

    def add(self, manifest: dict, weights: dict, record: dict) -> str:
        """Store a model as a version (idempotent: an id already stored is kept) and append its
        record; returns its id. Nothing becomes current here (:meth:`set_current`)."""
        identity = version_id(manifest, weights)
        target = self.versions_dir / identity
        if not target.is_dir():
            save_checkpoint(target, manifest, weights)
        self._write_index([*self.records(), {"id": identity, **record}])
        return identity

    def note(self, identity: str, **fields: object) -> None:
        """Update the last record of ``identity`` (promotion, the bars it decided)."""
        records = self.records()
        for record in reversed(records):
            if record.get("id") == identity:
                record.update(fields)
                break
        self._write_index(records)

    def set_current(self, identity: str) -> None:
        """Make ``identity`` the version every loader uses (one atomic file replace)."""
        if not (self.versions_dir / identity).is_dir():
            raise RegistryError(f"no version {identity} in {self.versions_dir}")
        write_atomically(self.root / CURRENT, identity + "\n")

    def prune(self, keep: int) -> list[str]:
        """Delete the oldest version directories beyond the newest ``keep`` (never the current
        one); returns the ids removed. Their records stay in the index, marked removed."""
        current = self.current_id()
        stored = [r["id"] for r in self.records() if (self.versions_dir / r["id"]).is_dir()]
        unique = list(dict.fromkeys(reversed(stored)))  # newest first
        removed = [identity for identity in unique[keep:] if identity != current]
        for identity in removed:
            shutil.rmtree(self.versions_dir / identity)
            self.note(identity, removed=True)
        return removed

    def load(self, identity: str) -> tuple[dict, dict]:
        """(manifest, weights) of a stored version, verified like any checkpoint."""
        target = self.versions_dir / identity
        if Path(identity).name != identity or not target.is_dir():
            raise RegistryError(f"no version {identity!r} in {self.versions_dir}")
        return load_checkpoint(target, DEFAULT_SPEC)

    def _write_index(self, records: list[dict]) -> None:
        write_atomically(self.versions_dir / INDEX, json.dumps(records, indent=1, default=str))


def registries_of(root: str | Path) -> list[Path]:
    """``root`` and the live nodes' registries inside it (``live/<mode>``) that hold versions."""
    root = Path(root)
    found = [root, *sorted(p for p in (root / "live").glob("*") if p.is_dir())]
    return [r for r in found if r == root or (r / VERSIONS).is_dir()]


def describe_versions(root: str | Path) -> str:
    """``python -m scoremodel versions``: the base model and every registry's versions, each
    registry's current one marked ``*``."""
    root = Path(root)
    blocks = [_describe_registry(registry, registry == root) for registry in registries_of(root)]
    return "\n".join(block for block in blocks if block)


def _describe_registry(root: Path, with_base: bool) -> str:
    registry = Registry(root)
    lines = []
    if (root / "manifest.json").is_file():
        try:
            manifest = read_manifest(root)
            data = manifest["data"]
            lines.append(
                f"  base          {version_id(manifest)}  trained on {data['first_bar'][:16]} .. "
                f"{data['last_bar'][:16]} ({data['n_bars']:,} bars)"
            )
        except CheckpointError as error:
            lines.append(f"  base          unusable: {error}")
    current = registry.current_id()
    if not with_base and not registry.records():
        return ""
    for record in registry.records():
        identity = record["id"]
        mark = "*" if identity == current else " "
        state = (
            "removed"
            if record.get("removed")
            else ("promoted" if record.get("promoted") else "kept aside")
        )
        lines.append(
            f"{mark} {identity}  trained on {str(record.get('trained_from'))[:16]} .. "
            f"{str(record.get('trained_to'))[:16]}  {state}: {record.get('reason', '')}"
        )
    if not lines:
        raise RegistryError(f"{root} holds no model and no versions")
    header = f"{root}: current {current or 'the base model (no version promoted)'}"
    return "\n".join([header, *lines])
