"""Live trading never loses or misreads the user's state: the risk state file is validated field
by field before anything connects, `resume` changes nothing unless it can do everything, the
state file is where the README says, `kill` fails in one line, and a venue whose host name does
not resolve ends the start at once."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from pathlib import Path

import msgspec
import pytest

import run_live
from policy.risk import RiskState
from runtime import live
from runtime.run_config import load_run_config
from strategies.state_file import RISK_STATE_FIELDS
from strategies.state_file import RiskStateFile
from strategies.state_file import StateFileError
from strategies.state_file import parse_risk_state
from tests.bybit_emulator import EmulatorServer
from tests.live_support import clear_keys
from tests.live_support import strategy_settings
from tests.live_support import use_keys
from tests.live_support import write_run_yaml

CLOSED_PORT = "127.0.0.1:9"  # nothing listens: a regression cannot reach a real venue
TRADER_ID = "SCOREMATCH-001"  # the default live.trader_id
#: The path README.md ("Restart safety") gives, under the test's state_dir, for demo mode.
DOCUMENTED_STATE = Path(TRADER_ID) / "demo" / "ScoreMatchingStrategy-000.risk.json"
HALTED = RiskState(
    high_water_mark=12_000.0,
    day=20_000,
    day_start_equity=11_000.0,
    halted=True,
    halted_at_ns=1_728_000_000_000_000_000,
    halt_reason="max drawdown 21.0% >= 20.0%",
)


def user_config(tmp_path: Path, model_path: Path, host: str = CLOSED_PORT, **live_fields) -> Path:
    """A run config whose endpoints all point at ``host``; state and kill switch in tmp_path."""
    live_section = {
        "base_url_http": f"http://{host}",
        "base_url_ws_public": f"ws://{host}/v5/public",
        "base_url_ws_private": f"ws://{host}/v5/private",
        "base_url_ws_trade": f"ws://{host}/v5/trade",
        "state_dir": str(tmp_path / "state"),
        "kill_switch_path": str(tmp_path / "KILL"),
        **live_fields,
    }
    return write_run_yaml(tmp_path / "live.yaml", strategy_settings(model_path), live_section)


def snapshot(root: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file under ``root``: size, mtime and content."""
    return {
        str(path.relative_to(root)): (
            path.stat().st_size,
            path.stat().st_mtime_ns,
            path.read_bytes(),
        )
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _file_facts(path: Path) -> tuple[int, int, bytes]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns, path.read_bytes()


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The single ``error:`` line the command printed on stderr (and nothing else there)."""
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    [line] = captured.err.strip().splitlines()
    assert line.startswith("error: ")
    return line


def state_json(**changes: object) -> str:
    """The JSON of a valid halted state with some fields replaced (raw JSON values)."""
    values = {**dataclasses.asdict(HALTED), **changes}
    return json.dumps(values)


# ----- case 5: the risk state is validated field by field ----------------------------------------


@pytest.mark.parametrize(
    ("text", "field", "shown"),
    [
        (state_json(high_water_mark="10000"), "high_water_mark", '"10000"'),
        (state_json(halted="false"), "halted", '"false"'),
        (state_json(halted=1), "halted", "1"),
        (state_json(day_stopped=None), "day_stopped", "null"),
        (state_json(high_water_mark=True), "high_water_mark", "true"),
        (state_json(high_water_mark=-5.0), "high_water_mark", "-5.0"),
        (state_json(day_start_equity=float("inf")), "day_start_equity", "Infinity"),
        (state_json(high_water_mark=float("nan")), "high_water_mark", "NaN"),
        (state_json(high_water_mark=10**400), "high_water_mark", "1000"),
        (state_json(halted_at_ns=1.5), "halted_at_ns", "1.5"),
        (state_json(halted_at_ns=-1), "halted_at_ns", "-1"),
        (state_json(halted_at_ns=2**64), "halted_at_ns", str(2**64)),
        (state_json(day="20000"), "day", '"20000"'),
        (state_json(halt_reason=7), "halt_reason", "7"),
    ],
)
def test_a_wrongly_typed_field_is_refused_naming_file_field_and_value(tmp_path, text, field, shown):
    path = tmp_path / "risk.json"
    path.write_text(text)
    with pytest.raises(StateFileError) as error:
        RiskStateFile(path).load()
    message = str(error.value)
    assert "\n" not in message
    assert str(path) in message and f'"{field}": {shown}' in message
    assert "expected" in message and "delete it to start with a fresh high-water mark" in message


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (state_json(surprise=2), "unknown field(s) 'surprise'"),
        (json.dumps({"high_water_mark": 1.0}), "lacks the field(s) 'day'"),
        ('{"halted": true, "halted": false}', "'halted'"),  # given twice
        ("[]", "not a JSON object"),
        ("{not json", "is not valid JSON"),
        ("", "is not valid JSON"),
    ],
)
def test_a_malformed_state_file_is_refused_in_one_line(tmp_path, text, problem):
    path = tmp_path / "risk.json"
    path.write_text(text)
    with pytest.raises(StateFileError) as error:
        RiskStateFile(path).load()
    assert problem in str(error.value) and str(path) in str(error.value)
    assert "\n" not in str(error.value)


def test_a_valid_state_loads_as_written_and_ints_are_numbers():
    assert parse_risk_state(HALTED.to_json(), "x") == HALTED
    loaded = parse_risk_state(state_json(high_water_mark=10_000, halted=False), "x")
    assert loaded.high_water_mark == 10_000.0 and isinstance(loaded.high_water_mark, float)
    assert loaded.halted is False


def test_the_rules_cover_exactly_the_fields_of_the_risk_state():
    assert list(RISK_STATE_FIELDS) == [f.name for f in dataclasses.fields(RiskState)]


def test_a_bad_state_file_stops_the_run_before_anything_connects(
    minute_model, tmp_path, monkeypatch, capsys
):
    use_keys(monkeypatch, "demo", "SOMEKEY", "SOMESECRET")
    with EmulatorServer() as emu:
        config = user_config(tmp_path, minute_model, host=emu.base_url_http.split("//")[1])
        path = tmp_path / "state" / DOCUMENTED_STATE
        path.parent.mkdir(parents=True)
        path.write_text(state_json(high_water_mark="10000"))
        before = snapshot(tmp_path)

        assert run_live.main(["--mode", "demo", "--config", str(config)]) == 2
        assert emu.requests() == []  # not even the key check
    line = one_error_line(capsys)
    assert f"the risk state file {path} has " in line and '"high_water_mark": "10000"' in line
    assert snapshot(tmp_path) == before


# ----- case 6: resume checks everything before it changes anything ------------------------------


def test_resume_with_a_damaged_state_file_keeps_the_kill_switch(minute_model, tmp_path, capsys):
    config = str(user_config(tmp_path, minute_model))
    assert run_live.main(["kill", "--config", config]) == 0
    path = tmp_path / "state" / DOCUMENTED_STATE
    path.parent.mkdir(parents=True)
    path.write_text(state_json(halted="false"))
    capsys.readouterr()
    before = snapshot(tmp_path)

    assert run_live.main(["resume", "--mode", "demo", "--config", config]) == 2
    line = one_error_line(capsys)
    assert '"halted": "false"' in line and str(path) in line
    assert (tmp_path / "KILL").is_file()  # still armed
    assert snapshot(tmp_path) == before  # the state file byte-identical, nothing else written


def test_resume_that_cannot_remove_the_kill_switch_puts_the_halt_back(
    minute_model, tmp_path, monkeypatch, capsys
):
    config = str(user_config(tmp_path, minute_model))
    assert run_live.main(["kill", "--config", config]) == 0
    path = tmp_path / "state" / DOCUMENTED_STATE
    path.parent.mkdir(parents=True)
    path.write_text(HALTED.to_json())
    before = path.read_bytes()
    unlink = Path.unlink

    def refuse_kill_file(self: Path, missing_ok: bool = False) -> None:
        if self.name == "KILL":
            raise PermissionError(13, "Permission denied")
        unlink(self, missing_ok)

    monkeypatch.setattr(Path, "unlink", refuse_kill_file)
    capsys.readouterr()
    assert run_live.main(["resume", "--mode", "demo", "--config", config]) == 2
    line = one_error_line(capsys)
    assert "cannot remove the kill switch file" in line and "nothing was changed" in line
    assert (tmp_path / "KILL").is_file() and path.read_bytes() == before


# ----- case 9: the state file is where the README says -----------------------------------------


def test_the_state_file_at_the_documented_path_is_the_one_used(minute_model, tmp_path, capsys):
    config = str(user_config(tmp_path, minute_model))
    path = tmp_path / "state" / DOCUMENTED_STATE
    path.parent.mkdir(parents=True)
    path.write_text(HALTED.to_json())
    assert live.risk_state_path(load_run_config(config), "demo") == str(path)

    assert run_live.main(["resume", "--mode", "demo", "--config", config]) == 0
    assert f"cleared the halt ({HALTED.halt_reason}) in {path}" in capsys.readouterr().out
    resumed = RiskState.from_json(path.read_text())
    assert not resumed.halted and (resumed.day, resumed.day_start_equity) == (20_000, 11_000.0)


@pytest.mark.parametrize(
    ("strategy_id", "order_id_tag", "expected"),
    [
        (None, None, "ScoreMatchingStrategy-000"),
        ("Alpha", None, "Alpha-000"),
        ("Alpha", "7", "Alpha-7"),
    ],
)
def test_the_state_file_is_named_after_the_strategy_id_nautilus_gives(
    minute_model, tmp_path, strategy_id, order_id_tag, expected
):
    run = load_run_config(user_config(tmp_path, minute_model))
    strategy = msgspec.structs.replace(
        run.strategy, strategy_id=strategy_id, order_id_tag=order_id_tag
    )
    run = dataclasses.replace(run, strategy=strategy)
    loop = asyncio.new_event_loop()
    node = live.build_node(run, "sandbox", loop)
    try:
        [built] = node.trader.strategies()
        assert built.id.value == live.strategy_id(strategy) == expected
    finally:
        node.dispose()
    assert Path(live.risk_state_path(run, "demo")).name == f"{expected}.risk.json"


def test_a_state_file_left_at_the_old_name_stops_the_run_and_resume(
    minute_model, tmp_path, monkeypatch, capsys
):
    use_keys(monkeypatch, "demo", "SOMEKEY", "SOMESECRET")
    config = str(user_config(tmp_path, minute_model))
    old = tmp_path / "state" / TRADER_ID / "demo" / "ScoreMatchingStrategy-None.risk.json"
    old.parent.mkdir(parents=True)
    old.write_text(HALTED.to_json())
    (tmp_path / "KILL").write_text("armed\n")
    before = snapshot(tmp_path)

    for command in (["--mode", "demo"], ["resume", "--mode", "demo"]):
        assert run_live.main([*command, "--config", config]) == 2
        line = one_error_line(capsys)
        assert f"still at {old}" in line and "rename it: mv" in line
    assert snapshot(tmp_path) == before


# ----- kill and an unresolvable venue ------------------------------------------------------------


def test_kill_with_an_unwritable_path_fails_in_one_line(minute_model, tmp_path, capsys):
    (tmp_path / "not-a-dir").write_text("a file where a directory should be\n")
    config = user_config(
        tmp_path, minute_model, kill_switch_path=str(tmp_path / "not-a-dir" / "KILL")
    )
    before = snapshot(tmp_path)
    assert run_live.main(["kill", "--config", str(config)]) == 2
    line = one_error_line(capsys)
    assert "the kill switch is NOT armed: cannot create" in line and "SIGTERM" in line
    assert snapshot(tmp_path) == before


@pytest.mark.timeout(120)
def test_a_host_that_does_not_resolve_ends_the_start_at_once(
    minute_model, tmp_path, monkeypatch, capsys
):
    clear_keys(monkeypatch)
    config = user_config(tmp_path, minute_model, host="nonexistent.invalid", timeout_connection=90)
    started = time.monotonic()
    assert run_live.main(["--mode", "sandbox", "--config", str(config)]) == 2
    elapsed = time.monotonic() - started
    line = one_error_line(capsys)
    assert line == (
        "error: the Bybit data client could not connect: the host name nonexistent.invalid "
        "does not resolve (no network, or no DNS); check the network, a proxy, or "
        "live.base_url_http / base_url_ws_public"
    )
    assert elapsed < 45, f"waited {elapsed:.0f} s: the connect timeout, not the DNS failure"
