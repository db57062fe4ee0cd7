"""Test data that needs no catalog: real-shaped bars and small trained models."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd

from scoremodel.checkpoint import MANIFEST
from scoremodel.checkpoint import MANIFEST_DIGEST
from scoremodel.checkpoint import manifest_digest


def random_walk_bars(n: int, seed: int = 0, interval: str = "1min") -> pd.DataFrame:
    """Real-shaped OHLCV bars: GARCH-like returns, jumps, flat stretches, zero-volume bars.

    Stamped at the bar close, like every bar frame in this project.
    """
    rng = np.random.default_rng(seed)
    variance = np.empty(n)
    returns = np.empty(n)
    v, omega, alpha, beta = 1e-6, 2e-8, 0.08, 0.9
    for i in range(n):
        variance[i] = v
        returns[i] = np.sqrt(v) * rng.standard_t(4) / np.sqrt(2.0)
        v = omega + alpha * returns[i] ** 2 + beta * v
    returns += np.where(rng.random(n) < 0.002, rng.normal(0, 0.01, n), 0.0)
    flat = rng.random(n) < 0.03  # a tick-less minute: no move at all
    returns[flat] = 0.0
    close = 40_000.0 * np.exp(np.cumsum(returns))
    close = np.round(close, 1)  # on a 0.1 tick, like BTCUSDT
    open_ = np.concatenate([[close[0]], close[:-1]])
    wiggle = np.abs(rng.normal(0, 1, n)) * np.sqrt(variance) * close
    high = np.maximum(open_, close) + np.where(flat, 0.0, np.round(wiggle, 1))
    low = np.minimum(open_, close) - np.where(flat, 0.0, np.round(wiggle * rng.random(n), 1))
    volume = np.exp(rng.normal(3, 1, n)) * (1 + 200 * np.abs(returns))
    volume[flat & (rng.random(n) < 0.5)] = 0.0
    index = pd.date_range("2024-01-01", periods=n, freq=interval, tz="UTC") + pd.Timedelta(interval)
    frame = pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index
    )
    frame.index.name = "ts_close"
    return frame


def edit_manifest(model: Path, edit: Callable[[dict], object], reseal: bool = True) -> None:
    """Apply ``edit`` to the manifest of the model directory ``model``. With ``reseal`` (for a test
    of a check behind the manifest's own checksum) its ``manifest_sha256`` is recomputed; without,
    the edit is what a user's hand edit or a damaged copy looks like."""
    path = Path(model) / MANIFEST
    manifest = json.loads(path.read_text())
    edit(manifest)
    if reseal:
        manifest[MANIFEST_DIGEST] = manifest_digest(manifest)
    path.write_text(json.dumps(manifest))


def snapshot(*roots: Path) -> dict[str, str]:
    """Every directory and file under ``roots``: path -> "dir" or the file's SHA-256 (what a
    command must leave unchanged)."""
    found: dict[str, str] = {}
    for root in roots:
        found[str(root)] = "dir" if root.is_dir() else "absent"
        for path in sorted(root.rglob("*")):
            found[str(path)] = (
                "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
            )
    return found


def docs_render_module() -> ModuleType:
    """``scripts/docs_render.py`` imported as the module ``docs_render`` (scripts/: no package)."""
    path = Path(__file__).resolve().parent.parent / "scripts" / "docs_render.py"
    spec = importlib.util.spec_from_file_location("docs_render", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["docs_render"] = module
    spec.loader.exec_module(module)
    return module
