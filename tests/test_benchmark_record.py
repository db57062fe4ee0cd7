"""One record: `python -m benchmarks` stores both engines under ``engines`` in
docs/benchmarks.json, and the docs' engines table is rendered from it (no engine is run here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.engines import RECORD_KEYS
from benchmarks.engines import record_engines
from tests.helpers import docs_render_module

ROOT = Path(__file__).resolve().parent.parent


def _figures(version: str, bare: float, full: float) -> dict:
    """One engine's entry of ``python -m benchmarks.engines --json`` (fabricated)."""
    return {
        "engine": version,
        "bare_bars_per_s": bare,
        "full_bars_per_s": full,
        "on_bar_mean_us": 71.4,
        "on_bar_p50_us": 60.2,
        "on_bar_p99_us": 150.9,
        "full_over_bare_time": bare / full,
        "orders": 12,
        "bars": 3_000,
        "signal_mode": "edge",
    }


RESULTS = [_figures("2.0.0rc6", 140_000.0, 12_500.0), _figures("1.231.0", 17_000.0, 4_400.0)]


def test_record_engines_keys_each_engine_by_its_version() -> None:
    record = {"bars": 200_000, "bare_bars_per_s": 19_000.0}
    merged = record_engines(record, RESULTS)
    assert merged["bars"] == 200_000 and "engines" not in record  # the record is not changed
    assert list(merged["engines"]) == ["1.231.0", "2.0.0rc6"]
    for version, figures in merged["engines"].items():
        assert set(RECORD_KEYS) <= set(figures), version
        assert "engine" not in figures
    assert set(RECORD_KEYS) >= {
        "bare_bars_per_s", "full_bars_per_s", "on_bar_mean_us", "on_bar_p50_us",
        "on_bar_p99_us", "orders", "bars", "signal_mode",
    }  # fmt: skip
    assert merged["engines"]["2.0.0rc6"]["bare_bars_per_s"] == 140_000.0
    assert merged["engines"]["1.231.0"]["signal_mode"] == "edge"


def test_record_engines_rejects_incomplete_figures() -> None:
    incomplete = {k: v for k, v in RESULTS[0].items() if k != "on_bar_p50_us"}
    with pytest.raises(KeyError, match="on_bar_p50_us"):
        record_engines({}, [incomplete])


def test_engines_table_is_rendered_from_the_record() -> None:
    render = docs_render_module()
    record = record_engines({"machine": {"when": "2026-01-02 03:04:05", "cpu_count": 2}}, RESULTS)
    text = render.render_engines(record)
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| engine | bare bars/s | full bars/s")
    assert rows[1].startswith("| 1.231.0 | 17,000 | 4,400 | 3.9x | 71 | 60 | 151 | 12 |")
    assert rows[2].startswith("| 2.0.0rc6 | 140,000 | 12,500 | 11.2x |")
    assert "3,000 synthetic one-minute bars" in text and "edge mode" in text
    assert "2026-01-02 03:04:05" in text


def test_engines_table_without_engines_says_how_to_record_them() -> None:
    text = docs_render_module().render_engines({"bars": 30_000})
    assert "not been recorded yet" in text and "python -m benchmarks" in text
    assert "|" not in text
