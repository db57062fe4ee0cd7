"""The layout's promises: the ML core and the trading policy run without Nautilus."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def modules_of(package: str, skip: tuple[str, ...] = ()) -> list[str]:
    return [
        f"{package}.{path.stem}"
        for path in sorted((ROOT / package).glob("*.py"))
        if path.stem not in ("__main__", *skip)
    ]


@pytest.mark.parametrize(
    ("package", "skip", "forbidden"),
    [
        ("scoremodel", ("cli",), ("nautilus_trader", "catalogs", "evaluation", "policy")),
        ("policy", (), ("nautilus_trader", "catalogs", "scoremodel", "torch")),
        # what both engine bindings share: the decision per bar, its record, model loading and
        # the risk-state file (the bindings, diagnostics data and venue reconciler are 1.231's)
        (
            "strategies",
            ("score_matching", "score_matching_v2", "diagnostics", "reconciliation"),
            ("nautilus_trader", "catalogs"),
        ),
    ],
)
def test_package_imports_nothing_it_must_not(package, skip, forbidden):
    """Import every module of the package in a fresh interpreter; none of ``forbidden`` may
    come with it (scoremodel's command-line shell reads bars through catalogs lazily)."""
    modules = modules_of(package, skip)
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(forbidden)!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]", f"{package} imports {done.stdout.strip()}"
