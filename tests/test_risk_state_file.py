"""The risk state file: atomic writes, only on change, clear errors for a damaged file."""

from __future__ import annotations

import os
import stat

import pytest

from output_paths import write_atomically
from policy.risk import RiskState
from strategies.state_file import RiskStateFile
from strategies.state_file import StateFileError


def test_missing_file_loads_as_none(tmp_path):
    assert RiskStateFile(tmp_path / "absent.json").load() is None


def test_writes_only_when_the_state_changes(tmp_path):
    path = tmp_path / "state" / "risk.json"
    state_file = RiskStateFile(path)
    state = RiskState(high_water_mark=10_500.0, day=20_000, day_start_equity=10_400.0)

    assert state_file.save_if_changed(state)
    written = path.stat()
    assert not state_file.save_if_changed(RiskState(**state.__dict__))  # equal, not identical
    assert path.stat().st_mtime_ns == written.st_mtime_ns and path.stat().st_ino == written.st_ino

    halted = RiskState(**{**state.__dict__, "halted": True, "halt_reason": "kill switch"})
    assert state_file.save_if_changed(halted)
    assert path.stat().st_ino != written.st_ino  # replaced, not rewritten in place
    assert RiskStateFile(path).load() == halted
    assert [p.name for p in path.parent.iterdir()] == ["risk.json"]  # no temporary left


def test_loaded_state_is_not_written_back(tmp_path):
    path = tmp_path / "risk.json"
    RiskStateFile(path).save_if_changed(RiskState(high_water_mark=1.0))
    state_file = RiskStateFile(path)
    assert not state_file.save_if_changed(state_file.load())


@pytest.mark.parametrize("text", ["{not json", '{"high_water_mark": 1, "surprise": 2}', "[]"])
def test_damaged_file_is_refused_with_what_to_do(tmp_path, text):
    path = tmp_path / "risk.json"
    path.write_text(text)
    with pytest.raises(StateFileError, match="delete it to start with a fresh high-water mark"):
        RiskStateFile(path).load()


def test_files_written_atomically_get_a_plain_write_s_permissions(tmp_path):
    """Reports and state files written through the atomic writer are readable like a plain
    write's (0666 less the umask), not the temporary file's 0600."""
    old = os.umask(0o022)
    try:
        write_atomically(tmp_path / "summary.json", "{}")
        plain = tmp_path / "plain.json"
        plain.write_text("{}")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "summary.json").stat().st_mode)
    assert mode == stat.S_IMODE(plain.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
