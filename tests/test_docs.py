"""The documentation cannot drift: generated parts equal what their sources give, links resolve.

Needs no mkdocs (``make docs`` builds the site); renders with ``scripts/docs_render.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import docs_render_module

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def _pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _links(path: Path) -> list[str]:
    text = re.sub(r"`[^`\n]*`", "", FENCE.sub("", path.read_text()))
    return [
        target
        for target in LINK.findall(text)
        if not re.match(r"[a-z][a-z0-9+.-]*:", target) and not target.startswith("#")
    ]


def test_generated_parts_are_current() -> None:
    """A table, command or setting rendered afresh equals the committed text; run
    ``python scripts/docs_render.py`` (or ``make docs``) after changing a source."""
    render = docs_render_module()
    stale = [
        str(path.relative_to(ROOT))
        for path, text in render.rendered().items()
        if path.read_text() != text
    ]
    assert not stale, f"stale generated parts in {stale}; run python scripts/docs_render.py"


def test_generated_parts_exist() -> None:
    """README's headline table and the reference pages are generated, not written by hand."""
    readme = (ROOT / "README.md").read_text()
    assert "<!-- generated:headline -->" in readme
    commands = (ROOT / "docs/reference/commands.md").read_text()
    assert "<!-- generated:commands -->" in commands
    configuration = (ROOT / "docs/reference/configuration.md").read_text()
    for section in ("strategy", "backtest", "live", "retrain"):
        assert f"<!-- generated:config-{section} -->" in configuration


@pytest.mark.parametrize("path", _pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    """Every relative link points at an existing file; in docs/, at one inside docs/ (the site
    serves nothing else)."""
    broken = []
    for target in _links(path):
        resolved = (path.parent / target.split("#", 1)[0]).resolve()
        if not resolved.exists():
            broken.append(target)
        elif path.is_relative_to(ROOT / "docs") and not resolved.is_relative_to(ROOT / "docs"):
            broken.append(f"{target} (outside docs/)")
    assert not broken, f"{path.relative_to(ROOT)}: broken links {broken}"


def test_readme_is_short() -> None:
    """The README is an entry point of a couple of screens; the rest lives in docs/."""
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200
